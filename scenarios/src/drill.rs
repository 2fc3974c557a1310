//! Drill files: what a drill rehearses, read from TOML and checked.
//!
//! The format is documented in `scenarios/README.md`. Errors name the line
//! and the field, e.g. `drills/x.toml line 31: timeline entry: area "d9" is
//! not on the map`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pingji_engine::areas::{AreaImport, AreaLevel, AreaMap, parse_geojson};
use pingji_engine::policy::{Mode, Policy};
use pingji_engine::roster::Role;
use serde::Deserialize;
use toml::Spanned;

/// A drill as written in its file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub seed: u64,
    /// Simulated length of the drill.
    pub duration_s: u64,
    /// GeoJSON areas, relative to the drill file, or a map made as the
    /// drill loads.
    pub map: MapSource,
    /// Dispatch policy (TOML), relative to the drill file; defaults when absent.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// Emergency plan files (TOML), relative to the drill file.
    #[serde(default)]
    pub plans: Vec<PathBuf>,
    pub roster: RosterSource,
    /// Behaviour by role name, over `default`.
    #[serde(default)]
    pub behaviour: BTreeMap<String, BehaviourSpec>,
    #[serde(default)]
    pub timeline: Vec<Spanned<TimelineEntry>>,
    #[serde(default, rename = "expect")]
    pub expectations: Vec<Spanned<ExpectEntry>>,
    #[serde(default)]
    pub report: ReportSettings,
    /// How people called up without an app session are reached (a drill
    /// has no gateways: the escalation ladder is simulated by these shares).
    #[serde(default)]
    pub channels: Option<ChannelShares>,
    /// Depots and their stock (`[[depot]]`).
    #[serde(default, rename = "depot")]
    pub depots: Vec<crate::supplies::DepotEntry>,
    /// Duty roster shifts (`[[shift]]`).
    #[serde(default, rename = "shift")]
    pub shifts: Vec<crate::shifts::ShiftEntry>,
    /// Shelters (`[[shelter]]`).
    #[serde(default, rename = "shelter")]
    pub shelters: Vec<crate::shelters::ShelterEntry>,
    /// Safety check-ins on scene: the intervals (over the policy's) and
    /// the share of people on assignments who check in.
    #[serde(default)]
    pub safety: Option<SafetyDrill>,
}

/// `[safety]`: check-ins every `interval_min` minutes per grade (as in the
/// policy file, which it overrides), made by a share `check_in` of the
/// people on assignments; the others stay quiet, and their misses run on
/// the engine's clock (missed check-ins, then welfare checks).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyDrill {
    #[serde(default)]
    pub interval_min: Option<pingji_engine::policy::SafetyIntervals>,
    #[serde(default = "one")]
    pub check_in: f64,
}

/// The simulated escalation ladder for people called up without a live
/// session: a share answer the push notification (the app opens), of the
/// rest a share answer the SMS, and the rest answer a call made after
/// `voice_after_s`. Each rung is journaled as a `notified` event, as the
/// dispatcher's notifier does.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelShares {
    #[serde(default)]
    pub push: f64,
    #[serde(default = "one")]
    pub sms: f64,
    #[serde(default = "five_minutes")]
    pub voice_after_s: u64,
}

fn five_minutes() -> u64 {
    300
}

/// Where a drill's map comes from: `map = "file.geojson"`, or a table
/// naming a map made as the drill loads (nothing big is committed).
#[derive(Clone, Debug, PartialEq)]
pub enum MapSource {
    File(PathBuf),
    Made(MadeMap),
}

/// `map = { generate = "city", seed = 27 }`: a made-up city of districts
/// ([`crate::citymap::city`]) subdivided; or `map = { subdivide =
/// "districts.geojson", seed = 1 }`: a district-only file subdivided
/// ([`crate::citymap::subdivide`]). The same table gives the same map.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MadeMap {
    /// What to generate: only "city".
    pub generate: Option<String>,
    /// A district-only GeoJSON file, relative to the drill file.
    pub subdivide: Option<PathBuf>,
    pub seed: u64,
    /// Districts of a generated city.
    #[serde(default = "thirteen")]
    pub districts: usize,
    /// Streets per district, communities per street, grids per community, on average.
    pub streets: Option<f64>,
    pub communities: Option<f64>,
    pub grids: Option<f64>,
}

