//! `pingji plan import FILE.toml...`, `pingji plan list`,
//! `pingji plan activate PLAN_ID AREA --reason TEXT`,
//! `pingji plan deactivate ACTIVATION_ID --reason TEXT`.

use std::path::PathBuf;

use pingji_proto::v1 as pb;
use serde_json::json;

use crate::connection::Client;
use crate::error::{ConsoleError, import_error};
use crate::table::Table;
use pingji_client::{errors, labels};

use crate::{json, output};

/// Reads every file and loads them all in one request, which the dispatcher
/// checks and applies all or nothing; a file it finds wrong comes back as
/// the field `plans_toml[INDEX]`, and is named.
pub async fn import(client: &mut Client, files: &[PathBuf], as_json: bool) -> Result<(), ConsoleError> {
    let response = client.import_plans(import_request(files)?).await.map_err(|status| plan_error(status, files))?.into_inner();
    show_imported(&response, files, as_json)
}

/// The files' texts, in one request.
pub fn import_request(files: &[PathBuf]) -> Result<pb::ImportPlansRequest, ConsoleError> {
    let mut texts = Vec::with_capacity(files.len());
    for file in files {
        texts.push(super::read_file(file)?);
    }
    Ok(pb::ImportPlansRequest { plans_toml: texts })
}

pub fn show_imported(response: &pb::ImportPlansResponse, files: &[PathBuf], as_json: bool) -> Result<(), ConsoleError> {
    if as_json {
        return output::json_document(&json!({ "plans": response.plans.iter().map(json::plan).collect::<Vec<_>>() }));
    }
    let noun = if response.plans.len() == 1 { "plan" } else { "plans" };
    let mut text = format!("imported {} {noun} from {} file(s)\n", response.plans.len(), files.len());
    text.push_str(&plans_table(&response.plans));
    output::text(&text)
}

/// The dispatcher's refusal, naming the file it found wrong.
pub fn plan_error(status: tonic::Status, files: &[PathBuf]) -> ConsoleError {
    if let Some(file) = errors::bad_index(&status, "plans_toml").and_then(|index| files.get(index)) {
        let description = errors::bad_fields(&status).into_iter().next().map(|(_, description)| description);
        let message = description.unwrap_or_else(|| status.message().to_string());
        // The dispatcher says "plan file #N: ..."; the file's name says it better.
        let message = match message.split_once(": ") {
            Some((prefix, rest)) if prefix.starts_with("plan file #") => rest.to_string(),
            _ => message,
        };
        return ConsoleError::InFile { path: file.to_path_buf(), message };
    }
    match files {
        [only] => import_error(status, only),
        _ => ConsoleError::Server(status),
    }
}

pub async fn list(client: &mut Client, as_json: bool) -> Result<(), ConsoleError> {
    let response = client.list_plans(pb::ListPlansRequest {}).await?.into_inner();
    let activations = activations_open_first(&response.activations);
    if as_json {
        return output::json_document(&json!({
            "plans": response.plans.iter().map(json::plan).collect::<Vec<_>>(),
            "activations": activations.iter().map(|activation| json::activation(activation)).collect::<Vec<_>>(),
        }));
    }
    output::text(&plans_text(&response.plans, &activations))
}

/// Open activations first (latest first), then the ended ones (latest first).
pub fn activations_open_first(activations: &[pb::PlanActivation]) -> Vec<&pb::PlanActivation> {
    let mut sorted: Vec<&pb::PlanActivation> = activations.iter().collect();
    sorted.sort_by(|a, b| {
        (a.ended_at_ms > 0, std::cmp::Reverse(a.activated_at_ms), &a.id).cmp(&(
            b.ended_at_ms > 0,
            std::cmp::Reverse(b.activated_at_ms),
            &b.id,
        ))
    });
    sorted
}

