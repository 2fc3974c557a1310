//! `pingji callup issue AREA --reason TEXT [--role ROLE]... [--deadline-s N]`
//! and `pingji callup status [AREA] [--open]`: the roll-call.

use pingji_proto::v1 as pb;
use serde_json::json;

use crate::connection::Client;
use crate::error::ConsoleError;
use crate::table::Table;
use pingji_client::labels;

use crate::{json, output};

pub async fn issue(client: &mut Client, request: pb::CallUpRequest, as_json: bool) -> Result<(), ConsoleError> {
    let callup = client.call_up(request).await?.into_inner();
    if as_json {
        return output::json_document(&json::callup(&callup));
    }
    output::text(&issued_text(&callup))
}

pub fn issued_text(callup: &pb::Callup) -> String {
    format!(
        "called up {} people in {} ({}): check in by {}; see `pingji callup status {}`\n",
        callup.people.len(),
        callup.area_id,
        callup.id,
        labels::utc_time(callup.deadline_ms),
        callup.area_id
    )
}

/// City-wide call-ups made at every district's shard, one line each.
pub fn show_issued(callups: &[pb::Callup], as_json: bool) -> Result<(), ConsoleError> {
    if as_json {
        return output::json_document(&json!({ "callups": callups.iter().map(json::callup).collect::<Vec<_>>() }));
    }
    output::text(&callups.iter().map(issued_text).collect::<String>())
}

pub async fn status(client: &mut Client, area: Option<&str>, open_only: bool, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::CallupStatusRequest { area_id: area.unwrap_or_default().to_string(), open_only };
    let callups = client.callup_status(request).await?.into_inner().callups;
    show_roll_call(callups, as_json)
}

/// The roll-call of `callups`, open ones first.
pub fn show_roll_call(mut callups: Vec<pb::Callup>, as_json: bool) -> Result<(), ConsoleError> {
    // Open call-ups first: they are what an operator acts on.
    callups.sort_by(|a, b| (a.ended_at_ms > 0, &a.id).cmp(&(b.ended_at_ms > 0, &b.id)));
    if as_json {
        return output::json_document(&json!({ "callups": callups.iter().map(json::callup).collect::<Vec<_>>() }));
    }
    output::text(&roll_call_text(&callups, labels::now_ms()))
}

/// Every call-up: what it is and how it stands, then who was called.
pub fn roll_call_text(callups: &[pb::Callup], now_ms: i64) -> String {
    if callups.is_empty() {
        return "no call-ups\n".to_string();
    }
    callups.iter().map(|callup| callup_text(callup, now_ms)).collect::<Vec<_>>().join("\n")
}

fn callup_text(callup: &pb::Callup, now_ms: i64) -> String {
    // Not checked in counts as missing once the deadline has passed or the
    // call-up is over; before that the person still has time.
    let overdue = callup.ended_at_ms > 0 || now_ms >= callup.deadline_ms;
    let state = if callup.ended_at_ms > 0 {
        format!("stood down {}", labels::utc_time(callup.ended_at_ms))
    } else if overdue {
        "open, deadline passed".to_string()
    } else {
        format!("open, {} left", labels::duration((callup.deadline_ms - now_ms) / 1000))
    };
    let mut text = format!("{} in {}: {}\n", callup.id, callup.area_id, callup.reason.replace('\n', "; "));
    text.push_str(&format!(
        "issued {} by {}; check in by {} ({state})\n",
        labels::utc_time(callup.issued_at_ms),
        callup.issued_by,
        labels::utc_time(callup.deadline_ms)
    ));
    let not_in = callup.people.len().saturating_sub(callup.checked_in as usize);
    text.push_str(&format!(
        "checked in {} of {} called{}\n",
        callup.checked_in,
        callup.people.len(),
        match (not_in, overdue) {
            (0, _) => String::new(),
            (count, true) => format!(", {count} MISSING"),
            (count, false) => format!(", {count} not yet"),
        }
    ));
    let mut table = Table::new(&["PERSON", "NAME", "ROLE", "CHECKED IN", "CONNECTED", "REACHED"]);
    for person in &callup.people {
        let checked_in = match (person.checked_in_at_ms, overdue) {
            (0, true) => "MISSING".to_string(),
            (0, false) => "not yet".to_string(),
            (at_ms, _) => labels::utc_time(at_ms),
        };
        table.row(vec![
            person.agent_id.clone(),
            person.name.clone(),
            labels::role_key(person.role).to_string(),
            checked_in,
            if person.connected { "yes" } else { "no" }.to_string(),
            // The last rung of the escalation ladder: "sms delivered", "voice failed".
            if person.reached.is_empty() { "-".to_string() } else { person.reached.clone() },
        ]);
    }
    text.push_str(&table.render());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_746_057_600_000;

    fn callup(deadline_ms: i64, ended_at_ms: i64) -> pb::Callup {
        pb::Callup {
            id: "callup-0001".into(),
            area_id: "d1".into(),
            reason: "台风登陆".into(),
            issued_by: "operator:li".into(),
            issued_at_ms: NOW_MS - 600_000,
            deadline_ms,
            ended_at_ms,
            people: vec![
                pb::CalledPerson {
                    agent_id: "p0001".into(),
                    name: "黄磊".into(),
                    role: pb::Role::SunkCadre as i32,
                    checked_in_at_ms: NOW_MS - 60_000,
                    connected: true,
                    reached: String::new(),
                },
                pb::CalledPerson {
                    agent_id: "p0002".into(),
                    name: "欧阳桂英".into(),
                    role: pb::Role::RegisteredMember as i32,
                    checked_in_at_ms: 0,
                    connected: false,
                    reached: "sms failed".into(),
                },
            ],
            checked_in: 1,
            missing: 1,
        }
    }

    #[test]
    fn after_the_deadline_who_did_not_check_in_is_missing() {
        let text = roll_call_text(&[callup(NOW_MS - 1_000, 0)], NOW_MS);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "callup-0001 in d1: 台风登陆");
        assert_eq!(
            lines[1],
            "issued 2025-04-30 23:50:00Z by operator:li; check in by 2025-04-30 23:59:59Z (open, deadline passed)"
        );
        assert_eq!(lines[2], "checked in 1 of 2 called, 1 MISSING");
        assert_eq!(lines[3], "PERSON  NAME      ROLE               CHECKED IN            CONNECTED  REACHED");
        assert_eq!(lines[4], "p0001   黄磊      sunk_cadre         2025-04-30 23:59:00Z  yes        -");
        assert_eq!(lines[5], "p0002   欧阳桂英  registered_member  MISSING               no         sms failed");
    }

    #[test]
    fn before_the_deadline_they_still_have_time() {
        let text = roll_call_text(&[callup(NOW_MS + 25 * 60_000, 0)], NOW_MS);
        assert!(text.contains("(open, 25m left)"), "{text}");
        assert!(text.contains("checked in 1 of 2 called, 1 not yet"), "{text}");
        assert!(text.contains("registered_member  not yet"), "{text}");
        let stood_down = roll_call_text(&[callup(NOW_MS + 60_000, NOW_MS - 1_000)], NOW_MS);
        assert!(stood_down.contains("(stood down 2025-04-30 23:59:59Z)"), "{stood_down}");
        assert!(stood_down.contains("MISSING"), "{stood_down}");
        assert_eq!(roll_call_text(&[], NOW_MS), "no call-ups\n");
    }
}
