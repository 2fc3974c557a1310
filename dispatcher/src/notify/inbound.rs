//! The inbound webhook: `POST /notify/inbound` on the web port, where a
//! gateway posts delivery receipts and people's replies. A server-to-server
//! endpoint for gateways, not a browser API.
//!
//! Each post is signed like our outbound webhooks: `x-pingji-timestamp`
//! (Unix seconds) and `x-pingji-signature: v1=HEX`, the HMAC-SHA256 of
//! `TIMESTAMP.BODY` under `notify.inbound_secret`. A bad signature, a
//! timestamp more than `inbound_window` away, or a signature already
//! taken (a replay) is refused with 401 and journaled as
//! `inbound_refused`, without anything of the body.
//!
//! Bodies (JSON):
//! - `{"type":"receipt","key":KEY,"status":"delivered"|"failed","error":TEXT}`:
//!   KEY is the idempotency key the dispatcher sent with the request.
//! - `{"type":"reply","from":PHONE,"text":TEXT}`: "1" accepts an offer or
//!   checks in to a call-up, "2" declines an offer, a check-in keyword
//!   ("到") checks in; any text answers an operator's message.
//!
//! Twilio posts its own form to `POST /notify/inbound/twilio` (see
//! [`TWILIO_INBOUND_PATH`]), signed with `X-Twilio-Signature` under the
//! Auth Token of the Twilio gateway configured with a `callback_url`: a
//! status callback (`MessageStatus` or `CallStatus`, the step's key in the
//! URL's `key`) is a receipt, a message (`From`, `Body`) a reply. The
//! answer is empty TwiML.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tracing::{info, warn};

use super::gateway::{Gateway, TWILIO_INBOUND_PATH, twilio_signature};
use super::send::journal;
use super::shared::Shared as Notifier;
use super::store::{StepState, Subject};
use crate::runtime::DispatchError;
use crate::webhooks::{SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};
use pingji_engine::engine::Command;
use pingji_engine::event::{DISPATCHER, NoticeChannel, NoticeOutcome};
use pingji_engine::ids::{AgentId, CallupId, OfferId};

/// Where gateways post.
pub const INBOUND_PATH: &str = "/notify/inbound";

/// Optional: the gateway's name, for the refusal events.
pub const GATEWAY_HEADER: &str = "x-pingji-gateway";

/// Inbound refusals journaled per minute at most; the rest are logged.
const REFUSALS_JOURNALED_PER_MINUTE: u32 = 30;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Inbound {
    Receipt {
        key: String,
        status: String,
        #[serde(default)]
        error: String,
    },
    Reply {
        from: String,
        text: String,
    },
}

/// The axum route for [`INBOUND_PATH`].
pub fn route(notifier: Arc<Notifier>) -> axum::Router {
    let twilio = notifier.clone();
    axum::Router::new()
        .route(
            INBOUND_PATH,
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let notifier = notifier.clone();
                async move { take(&notifier, &headers, &body).await }
            }),
        )
        .route(
            TWILIO_INBOUND_PATH,
            axum::routing::post(move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let notifier = twilio.clone();
                async move { take_twilio(&notifier, &uri, &headers, &body).await }
            }),
        )
}

fn answer(status: StatusCode, result: &str, reason: &str) -> Response {
    (status, [("content-type", "application/json")], serde_json::json!({ "result": result, "reason": reason }).to_string())
        .into_response()
}

async fn take(notifier: &Arc<Notifier>, headers: &HeaderMap, body: &Bytes) -> Response {
    let gateway = headers.get(GATEWAY_HEADER).and_then(|value| value.to_str().ok()).unwrap_or("unnamed").chars().take(64);
    let gateway: String = gateway.filter(|character| !character.is_control()).collect();
    let Some(secret) = notifier.config.inbound_secret.as_deref() else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "refused", "the inbound webhook has no secret configured");
    };
    if let Err(reason) = check(notifier, secret, headers, body) {
        refuse(notifier, &gateway, reason).await;
        return answer(StatusCode::UNAUTHORIZED, "refused", reason);
    }
    let inbound: Inbound = match serde_json::from_slice(body) {
        Ok(inbound) => inbound,
        Err(_) => {
            return answer(StatusCode::BAD_REQUEST, "refused", "the body is not a receipt or a reply (see docs/integrations.md)");
        }
    };
    match inbound {
        Inbound::Receipt { key, status, error } => receipt(notifier, &key, &status, &error).await,
        Inbound::Reply { from, text } => reply(notifier, &from, &text).await,
    }
}

