//! Operators' messages to people in the field (e.g. "stand by", "not
//! needed"), and what came back: replies and read receipts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, AreaId, IncidentId, Millis};

/// Who a message is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// One person.
    Agent(AgentId),
    /// The people holding or offered the incident when it is sent.
    Incident(IncidentId),
    /// Everyone at home in the area or located in it when it is sent.
    Area(AreaId),
}

/// Photos given with a completion or a field report, at most.
pub const MAX_PHOTOS: usize = 10;

/// A message as sent, with its replies and read receipts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: String,
    pub sent_at: Millis,
    /// "operator:NAME".
    pub from: String,
    pub to: Audience,
    pub text: String,
    /// The people it reached, fixed when sent.
    pub recipients: Vec<AgentId>,
    pub replies: Vec<Reply>,
    pub read_by: BTreeMap<AgentId, Millis>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub agent: AgentId,
    pub text: String,
    pub at: Millis,
}