fn thirteen() -> usize {
    13
}

impl<'de> Deserialize<'de> for MapSource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(deserializer)? {
            toml::Value::String(path) => Ok(MapSource::File(PathBuf::from(path))),
            toml::Value::Table(table) => toml::Value::Table(table)
                .try_into()
                .map(MapSource::Made)
                .map_err(|error| serde::de::Error::custom(format!("map: {}", error.message()))),
            other => Err(serde::de::Error::custom(format!(
                "map: give a GeoJSON file name or a table such as {{ generate = \"city\", seed = 1 }}, not a {}",
                other.type_str()
            ))),
        }
    }
}

impl MapSource {
    /// How the map is named in messages.
    pub fn describe(&self) -> String {
        match self {
            MapSource::File(path) => path.display().to_string(),
            MapSource::Made(made) => match (&made.generate, &made.subdivide) {
                (_, Some(path)) => format!("{} subdivided (seed {})", path.display(), made.seed),
                _ => format!("a generated city (seed {})", made.seed),
            },
        }
    }
}

/// The GeoJSON text of a drill's map and the areas read from it. A made
/// map is written and read back, so the drill plays exactly the file
/// `drill map` would write.
fn make_map(source: &MapSource, base: &Path) -> Result<(String, AreaImport), String> {
    let text = match source {
        MapSource::File(path) => {
            let full = base.join(path);
            std::fs::read_to_string(&full).map_err(|error| format!("map: cannot read {}: {error}", full.display()))?
        }
        MapSource::Made(made) => {
            let defaults = crate::citymap::Counts::default();
            let counts = crate::citymap::Counts {
                streets_per_district: made.streets.unwrap_or(defaults.streets_per_district),
                communities_per_street: made.communities.unwrap_or(defaults.communities_per_street),
                grids_per_community: made.grids.unwrap_or(defaults.grids_per_community),
            };
            let districts = match (&made.generate, &made.subdivide) {
                (Some(kind), None) if kind == "city" => crate::citymap::city(made.seed, made.districts)?,
                (Some(kind), None) => return Err(format!("map: generate = {kind:?} is unknown; use \"city\"")),
                (None, Some(path)) => {
                    let full = base.join(path);
                    let text = std::fs::read_to_string(&full)
                        .map_err(|error| format!("map: cannot read {}: {error}", full.display()))?;
                    parse_geojson(&text).map_err(|error| format!("map {}: {error}", full.display()))?
                }
                _ => return Err("map: give exactly one of generate = \"city\" or subdivide = \"FILE\"".to_string()),
            };
            let map =
                crate::citymap::subdivide(&districts, &counts, made.seed, |_, _| {}).map_err(|error| format!("map: {error}"))?;
            crate::citymap::to_geojson(&map)
        }
    };
    let map = parse_geojson(&text).map_err(|error| format!("map {}: {error}", source.describe()))?;
    Ok((text, map))
}

/// An `[[expect]]` entry: one the report judges, or one about help across
/// borders that [`crate::border`] judges.
#[derive(Clone, Debug, PartialEq)]
pub enum ExpectEntry {
    Report(Expectation),
    Border(BorderExpectation),
}

const BORDER_KINDS: [&str; 3] = ["across_border_share", "nobody_assigned_twice", "mutual_aid_as_configured"];

impl<'de> Deserialize<'de> for ExpectEntry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(deserializer)?;
        let kind = value.get("kind").and_then(|kind| kind.as_str()).unwrap_or_default();
        let result = if BORDER_KINDS.contains(&kind) {
            value.try_into().map(ExpectEntry::Border)
        } else {
            value.try_into().map(ExpectEntry::Report)
        };
        result.map_err(|error| serde::de::Error::custom(error.message()))
    }
}

