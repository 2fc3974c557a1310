//! The one place where calls are authenticated and authorized.
//!
//! [`Authorized`] wraps the `CommandService`: before any handler runs it reads
//! the operator token from `authorization: Bearer pjo_…`, checks it against
//! the account's hash, looks the method up in [`role_needed`] and refuses
//! what the caller's role may not do. A handler finds the [`Caller`] in the
//! request's extensions. Agent sessions check the person's token with
//! [`Tokens::check_agent`] once, on hello.
//!
//! The hashes come from the dispatcher's [`crate::tokens::Credentials`],
//! kept by the runtime as account events are journaled: a check never
//! queues behind the dispatch work of the owner task (under 50,000 location
//! updates a second it would wait hundreds of milliseconds).
//!
//! Verified tokens are remembered (with the hash they matched) so that a
//! console polling every second does not pay for argon2 each time; a rotated
//! or removed token no longer matches what is stored and is checked afresh.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use pingji_proto::v1::ErrorReason;
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::codegen::{BoxFuture, Service};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::info;

use super::error;
use super::front::{Front, Fronted};
use super::sharding::{PublishedOperator, Sharding};
use crate::runtime::Dispatcher;
use crate::tokens;
use pingji_client::labels;
use pingji_engine::accounts::{self, Operator, OperatorRole, PresentedToken, TokenStanding, role_needed};
use pingji_engine::ids::quote;
use pingji_engine::ids::{AgentId, Millis};

/// Verified tokens remembered at most; the memory is cleared when full.
const REMEMBERED_TOKENS: usize = 100_000;

/// The operator behind a command call, for handlers (actor, masking, audit).
#[derive(Clone, Debug, PartialEq)]
pub struct Caller {
    pub name: String,
    pub role: OperatorRole,
    /// The stored hash the token matched: a stream that outlives the call's
    /// check ends once the account no longer holds it ([`still_holds`]).
    pub token_hash: String,
}

impl Caller {
    /// The actor recorded in the journal.
    pub fn actor(&self) -> String {
        format!("operator:{}", self.name)
    }
}

/// The caller of a command call, put there by [`Authorized`].
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| error::internal("the call reached its handler without being authenticated"))
}

/// Checks tokens against the hashes in the dispatcher's state.
#[derive(Clone)]
pub struct Tokens {
    dispatcher: Dispatcher,
    /// Token -> the stored hash it was verified against.
    verified: Arc<Mutex<HashMap<String, String>>>,
    /// Hash checks running at once: one per core. Each takes a core and
    /// argon2's memory while it runs; more at once would only queue on the
    /// cores and hold more memory (a flood of wrong tokens on 512 blocking
    /// threads took the dispatcher to 1.5 GiB).
    verifying: Arc<Semaphore>,
    /// With one shard per district: accounts whose home is another shard
    /// are checked against the hash that shard publishes.
    sharding: Option<Arc<Sharding>>,
}

impl Tokens {
    pub fn new(dispatcher: Dispatcher, sharding: Option<Arc<Sharding>>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let verified = Arc::new(Mutex::new(HashMap::new()));
        Tokens { dispatcher, verified, verifying: Arc::new(Semaphore::new(cores)), sharding }
    }

