//! CAP 1.2 (OASIS Common Alerting Protocol) at the edges: the alerts the
//! engine issues as XML (served on the web port and pushed to webhook
//! subscribers), and alerts from other systems taken in, checked and
//! handed to the engine, which makes suggestions of them for the
//! commander (see `pingji_engine::cap` and docs/integrations.md).
//!
//! # Layout
//! - `config`: our sender and status, and the feeds allowed to post.
//! - `xml`: an issued alert as CAP 1.2 XML, and the Atom index of them.
//! - `inbound`: reading and checking a received alert.
//! - `http`: the web port's routes: `GET /cap/alerts.atom`,
//!   `GET /cap/alerts/{identifier}.xml`, `POST /cap/inbound`.
//! - `api`: `CapService`: alerts, suggestions, approve, dismiss.

mod api;
mod config;
mod http;
mod inbound;
mod xml;

pub use api::CapApi;
pub use config::{CapConfig, CapFeed, token_sha256};
pub use http::router;
pub use inbound::{InboundError, read_alert};
pub use xml::{alert_xml, cap_time};
