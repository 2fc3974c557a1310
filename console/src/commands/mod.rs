//! One module per command group: each sends its requests and prints the
//! result as a table (the default) or JSON (`--json`). The text renderings
//! are plain functions of the responses so that they can be tested alone.
//!
//! # Layout
//! - [`areas`]: `areas import`, `areas list`.
//! - [`roster`]: `roster import|add|token|list|show`.
//! - [`incident`]: `incident create|list|show|cancel|close`.
//! - [`mode`]: `mode set`, `mode show`.
//! - [`agents`]: `agents nearby`.
//! - [`events`]: `events`, with or without `--follow`.
//! - [`plan`]: `plan import|list|activate|deactivate`.
//! - [`callup`]: `callup issue`, `callup status` (the roll-call).
//! - [`city`]: a split city: activations and call-ups of the city at every
//!   district's shard, and one roll-call of them.
//! - [`report`]: `report triage ID accept|merge|reject`.
//! - [`activity`]: `report activity --from --to [--area] [--csv] [--svg DIR]` (who served).
//! - [`message`]: `message send --to-agent|--incident|--area TEXT`, `message list`.
//! - [`photo`]: `photo get REF -o FILE`.
//! - [`coverage`]: `coverage [AREA]`.
//! - [`account`]: `account whoami|rotate|add|list|remove`.
//! - [`cap`]: `cap alerts|suggestions|approve|dismiss|token-hash` (CAP 1.2).
//! - [`why`]: `incident why ID [--agent P]`, `incident merge ID --into ID`, and
//!   the look for possible duplicates before `incident create`.
//! - [`webhooks`]: `webhooks add|list|remove|dead-letters|replay` (partner systems).
//! - [`rosters`]: `rosters now|shifts|set-shift|remove-shift|swap|approve|reject|swaps|check-in|check-out|ics`.
//! - [`supplies`]: `supplies import|export|depots|levels|request|propose|confirm|dispatch|deliver|return|cancel|requests|move|repair`.
//! - [`shelters`]: `shelters import|export|list|open|close|propose|evacuate|check-in|check-out|release|evacuations|occupancy`.

pub mod account;
pub mod activity;
pub mod agents;
pub mod areas;
pub mod callup;
pub mod cap;
pub mod city;
pub mod coverage;
pub mod events;
pub mod incident;
pub mod message;
pub mod mode;
pub mod photo;
pub mod plan;
pub mod report;
pub mod roster;
pub mod rosters;
pub mod shelters;
pub mod supplies;
pub mod webhooks;
pub mod why;

use std::path::Path;

use crate::error::ConsoleError;

/// The whole of a text file the user named.
fn read_file(path: &Path) -> Result<String, ConsoleError> {
    std::fs::read_to_string(path).map_err(|source| ConsoleError::ReadFile { path: path.to_path_buf(), source })
}