/// A post of Twilio's: checked against the Auth Token of each Twilio
/// gateway that has a `callback_url`, then taken as a receipt (the URL
/// names the step's key) or a reply.
async fn take_twilio(notifier: &Arc<Notifier>, uri: &axum::http::Uri, headers: &HeaderMap, body: &Bytes) -> Response {
    let accounts: Vec<(&str, &str)> = [&notifier.config.sms, &notifier.config.voice]
        .into_iter()
        .flatten()
        .filter_map(|gateway| match gateway {
            Gateway::Twilio { auth_token, callback_url: Some(base), .. } => Some((auth_token.as_str(), base.as_str())),
            _ => None,
        })
        .collect();
    if accounts.is_empty() {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "refused", "no Twilio gateway with a callback_url is configured");
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let signed = headers.get("x-twilio-signature").and_then(|value| value.to_str().ok()).unwrap_or_default();
    let path = uri.path_and_query().map_or(TWILIO_INBOUND_PATH, |path| path.as_str());
    let genuine = accounts.iter().any(|(token, base)| {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        same(twilio_signature(token, &url, &params).as_bytes(), signed.as_bytes())
    });
    if !genuine {
        refuse(notifier, "twilio", "bad signature").await;
        return answer(StatusCode::UNAUTHORIZED, "refused", "bad signature");
    }
    if !first_time(notifier, signed) {
        refuse(notifier, "twilio", "replayed (this signature was already taken)").await;
        return answer(StatusCode::UNAUTHORIZED, "refused", "replayed (this signature was already taken)");
    }
    let field = |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let key = uri.query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == "key").map(|(_, value)| value.into_owned())
    });
    let taken = match (key, field("MessageStatus").or(field("CallStatus"))) {
        (Some(key), Some(status)) => match status {
            "delivered" | "completed" => receipt(notifier, &key, "delivered", "").await,
            "failed" | "undelivered" | "busy" | "no-answer" | "canceled" => {
                let error = field("ErrorCode").map(|code| format!("Twilio error {code}")).unwrap_or_default();
                receipt(notifier, &key, "failed", &error).await
            }
            // queued, sent, ringing, in-progress, …: not an outcome yet.
            _ => answer(StatusCode::OK, "ignored", ""),
        },
        _ => match (field("From"), field("Body")) {
            (Some(from), Some(text)) => reply(notifier, from, text).await,
            _ => answer(StatusCode::BAD_REQUEST, "refused", "neither a status callback with a key nor a message"),
        },
    };
    if !taken.status().is_success() {
        return taken;
    }
    (StatusCode::OK, [("content-type", "text/xml")], "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>").into_response()
}

/// Whether `signature` is seen for the first time in the replay window.
fn first_time(notifier: &Notifier, signature: &str) -> bool {
    let window = notifier.config.inbound_window;
    let mut seen = notifier.seen_signatures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let instant = Instant::now();
    if seen.len() > 10_000 {
        seen.retain(|_, at| instant.duration_since(*at) <= window * 2);
    }
    seen.insert(signature.to_string(), instant).is_none()
}

/// The signature, the timestamp's age and replays; the reason when refused.
fn check(notifier: &Notifier, secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_string();
    let timestamp = header(TIMESTAMP_HEADER);
    let signed = header(SIGNATURE_HEADER);
    let Ok(seconds) = timestamp.parse::<u64>() else {
        return Err("no timestamp");
    };
    let expected = signature(secret, &timestamp, body);
    if !same(expected.as_bytes(), signed.as_bytes()) {
        return Err("bad signature");
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let window = notifier.config.inbound_window;
    if now.abs_diff(seconds) > window.as_secs() {
        return Err("timestamp outside the accepted window (old or replayed)");
    }
    if !first_time(notifier, &signed) {
        return Err("replayed (this signature was already taken)");
    }
    Ok(())
}

/// Compares in time independent of where the bytes differ.
fn same(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && left.iter().zip(right).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn refuse(notifier: &Notifier, gateway: &str, reason: &str) {
    let journal_it = {
        let mut refusals = notifier.refusals.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if refusals.0.elapsed() > Duration::from_secs(60) {
            *refusals = (Instant::now(), 0);
        }
        refusals.1 += 1;
        refusals.1 <= REFUSALS_JOURNALED_PER_MINUTE
    };
    warn!(gateway, reason, "inbound gateway post refused");
    if !journal_it {
        return;
    }
    let command = Command::RecordInboundRefused { gateway: gateway.to_string(), reason: reason.to_string() };
    if let Err(error) = notifier.dispatcher.execute(command, DISPATCHER.to_string(), |_, _| ()).await {
        warn!(%error, "inbound refusal not journaled");
    }
}

async fn receipt(notifier: &Arc<Notifier>, key: &str, status: &str, error: &str) -> Response {
    let outcome = match status {
        "delivered" => NoticeOutcome::Delivered,
        "failed" | "undelivered" => NoticeOutcome::Failed,
        _ => return answer(StatusCode::BAD_REQUEST, "refused", "status must be delivered or failed"),
    };
    let store = notifier.store.clone();
    let wanted = key.to_string();
    let record =
        tokio::task::spawn_blocking(move || store.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).step(&wanted)).await;
    let Ok(Ok(Some(mut record))) = record else {
        return answer(StatusCode::NOT_FOUND, "unknown", "no step has this key");
    };
    if matches!(record.state, StepState::Delivered | StepState::Failed) {
        return answer(StatusCode::OK, "duplicate", "");
    }
    record.state = if outcome == NoticeOutcome::Delivered { StepState::Delivered } else { StepState::Failed };
    let store = notifier.store.clone();
    let saved = record.clone();
    let _ =
        tokio::task::spawn_blocking(move || store.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).put_step(&saved)).await;
    // The gateway's words, without digits: they may quote the number.
    let detail: String = error.chars().filter(|character| !character.is_ascii_digit()).take(200).collect();
    let detail = if detail.is_empty() { String::new() } else { format!("receipt: {}", detail.trim()) };
    journal(notifier, &record.subject, &AgentId::new(&record.agent), record.channel, record.step, outcome, detail).await;
    answer(StatusCode::OK, "taken", "")
}

