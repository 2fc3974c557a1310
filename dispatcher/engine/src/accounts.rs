//! Who may connect and what they may do: operator accounts and their roles,
//! the shape of the secret tokens of operators and of people on the roster,
//! and the table of which role each command needs.
//!
//! A token is 32 random bytes written in hex behind a prefix that says what
//! it opens: `pja_…` a person's field session, `pjo_NAME_…` the command API
//! as operator NAME. Only a salted hash of it is kept, in the journal; making
//! tokens and hashing them needs the operating system's randomness and lives
//! with the server (`pingji_dispatcher::tokens`), not here.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, Millis, quote};

/// Prefix of a person's token (field sessions only).
pub const AGENT_TOKEN_PREFIX: &str = "pja_";
/// Prefix of an operator's token (the command API only).
pub const OPERATOR_TOKEN_PREFIX: &str = "pjo_";
/// Random bytes in a token.
pub const SECRET_BYTES: usize = 32;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// How long an operator token works when whoever issues it gives no
/// lifetime: 90 days, the usual span between two reviews of who may act in
/// a command room. Long enough that nobody is locked out by surprise on a
/// busy day; short enough that a token left on a shared desk or in a script
/// stops opening the dispatcher by itself.
pub const DEFAULT_OPERATOR_TOKEN_LIFETIME_MS: i64 = 90 * DAY_MS;
/// The shortest lifetime one may give: a minute (a token for one task).
pub const MIN_OPERATOR_TOKEN_LIFETIME_MS: i64 = 60 * 1000;
/// The longest: about 3 years (a wall screen's token, say); there is no
/// token that never expires.
pub const MAX_OPERATOR_TOKEN_LIFETIME_MS: i64 = 3 * 366 * DAY_MS;

/// What an operator may do; each role may do everything the ones before it
/// may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorRole {
    /// Reads the picture: incidents, areas, plans, people with phone
    /// numbers masked and locations coarsened to about 1 km.
    Viewer,
    /// Also sees precise personal data (each read is audited) and handles
    /// incidents and field reports.
    Dispatcher,
    /// Also switches areas between normal and emergency mode, activates
    /// plans and calls up reserves.
    Commander,
    /// Also imports the map, the roster and plans, and manages accounts
    /// and tokens.
    Admin,
}

impl OperatorRole {
    pub const ALL: [OperatorRole; 4] =
        [OperatorRole::Viewer, OperatorRole::Dispatcher, OperatorRole::Commander, OperatorRole::Admin];

    pub fn name(self) -> &'static str {
        match self {
            OperatorRole::Viewer => "viewer",
            OperatorRole::Dispatcher => "dispatcher",
            OperatorRole::Commander => "commander",
            OperatorRole::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        OperatorRole::ALL
            .into_iter()
            .find(|role| role.name() == text.trim())
            .ok_or_else(|| format!("role \"{}\" is not known; use viewer, dispatcher, commander or admin", quote(text)))
    }

    /// Whether this role sees phone numbers and locations as they are.
    pub fn sees_precise_personal_data(self) -> bool {
        self >= OperatorRole::Dispatcher
    }
}

