//! Helpers for the mobilisation tests (平急转换): reserves on the roster,
//! plan files, check-ins and field reports sent from a session, and waiting
//! for one kind of message on a session while others pass by.

use std::time::Duration;

use anyhow::Context;
use pingji_proto::v1 as pb;
use pingji_proto::v1::agent_message::Body as Outgoing;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use tokio::time::Instant;

use crate::sample::person;
use crate::session::AgentSession;

/// A person of `role` who walks and is on duty, living in `home_area`.
pub fn person_with_role(id: &str, role: pb::Role, home_area: &str) -> pb::AgentSpec {
    pb::AgentSpec { role: role as i32, ..person(id, home_area, &[]) }
}

/// A plan file (TOML) for grade II: one task at every service centre of the
/// area it is activated on, one at the area's centroid, and a call-up of
/// registered members.
pub fn plan_toml(id: &str) -> String {
    format!(
        r#"id = "{id}"
name = "防汛二级 {id}"
category = "flood"
grade = "II"
call_up = ["registered_member"]

[[task]]
category = "sandbags"
where = "service_centres"
need = 1
priority = 2
description = "fill and stack sandbags at the service centre"

[[task]]
category = "pump"
where = "centroid"
need = 1
priority = 1
"#
    )
}

/// Reads messages until one matches and returns it; the others are passed
/// over (and named if none matches within `within`).
pub async fn next_matching(
    session: &mut AgentSession,
    within: Duration,
    what: &str,
    mut matches: impl FnMut(&Incoming) -> bool,
) -> anyhow::Result<Incoming> {
    let deadline = Instant::now() + within;
    let mut passed_over = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = session
            .next_message_within(left)
            .await
            .with_context(|| format!("{} waiting for {what}; passed over: {passed_over:?}", session.agent_id()))?;
        if matches(&message) {
            return Ok(message);
        }
        passed_over.push(message);
    }
}

/// The next call-up on the session.
pub async fn expect_call_up(session: &mut AgentSession, within: Duration) -> anyhow::Result<pb::CallUp> {
    match next_matching(session, within, "a call-up", |message| matches!(message, Incoming::CallUp(_))).await? {
        Incoming::CallUp(call_up) => Ok(call_up),
        other => anyhow::bail!("not a call-up: {other:?}"),
    }
}

/// The next stand-down on the session.
pub async fn expect_stand_down(session: &mut AgentSession, within: Duration) -> anyhow::Result<pb::StandDown> {
    match next_matching(session, within, "a stand-down", |message| matches!(message, Incoming::StandDown(_))).await? {
        Incoming::StandDown(stand_down) => Ok(stand_down),
        other => anyhow::bail!("not a stand-down: {other:?}"),
    }
}

/// The next refusal on the session.
pub async fn expect_refused(session: &mut AgentSession, within: Duration) -> anyhow::Result<pb::Refused> {
    match next_matching(session, within, "a refusal", |message| matches!(message, Incoming::Refused(_))).await? {
        Incoming::Refused(refused) => Ok(refused),
        other => anyhow::bail!("not a refusal: {other:?}"),
    }
}

/// The next offer on the session.
pub async fn expect_offer(session: &mut AgentSession, within: Duration) -> anyhow::Result<pb::Offer> {
    match next_matching(session, within, "an offer", |message| matches!(message, Incoming::Offer(_))).await? {
        Incoming::Offer(offer) => Ok(offer),
        other => anyhow::bail!("not an offer: {other:?}"),
    }
}

/// The outcome `outcome` (received, accepted, merged, rejected, closed) of
/// the report `report_id`, on the reporter's session.
pub async fn expect_outcome(
    session: &mut AgentSession,
    within: Duration,
    report_id: &str,
    outcome: &str,
) -> anyhow::Result<pb::ReportOutcome> {
    let what = format!("report outcome {outcome} of {report_id}");
    // Matched on the typed kind; the words must agree with it.
    let kind = pb::report_outcome::Kind::from_str_name(&format!("KIND_{}", outcome.to_uppercase()))
        .with_context(|| format!("{outcome} is not a report outcome"))? as i32;
    match next_matching(session, within, &what, |message| {
        matches!(message, Incoming::ReportOutcome(found)
            if found.kind == kind && found.outcome == outcome && (report_id.is_empty() || found.report_id == report_id))
    })
    .await?
    {
        Incoming::ReportOutcome(found) => Ok(found),
        other => anyhow::bail!("not a report outcome: {other:?}"),
    }
}

/// Sends a check-in (an empty id: the open call-up).
pub async fn check_in(session: &AgentSession, callup_id: &str) -> anyhow::Result<()> {
    session.send(Outgoing::CheckIn(pb::CheckIn { callup_id: callup_id.to_string() })).await
}

/// Sends a field report at (lon, lat).
pub async fn field_report(session: &AgentSession, (lon, lat): (f64, f64), category: &str, text: &str) -> anyhow::Result<()> {
    session
        .send(Outgoing::FieldReport(pb::FieldReport {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: category.to_string(),
            text: text.to_string(),
            photo_ref: String::new(),
            photo_refs: Vec::new(),
        }))
        .await
}

/// Sends a field report and returns the incident it became, from the
/// "received" outcome on the reporter's session.
pub async fn report_from_field(
    session: &mut AgentSession,
    at: (f64, f64),
    category: &str,
    text: &str,
    within: Duration,
) -> anyhow::Result<String> {
    field_report(session, at, category, text).await?;
    let received = expect_outcome(session, within, "", "received").await?;
    anyhow::ensure!(
        !received.report_id.is_empty() && received.incident_id == received.report_id,
        "a received report names the incident it became: {received:?}"
    );
    Ok(received.report_id)
}