/// `plan list`: the plans, then the activations.
pub fn plans_text(plans: &[pb::Plan], activations: &[&pb::PlanActivation]) -> String {
    if plans.is_empty() {
        return "no plans loaded; import them with `pingji plan import FILE.toml`\n".to_string();
    }
    let mut text = plans_table(plans);
    text.push('\n');
    if activations.is_empty() {
        text.push_str("activations: none\n");
        return text;
    }
    let mut table =
        Table::new(&["ACTIVATION", "PLAN", "AREA", "STATE", "ACTIVATED", "BY", "TASKS", "CALL-UP", "REASON"]).align_right(6);
    for activation in activations {
        let by =
            if activation.automatic { format!("{} (switch)", activation.activated_by) } else { activation.activated_by.clone() };
        let state = if activation.ended_at_ms > 0 {
            format!("ended {}", labels::utc_time(activation.ended_at_ms))
        } else {
            "open".to_string()
        };
        table.row(vec![
            activation.id.clone(),
            activation.plan_id.clone(),
            activation.area_id.clone(),
            state,
            labels::utc_time(activation.activated_at_ms),
            by,
            activation.incident_ids.len().to_string(),
            activation.callup_id.clone(),
            activation.reason.clone(),
        ]);
    }
    text.push_str("activations:\n");
    text.push_str(&table.render());
    text
}

/// One row per plan: grade, whether a switch activates it, tasks, call-up.
pub fn plans_table(plans: &[pb::Plan]) -> String {
    let mut table =
        Table::new(&["PLAN", "NAME", "CATEGORY", "GRADE", "AUTO", "TASKS", "PEOPLE", "CALL-UP"]).align_right(5).align_right(6);
    for plan in plans {
        let people: u32 = plan.tasks.iter().map(|task| task.headcount).sum();
        let call_up: Vec<&str> = plan.call_up.iter().map(|role| labels::role_key(*role)).collect();
        table.row(vec![
            plan.id.clone(),
            plan.name.clone(),
            plan.category.clone(),
            labels::grade_name(plan.grade).to_string(),
            if plan.auto_activate { "yes" } else { "no" }.to_string(),
            plan.tasks.len().to_string(),
            people.to_string(),
            call_up.join(","),
        ]);
    }
    table.render()
}

pub async fn activate(client: &mut Client, plan_id: &str, area: &str, reason: &str, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::ActivatePlanRequest { plan_id: plan_id.to_string(), area_id: area.to_string(), reason: reason.to_string() };
    let activation = client.activate_plan(request).await?.into_inner();
    if as_json {
        return output::json_document(&json::activation(&activation));
    }
    output::text(&activated_text(&activation))
}

/// The activations of one city-wide plan, one per district's shard.
pub fn show_activations(activations: &[pb::PlanActivation], as_json: bool) -> Result<(), ConsoleError> {
    if as_json {
        return output::json_document(&serde_json::json!({
            "activations": activations.iter().map(json::activation).collect::<Vec<_>>()
        }));
    }
    output::text(&activations.iter().map(activated_text).collect::<String>())
}

pub fn activated_text(activation: &pb::PlanActivation) -> String {
    let tasks = if activation.incident_ids.is_empty() {
        "no tasks".to_string()
    } else {
        format!("{} task(s): {}", activation.incident_ids.len(), activation.incident_ids.join(", "))
    };
    let callup = if activation.callup_id.is_empty() {
        String::new()
    } else {
        format!("; call-up {} (see `pingji callup status {}`)", activation.callup_id, activation.area_id)
    };
    format!("activated plan {} on {} as {}: {tasks}{callup}\n", activation.plan_id, activation.area_id, activation.id)
}