/// What a drill expects of help across borders (docs/policy.md, "Across borders").
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BorderExpectation {
    /// The share of assignments (to incidents of `category`, if given) that
    /// went to people from an area other than the incident's own is at
    /// least `share` (and at most `at_most`): with both, incidents were
    /// staffed from both sides.
    AcrossBorderShare { category: Option<String>, share: f64, at_most: Option<f64> },
    /// Nobody held two assignments at once.
    NobodyAssignedTwice {},
    /// Every offer to someone from an area neither the incident's nor in
    /// emergency came under a mutual-aid rule naming that area, to a role
    /// it allows; and there was at least one such offer.
    MutualAidAsConfigured {},
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterSource {
    /// A roster CSV, relative to the drill file.
    pub file: Option<PathBuf>,
    pub generate: Option<RosterGenerator>,
    /// Share of a file roster's on-duty people who are connected at the start
    /// (generated rosters use `generate.on_duty_share`).
    #[serde(default = "one")]
    pub connected_share: f64,
}

fn one() -> f64 {
    1.0
}

/// People generated per grid, with homes inside the grid.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterGenerator {
    pub per_grid: u32,
    pub on_duty_share: f64,
    /// Role weights, e.g. `{ volunteer = 5, registered_member = 4 }`.
    pub roles: BTreeMap<String, f64>,
    /// Share of people with each skill.
    #[serde(default)]
    pub skills: BTreeMap<String, f64>,
    /// Travel mode weights: walk, bike, car.
    #[serde(default)]
    pub travel: BTreeMap<String, f64>,
}

/// A time in seconds drawn between `min` and `max`, most often near `typical`
/// (a triangular distribution).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    pub min: f64,
    pub typical: f64,
    pub max: f64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourSpec {
    /// Chance to accept an offer.
    pub accept: Option<f64>,
    /// Chance to decline; the rest let the offer time out.
    pub decline: Option<f64>,
    /// Seconds from offer to answer.
    pub decide_s: Option<Spread>,
    /// Chance to go silent after accepting (never arrives or completes).
    pub silent: Option<f64>,
    pub decline_reasons: Option<Vec<String>>,
    /// Seconds on scene from arrival to completion.
    pub on_scene_s: Option<Spread>,
    /// Actual travel speeds in metres per second: walk, bike, car.
    pub speeds: Option<BTreeMap<String, f64>>,
    /// Chance that a called-up person checks in.
    pub check_in: Option<f64>,
    /// Seconds from call-up to check-in.
    pub check_in_s: Option<Spread>,
}

/// Behaviour of one role with every field settled.
#[derive(Clone, Debug, PartialEq)]
pub struct Behaviour {
    pub accept: f64,
    pub decline: f64,
    pub decide_s: Spread,
    pub silent: f64,
    pub decline_reasons: Vec<String>,
    pub on_scene_s: Spread,
    pub walk_mps: f64,
    pub bike_mps: f64,
    pub car_mps: f64,
    pub check_in: f64,
    pub check_in_s: Spread,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            accept: 0.8,
            decline: 0.15,
            decide_s: Spread { min: 5.0, typical: 25.0, max: 150.0 },
            silent: 0.0,
            decline_reasons: vec!["too far".into(), "busy with family".into(), "lacking the skill".into()],
            on_scene_s: Spread { min: 300.0, typical: 900.0, max: 2400.0 },
            walk_mps: 1.3,
            bike_mps: 3.5,
            car_mps: 6.5,
            check_in: 0.9,
            check_in_s: Spread { min: 60.0, typical: 420.0, max: 1500.0 },
        }
    }
}

