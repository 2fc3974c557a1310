//! Pingji field agent: the client side of one person in the field, built on
//! `pingji-client` (connecting, TLS, following the shard's owner, backoff).
//!
//! [`AgentClient`] holds one person's session with the dispatcher
//! (`AgentService.Session`): it sends location, status, answers to offers,
//! arrival and completion, surfaces what the dispatcher says as typed
//! [`AgentEvent`]s, and reconnects by itself with capped, jittered backoff,
//! resuming without showing an offer twice. Each session is one tokio task,
//! so a drill can run thousands in one process.
//!
//! The `field-agent` binary is a terminal program over it: a full-screen
//! view for a person, or a headless mode for scripts.
//!
//! # Layout
//! - [`client`]: [`AgentClient`] and the session task (connect, hello,
//!   resume, forward, reconnect).
//! - [`ledger`]: what the person was shown and asked for, compared with the
//!   welcome after a reconnect (dedupe, resend). No I/O.
//! - [`event`]: [`AgentEvent`] and the plain types it carries.
//! - [`track`]: where the person is: a fixed point or a track file (CSV or
//!   GPX) replayed at its own pace.
//! - [`app`]: the terminal view's state and what each key does. No I/O.
//! - [`view`]: drawing the state with ratatui (`draw(frame, &app)`).
//! - [`interactive`]: the full-screen program: terminal, keys, session.
//! - [`headless`]: answering offers automatically, one line per event.

#![forbid(unsafe_code)]

pub mod app;
pub mod client;
pub mod event;
pub mod headless;
pub mod interactive;
pub mod ledger;
pub mod track;
pub mod view;

pub use client::{AgentClient, AgentConfig, ClientError};
pub use event::{AgentEvent, CurrentIncident, IncidentId, Location, Offer, OfferId, Refusal, Welcome};
pub use pingji_client::backoff::{Backoff, BackoffPolicy};