/// The digits of a phone number, for matching.
fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// Same number, allowing a country code on one side only.
fn same_number(left: &str, right: &str) -> bool {
    let (shorter, longer) = if left.len() <= right.len() { (left, right) } else { (right, left) };
    shorter.len() >= 7 && longer.ends_with(shorter) && longer.len() - shorter.len() <= 4
}

async fn reply(notifier: &Arc<Notifier>, from: &str, text: &str) -> Response {
    let sender = digits(from);
    let people = notifier
        .dispatcher
        .query(move |engine, _| {
            engine
                .state()
                .agents
                .values()
                .filter(|record| same_number(&digits(&record.profile.phone), &sender))
                .map(|record| record.profile.id.clone())
                .collect::<Vec<AgentId>>()
        })
        .await
        .unwrap_or_default();
    // The newest open notice of that number that reached them by SMS or call.
    let notice = {
        let open = notifier.lock_open();
        open.values()
            .filter(|notice| people.iter().any(|agent| agent.as_str() == notice.agent))
            .filter(|notice| notice.next_step > 0)
            .max_by_key(|notice| notice.started_at_ms)
            .cloned()
    };
    let Some(notice) = notice else {
        info!("reply from a number with nothing open; ignored");
        return answer(StatusCode::OK, "ignored", "nothing is waiting for an answer from this number");
    };
    let agent = AgentId::new(&notice.agent);
    let answer_text = text.trim();
    let command = match &notice.subject {
        Subject::Offer { offer, .. } if answer_text == "1" => {
            Command::Accept { agent: agent.clone(), offer: OfferId::new(offer) }
        }
        Subject::Offer { offer, .. } if answer_text == "2" => {
            Command::Decline { agent: agent.clone(), offer: OfferId::new(offer), reason: "declined by SMS reply".to_string() }
        }
        Subject::Callup { callup } if notifier.config.is_checkin(answer_text) => {
            Command::CheckInByReply { agent: agent.clone(), callup: Some(CallupId::new(callup)) }
        }
        Subject::Message { message } if !answer_text.is_empty() => {
            Command::ReplyToMessage { agent: agent.clone(), message: message.clone(), text: answer_text.to_string() }
        }
        _ => return answer(StatusCode::OK, "ignored", "the reply is not an answer to what is waiting"),
    };
    match notifier.dispatcher.execute(command, format!("agent:{agent}"), |_, _| ()).await {
        Ok(()) => {
            // The answer came by SMS, on the last rung tried.
            let last = notice.next_step.max(1);
            journal(notifier, &notice.subject, &agent, NoticeChannel::Sms, last, NoticeOutcome::Answered, String::new()).await;
            answer(StatusCode::OK, "answered", "")
        }
        Err(DispatchError::Rejected(rejection)) => answer(StatusCode::OK, "refused", &rejection.to_string()),
        Err(error) => {
            warn!(%error, "reply not taken");
            answer(StatusCode::SERVICE_UNAVAILABLE, "retry", "the dispatcher cannot take it now")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_with_or_without_a_country_code() {
        assert!(same_number(&digits("+86 138-0000-0001"), &digits("13800000001")));
        assert!(same_number(&digits("13800000001"), &digits("13800000001")));
        assert!(!same_number(&digits("13800000001"), &digits("13800000002")));
        assert!(!same_number("01", "1"));
    }
}