impl Behaviour {
    fn overlay(&self, spec: &BehaviourSpec) -> Behaviour {
        let speeds = spec.speeds.clone().unwrap_or_default();
        Behaviour {
            accept: spec.accept.unwrap_or(self.accept),
            decline: spec.decline.unwrap_or(self.decline),
            decide_s: spec.decide_s.unwrap_or(self.decide_s),
            silent: spec.silent.unwrap_or(self.silent),
            decline_reasons: spec.decline_reasons.clone().unwrap_or_else(|| self.decline_reasons.clone()),
            on_scene_s: spec.on_scene_s.unwrap_or(self.on_scene_s),
            walk_mps: speeds.get("walk").copied().unwrap_or(self.walk_mps),
            bike_mps: speeds.get("bike").copied().unwrap_or(self.bike_mps),
            car_mps: speeds.get("car").copied().unwrap_or(self.car_mps),
            check_in: spec.check_in.unwrap_or(self.check_in),
            check_in_s: spec.check_in_s.unwrap_or(self.check_in_s),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    /// Seconds from the start of the drill.
    pub at_s: u64,
    pub mode: Option<ModeSwitch>,
    pub incident: Option<IncidentEntry>,
    pub burst: Option<Burst>,
    pub cancel: Option<Cancel>,
    pub off_duty: Option<OffDuty>,
    pub plan: Option<PlanAction>,
    /// Open incidents of a category ask for supplies.
    pub supplies: Option<crate::supplies::SupplyEntry>,
    pub help: Option<HelpEntry>,
    /// Open incidents of a category evacuate groups of residents to shelters.
    pub evacuate: Option<crate::shelters::EvacuateEntry>,
}

/// A help call (求助): by `agent`, or by a connected person at home in
/// `area` (drawn by the seed); at `at = [lon, lat]`, else where they are.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelpEntry {
    pub agent: Option<String>,
    pub area: Option<String>,
    pub at: Option<[f64; 2]>,
    #[serde(default)]
    pub text: String,
}

/// Activate or deactivate a plan (by its id) on an area.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanAction {
    pub activate: Option<String>,
    pub deactivate: Option<String>,
    pub area: String,
    pub reason: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeSwitch {
    pub area: String,
    /// normal, IV, III, II or I.
    pub grade: String,
    pub reason: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentEntry {
    pub id: Option<String>,
    /// `[lon, lat]`; or give `area` for its centroid.
    pub at: Option<[f64; 2]>,
    pub area: Option<String>,
    pub category: String,
    pub priority: u8,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default = "one_person")]
    pub need: u32,
    #[serde(default)]
    pub description: String,
}

fn one_person() -> u32 {
    1
}

/// Many incidents spread evenly over a period, at random points of an area.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    pub count: u32,
    pub over_s: u64,
    pub area: String,
    /// Category weights.
    pub categories: BTreeMap<String, f64>,
    /// Priorities to draw from, evenly.
    #[serde(default = "default_priorities")]
    pub priority: Vec<u8>,
    /// Headcounts to draw from, evenly.
    #[serde(default = "default_need")]
    pub need: Vec<u32>,
    /// Required skills by category.
    #[serde(default)]
    pub skills: BTreeMap<String, Vec<String>>,
    /// Instead of anywhere in `area`: within `within_m` of its border with
    /// this area, on either side.
    pub border_with: Option<String>,
    #[serde(default = "fifty_metres")]
    pub within_m: f64,
}

fn fifty_metres() -> f64 {
    50.0
}

fn default_priorities() -> Vec<u8> {
    vec![1, 2, 3]
}

fn default_need() -> Vec<u32> {
    vec![1]
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    /// One incident by id; or `share` of the open incidents, drawn at random.
    pub incident: Option<String>,
    pub share: Option<f64>,
    pub reason: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffDuty {
    /// Share of the available people (without an assignment) who go off duty.
    pub share: f64,
    pub area: Option<String>,
    pub role: Option<String>,
}

/// What the drill must achieve; a failed expectation fails the run.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expectation {
    /// At least `share` of the incidents (of `priority`, if given) accepted
    /// by their first person within `within_s` of being reported.
    AcceptedWithin { priority: Option<u8>, share: f64, within_s: u64 },
    /// At least `share` of the incidents had their first person on scene
    /// within `within_s`.
    ArrivedWithin { priority: Option<u8>, share: f64, within_s: u64 },
    /// No incident is still short of people at the end (cancelled ones aside).
    NoneUnstaffed {},
    /// At most `max` widenings to a level wider than `level`.
    MaxWideningsBeyond { level: String, max: u32 },
    /// At least `share` of the people called up checked in before their deadline.
    CalledUpCheckedIn { share: f64 },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// An incident staffed within this many seconds counts as "in time".
    #[serde(default = "in_time_default")]
    pub staffed_in_time_s: u64,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings { staffed_in_time_s: in_time_default() }
    }
}

fn in_time_default() -> u64 {
    600
}

/// A drill read and checked, with its map, policy and behaviours resolved.
#[derive(Debug)]
pub struct Drill {
    pub path: PathBuf,
    pub file: DrillFile,
    pub map: AreaImport,
    /// The map's GeoJSON text: the file's, or the made map written out.
    pub map_geojson: String,
    pub policy: Policy,
    /// The plans' file texts, in the order given.
    pub plan_texts: Vec<String>,
    /// The roster CSV text when the roster comes from a file.
    pub roster_csv: Option<String>,
    pub default_behaviour: Behaviour,
    pub behaviours: BTreeMap<Role, Behaviour>,
    /// Timeline entries in time order (stable), with the line each came from.
    pub timeline: Vec<(usize, TimelineEntry)>,
}