impl fmt::Display for OperatorRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The role a `CommandService` method needs; `None` for a method not in
/// the table, which nobody may call (a new method must be added here).
pub fn role_needed(method: &str) -> Option<OperatorRole> {
    use OperatorRole::*;
    Some(match method {
        "ListAreas" | "GetAgent" | "ListAgents" | "NearbyAgents" | "GetIncident" | "IncidentTimeline" | "ExportEido"
        | "ListIncidents" | "ListPlans" | "CallupStatus" | "Coverage" | "WatchEvents" | "WatchAgents" | "WhoAmI"
        | "RotateOwnToken" | "ListMessages" | "GetReplay" | "SetReplay" | "GetClock" | "ExplainIncident" => Viewer,
        // Every role gets the area rows; the per-person rows only commanders
        // and admins (the handler withholds them from the others).
        "ActivityReport" => Viewer,
        // CapService: the alerts are public anyway; suggestions are the commander's.
        "ListCapAlerts" => Viewer,
        "ListCapSuggestions" | "ApproveCapSuggestion" | "DismissCapSuggestion" => Commander,
        // SupplyService: stock is no secret inside the command room; requests
        // and their steps are the dispatcher's, what is held and moved the
        // commander's.
        "ListDepots" | "StockLevels" | "ListSupplyRequests" | "ProposeSupplies" => Viewer,
        "RequestSupplies" | "ConfirmSupplies" | "DispatchSupplies" | "DeliverSupplies" | "ReturnSupplies"
        | "CancelSupplyRequest" | "SetUnitStatus" => Dispatcher,
        "ImportSupplies" | "MoveStock" => Commander,
        // RosterService: who is on duty is for the whole command room; a
        // person's calendar, absences, availability, swap requests and
        // attendance the dispatcher's; shifts and swap decisions the
        // commander's.
        "ListShifts" | "OnDutyNow" => Viewer,
        "SetAvailability" | "RecordAbsence" | "RequestSwap" | "ListSwaps" | "CheckInShift" | "CheckOutShift"
        | "PersonCalendar" => Dispatcher,
        "SetShifts" | "RemoveShift" | "DecideSwap" => Commander,
        // A calendar link opens a person's shifts to whoever holds it.
        "CreateCalendarLink" | "RevokeCalendarLink" => Admin,
        // ShelterService: where the shelters are and how full is public
        // inside the command room; sending groups and checking people in
        // is the dispatcher's, which shelters exist and are open the
        // commander's (a plan opens its own).
        "ListShelters" | "ProposeShelters" | "ListEvacuations" | "ShelterOccupancy" => Viewer,
        "Evacuate" | "CheckInArrivals" | "CheckOutResidents" | "ReleasePlaces" => Dispatcher,
        "ImportShelters" | "OpenShelter" | "CloseShelter" => Commander,
        // Photos show people and places as they are: not for viewers.
        "CreateIncident" | "ImportEido" | "CancelIncident" | "CloseIncident" | "TriageReport" | "SendMessage" | "GetPhoto"
        | "FindDuplicates" | "MergeIncidents" => {
            Dispatcher
        }
        "SetMode" | "ActivatePlan" | "DeactivatePlan" | "CallUp" => Commander,
        "ImportAreas"
        | "RetireArea"
        | "UpsertAgent"
        | "ImportAgents"
        | "ImportPlans"
        | "IssueAgentToken"
        | "IssueAgentTokens"
        | "AddOperator"
        | "RemoveOperator"
        | "ListOperators"
        | "IssueOperatorToken"
        | "RevokeOperatorToken"
        // WebhookService: partners' endpoints and secrets.
        | "AddWebhook"
        | "ListWebhooks"
        | "RemoveWebhook"
        | "ListDeadLetters"
        | "ReplayWebhook" => Admin,
        _ => return None,
    })
}

/// An operator's account as kept in the state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    pub role: OperatorRole,
    pub token_hash: String,
    pub created_at: Millis,
    /// When the token stops working; `None` for a token issued before
    /// tokens expired (it works until rotated, revoked or removed).
    #[serde(default)]
    pub token_expires_at: Option<Millis>,
    /// When an admin revoked the token: it works no more, and the account
    /// stays, until an admin issues a new one.
    #[serde(default)]
    pub token_revoked_at: Option<Millis>,
}

/// Whether an operator's token works at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStanding {
    Works,
    Expired { at: Millis },
    Revoked { at: Millis },
}

impl TokenStanding {
    /// A token's standing at `now`, from when it expires and when it was
    /// revoked (`None`: never).
    pub fn at(now: Millis, expires_at: Option<Millis>, revoked_at: Option<Millis>) -> TokenStanding {
        if let Some(at) = revoked_at {
            return TokenStanding::Revoked { at };
        }
        match expires_at {
            Some(at) if now >= at => TokenStanding::Expired { at },
            _ => TokenStanding::Works,
        }
    }
}

impl Operator {
    pub fn token_standing(&self, now: Millis) -> TokenStanding {
        TokenStanding::at(now, self.token_expires_at, self.token_revoked_at)
    }
}