    /// The operator whose token `authorization` carries.
    pub async fn check_operator(&self, authorization: Option<&str>) -> Result<Caller, Status> {
        let Some(token) = authorization.map(str::trim) else {
            return Err(error::unauthenticated(
                ErrorReason::TokenMissing,
                "no operator token: pass --token or set PINGJI_TOKEN (sent as 'authorization: Bearer pjo_…'); an admin \
                 creates accounts with 'pingji account add NAME --role ROLE', and the first admin comes from \
                 'dispatcher bootstrap-admin'",
            ));
        };
        let Some(token) = bearer_token(token) else {
            // Never repeats the header: it may hold a token.
            return Err(error::unauthenticated(
                ErrorReason::TokenMissing,
                "the operator token must come as 'authorization: Bearer TOKEN'; this call's authorization header has no \
                 'Bearer ' in front (the Pingji clients add it: pass the token itself to --token or PINGJI_TOKEN)",
            ));
        };
        let name = match accounts::read_token(token) {
            PresentedToken::Operator { name } => name.to_string(),
            PresentedToken::Agent => {
                return Err(error::unauthenticated(
                    ErrorReason::AgentToken,
                    "that is a person's agent token (pja_…): it opens only their field session, never the command API; \
                     use an operator token (pjo_…)",
                ));
            }
            PresentedToken::Malformed => {
                return Err(error::unauthenticated(
                    ErrorReason::TokenInvalid,
                    "that is not an operator token (expected pjo_NAME_ followed by 64 hex digits); check it was copied whole",
                ));
            }
        };
        let lookup = name.clone();
        let (account, no_accounts_here, now) = self
            .dispatcher
            .query(move |engine, now| {
                let operators = &engine.state().operators;
                (operators.get(&lookup).map(Account::from), operators.is_empty(), now)
            })
            .await?;
        // The same answer for an unknown name and a wrong secret: a refusal
        // does not tell whether the account exists.
        let refused = || {
            info!(operator = %name, "operator token refused");
            error::unauthenticated(
                ErrorReason::TokenInvalid,
                "the operator token is wrong, was rotated, or its account was removed; ask an admin for a new one",
            )
        };
        let account = match (account, &self.sharding) {
            (Some(account), _) => Some(account),
            // Read at every call, so that a removal or rotation at the
            // account's home shard counts here at once.
            (None, Some(sharding)) => sharding.published_operator(&name).await.map(|published| Account::from(&published)),
            (None, None) => None,
        };
        let Some(account) = account else {
            if no_accounts_here && self.no_accounts_elsewhere().await {
                info!(operator = %name, "operator token refused: there are no operator accounts yet");
                return Err(no_operator_accounts());
            }
            return Err(refused());
        };
        if !self.matches(token, &account.token_hash).await {
            return Err(refused());
        }
        // Only the holder of the right secret learns that it expired or was
        // revoked, and when.
        if let Some(refusal) = account.refusal(&name, now) {
            info!(operator = %name, "operator token refused: expired or revoked");
            return Err(refusal);
        }
        Ok(Caller { name, role: account.role, token_hash: account.token_hash })
    }

    /// With one shard per district, whether no shard has published an
    /// account either; always true for a dispatcher of the whole city. When
    /// the published accounts cannot be read, false: better the usual
    /// refusal than a wrong "there are no accounts".
    async fn no_accounts_elsewhere(&self) -> bool {
        match &self.sharding {
            Some(sharding) => sharding.published_operator_count().await == Some(0),
            None => true,
        }
    }

    /// Whether `token` is the current token of person `agent`. A person who
    /// is not on the roster, has no token yet or gave a wrong one are all
    /// refused alike. An operator's token is told apart by its prefix (it is
    /// checked against no account): a mix-up to put right, which says
    /// nothing about who is on the roster.
    pub async fn check_agent(&self, agent: &AgentId, token: &str) -> Result<(), Status> {
        if token.starts_with(accounts::OPERATOR_TOKEN_PREFIX) {
            return Err(error::unauthenticated(
                ErrorReason::OperatorToken,
                format!(
                    "that is an operator token (pjo_…): it opens the command API (the pingji console), never a person's \
                     field session; use agent {agent}'s own token (pja_…), which an admin issues with \
                     'pingji roster token {agent} --rotate'"
                ),
            ));
        }
        let refused = || {
            let agent = quote(agent);
            error::unauthenticated(
                ErrorReason::TokenInvalid,
                format!(
                    "the token for agent {agent} is wrong or was replaced, or the id is not on the roster; use the token \
                 you were given when added, or ask an admin for a new one ('pingji roster token {agent} --rotate')"
                ),
            )
        };
        if !token.starts_with(accounts::AGENT_TOKEN_PREFIX) {
            return Err(refused());
        }
        let Some(hash) = self.dispatcher.agent_token_hash(agent) else {
            return Err(refused());
        };
        if self.matches(token, &hash).await { Ok(()) } else { Err(refused()) }
    }