impl Drill {
    pub fn behaviour(&self, role: Role) -> &Behaviour {
        self.behaviours.get(&role).unwrap_or(&self.default_behaviour)
    }
}

pub fn parse_mode(grade: &str) -> Option<Mode> {
    match grade.trim().to_ascii_uppercase().as_str() {
        "NORMAL" => Some(Mode::Normal),
        "IV" | "4" => Some(Mode::EmergencyIv),
        "III" | "3" => Some(Mode::EmergencyIii),
        "II" | "2" => Some(Mode::EmergencyIi),
        "I" | "1" => Some(Mode::EmergencyI),
        _ => None,
    }
}

pub fn parse_role(name: &str) -> Option<Role> {
    Some(match name {
        "community_worker" => Role::CommunityWorker,
        "grid_leader" => Role::GridLeader,
        "building_leader" => Role::BuildingLeader,
        "unit_leader" => Role::UnitLeader,
        "registered_member" => Role::RegisteredMember,
        "sunk_cadre" => Role::SunkCadre,
        "volunteer" => Role::Volunteer,
        "new_employment" => Role::NewEmployment,
        "property_staff" => Role::PropertyStaff,
        "owners_committee" => Role::OwnersCommittee,
        _ => return None,
    })
}

/// The drill file's name of a role.
pub fn role_name(role: Role) -> &'static str {
    ROLE_NAMES.split(", ").find(|name| parse_role(name) == Some(role)).unwrap_or("unknown role")
}

const ROLE_NAMES: &str = "community_worker, grid_leader, building_leader, unit_leader, registered_member, sunk_cadre, volunteer, new_employment, property_staff, owners_committee";

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn share_ok(value: f64) -> bool {
    (0.0..=1.0).contains(&value)
}

impl Spread {
    fn check(&self, what: &str) -> Result<(), String> {
        if !(0.0 <= self.min && self.min <= self.typical && self.typical <= self.max && self.max.is_finite()) {
            return Err(format!("{what}: need 0 <= min <= typical <= max"));
        }
        Ok(())
    }
}

/// Reads and checks a drill file.
pub fn load(path: &Path) -> Result<Drill, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read drill file {}: {error}", path.display()))?;
    parse(path, &text)
}