/// Checks a token lifetime in milliseconds (from [`MIN_OPERATOR_TOKEN_LIFETIME_MS`]
/// to [`MAX_OPERATOR_TOKEN_LIFETIME_MS`]).
pub fn check_token_lifetime(lifetime_ms: i64) -> Result<(), String> {
    if (MIN_OPERATOR_TOKEN_LIFETIME_MS..=MAX_OPERATOR_TOKEN_LIFETIME_MS).contains(&lifetime_ms) {
        return Ok(());
    }
    Err(format!(
        "a token lifetime of {} s is out of range; give one from 1 minute to {} days (default {} days)",
        lifetime_ms / 1000,
        MAX_OPERATOR_TOKEN_LIFETIME_MS / DAY_MS,
        DEFAULT_OPERATOR_TOKEN_LIFETIME_MS / DAY_MS
    ))
}

/// A person's token hash, as journaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentTokenHash {
    pub agent: AgentId,
    pub token_hash: String,
}

/// Checks an operator name: 1 to 64 ASCII letters, digits or `.`, `-`, `@`
/// (no `_`, which separates the name from the secret in a token).
pub fn check_operator_name(name: &str) -> Result<(), String> {
    let valid =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '@'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "operator name \"{}\" is not valid; use 1 to 64 ASCII letters, digits, '.', '-' or '@', e.g. li.na",
            quote(name)
        ))
    }
}

/// What a token presented on the command API says it is.
#[derive(Debug, PartialEq, Eq)]
pub enum PresentedToken<'a> {
    Operator {
        name: &'a str,
    },
    /// A person's token: never valid on the command API.
    Agent,
    Malformed,
}

pub fn read_token(token: &str) -> PresentedToken<'_> {
    if token.starts_with(AGENT_TOKEN_PREFIX) {
        return PresentedToken::Agent;
    }
    let Some(rest) = token.strip_prefix(OPERATOR_TOKEN_PREFIX) else {
        return PresentedToken::Malformed;
    };
    match rest.rsplit_once('_') {
        Some((name, secret)) if check_operator_name(name).is_ok() && is_secret(secret) => PresentedToken::Operator { name },
        _ => PresentedToken::Malformed,
    }
}

/// Whether `text` is the secret part of a token: [`SECRET_BYTES`] in hex.
pub fn is_secret(text: &str) -> bool {
    text.len() == SECRET_BYTES * 2 && text.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_say_what_they_open() {
        let secret = "0123456789abcdef".repeat(4);
        assert_eq!(read_token(&format!("pjo_li.na_{secret}")), PresentedToken::Operator { name: "li.na" });
        assert_eq!(read_token(&format!("pja_{secret}")), PresentedToken::Agent);
        assert_eq!(read_token("pjo_li.na_short"), PresentedToken::Malformed);
        assert_eq!(read_token("Bearer x"), PresentedToken::Malformed);
        assert_eq!(read_token(""), PresentedToken::Malformed);
    }

    #[test]
    fn every_role_may_do_what_the_roles_below_it_may() {
        assert_eq!(role_needed("ListIncidents"), Some(OperatorRole::Viewer));
        assert_eq!(role_needed("CreateIncident"), Some(OperatorRole::Dispatcher));
        assert_eq!(role_needed("SetMode"), Some(OperatorRole::Commander));
        assert_eq!(role_needed("ImportAgents"), Some(OperatorRole::Admin));
        assert_eq!(role_needed("SomethingNew"), None);
        assert!(OperatorRole::Admin > OperatorRole::Commander && OperatorRole::Commander > OperatorRole::Dispatcher);
        assert!(!OperatorRole::Viewer.sees_precise_personal_data());
        assert!(OperatorRole::Dispatcher.sees_precise_personal_data());
        for role in OperatorRole::ALL {
            assert_eq!(OperatorRole::parse(role.name()), Ok(role));
        }
        assert!(OperatorRole::parse("root").is_err());
    }

    #[test]
    fn operator_names_leave_out_the_separator() {
        assert!(check_operator_name("li.na").is_ok());
        assert!(check_operator_name("ops@district-1").is_ok());
        assert!(check_operator_name("li_na").is_err());
        assert!(check_operator_name("").is_err());
        assert!(check_operator_name(&"a".repeat(65)).is_err());
    }
}
