//! A deterministic simulation of several dispatcher processes sharing the
//! district shards of one city (docs/redis.md, "Simulation"): leases and
//! fencing, redirects to a shard's owner, and border reservations between
//! shards, under crashes, pauses, partitions, lost and reordered messages
//! and lost Redis answers, all drawn from one `u64` seed on a simulated
//! clock. A seed runs in milliseconds and always runs the same way.
//!
//! The dispatch decisions are the real engine's, the journal's sequence
//! checks and event encoding are the real dispatcher's, and the choice of
//! incidents to offer across a border is the real
//! `pingji_dispatcher::server::border::wanting`; the Redis scripts, the
//! server's border loop, the network and the clients are modelled (see
//! [`world`] and [`redis`] for the exact split).
//!
//! # Layout
//! - [`rng`]: the seeded random numbers.
//! - [`setup`]: the city every run starts from (two district shards).
//! - [`redis`]: the Redis model: leases, fences, fenced appends, snapshots.
//! - [`world`]: processes, network, clients, faults; [`run`] runs one seed.
//! - [`check`]: the invariants, checked after every step.

#![forbid(unsafe_code)]

pub mod check;
pub mod redis;
pub mod rng;
pub mod setup;
pub mod world;

pub use world::{Bug, Config, Failure, Outcome, run};
