//! Making and checking tokens: OS randomness and argon2id hashes, and the
//! table of hashes that calls are checked against.
//!
//! The hash parameters are light on purpose: a token has 256 random bits, so
//! guessing it from its hash is out of reach whatever the cost of one try
//! (the memory-hard cost protects short human passwords, which these are
//! not), while every reconnecting person costs one verification. The salt
//! and the PHC string format stay, so stronger parameters can come later
//! without re-issuing tokens.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use pingji_engine::accounts::{AGENT_TOKEN_PREFIX, OPERATOR_TOKEN_PREFIX, Operator, OperatorRole, SECRET_BYTES};
use pingji_engine::event::EventKind;
use pingji_engine::ids::AgentId;

/// The hashes that calls are checked against, as of the last journaled
/// event. The runtime keeps it (after each append) and the auth layer reads
/// it, so a check never queues behind the dispatch work of the owner task.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Credentials {
    /// Operator name -> role and token hash; accounts whose token was
    /// revoked are left out (expiry is checked against the clock, by the
    /// auth layer).
    pub operators: HashMap<String, (OperatorRole, String)>,
    /// Person -> token hash.
    pub agents: HashMap<AgentId, String>,
}

impl Credentials {
    pub fn new(operators: &BTreeMap<String, Operator>, agent_tokens: &BTreeMap<AgentId, String>) -> Self {
        Credentials {
            operators: operators
                .iter()
                .filter(|(_, operator)| operator.token_revoked_at.is_none())
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
                | EventKind::OperatorTokenRevoked { .. }
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
            | EventKind::OperatorRemoved { name }
            | EventKind::OperatorTokenRevoked { name } => {
                match operators.get(name).filter(|operator| operator.token_revoked_at.is_none()) {
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

/// A new person's token.
pub fn new_agent_token() -> String {
    format!("{AGENT_TOKEN_PREFIX}{}", random_hex())
}

/// A new token for operator `name`.
pub fn new_operator_token(name: &str) -> String {
    format!("{OPERATOR_TOKEN_PREFIX}{name}_{}", random_hex())
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

pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use pingji_engine::accounts::{PresentedToken, read_token};

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
    fn new_tokens_say_what_they_open() {
        assert_eq!(read_token(&new_operator_token("li.na")), PresentedToken::Operator { name: "li.na" });
        assert_eq!(read_token(&new_agent_token()), PresentedToken::Agent);
    }
}
