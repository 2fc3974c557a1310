//! The first admin account, made one of two ways:
//!
//! - `dispatcher bootstrap-admin` ([`bootstrap_admin`]) writes it straight
//!   into the store before any dispatcher serves it, and prints the token
//!   once. With Redis it takes the shard's lease for the moment it writes,
//!   so it cannot write beside a serving owner; with one shard per district
//!   it writes into the first, whose owner publishes the account to the
//!   other shards (see `sharding`).
//! - `PINGJI_BOOTSTRAP_ADMIN_TOKEN` ([`add_admin_if_none`]): a token chosen
//!   by whoever deploys (a secret store, a container's environment) that a
//!   serving dispatcher adds at start while there is no admin; once there
//!   is one, it is ignored.
//!
//! "No admin" means no admin whose token works: operator tokens expire and
//! can be revoked, and when every admin token has, both ways make the
//! account work again (a new token for an admin of that name, or a new
//! admin) rather than leave the dispatcher without anyone to manage it.

use anyhow::Context;
use tracing::info;

use super::config::Store;
use crate::convert;
use crate::journal::{Journal, RedisJournal, SqliteJournal};
use crate::lease::{Acquisition, LeaseConfig, ShardLease};
use crate::runtime::{self, Dispatcher};
use crate::shard::RedisShard;
use crate::tokens;
use pingji_engine::accounts::{self, OperatorRole, PresentedToken, TokenStanding};
use pingji_engine::engine::{Command, Engine};
use pingji_engine::ids::Millis;
use pingji_engine::policy::Policy;

const ACTOR: &str = "operator:bootstrap";

/// The name in a bootstrap token, or what is wrong with it.
pub fn check_bootstrap_token(token: &str) -> Result<String, String> {
    match accounts::read_token(token.trim()) {
        PresentedToken::Operator { name } => Ok(name.to_string()),
        _ => Err("the bootstrap admin token must look like pjo_NAME_ followed by 64 hex digits, e.g. from \
                  'echo pjo_admin_$(openssl rand -hex 32)'"
            .to_string()),
    }
}

/// Adds the admin of `token` unless an admin whose token works exists.
pub async fn add_admin_if_none(dispatcher: &Dispatcher, token: &str) -> anyhow::Result<()> {
    let name = check_bootstrap_token(token).map_err(|error| anyhow::anyhow!("PINGJI_BOOTSTRAP_ADMIN_TOKEN: {error}"))?;
    let lookup = name.clone();
    let (has_admin, existing) = dispatcher
        .query(move |engine, now| (has_working_admin(engine, now), engine.operator(&lookup).map(|operator| operator.role)))
        .await?;
    if has_admin {
        return Ok(());
    }
    let hashing = token.trim().to_string();
    let token_hash = tokio::task::spawn_blocking(move || tokens::hash_token(&hashing)).await?.map_err(anyhow::Error::msg)?;
    let command = bootstrap_command(&name, existing, token_hash)
        .map_err(|error| anyhow::anyhow!("PINGJI_BOOTSTRAP_ADMIN_TOKEN: {error}"))?;
    dispatcher.execute(command, ACTOR.to_string(), |_, _| ()).await.context("cannot add the bootstrap admin")?;
    info!(operator = %name, "bootstrap admin added");
    Ok(())
}

/// The command that gives admin `name` the token of `token_hash`: a new
/// account, or a new token for an admin account of that name whose token
/// stopped working. Refused for an account of that name with a lower role.
fn bootstrap_command(name: &str, existing: Option<OperatorRole>, token_hash: String) -> anyhow::Result<Command> {
    let lifetime_ms = accounts::DEFAULT_OPERATOR_TOKEN_LIFETIME_MS;
    match existing {
        None => Ok(Command::AddOperator { name: name.to_string(), role: OperatorRole::Admin, token_hash, lifetime_ms }),
        Some(OperatorRole::Admin) => Ok(Command::RotateOperatorToken { name: name.to_string(), token_hash, lifetime_ms }),
        Some(role) => {
            anyhow::bail!("{name} is a {role} account, not an admin; bootstrap an admin of another name (e.g. pjo_admin_…)")
        }
    }
}

/// Makes admin `name` in `store`, where no admin exists yet, and returns
/// its token. Blocking.
pub fn bootstrap_admin(store: &Store, name: &str, policy: Policy) -> anyhow::Result<String> {
    accounts::check_operator_name(name).map_err(anyhow::Error::msg)?;
    match store {
        Store::Ephemeral => anyhow::bail!(
            "an ephemeral dispatcher keeps nothing, so there is nothing to write an account to; start it with \
             PINGJI_BOOTSTRAP_ADMIN_TOKEN=pjo_{name}_<64 hex digits> instead"
        ),
        Store::Sqlite(path) => {
            let mut journal = SqliteJournal::open(path).with_context(|| format!("cannot open the journal {}", path.display()))?;
            add_first_admin(&mut journal, name, policy)
        }
        Store::Redis(redis) => {
            // With one shard per district the account lives in the first
            // shard, whose owner publishes it to the others.
            let Some(shard) = redis.shards.first() else {
                anyhow::bail!("no shard to write the admin into; give --shard");
            };
            let shard = RedisShard::new(&redis.url, shard.clone())?;
            let owner_id = format!("bootstrap-{}", std::process::id());
            let lease = ShardLease::new(shard.clone(), &owner_id, "", LeaseConfig::default());
            let token = match lease.try_acquire()? {
                Acquisition::Acquired { token } => token,
                Acquisition::Held(holder) => anyhow::bail!(
                    "the dispatcher at {} serves shard {} now; bootstrap before starting dispatchers, or stop them \
                     first, or ask an existing admin ('pingji account add NAME --role admin')",
                    holder.address,
                    shard.id()
                ),
            };
            let made = RedisJournal::open(shard, token)
                .map_err(anyhow::Error::from)
                .and_then(|mut journal| add_first_admin(&mut journal, name, policy));
            let _ = lease.release(token);
            made
        }
    }
}

fn add_first_admin(journal: &mut dyn Journal, name: &str, policy: Policy) -> anyhow::Result<String> {
    let mut engine = runtime::recover_from(journal, policy)?;
    let now = runtime::system_now();
    if has_working_admin(&engine, now) {
        anyhow::bail!(
            "this store already has an admin whose token works; an admin adds accounts with 'pingji account add NAME \
             --role ROLE' and issues new tokens with 'pingji account token NAME --rotate'"
        );
    }
    let token = tokens::new_operator_token(name);
    let token_hash = tokens::hash_token(&token).map_err(anyhow::Error::msg)?;
    let existing = engine.operator(name).map(|operator| operator.role);
    let command = bootstrap_command(name, existing, token_hash)?;
    let events = engine.execute(command, ACTOR, now).map_err(|rejection| anyhow::anyhow!("{rejection}"))?;
    let stored: Vec<_> = events.iter().map(convert::stored_event).collect();
    journal.append(&stored).context("cannot write the admin account to the journal")?;
    Ok(token)
}

/// Whether an admin account's token works at `now` (not expired, not revoked).
fn has_working_admin(engine: &Engine, now: Millis) -> bool {
    engine
        .operators()
        .any(|(_, operator)| operator.role == OperatorRole::Admin && operator.token_standing(now) == TokenStanding::Works)
}
