//! Emergency plans (应急预案): per category and grade, the tasks to create
//! when the plan is activated on an area, and whom to call up.
//!
//! Plans are TOML files (format in `docs/plans.md`). Once imported they are
//! part of the durable state; an activation records the plan it used.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::cap::PublicAlert;
use crate::ids::{AreaId, PlanId, check_id, quote};
use crate::policy::Mode;
use crate::roster::Role;
use crate::spatial::Position;

/// Where a plan's task is created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskPlace {
    /// One task at every service centre in the activated area (a point
    /// inside the area when it has none).
    ServiceCentres,
    /// One task at the activated area's centroid, or at a point on its
    /// surface when the centroid lies outside it (a concave area).
    Centroid,
    /// One task at these coordinates.
    At(Position),
    /// One task inside each listed area, as for `Centroid` (e.g. every
    /// building of a list).
    Areas(Vec<AreaId>),
}

impl TaskPlace {
    pub fn summary(&self) -> String {
        match self {
            TaskPlace::ServiceCentres => "every service centre".to_string(),
            TaskPlace::Centroid => "the area's centroid".to_string(),
            TaskPlace::At(at) => format!("at {:.5},{:.5}", at.lon, at.lat),
            TaskPlace::Areas(areas) => format!("{} listed areas", areas.len()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanTask {
    pub category: String,
    pub place: TaskPlace,
    pub skills: BTreeSet<String>,
    pub need: u32,
    pub priority: u8,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanSpec {
    pub id: PlanId,
    pub name: String,
    pub category: String,
    /// The grade the plan is made for.
    pub grade: Mode,
    /// Activate when an area is switched to `grade`.
    pub auto_activate: bool,
    pub tasks: Vec<PlanTask>,
    /// Roles called up (people whose home is in the area).
    pub call_up: Vec<Role>,
    /// What the public is told when the plan is activated: a CAP alert
    /// (see `cap`). `None`: the plan is internal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<PublicAlert>,
    /// Supplies moved to depots when it activates (`[[supply]]`), e.g.
    /// sandbags to the riverside depots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplies: Vec<crate::supplies::PlanSupplyMove>,
    /// Shelters opened when it activates (`open_shelters = [ids]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shelters: Vec<crate::shelters::ShelterId>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    id: String,
    name: String,
    category: String,
    grade: String,
    #[serde(default)]
    auto_activate: bool,
    #[serde(default)]
    call_up: Vec<Role>,
    #[serde(default, rename = "task")]
    tasks: Vec<TaskFile>,
    /// The public alert (`[public]`).
    public: Option<PublicFile>,
    #[serde(default, rename = "supply")]
    supplies: Vec<SupplyFile>,
    /// Shelters opened when it activates.
    #[serde(default)]
    open_shelters: Vec<String>,
}

/// `[[supply]]`: `quantity` of a consumable `item` moved to the depots `to`
/// (split evenly) when the plan activates.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SupplyFile {
    item: String,
    quantity: u64,
    to: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicFile {
    headline: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    instruction: String,
    category: String,
    event: String,
    #[serde(default)]
    urgency: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    certainty: String,
    #[serde(default)]
    inbound_events: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    category: String,
    /// "service_centres" or "centroid".
    #[serde(rename = "where")]
    place: Option<String>,
    at: Option<[f64; 2]>,
    areas: Option<Vec<String>>,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default = "one")]
    need: u32,
    #[serde(default = "two")]
    priority: u8,
    #[serde(default)]
    description: String,
}

fn one() -> u32 {
    1
}

fn two() -> u8 {
    2
}

/// Grade names as people write them: normal, IV, III, II, I.
pub fn parse_grade(grade: &str) -> Option<Mode> {
    match grade.trim().to_ascii_uppercase().as_str() {
        "NORMAL" => Some(Mode::Normal),
        "IV" | "4" | "BLUE" => Some(Mode::EmergencyIv),
        "III" | "3" | "YELLOW" => Some(Mode::EmergencyIii),
        "II" | "2" | "ORANGE" => Some(Mode::EmergencyIi),
        "I" | "1" | "RED" => Some(Mode::EmergencyI),
        _ => None,
    }
}

/// Reads one plan file. Errors name the field (and the line, for TOML errors).
pub fn parse_plan(text: &str) -> Result<PlanSpec, String> {
    let file: PlanFile = toml::from_str(text).map_err(|error| {
        let line = error.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        match line {
            Some(line) => format!("line {line}: {}", error.message()),
            None => error.message().to_string(),
        }
    })?;
    let id = file.id.trim();
    check_id("id", id).map_err(|problem| format!("{problem}, e.g. flood-ii"))?;
    let grade = parse_grade(&file.grade)
        .filter(|grade| grade.is_emergency())
        .ok_or_else(|| format!("plan {id}: grade \"{}\" is not an emergency grade; use IV, III, II or I", quote(&file.grade)))?;
    let mut supplies = Vec::new();
    for (index, supply) in file.supplies.into_iter().enumerate() {
        let at = |what: &str| format!("plan {id}: supply #{}: {what}", index + 1);
        check_id("item", supply.item.trim()).map_err(|problem| at(&problem))?;
        if supply.quantity == 0 || supply.to.is_empty() {
            return Err(at("give a quantity above 0 and at least one depot in `to`"));
        }
        for depot in &supply.to {
            check_id("depot", depot.trim()).map_err(|problem| at(&problem))?;
        }
        supplies.push(crate::supplies::PlanSupplyMove {
            item: crate::supplies::ItemId::new(supply.item.trim()),
            quantity: supply.quantity,
            to: supply.to.iter().map(|depot| crate::supplies::DepotId::new(depot.trim())).collect(),
        });
    }
    let mut shelters = Vec::new();
    for shelter in &file.open_shelters {
        check_id("shelter", shelter.trim()).map_err(|problem| format!("plan {id}: open_shelters: {problem}"))?;
        shelters.push(crate::shelters::ShelterId::new(shelter.trim()));
    }
    if file.tasks.is_empty() && file.call_up.is_empty() && supplies.is_empty() && shelters.is_empty() {
        return Err(format!("plan {id}: it has no [[task]] and no call_up; give it something to do"));
    }
    let mut tasks = Vec::new();
    for (index, task) in file.tasks.into_iter().enumerate() {
        let at = |what: &str| format!("plan {id}: task #{}: {what}", index + 1);
        let place = match (task.place.as_deref(), task.at, task.areas) {
            (Some("service_centres"), None, None) => TaskPlace::ServiceCentres,
            (Some("centroid"), None, None) => TaskPlace::Centroid,
            (None, Some([lon, lat]), None) => TaskPlace::At(Position::checked(lon, lat).map_err(|error| at(&error))?),
            (None, None, Some(areas)) if !areas.is_empty() => TaskPlace::Areas(areas.into_iter().map(AreaId::new).collect()),
            _ => {
                return Err(at(
                    "give exactly one of where = \"service_centres\", where = \"centroid\", at = [lon, lat] or areas = [ids]",
                ));
            }
        };
        if task.category.trim().is_empty() {
            return Err(at("category is empty"));
        }
        if !(1..=4).contains(&task.priority) || task.need == 0 || task.need > 500 {
            return Err(at("priority must be 1..4 and need 1..500"));
        }
        let skills = crate::roster::normalise_skills(&task.skills);
        crate::roster::check_skills(&skills).map_err(|problem| at(&problem))?;
        tasks.push(PlanTask {
            category: task.category.trim().to_lowercase(),
            place,
            skills,
            need: task.need,
            priority: task.priority,
            description: task.description,
        });
    }
    let public = match file.public {
        None => None,
        Some(public) => {
            let public = PublicAlert {
                headline: public.headline.trim().to_string(),
                description: public.description.trim().to_string(),
                instruction: public.instruction.trim().to_string(),
                category: public.category.trim().to_string(),
                event: public.event.trim().to_string(),
                urgency: public.urgency.trim().to_string(),
                severity: public.severity.trim().to_string(),
                certainty: public.certainty.trim().to_string(),
                inbound_events: public
                    .inbound_events
                    .iter()
                    .map(|name| name.trim().to_string())
                    .filter(|name| !name.is_empty())
                    .collect(),
            };
            public.check().map_err(|problem| format!("plan {id}: {problem}"))?;
            Some(public)
        }
    };
    Ok(PlanSpec {
        public,
        id: PlanId::new(id),
        name: file.name,
        category: file.category.trim().to_lowercase(),
        grade,
        auto_activate: file.auto_activate,
        tasks,
        call_up: file.call_up,
        supplies,
        shelters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_file_reads_with_every_kind_of_place() {
        let plan = parse_plan(
            r#"
id = "flood-ii"
name = "Flood, grade II"
category = "flood"
grade = "II"
auto_activate = true
call_up = ["sunk_cadre"]

[[task]]
category = "sandbags"
where = "service_centres"
skills = ["Sandbagging"]
need = 3

[[task]]
category = "pump"
at = [120.1, 30.25]

[[task]]
category = "evacuate"
areas = ["d1-s1-c1-g1", "d1-s1-c1-g2"]
priority = 1
"#,
        )
        .expect("valid plan");
        assert_eq!(plan.grade, Mode::EmergencyIi);
        assert_eq!(plan.tasks.len(), 3);
        assert_eq!(plan.tasks[0].place, TaskPlace::ServiceCentres);
        assert!(plan.tasks[0].skills.contains("sandbagging"));
        assert!(matches!(plan.tasks[2].place, TaskPlace::Areas(ref areas) if areas.len() == 2));
        assert_eq!(plan.call_up, vec![Role::SunkCadre]);
    }

    #[test]
    fn a_public_section_is_checked_against_caps_values() {
        let base = "id = \"x\"\nname = \"x\"\ncategory = \"flood\"\ngrade = \"II\"\ncall_up = [\"sunk_cadre\"]\n[public]\nheadline = \"暴雨预警\"\nevent = \"暴雨\"\n";
        let plan = parse_plan(&format!("{base}category = \"Met\"\n")).expect("valid");
        let public = plan.public.expect("public");
        assert_eq!(public.terms(Mode::EmergencyIi), ("Immediate".into(), "Severe".into(), "Likely".into()));
        let error = parse_plan(&format!("{base}category = \"Weather\"\n")).unwrap_err();
        assert!(error.contains("category") && error.contains("Met"), "{error}");
        let error = parse_plan(&format!("{base}category = \"Met\"\nseverity = \"Huge\"\n")).unwrap_err();
        assert!(error.contains("severity"), "{error}");
        assert!(parse_plan(&format!("{base}category = \"Met\"\ncolour = 1\n")).is_err());
    }

    #[test]
    fn bad_plans_name_the_problem() {
        let error = parse_plan(
            "id = \"x\"\nname = \"x\"\ncategory = \"x\"\ngrade = \"V\"\n[[task]]\ncategory = \"a\"\nwhere = \"centroid\"\n",
        )
        .unwrap_err();
        assert!(error.contains("grade"), "{error}");
        let error =
            parse_plan("id = \"x\"\nname = \"x\"\ncategory = \"x\"\ngrade = \"II\"\n[[task]]\ncategory = \"a\"\n").unwrap_err();
        assert!(error.contains("task #1"), "{error}");
        let error = parse_plan("id = \"x\"\nname = \"x\"\ncategory = \"x\"\ngrade = \"II\"\ncolour = 1\n").unwrap_err();
        assert!(error.contains("line 5") && error.contains("colour"), "{error}");
    }
}
