//! Drill runner tests: determinism, expectations, parse errors, sample drills.

use std::path::{Path, PathBuf};

use pingji_scenarios::drill;

fn drills_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("drills")
}

fn map_path() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("maps/sample-city.geojson").display().to_string()
}

/// A small drill in a temp folder, with the given expectations appended.
fn small_drill(dir: &Path, expectations: &str) -> PathBuf {
    let text = format!(
        r#"
name = "test drill"
seed = 5
duration_s = 1200
map = "{map}"

[roster.generate]
per_grid = 6
on_duty_share = 0.8
roles = {{ volunteer = 3, community_worker = 1 }}
skills = {{ first_aid = 0.4 }}

[[timeline]]
at_s = 0
burst = {{ count = 12, over_s = 300, area = "d1", categories = {{ medical = 1, errand = 2 }}, priority = [1, 3], need = [1], skills = {{ medical = ["first_aid"] }} }}

{expectations}
"#,
        map = map_path()
    );
    let path = dir.join("drill.toml");
    std::fs::write(&path, text).expect("write drill");
    path
}

fn run(path: &Path, out: &Path) -> pingji_scenarios::report::Report {
    let drill = drill::load(path).expect("drill loads");
    pingji_scenarios::run_in_process(&drill, out, |_| {}).expect("drill runs")
}

#[test]
fn the_same_file_and_seed_give_a_byte_identical_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let smoke = drills_dir().join("smoke.toml");
    run(&smoke, &dir.path().join("first"));
    run(&smoke, &dir.path().join("second"));
    let first = std::fs::read(dir.path().join("first/report.json")).expect("report");
    let second = std::fs::read(dir.path().join("second/report.json")).expect("report");
    assert!(!first.is_empty());
    assert_eq!(first, second, "report.json differs between two runs of the same drill");
    for picture in ["accept.svg", "arrive.svg", "staffing.svg", "map.svg", "report.md"] {
        assert!(dir.path().join("first").join(picture).exists(), "{picture} written");
    }
}

#[test]
fn a_different_seed_gives_a_different_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = small_drill(dir.path(), "");
    let first = run(&path, &dir.path().join("a"));
    let text = std::fs::read_to_string(&path).expect("read").replace("seed = 5", "seed = 6");
    std::fs::write(&path, text).expect("write");
    let second = run(&path, &dir.path().join("b"));
    assert_ne!(serde_json::to_string(&first.incidents).expect("json"), serde_json::to_string(&second.incidents).expect("json"));
}

#[test]
fn the_report_is_made_from_the_journal_on_disk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run(&drills_dir().join("smoke.toml"), dir.path());
    let events = pingji_scenarios::read_journal(&dir.path().join(pingji_scenarios::JOURNAL_FILE)).expect("journal");
    assert_eq!(events.len(), report.drill.events);
    let reported = events.iter().filter(|event| event.kind.name() == "incident_reported").count();
    assert_eq!(reported, report.totals.incidents);
    assert!(reported > 0);
}

#[test]
fn each_expectation_kind_can_pass_and_fail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        ("kind = \"accepted_within\"\nshare = 0.5\nwithin_s = 600", true),
        ("kind = \"accepted_within\"\npriority = 1\nshare = 1.0\nwithin_s = 1", false),
        ("kind = \"arrived_within\"\nshare = 0.5\nwithin_s = 1200", true),
        ("kind = \"arrived_within\"\nshare = 1.0\nwithin_s = 10", false),
        ("kind = \"none_unstaffed\"", true),
        ("kind = \"max_widenings_beyond\"\nlevel = \"district\"\nmax = 100", true),
        ("kind = \"max_widenings_beyond\"\nlevel = \"grid\"\nmax = 0", false),
    ];
    for (index, (expectation, should_pass)) in cases.iter().enumerate() {
        let case_dir = dir.path().join(format!("case{index}"));
        std::fs::create_dir_all(&case_dir).expect("dir");
        let path = small_drill(&case_dir, &format!("[[expect]]\n{expectation}\n"));
        let report = run(&path, &case_dir.join("out"));
        assert_eq!(report.expectations.len(), 1);
        assert_eq!(report.passed, *should_pass, "{expectation}: {:?}", report.expectations[0]);
    }
}