    async fn matches(&self, token: &str, hash: &str) -> bool {
        if self.remembered(token).is_some_and(|remembered| remembered == hash) {
            return true;
        }
        let Ok(_permit) = self.verifying.acquire().await else {
            return false;
        };
        let (checked_token, checked_hash) = (token.to_string(), hash.to_string());
        let valid =
            tokio::task::spawn_blocking(move || tokens::verify_token(&checked_token, &checked_hash)).await.unwrap_or(false);
        if valid {
            self.remember(token, hash);
        }
        valid
    }

    fn remembered(&self, token: &str) -> Option<String> {
        self.verified.lock().ok()?.get(token).cloned()
    }

    fn remember(&self, token: &str, hash: &str) {
        let Ok(mut verified) = self.verified.lock() else { return };
        if verified.len() >= REMEMBERED_TOKENS {
            verified.clear();
        }
        verified.insert(token.to_string(), hash.to_string());
    }
}

/// An operator account as a token check needs it: from this dispatcher's
/// state, or as another shard published it.
struct Account {
    role: OperatorRole,
    token_hash: String,
    standing: Standing,
}

/// When an account's token stops or stopped working.
struct Standing {
    expires_at: Option<Millis>,
    revoked_at: Option<Millis>,
}

impl From<&Operator> for Account {
    fn from(operator: &Operator) -> Self {
        Account {
            role: operator.role,
            token_hash: operator.token_hash.clone(),
            standing: Standing { expires_at: operator.token_expires_at, revoked_at: operator.token_revoked_at },
        }
    }
}

impl From<&PublishedOperator> for Account {
    fn from(published: &PublishedOperator) -> Self {
        let set = |at_ms: i64| Some(Millis(at_ms)).filter(|at| at.0 != 0);
        Account {
            role: published.role,
            token_hash: published.token_hash.clone(),
            standing: Standing { expires_at: set(published.token_expires_at_ms), revoked_at: set(published.token_revoked_at_ms) },
        }
    }
}

impl Account {
    /// Why the account's token, though it matched, no longer opens the
    /// command API at `now`: revoked, or past its expiry.
    fn refusal(&self, name: &str, now: Millis) -> Option<Status> {
        match TokenStanding::at(now, self.standing.expires_at, self.standing.revoked_at) {
            TokenStanding::Works => None,
            TokenStanding::Expired { at } => {
                // An admin whose token expired may be the last one: say the way out.
                let last_admin = if self.role == OperatorRole::Admin {
                    " (if no admin's token works any more: restart the dispatcher with PINGJI_BOOTSTRAP_ADMIN_TOKEN, or \
                     run 'dispatcher bootstrap-admin' while it is stopped)"
                } else {
                    ""
                };
                Some(error::unauthenticated(
                    ErrorReason::TokenExpired,
                    format!(
                        "the operator token of {name} expired at {}; an admin issues a new one with 'pingji account \
                         token {name} --rotate' (--expires sets how long it works, 90 days by default){last_admin}",
                        labels::utc_time(at.0)
                    ),
                ))
            }
            TokenStanding::Revoked { at } => Some(error::unauthenticated(
                ErrorReason::TokenInvalid,
                format!(
                    "the operator token of {name} was revoked by an admin at {}; ask an admin for a new one ('pingji \
                     account token {name} --rotate')",
                    labels::utc_time(at.0)
                ),
            )),
        }
    }
}