/// Checks a drill given its text; `path` locates the files it names.
pub fn parse(path: &Path, text: &str) -> Result<Drill, String> {
    let name = path.display().to_string();
    let file: DrillFile = toml::from_str(text).map_err(|error| {
        let line = error.span().map(|span| line_of(text, span.start));
        match line {
            Some(line) => format!("{name} line {line}: {}", error.message()),
            None => format!("{name}: {}", error.message()),
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let at_line = |offset: usize, message: String| format!("{name} line {}: {message}", line_of(text, offset));
    let top = |message: String| format!("{name}: {message}");

    if file.duration_s == 0 || file.duration_s > 7 * 24 * 3600 {
        return Err(top(format!("duration_s = {} is out of range; give 1 to 604800 seconds", file.duration_s)));
    }
    let (map_geojson, map) = make_map(&file.map, base).map_err(top)?;
    AreaMap::default().validate_import(&map).map_err(|error| top(format!("map {}: {error}", file.map.describe())))?;
    let areas = AreaMap::from(map.clone());
    let policy = match &file.policy {
        Some(policy) => {
            let policy_path = base.join(policy);
            let policy_text = std::fs::read_to_string(&policy_path)
                .map_err(|error| top(format!("policy: cannot read {}: {error}", policy_path.display())))?;
            Policy::from_toml(&policy_text).map_err(|error| top(format!("policy {}: {error}", policy_path.display())))?
        }
        None => Policy::default(),
    };
    let mut policy = policy;
    if let Some(safety) = &file.safety {
        if !share_ok(safety.check_in) {
            return Err(top("safety.check_in is a share between 0 and 1".to_string()));
        }
        if let Some(intervals) = &safety.interval_min {
            policy.safety.interval_min = intervals.clone();
            policy.validate().map_err(|error| top(format!("safety: {error}")))?;
        }
    }

    let mut plan_texts = Vec::new();
    let mut plan_ids = std::collections::BTreeSet::new();
    for plan in &file.plans {
        let plan_path = base.join(plan);
        let plan_text = std::fs::read_to_string(&plan_path)
            .map_err(|error| top(format!("plans: cannot read {}: {error}", plan_path.display())))?;
        let parsed = pingji_engine::plans::parse_plan(&plan_text)
            .map_err(|error| top(format!("plan {}: {error}", plan_path.display())))?;
        plan_ids.insert(parsed.id.to_string());
        plan_texts.push(plan_text);
    }

    let roster_csv = match (&file.roster.file, &file.roster.generate) {
        (Some(roster), None) => {
            let roster_path = base.join(roster);
            Some(
                std::fs::read_to_string(&roster_path)
                    .map_err(|error| top(format!("roster.file: cannot read {}: {error}", roster_path.display())))?,
            )
        }
        (None, Some(generator)) => {
            check_generator(generator).map_err(|message| top(format!("roster.generate: {message}")))?;
            if let Some(channels) = &file.channels
                && !(share_ok(channels.push) && share_ok(channels.sms))
            {
                return Err(top("channels: push and sms are shares between 0 and 1".to_string()));
            }
            // People are generated per grid: a map of districts only (what
            // most cities can get) would give nobody, and the drill would
            // end in the engine's "no agents given".
            if !map.areas.iter().any(|spec| spec.level == AreaLevel::Grid) {
                let levels: std::collections::BTreeSet<&str> = map.areas.iter().map(|spec| spec.level.name()).collect();
                return Err(top(format!(
                    "roster.generate makes people per grid, but the map {} has no grids (only {}); subdivide it into \
                     streets, communities and grids: `map = {{ subdivide = \"FILE\", seed = 1 }}` in the drill, or \
                     `drill map subdivide FILE --out MAP` (scenarios/maps/README.md), or give a roster file instead",
                    file.map.describe(),
                    levels.into_iter().collect::<Vec<_>>().join(", ")
                )));
            }
            None
        }
        _ => return Err(top("roster: give exactly one of `file` or `generate`".to_string())),
    };
    if !share_ok(file.roster.connected_share) {
        return Err(top("roster.connected_share must be between 0 and 1".to_string()));
    }

    let default_behaviour = match file.behaviour.get("default") {
        Some(spec) => Behaviour::default().overlay(spec),
        None => Behaviour::default(),
    };
    check_behaviour("behaviour.default", &default_behaviour).map_err(top)?;
    let mut behaviours = BTreeMap::new();
    for (role_name, spec) in &file.behaviour {
        if role_name == "default" {
            continue;
        }
        let role = parse_role(role_name)
            .ok_or_else(|| top(format!("behaviour.{role_name}: unknown role; use default or one of {ROLE_NAMES}")))?;
        let behaviour = default_behaviour.overlay(spec);
        check_behaviour(&format!("behaviour.{role_name}"), &behaviour).map_err(top)?;
        behaviours.insert(role, behaviour);
    }

    let area_exists = |id: &str| areas.contains(&pingji_engine::ids::AreaId::new(id));
    let mut timeline = Vec::new();
    for entry in &file.timeline {
        let offset = entry.span().start;
        let fail = |message: String| at_line(offset, format!("timeline entry: {message}"));
        let item = entry.get_ref();
        let actions = [
            item.mode.is_some(),
            item.incident.is_some(),
            item.burst.is_some(),
            item.cancel.is_some(),
            item.off_duty.is_some(),
            item.plan.is_some(),
            item.help.is_some(),
            item.supplies.is_some(),
            item.evacuate.is_some(),
        ];
        if actions.iter().filter(|set| **set).count() != 1 {
            return Err(fail(
                "give exactly one of mode, incident, burst, cancel, off_duty, plan, help, supplies, evacuate".to_string(),
            ));
        }
        if let Some(evacuate) = &item.evacuate {
            evacuate.facilities().map_err(|problem| fail(format!("evacuate: {problem}")))?;
            if evacuate.residents == 0 {
                return Err(fail("evacuate: residents must be at least 1".to_string()));
            }
        }
        if let Some(help) = &item.help {
            if help.agent.is_some() == help.area.is_some() {
                return Err(fail("help: give exactly one of `agent = \"ID\"` or `area` (a person at home there)".to_string()));
            }
            if let Some(area) = help.area.as_deref().filter(|area| !area_exists(area)) {
                return Err(fail(format!("help.area {area:?} is not on the map")));
            }
            if let Some([lon, lat]) = help.at {
                pingji_engine::spatial::Position::checked(lon, lat).map_err(|error| fail(format!("help.at: {error}")))?;
            }
        }
        if let Some(plan) = &item.plan {
            let named = match (&plan.activate, &plan.deactivate) {
                (Some(id), None) | (None, Some(id)) => id,
                _ => return Err(fail("plan: give exactly one of activate = \"ID\" or deactivate = \"ID\"".to_string())),
            };
            if !plan_ids.contains(named) {
                return Err(fail(format!("plan {named:?} is not among the drill's `plans` files")));
            }
            if !area_exists(&plan.area) {
                return Err(fail(format!("plan.area {:?} is not on the map", plan.area)));
            }
        }
        if item.at_s > file.duration_s {
            return Err(fail(format!("at_s = {} is after the end of the drill (duration_s = {})", item.at_s, file.duration_s)));
        }
        if let Some(mode) = &item.mode {
            if !area_exists(&mode.area) {
                return Err(fail(format!("mode.area {:?} is not on the map", mode.area)));
            }
            if parse_mode(&mode.grade).is_none() {
                return Err(fail(format!("mode.grade {:?} is unknown; use normal, IV, III, II or I", mode.grade)));
            }
        }
        if let Some(incident) = &item.incident {
            match (&incident.at, &incident.area) {
                (Some([lon, lat]), None) => {
                    pingji_engine::spatial::Position::checked(*lon, *lat)
                        .map_err(|error| fail(format!("incident.at: {error}")))?;
                }
                (None, Some(area)) if area_exists(area) => {}
                (None, Some(area)) => return Err(fail(format!("incident.area {area:?} is not on the map"))),
                _ => return Err(fail("incident: give exactly one of `at = [lon, lat]` or `area`".to_string())),
            }
            if !(1..=4).contains(&incident.priority) || incident.need == 0 {
                return Err(fail("incident: priority must be 1..4 and need at least 1".to_string()));
            }
        }
        if let Some(burst) = &item.burst {
            if !area_exists(&burst.area) {
                return Err(fail(format!("burst.area {:?} is not on the map", burst.area)));
            }
            if burst.count == 0 || burst.categories.is_empty() || burst.categories.values().any(|w| *w < 0.0) {
                return Err(fail("burst: needs count >= 1 and at least one category with a weight >= 0".to_string()));
            }
            if burst.priority.is_empty() || burst.priority.iter().any(|p| !(1..=4).contains(p)) {
                return Err(fail("burst.priority: give a list of priorities 1..4".to_string()));
            }
            if burst.need.is_empty() || burst.need.contains(&0) {
                return Err(fail("burst.need: give a list of headcounts, each at least 1".to_string()));
            }
            if let Some(other) = &burst.border_with {
                if !area_exists(other) {
                    return Err(fail(format!("burst.border_with {other:?} is not on the map")));
                }
                if !(burst.within_m > 0.0 && burst.within_m <= 5000.0) {
                    return Err(fail("burst.within_m: metres from the border, more than 0 and at most 5000".to_string()));
                }
                let touching =
                    areas.touch(&pingji_engine::ids::AreaId::new(&burst.area), &pingji_engine::ids::AreaId::new(other));
                if !touching {
                    return Err(fail(format!("burst: {:?} and {other:?} share no border", burst.area)));
                }
            }
            if item.at_s + burst.over_s > file.duration_s {
                return Err(fail("burst: at_s + over_s runs past the end of the drill".to_string()));
            }
        }
        if let Some(cancel) = &item.cancel
            && (cancel.incident.is_some() == cancel.share.is_some() || cancel.share.is_some_and(|share| !share_ok(share)))
        {
            return Err(fail("cancel: give exactly one of `incident` or `share` (0..1)".to_string()));
        }
        if let Some(off) = &item.off_duty {
            if !share_ok(off.share) {
                return Err(fail("off_duty.share must be between 0 and 1".to_string()));
            }
            if off.area.as_deref().is_some_and(|area| !area_exists(area)) {
                return Err(fail(format!("off_duty.area {:?} is not on the map", off.area)));
            }
            if off.role.as_deref().is_some_and(|role| parse_role(role).is_none()) {
                return Err(fail(format!("off_duty.role is unknown; use one of {ROLE_NAMES}")));
            }
        }
        timeline.push((line_of(text, offset), item.clone()));
    }
    timeline.sort_by_key(|(_, entry)| entry.at_s);

    for expectation in &file.expectations {
        let fail = |message: String| at_line(expectation.span().start, format!("expect: {message}"));
        let expectation = match expectation.get_ref() {
            ExpectEntry::Report(expectation) => expectation,
            ExpectEntry::Border(BorderExpectation::AcrossBorderShare { share, at_most, .. }) => {
                if !share_ok(*share) || at_most.is_some_and(|at_most| !share_ok(at_most) || at_most < *share) {
                    return Err(fail("share and at_most must be between 0 and 1, share <= at_most".to_string()));
                }
                continue;
            }
            ExpectEntry::Border(_) => continue,
        };
        match expectation {
            Expectation::AcceptedWithin { share, priority, .. } | Expectation::ArrivedWithin { share, priority, .. } => {
                if !share_ok(*share) {
                    return Err(fail("share must be between 0 and 1".to_string()));
                }
                if priority.is_some_and(|p| !(1..=4).contains(&p)) {
                    return Err(fail("priority must be 1..4".to_string()));
                }
            }
            Expectation::MaxWideningsBeyond { level, .. } => {
                if AreaLevel::from_name(level).is_none() {
                    return Err(fail(format!("level {level:?} is unknown; use grid, community, street or district")));
                }
            }
            Expectation::NoneUnstaffed {} => {}
            Expectation::CalledUpCheckedIn { share } => {
                if !share_ok(*share) {
                    return Err(fail("share must be between 0 and 1".to_string()));
                }
            }
        }
    }

    Ok(Drill {
        path: path.to_path_buf(),
        file,
        map,
        map_geojson,
        policy,
        plan_texts,
        roster_csv,
        default_behaviour,
        behaviours,
        timeline,
    })
}

fn check_generator(generator: &RosterGenerator) -> Result<(), String> {
    if generator.per_grid == 0 || generator.per_grid > 10_000 {
        return Err("per_grid must be 1..10000".to_string());
    }
    if !share_ok(generator.on_duty_share) {
        return Err("on_duty_share must be between 0 and 1".to_string());
    }
    if generator.roles.is_empty() || generator.roles.values().any(|weight| *weight < 0.0) {
        return Err("roles: give at least one role with a weight >= 0".to_string());
    }
    for role in generator.roles.keys() {
        parse_role(role).ok_or_else(|| format!("roles: {role:?} is unknown; use {ROLE_NAMES}"))?;
    }
    for (skill, share) in &generator.skills {
        if !share_ok(*share) {
            return Err(format!("skills.{skill}: a share between 0 and 1"));
        }
    }
    for mode in generator.travel.keys() {
        if !["walk", "bike", "car"].contains(&mode.as_str()) {
            return Err(format!("travel: {mode:?} is unknown; use walk, bike or car"));
        }
    }
    Ok(())
}

fn check_behaviour(what: &str, behaviour: &Behaviour) -> Result<(), String> {
    if !share_ok(behaviour.accept) || !share_ok(behaviour.decline) || behaviour.accept + behaviour.decline > 1.0 + 1e-9 {
        return Err(format!("{what}: accept and decline are chances that add up to at most 1"));
    }
    if !share_ok(behaviour.silent) || !share_ok(behaviour.check_in) {
        return Err(format!("{what}: silent and check_in are chances between 0 and 1"));
    }
    behaviour.check_in_s.check(&format!("{what}.check_in_s"))?;
    behaviour.decide_s.check(&format!("{what}.decide_s"))?;
    behaviour.on_scene_s.check(&format!("{what}.on_scene_s"))?;
    if [behaviour.walk_mps, behaviour.bike_mps, behaviour.car_mps].iter().any(|speed| *speed <= 0.0 || *speed > 50.0) {
        return Err(format!("{what}.speeds: metres per second between 0 and 50"));
    }
    if behaviour.decline_reasons.is_empty() {
        return Err(format!("{what}.decline_reasons: give at least one reason"));
    }
    Ok(())
}
