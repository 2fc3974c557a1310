//! Who may connect and what they may do: operator accounts and their roles,
//! the secret tokens of operators and of people on the roster, and the table
//! of which role each command needs.
//!
//! A token is 32 random bytes written in hex behind a prefix that says what
//! it opens: `pja_…` a person's field session, `pjo_NAME_…` the command API
//! as operator NAME. Only a salted argon2id hash of it is kept (in the
//! journal, so it survives restarts and moves with the shard); the token
//! itself is shown once, in the answer that issued it.
//!
//! The hash parameters are light on purpose: a token has 256 random bits, so
//! guessing it from its hash is out of reach whatever the cost of one try
//! (the memory-hard cost protects short human passwords, which these are
//! not), while every reconnecting person costs one verification. The salt
//! and the PHC string format stay, so stronger parameters can come later
//! without re-issuing tokens.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, RwLock};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::event::EventKind;
use crate::ids::{AgentId, Millis, quote};

/// Prefix of a person's token (field sessions only).
pub const AGENT_TOKEN_PREFIX: &str = "pja_";
/// Prefix of an operator's token (the command API only).
pub const OPERATOR_TOKEN_PREFIX: &str = "pjo_";
/// Random bytes in a token.
const SECRET_BYTES: usize = 32;

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
        "ListAreas" | "GetAgent" | "ListAgents" | "NearbyAgents" | "GetIncident" | "ListIncidents" | "ListPlans"
        | "CallupStatus" | "Coverage" | "WatchEvents" | "WhoAmI" | "RotateOwnToken" => Viewer,
        "CreateIncident" | "CancelIncident" | "CloseIncident" | "TriageReport" => Dispatcher,
        "SetMode" | "ActivatePlan" | "DeactivatePlan" | "CallUp" => Commander,
        "ImportAreas" | "UpsertAgent" | "ImportAgents" | "ImportPlans" | "IssueAgentToken" | "AddOperator" | "RemoveOperator"
        | "ListOperators" => Admin,
        _ => return None,
    })
}

/// An operator's account as kept in the state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    pub role: OperatorRole,
    pub token_hash: String,
    pub created_at: Millis,
}

/// A person's token hash, as journaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentTokenHash {
    pub agent: AgentId,
    pub token_hash: String,
}

/// The hashes that calls are checked against, as of the last journaled
/// event. The runtime keeps it (after each append) and the auth layer reads
/// it, so a check never queues behind the dispatch work of the owner task.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Credentials {
    /// Operator name -> role and token hash.
    pub operators: HashMap<String, (OperatorRole, String)>,
    /// Person -> token hash.
    pub agents: HashMap<AgentId, String>,
}

impl Credentials {
    pub fn new(operators: &BTreeMap<String, Operator>, agent_tokens: &BTreeMap<AgentId, String>) -> Self {
        Credentials {
            operators: operators
                .iter()
                .map(|(name, operator)| (name.clone(), (operator.role, operator.token_hash.clone())))
                .collect(),
            agents: agent_tokens.iter().map(|(agent, hash)| (agent.clone(), hash.clone())).collect(),
        }
    }

    /// Whether an event of `kind` changes credentials.
    pub fn changed_by(kind: &EventKind) -> bool {
        matches!(
            kind,
            EventKind::AgentTokensIssued { .. }
                | EventKind::OperatorAdded { .. }
                | EventKind::OperatorTokenRotated { .. }
                | EventKind::OperatorRemoved { .. }
        )
    }

    /// Copies from the state (its fold is the one source of truth) what an
    /// event of `kind` changed.
    pub fn refresh(
        &mut self,
        kind: &EventKind,
        operators: &BTreeMap<String, Operator>,
        agent_tokens: &BTreeMap<AgentId, String>,
    ) {
        match kind {
            EventKind::AgentTokensIssued { tokens } => {
                for agent in tokens.iter().map(|token| &token.agent) {
                    match agent_tokens.get(agent) {
                        Some(hash) => self.agents.insert(agent.clone(), hash.clone()),
                        None => self.agents.remove(agent),
                    };
                }
            }
            EventKind::OperatorAdded { name, .. }
            | EventKind::OperatorTokenRotated { name, .. }
            | EventKind::OperatorRemoved { name } => {
                match operators.get(name) {
                    Some(operator) => self.operators.insert(name.clone(), (operator.role, operator.token_hash.clone())),
                    None => self.operators.remove(name),
                };
            }
            _ => {}
        }
    }
}

/// [`Credentials`] shared between the runtime and the auth layer. A sync
/// lock, never held across an `.await`.
pub type SharedCredentials = Arc<RwLock<Credentials>>;

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

/// A new person's token.
pub fn new_agent_token() -> String {
    format!("{AGENT_TOKEN_PREFIX}{}", random_hex())
}

/// A new token for operator `name`.
pub fn new_operator_token(name: &str) -> String {
    format!("{OPERATOR_TOKEN_PREFIX}{name}_{}", random_hex())
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

/// The salted hash kept for `token`.
pub fn hash_token(token: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(token.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| format!("cannot hash the token: {error}"))
}

/// Whether `token` matches `stored`, a hash made by [`hash_token`].
pub fn verify_token(token: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    // The parameters come from the stored string; `hasher()` only supplies
    // the algorithm.
    hasher().verify_password(token.as_bytes(), &parsed).is_ok()
}

/// argon2id with 256 KiB of memory and one pass: see the module notes.
fn hasher() -> Argon2<'static> {
    let params = Params::new(256, 1, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn random_hex() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn is_secret(text: &str) -> bool {
    text.len() == SECRET_BYTES * 2 && text.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_against_its_hash_and_no_other() {
        let token = new_agent_token();
        let hash = hash_token(&token).expect("hashes");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(&token[AGENT_TOKEN_PREFIX.len()..]));
        assert!(verify_token(&token, &hash));
        assert!(!verify_token(&new_agent_token(), &hash));
        assert!(!verify_token("", &hash));
        assert!(!verify_token(&token, "not a hash"));
        // Salted: the same token hashes differently each time.
        assert_ne!(hash, hash_token(&token).expect("hashes"));
    }

    #[test]
    fn tokens_say_what_they_open() {
        let operator = new_operator_token("li.na");
        assert_eq!(read_token(&operator), PresentedToken::Operator { name: "li.na" });
        assert_eq!(read_token(&new_agent_token()), PresentedToken::Agent);
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
