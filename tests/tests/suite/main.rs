//! Every integration test of the services, in one test binary: one link
//! instead of one per file, and the tests of all files run side by side
//! rather than file after file. Each module is one area of behaviour; run
//! one with `cargo test -p pingji-tests --test suite auth::`.
//!
//! The tests start real dispatchers (in this process or as child
//! processes), real `redis-server`s and real clients over loopback, each
//! on its own free port and temporary directory, so they do not share
//! state and can run in any order.

mod activity;
mod agent_client;
mod architecture;
mod auth;
mod bad_input;
mod border;
mod cap;
mod city_run;
mod configuration;
mod console_cli;
mod console_mobilisation;
mod dispatch;
mod district_shards;
mod drill_live;
mod durability;
mod eido;
mod event_stream;
mod explain;
mod field_api;
mod field_app;
mod health;
mod limits;
mod map_extras;
mod maps;
mod mobilisation;
mod notify;
mod observability;
mod privacy_and_paging;
mod push;
mod redis_cluster;
mod redis_store;
mod retention;
mod rosters;
mod safety;
mod shelters;
mod shutdown;
mod supplies;
mod tls;
mod web;
mod web_serving;
mod webhooks;