/// Whether `caller`'s account still holds the token their call was let in
/// with, unexpired and unrevoked: streams ask this as they go, so that a
/// rotation, revocation, expiry or removal ends them too. `Err` is the
/// refusal to end the stream with.
pub async fn still_holds(dispatcher: &Dispatcher, sharding: Option<&Sharding>, caller: &Caller) -> Result<(), Status> {
    let lookup = caller.name.clone();
    let (account, now) = dispatcher.query(move |engine, now| (engine.operator(&lookup).map(Account::from), now)).await?;
    let account = match (account, sharding) {
        (Some(account), _) => Some(account),
        (None, Some(sharding)) => sharding.published_operator(&caller.name).await.map(|published| Account::from(&published)),
        (None, None) => None,
    };
    let gone = || {
        error::unauthenticated(
            ErrorReason::TokenInvalid,
            "the operator token this stream was opened with was rotated, or its account was removed; open it again \
             with a token that works",
        )
    };
    match account {
        Some(account) if account.token_hash == caller.token_hash => match account.refusal(&caller.name, now) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        },
        _ => Err(gone()),
    }
}

/// The token of an `authorization: Bearer TOKEN` header (the scheme in any
/// case, as RFC 7235 has it); `None` for a bare token or another scheme.
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The refusal of every operator token while no account exists: no token
/// can be right, and the way out is the first admin, not a new token.
fn no_operator_accounts() -> Status {
    error::unauthenticated(
        ErrorReason::NoOperatorAccounts,
        format!("this dispatcher has no operator accounts yet, so no token can open it: {FIRST_ADMIN}"),
    )
}

/// How the first admin account is made, for people who meet a dispatcher
/// without one (see `bootstrap`).
pub const FIRST_ADMIN: &str = "make the first admin with 'dispatcher bootstrap-admin' on its store (--data FILE or \
     --store URL, while no dispatcher serves it; it prints the token once), or start the dispatcher with \
     PINGJI_BOOTSTRAP_ADMIN_TOKEN=pjo_admin_$(openssl rand -hex 32) and use that token";

/// `inner` (the command service) behind token and role checks.
pub type Authorized<S> = Fronted<S, TokenCheck>;

pub fn authorized<S>(inner: S, tokens: Tokens) -> Authorized<S> {
    Fronted::new(inner, TokenCheck { tokens })
}

/// Checks the token and the role before the handler, and puts the
/// [`Caller`] in the request.
#[derive(Clone)]
pub struct TokenCheck {
    tokens: Tokens,
}

impl<S> Front<S> for TokenCheck
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    fn call(&self, mut inner: S, mut request: http::Request<Body>) -> BoxFuture<http::Response<Body>, Infallible> {
        let tokens = self.tokens.clone();
        Box::pin(async move {
            let method = request.uri().path().rsplit('/').next().unwrap_or_default().to_string();
            let authorization = request.headers().get(http::header::AUTHORIZATION).and_then(|value| value.to_str().ok());
            let caller = match authorize(&tokens, &method, authorization).await {
                Ok(caller) => caller,
                Err(status) => return Ok(status.into_http()),
            };
            request.extensions_mut().insert(caller);
            inner.call(request).await
        })
    }
}

async fn authorize(tokens: &Tokens, method: &str, authorization: Option<&str>) -> Result<Caller, Status> {
    let Some(needed) = role_needed(method) else {
        return Err(error::status(
            Code::PermissionDenied,
            ErrorReason::RoleTooLow,
            format!("{method} is not in the role table, so nobody may call it"),
        ));
    };
    let caller = tokens.check_operator(authorization).await?;
    if caller.role < needed {
        info!(operator = %caller.name, role = %caller.role, method, "call refused: role too low");
        let details = ErrorDetails::with_error_info(
            error::reason_name(ErrorReason::RoleTooLow),
            error::DOMAIN,
            HashMap::from([("needed".to_string(), needed.to_string())]),
        );
        return Err(Status::with_error_details(
            Code::PermissionDenied,
            format!(
                "{method} needs the {needed} role or higher; {} is a {} (see the role table in docs/security.md)",
                caller.name, caller.role
            ),
            details,
        ));
    }
    Ok(caller)
}