pub async fn deactivate(client: &mut Client, activation_id: &str, reason: &str, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::DeactivatePlanRequest { activation_id: activation_id.to_string(), reason: reason.to_string() };
    let activation = client.deactivate_plan(request).await?.into_inner();
    if as_json {
        return output::json_document(&json::activation(&activation));
    }
    output::line(&format!(
        "ended plan activation {} ({} on {}); its open tasks are cancelled{}",
        activation.id,
        activation.plan_id,
        activation.area_id,
        if activation.callup_id.is_empty() { "" } else { " and its call-up stood down" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> pb::Plan {
        pb::Plan {
            id: "flood-ii".into(),
            name: "防汛二级".into(),
            category: "flood".into(),
            grade: pb::Mode::EmergencyIi as i32,
            auto_activate: true,
            tasks: vec![
                pb::PlanTask {
                    category: "sandbags".into(),
                    r#where: "every service centre".into(),
                    headcount: 3,
                    priority: 2,
                    ..Default::default()
                },
                pb::PlanTask {
                    category: "pump".into(),
                    r#where: "the area's centroid".into(),
                    headcount: 1,
                    priority: 1,
                    ..Default::default()
                },
            ],
            call_up: vec![pb::Role::SunkCadre as i32, pb::Role::RegisteredMember as i32],
            public_alert: None,
            supplies: Vec::new(),
            open_shelter_ids: Vec::new(),
        }
    }

    fn activation(id: &str, at_ms: i64, ended_ms: i64) -> pb::PlanActivation {
        pb::PlanActivation {
            id: id.into(),
            plan_id: "flood-ii".into(),
            area_id: "d1-s1".into(),
            activated_at_ms: at_ms,
            activated_by: "operator:li".into(),
            reason: "暴雨".into(),
            incident_ids: vec!["inc-000001".into(), "inc-000002".into()],
            ended_at_ms: ended_ms,
            ..Default::default()
        }
    }

    #[test]
    fn plans_show_grade_auto_tasks_and_call_up() {
        let text = plans_table(&[plan()]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "PLAN      NAME      CATEGORY  GRADE  AUTO  TASKS  PEOPLE  CALL-UP");
        assert_eq!(lines[1], "flood-ii  防汛二级  flood     II     yes       2       4  sunk_cadre,registered_member");
    }

    #[test]
    fn open_activations_come_first() {
        let activations = [activation("flood-ii@d1-s1-1", 1_000, 2_000), activation("flood-ii@d1-s1-2", 3_000, 0)];
        let sorted = activations_open_first(&activations);
        assert_eq!(sorted[0].id, "flood-ii@d1-s1-2");
        let text = plans_text(&[plan()], &sorted);
        let open = text.find("flood-ii@d1-s1-2  flood-ii  d1-s1  open").expect(&text);
        let ended = text.find("flood-ii@d1-s1-1  flood-ii  d1-s1  ended 1970-01-01 00:00:02Z").expect(&text);
        assert!(open < ended, "{text}");
        assert!(plans_text(&[], &[]).contains("no plans loaded"));
    }

    #[test]
    fn an_activation_lists_its_tasks_and_call_up() {
        let mut activated = activation("flood-ii@d1-s1-1", 1_000, 0);
        activated.callup_id = "callup-0001".into();
        assert_eq!(
            activated_text(&activated),
            "activated plan flood-ii on d1-s1 as flood-ii@d1-s1-1: 2 task(s): inc-000001, inc-000002; \
             call-up callup-0001 (see `pingji callup status d1-s1`)\n"
        );
    }

    #[test]
    fn dispatcher_errors_name_the_file_from_the_bad_field() {
        use tonic_types::{ErrorDetails, StatusExt};
        let files = [PathBuf::from("a.toml"), PathBuf::from("b.toml")];
        let mut details = ErrorDetails::with_error_info("INVALID_ARGUMENT", errors::DOMAIN, std::collections::HashMap::new());
        details.add_bad_request_violation("plans_toml[1]", "plan file #2: task #1: category is empty");
        let status =
            tonic::Status::with_error_details(tonic::Code::InvalidArgument, "plan file #2: task #1: category is empty", details);
        assert_eq!(plan_error(status, &files).to_string(), "b.toml: task #1: category is empty");
        // Without a field, a lone file is still named; several are not guessed at.
        let plain = tonic::Status::not_found("no such area");
        assert!(matches!(plan_error(plain.clone(), &files), ConsoleError::Server(_)));
        assert!(plan_error(plain, &files[..1]).to_string().contains("no such area"));
    }
}