#[test]
fn none_unstaffed_fails_when_nobody_has_the_skill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = small_drill(dir.path(), "[[expect]]\nkind = \"none_unstaffed\"\n");
    let text = std::fs::read_to_string(&path)
        .expect("read")
        .replace("skills = { medical = [\"first_aid\"] }", "skills = { medical = [\"diving\"] }");
    std::fs::write(&path, text).expect("write");
    let report = run(&path, &dir.path().join("out"));
    assert!(!report.passed);
    assert!(report.expectations[0].actual.contains("unstaffed"), "{:?}", report.expectations[0]);
    assert!(report.timeline.iter().any(|key| key.kind == "no_candidates"));
    // Not only waiting: the report says nobody on the roster could ever take them.
    let unstaffable = report.timeline.iter().find(|key| key.kind == "incident_unstaffable").expect("an unstaffable incident");
    assert!(unstaffable.text.ends_with("nobody on the roster could staff it: nobody has diving"), "{unstaffable:?}");
    // The table of unstaffed incidents says who was in reach and why none fitted.
    let short = report.incidents.iter().find(|figures| figures.why_short.is_some()).expect("a shortfall recorded");
    let why = short.why_short.as_deref().unwrap_or_default();
    assert!(why.contains(" people; ") && why.contains(" lack diving"), "{why}");
    let markdown = pingji_scenarios::report::markdown(&report);
    assert!(markdown.contains("## Unstaffed at the end"), "{markdown}");
    assert!(markdown.contains(&format!("| {} |", short.id)) && markdown.contains("lack diving"), "{markdown}");
}

#[test]
fn broken_drill_files_name_the_line_and_the_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = std::fs::read_to_string(small_drill(dir.path(), "")).expect("read");
    let cases = [
        (good.replace("seed = 5", "seed = \"five\""), "line 3", "invalid type"),
        (good.replace("duration_s = 1200", "duration_s = 1200\ncolour = \"red\""), "line 5", "unknown field `colour`"),
        (good.replace("area = \"d1\"", "area = \"d9\""), "line 15", "d9"),
        (good.replace("at_s = 0", "at_s = 99999"), "line 14", "after the end"),
        (good.replace("per_grid = 6", "per_grid = 0"), "roster.generate", "per_grid"),
        (good.clone() + "\n[[expect]]\nkind = \"accepted_within\"\nshare = 2.0\nwithin_s = 5\n", "line 2", "share"),
        (
            good.replace(
                "[[timeline]]\nat_s = 0\n",
                "[[timeline]]\nat_s = 0\nmode = { area = \"d1\", grade = \"V\", reason = \"x\" }\n",
            ),
            "line 14",
            "exactly one",
        ),
    ];
    for (text, where_, what) in cases {
        let path = dir.path().join("broken.toml");
        std::fs::write(&path, &text).expect("write");
        let error = drill::load(&path).expect_err("a broken drill is refused");
        assert!(error.contains(what), "expected {what:?} in: {error}");
        if where_.starts_with("line") {
            assert!(error.contains("line "), "expected a line number in: {error}");
        } else {
            assert!(error.contains(where_), "expected {where_:?} in: {error}");
        }
    }
}

#[test]
fn every_sample_drill_loads() {
    let mut count = 0;
    for entry in std::fs::read_dir(drills_dir()).expect("drills folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|extension| extension == "toml") {
            drill::load(&path).unwrap_or_else(|error| panic!("{error}"));
            count += 1;
        }
    }
    assert!(count >= 5, "at least five sample drills, found {count}");
}

#[test]
fn a_drill_with_plans_and_call_ups_reports_the_roll_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run(&drills_dir().join("flood-plan.toml"), dir.path());
    assert!(report.plan_activations >= 2, "the flood plan by the switch and the fire plan by hand");
    assert!(report.callups.callups >= 1);
    assert!(report.callups.called > 0);
    assert!(report.callups.checked_in_in_time > 0);
    assert!(report.callups.checked_in_in_time <= report.callups.called);
    assert!(report.timeline.iter().any(|key| key.kind == "plan_activated"));
    assert!(report.timeline.iter().any(|key| key.kind == "callup_issued"));
    let judged = report
        .expectations
        .iter()
        .find(|result| result.expectation.contains("called up"))
        .expect("the call-up expectation is judged");
    assert!(judged.actual.contains(" of "), "{judged:?}");
}

