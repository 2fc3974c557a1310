//! The web port's CAP routes, beside the grpc-web services: a standard
//! feed for other systems, not a browser API.
//! - `GET /cap/alerts.atom`: the Atom index of the alerts we issued.
//! - `GET /cap/alerts/{identifier}.xml`: one alert (`application/cap+xml`).
//! - `POST /cap/inbound`: a CAP 1.2 alert from a configured feed
//!   (`Authorization: Bearer TOKEN`); 201 with the suggestion made, 200
//!   for an alert received before, 4xx with a plain message otherwise.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pingji_engine::Rejection;
use pingji_engine::cap::IssuedCapAlert;
use pingji_engine::engine::Command;
use pingji_engine::event::EventKind;
use pingji_engine::ids::Millis;
use serde_json::json;
use tracing::{info, warn};

use super::config::CapConfig;
use super::inbound::read_alert;
use super::xml::{alert_xml, atom_index};
use crate::runtime::{DispatchError, Dispatcher};

/// The largest alert taken in.
const MAX_INBOUND_BYTES: usize = 1 << 20;

#[derive(Clone)]
struct Cap {
    dispatcher: Dispatcher,
    config: Arc<CapConfig>,
    scheme: &'static str,
}

/// The routes, for the web port's router.
pub fn router(dispatcher: Dispatcher, config: CapConfig, tls: bool) -> Router {
    let state = Cap { dispatcher, config: Arc::new(config), scheme: if tls { "https" } else { "http" } };
    Router::new()
        .route("/cap/alerts.atom", get(index))
        .route("/cap/alerts/{file}", get(one_alert))
        .route("/cap/inbound", post(inbound))
        .with_state(state)
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let mut text = message.into();
    text.push('\n');
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

fn unavailable(error: DispatchError) -> Response {
    warn!(%error, "cap route could not reach the dispatcher");
    plain(StatusCode::SERVICE_UNAVAILABLE, "the dispatcher is not serving right now; try again shortly")
}

async fn issued(cap: &Cap) -> Result<Vec<(IssuedCapAlert, Millis)>, DispatchError> {
    cap.dispatcher
        .query(|engine, _| {
            let state = &engine.state().cap;
            state
                .issued
                .iter()
                .map(|alert| (alert.clone(), state.sent_at.get(&alert.identifier).copied().unwrap_or(Millis(0))))
                .collect()
        })
        .await
}

async fn index(State(cap): State<Cap>, headers: HeaderMap) -> Response {
    let alerts = match issued(&cap).await {
        Ok(alerts) => alerts,
        Err(error) => return unavailable(error),
    };
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("localhost");
    let base = format!("{}://{host}", cap.scheme);
    ([(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")], atom_index(&alerts, &base, &cap.config)).into_response()
}

async fn one_alert(State(cap): State<Cap>, Path(file): Path<String>) -> Response {
    let Some(identifier) = file.strip_suffix(".xml") else {
        return plain(StatusCode::NOT_FOUND, "alerts are at /cap/alerts/IDENTIFIER.xml");
    };
    let alerts = match issued(&cap).await {
        Ok(alerts) => alerts,
        Err(error) => return unavailable(error),
    };
    match alerts.iter().find(|(alert, _)| alert.identifier == identifier) {
        Some((alert, sent)) => {
            ([(header::CONTENT_TYPE, "application/cap+xml; charset=utf-8")], alert_xml(alert, *sent, &cap.config)).into_response()
        }
        None => plain(StatusCode::NOT_FOUND, format!("no alert {identifier}; see /cap/alerts.atom")),
    }
}

async fn inbound(State(cap): State<Cap>, headers: HeaderMap, body: Bytes) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(token) = token else {
        return plain(StatusCode::UNAUTHORIZED, "send the feed's token as Authorization: Bearer TOKEN");
    };
    let Some(feed) = super::config::CapFeed::matching(&cap.config.feeds, token) else {
        warn!("cap inbound refused: unknown token");
        return plain(StatusCode::UNAUTHORIZED, "this token belongs to no configured CAP feed");
    };
    if body.len() > MAX_INBOUND_BYTES {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, format!("the alert is larger than {MAX_INBOUND_BYTES} bytes"));
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return plain(StatusCode::BAD_REQUEST, "the body is not UTF-8 text");
    };
    let alert = match read_alert(text) {
        Ok(alert) => alert,
        Err(error) => {
            info!(feed = %feed.name, %error, "cap inbound refused");
            return plain(StatusCode::UNPROCESSABLE_ENTITY, format!("not a CAP 1.2 alert we can take: {error}"));
        }
    };
    if !feed.senders.is_empty() && !feed.senders.contains(&alert.sender) {
        return plain(StatusCode::FORBIDDEN, format!("feed {} may not post alerts as sender {}", feed.name, alert.sender));
    }
    let identifier = alert.identifier.clone();
    let actor = format!("cap:{}", feed.name);
    let outcome = cap
        .dispatcher
        .execute(Command::ReceiveCapAlert { alert }, actor, |_, events| {
            events.iter().find_map(|event| match &event.kind {
                EventKind::CapAlertReceived { suggestion, withdrawn, .. } => Some((suggestion.clone(), withdrawn.clone())),
                _ => None,
            })
        })
        .await;
    match outcome {
        Ok(Some((suggestion, withdrawn))) => {
            info!(feed = %feed.name, %identifier, suggested = suggestion.is_some(), "cap alert received");
            let body = json!({
                "identifier": identifier,
                "suggestion": suggestion.as_ref().map(|spec| json!({
                    "id": spec.id,
                    "area_ids": spec.areas.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "grade": spec.mode.name(),
                    "plan_id": spec.plan.as_ref().map(ToString::to_string),
                })),
                "withdrawn": withdrawn,
            });
            (StatusCode::CREATED, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        Ok(None) => plain(StatusCode::INTERNAL_SERVER_ERROR, "the alert was taken but cannot be read back"),
        Err(DispatchError::Rejected(Rejection::AlreadyExists(message))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"duplicate": true, "message": message}).to_string(),
        )
            .into_response(),
        Err(DispatchError::Rejected(rejection)) => plain(StatusCode::UNPROCESSABLE_ENTITY, rejection.to_string()),
        Err(error) => unavailable(error),
    }
}
