//! The Pingji dispatch domain: a deterministic state machine with no I/O.
//!
//! Everything here is pure: no tokio, no files or sockets, no clock of its
//! own (time comes in as an argument), no randomness and no password hashing.
//! The server (`pingji-dispatcher`) journals and serves it; `drill run`
//! (`pingji-scenarios`) plays it on a virtual clock.
//!
//! # Layout
//! - [`ids`]: identifier newtypes and time.
//! - [`accounts`]: operator roles, the command-to-role table, the shape of tokens.
//! - [`spatial`]: positions, great-circle distance, the spatial index of people.
//! - [`crs`]: coordinate systems at the edges (WGS84 inside; GCJ-02, BD-09 converted).
//! - [`travel`]: travel modes and their speeds.
//! - [`areas`]: the area hierarchy, GeoJSON import and point-in-polygon placement.
//! - [`policy`]: per-mode dispatch rules (timeouts, parallel offers, widening, surge assignment).
//! - [`assignment`]: min-cost matching of many waiting slots to people at once (surges).
//! - [`roster`]: people, roles, skills, status.
//! - [`incident`]: incidents, offers and assignments.
//! - [`plans`]: emergency plans (应急预案) and their files.
//! - [`cap`]: CAP 1.2 alerts: a plan's public alert, alerts issued and received, suggestions.
//! - [`safety`]: the safety check-in clock (PAR) and the categories of
//!   welfare checks and help calls.
//! - [`message`]: operators' messages to people, replies and read receipts.
//! - [`supplies`]: depots, stock of typed items and units, incidents' requests for them.
//! - [`border`]: people of this shard reserved for another shard's incident.
//! - [`rosters`]: duty rosters: shifts, availability, absences, swaps, attendance.
//! - [`shelters`]: shelters (避难场所) with capacity and facilities, evacuations of residents to them.
//! - [`event`]: the events that are the system of record.
//! - [`engine`]: decide / evolve / tick: the dispatch state machine.
//! - [`activity`]: who served: per-person and per-area activity folded from the events.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod activity;
pub mod areas;
pub mod assignment;
pub mod border;
pub mod cap;
pub mod crs;
pub mod engine;
pub mod event;
pub mod ids;
pub mod incident;
pub mod message;
pub mod plans;
pub mod policy;
pub mod roster;
pub mod rosters;
pub mod safety;
pub mod shelters;
pub mod spatial;
pub mod supplies;
pub mod travel;

pub use engine::{Command, Engine, Rejection};