#[test]
fn the_check_in_expectation_fails_when_nobody_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(drills_dir().join("flood-plan.toml"))
        .expect("read")
        .replace("check_in = 0.97", "check_in = 0.0")
        .replace("check_in = 0.85", "check_in = 0.0")
        .replace("../maps/", &format!("{}/", Path::new(env!("CARGO_MANIFEST_DIR")).join("maps").display()))
        .replace("../plans/", &format!("{}/", Path::new(env!("CARGO_MANIFEST_DIR")).join("plans").display()));
    let path = dir.path().join("silent-reserves.toml");
    std::fs::write(&path, text).expect("write");
    let report = run(&path, &dir.path().join("out"));
    let judged = report.expectations.iter().find(|result| result.expectation.contains("called up")).expect("judged");
    assert!(!judged.passed, "{judged:?}");
    assert!(report.callups.missing_at_deadline > 0);
}

#[test]
fn a_timeline_naming_an_unknown_plan_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(drills_dir().join("flood-plan.toml"))
        .expect("read")
        .replace("activate = \"fire-i\"", "activate = \"volcano-i\"")
        .replace("../maps/", &format!("{}/", Path::new(env!("CARGO_MANIFEST_DIR")).join("maps").display()))
        .replace("../plans/", &format!("{}/", Path::new(env!("CARGO_MANIFEST_DIR")).join("plans").display()));
    let path = dir.path().join("bad-plan.toml");
    std::fs::write(&path, text).expect("write");
    let error = drill::load(&path).expect_err("refused");
    assert!(error.contains("volcano-i") && error.contains("line "), "{error}");
}

/// A map of districts only (what most cities can get) with a generated
/// roster is refused at load, saying the map has no grids and what to do,
/// not "no agents given" half-way through.
#[test]
fn a_generated_roster_on_a_map_without_grids_is_refused_saying_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut map: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(map_path()).expect("sample map")).expect("json");
    let features = map["features"].as_array_mut().expect("features");
    features.retain(|feature| matches!(feature["properties"]["level"].as_str(), Some("city" | "district")));
    let map_file = dir.path().join("districts.geojson");
    std::fs::write(&map_file, map.to_string()).expect("write map");
    let drill = small_drill(dir.path(), "");
    let text = std::fs::read_to_string(&drill).expect("drill").replace(&map_path(), &map_file.display().to_string());
    std::fs::write(&drill, text).expect("write drill");
    let error = pingji_scenarios::drill::load(&drill).expect_err("refused");
    assert!(error.contains("has no grids (only city, district)") && error.contains("roster file"), "{error}");
    assert!(error.contains("map = { subdivide = "), "{error}");

    // Said and done: the same district file, subdivided as the drill loads.
    let text = std::fs::read_to_string(&drill).expect("drill").replace(
        &format!("map = \"{}\"", map_file.display()),
        &format!("map = {{ subdivide = \"{}\", seed = 3, streets = 2, communities = 2, grids = 3 }}", map_file.display()),
    );
    std::fs::write(&drill, text).expect("write drill");
    let loaded = pingji_scenarios::drill::load(&drill).unwrap_or_else(|error| panic!("{error}"));
    let grids = loaded.map.areas.iter().filter(|spec| spec.level == pingji_engine::areas::AreaLevel::Grid).count();
    assert_eq!(grids, 2 * 2 * 2 * 3, "2 districts, 2 streets, 2 communities and 3 grids per parent on average");
    let report = run(&drill, &dir.path().join("out"));
    assert_eq!(report.drill.people, grids * 6);
    assert!(report.totals.incidents > 0);
}

/// The drill report's "who served" comes from the activity fold; its
/// per-community incidents and staffed-in-time agree with the report's own
/// count by community (made separately from the same events), and its
/// people add up to the drill's offers and acceptances.
#[test]
fn who_served_agrees_with_the_drills_own_counts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run(&small_drill(dir.path(), ""), &dir.path().join("out"));
    let served: Vec<(String, u32, u32)> = report
        .who_served
        .communities
        .iter()
        .filter(|row| row.incidents > 0)
        .map(|row| (row.id.clone(), row.incidents, row.staffed_in_time))
        .collect();
    let counted: Vec<(String, u32, u32)> = report
        .communities
        .iter()
        .filter(|row| row.incidents > 0)
        .map(|row| (row.id.clone(), row.incidents as u32, row.staffed_in_time as u32))
        .collect();
    assert!(!served.is_empty());
    assert_eq!(served, counted);
    assert!(report.who_served.people_accepted > 0 && report.who_served.people_accepted <= report.totals.accepted);
    let markdown = std::fs::read_to_string(dir.path().join("out/report.md")).expect("report.md");
    assert!(markdown.contains("## Who served"), "{markdown}");
}
