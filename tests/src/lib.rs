//! Fixtures for the end-to-end tests: a real dispatcher (in process on port 0,
//! or the `dispatcher` binary as a child process) and real gRPC clients.
//!
//! Tests wait on predicates with deadlines, never on bare sleeps, and shut
//! servers down by joining them so that panics and errors surface.
//!
//! # Layout
//! - [`server`]: [`TestServer`], the dispatcher library served on
//!   `127.0.0.1:0` by its own runtime thread, with client factories and a
//!   shutdown that joins it; [`connect_located`] to put a person on the map.
//! - [`process`]: [`DispatcherProcess`], the compiled `dispatcher` binary as a
//!   child process on a free port, for kill-and-restart tests, optionally
//!   under a lowered open-file limit, with its memory, CPU time and limits
//!   read from `/proc`.
//! - [`raw_h2`]: raw TCP and HTTP/2 clients written frame by frame:
//!   connections that send nothing or only the preface, and agent sessions
//!   whose client stops reading.
//! - [`session`]: [`AgentSession`], one person's `AgentService.Session` stream
//!   with helpers to send locations and answers and to expect messages.
//! - [`events`]: [`EventWatch`], a `WatchEvents` stream with helpers to wait
//!   for an event and read its JSON.
//! - [`people`]: [`PeopleWatch`], a `WatchAgents` stream and the people it
//!   shows.
//! - [`wait`]: [`wait_until`], polling an async predicate until a deadline,
//!   and [`connect_with_retry`].
//! - [`sample`]: the sample city and roster, short-timeout policies, people
//!   specs, and points inside areas.
//! - [`auth`]: the admin token every test dispatcher starts with, command
//!   clients carrying a token, and people's tokens.
//! - [`clock`]: [`TestClock`], a virtual clock for a dispatcher, moved on by
//!   hand (tokens expiring).
//! - [`agent_fixtures`]: a dispatcher process restartable on the same port,
//!   for client reconnect tests, and the `field-agent` binary.
//! - [`browser`]: a headless Chromium driven over the DevTools protocol,
//!   for the command map (skipped with a hint when it is not installed).
//! - [`binaries`]: the workspace's binaries, built when missing or stale.
//! - [`cli`]: the `pingji` console binary, run with arguments.
//! - [`metrics`]: scraping `/metrics` over HTTP and reading values.
//! - [`grpc_web`]: one grpc-web call by hand, as the command map's page
//!   makes it, over plain TCP or TLS.
//! - [`load`]: what the load generators share (simulated people's points,
//!   a process's CPU, free ports).
//! - [`otlp`]: an OTLP/gRPC collector (traces, metrics) for export tests.
//! - [`mobilisation`]: reserves, plan files, check-ins and field reports,
//!   and waiting for one kind of message on a session.
//! - [`tls`]: [`tls::TestPki`], a CA, server and client certificates made
//!   by the test, and the clients' TLS settings from them.
//! - [`redis`]: several dispatchers on one Redis: a real `redis-server` and
//!   [`redis::SharedDispatcher`], the binary with `--store redis://...`, to
//!   kill, pause, resume and restart.
//! - [`webhook_receiver`]: a partner's HTTP endpoint on loopback that
//!   records the webhooks posted to it, answers as told, and goes down and
//!   comes back on the same port.

#![forbid(unsafe_code)]

pub mod agent_fixtures;
pub mod auth;
pub mod binaries;
pub mod browser;
pub mod cli;
pub mod clock;
pub mod events;
pub mod grpc_web;
pub mod load;
pub mod metrics;
pub mod mobilisation;
pub mod otlp;
pub mod people;
pub mod process;
pub mod push_service;
pub mod raw_h2;
pub mod redis;
pub mod sample;
pub mod server;
pub mod session;
pub mod sms_gateway;
pub mod tls;
pub mod wait;
pub mod webhook_receiver;

pub use auth::{ADMIN_TOKEN, Commands, add_operator, agent_token, commands, commands_with};
pub use clock::TestClock;
pub use events::{EventWatch, body};
pub use people::PeopleWatch;
pub use process::{DispatcherProcess, OpenFiles, ProcessOptions, dispatcher_binary};
pub use sample::{
    AreaBox, area_box, available_people, offset_m, person, quick_policy, quick_policy_toml, sample_city, sample_roster,
};
pub use server::{TestServer, connect_located};
pub use session::AgentSession;
pub use wait::{connect_with_retry, wait_until};

/// The generated API, re-exported so that tests name one path.
pub use pingji_proto::v1 as pb;
