//! Safety on scene (PAR, 报平安) and help calls (求助): the check-in clock
//! kept in the durable state, and the names the engine gives what it
//! reports. The engine's handling is in `engine::check_ins`.

use serde::{Deserialize, Serialize};

use crate::ids::{IncidentId, Millis};

/// The category of the incident a second missed check-in reports.
pub const WELFARE_CHECK_CATEGORY: &str = "welfare_check";
/// The category of the incident a help call reports.
pub const HELP_CATEGORY: &str = "help";
/// The misses in a row that send a welfare check; after it the clock
/// waits for the person's check-in.
pub const MISSES_BEFORE_WELFARE_CHECK: u32 = 2;
/// The most people a help call tells (the nearest grid's people are tens).
pub const MAX_HELP_TEAM: usize = 200;

/// One person's check-in clock while they hold an assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyClock {
    pub incident: IncidentId,
    /// When the current interval started: the assignment, the last
    /// check-in, or the last miss.
    pub since: Millis,
    /// Check-ins missed in a row.
    pub misses: u32,
    /// The welfare check sent after the second miss, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welfare: Option<IncidentId>,
}

/// When a person on an assignment must next check in, as the phone shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyDue {
    pub incident: IncidentId,
    pub due: Millis,
    pub interval_s: u64,
    pub misses: u32,
}
