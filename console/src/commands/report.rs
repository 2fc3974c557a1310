//! `pingji report triage ID accept [--priority P] [--need N] [--skill S]...`,
//! `pingji report triage ID merge INTO_ID`,
//! `pingji report triage ID reject --reason TEXT`.

use pingji_proto::v1 as pb;
use pingji_proto::v1::triage_report_request::Action;

use crate::cli::TriageAction;
use crate::connection::Client;
use crate::error::ConsoleError;
use pingji_client::labels;

use crate::{json, output};

/// The request for a triage decision.
pub fn request(id: &str, action: TriageAction) -> pb::TriageReportRequest {
    let action = match action {
        TriageAction::Accept { priority, need, skills } => Action::Accept(pb::AcceptReport {
            priority: priority.unwrap_or(0),
            headcount: need.unwrap_or(0),
            required_skills: skills,
        }),
        TriageAction::Merge { into_id } => Action::MergeInto(into_id),
        TriageAction::Reject { reason } => Action::RejectReason(reason),
    };
    pb::TriageReportRequest { report_id: id.to_string(), action: Some(action) }
}

pub async fn triage(client: &mut Client, id: &str, action: TriageAction, as_json: bool) -> Result<(), ConsoleError> {
    let incident = client.triage_report(request(id, action)).await?.into_inner();
    if as_json {
        return output::json_document(&json::incident(&incident));
    }
    output::text(&triaged_text(&incident))
}

/// What became of the report, in one line.
pub fn triaged_text(incident: &pb::Incident) -> String {
    match pb::IncidentStatus::try_from(incident.status) {
        Ok(pb::IncidentStatus::Merged) => {
            format!("merged {} into {}\n", incident.id, incident.merged_into)
        }
        Ok(pb::IncidentStatus::Rejected) => format!("rejected {}: {}\n", incident.id, incident.feedback.replace('\n', "; ")),
        _ => format!(
            "accepted {} ({} P{}, needs {}); {}, {} offer(s) out\n",
            incident.id,
            incident.category,
            incident.priority,
            incident.headcount,
            labels::incident_status_name(incident.status),
            incident.open_offers.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_decision_is_one_line() {
        let mut incident = pb::Incident {
            id: "inc-000004".into(),
            category: "flooding".into(),
            priority: 2,
            headcount: 2,
            status: pb::IncidentStatus::Offered as i32,
            open_offers: vec![pb::Offer::default()],
            ..Default::default()
        };
        assert_eq!(triaged_text(&incident), "accepted inc-000004 (flooding P2, needs 2); offered, 1 offer(s) out\n");
        incident.status = pb::IncidentStatus::Merged as i32;
        incident.merged_into = "inc-000001".into();
        assert_eq!(triaged_text(&incident), "merged inc-000004 into inc-000001\n");
        incident.status = pb::IncidentStatus::Rejected as i32;
        incident.feedback = "not a problem".into();
        assert_eq!(triaged_text(&incident), "rejected inc-000004: not a problem\n");
    }

    #[test]
    fn accept_sends_only_what_was_given() {
        let accept = request("inc-000004", TriageAction::Accept { priority: Some(1), need: None, skills: vec!["rescue".into()] });
        assert_eq!(accept.report_id, "inc-000004");
        assert_eq!(
            accept.action,
            Some(Action::Accept(pb::AcceptReport { priority: 1, headcount: 0, required_skills: vec!["rescue".into()] }))
        );
        let merge = request("inc-000004", TriageAction::Merge { into_id: "inc-000001".into() });
        assert_eq!(merge.action, Some(Action::MergeInto("inc-000001".into())));
    }
}
