//! Drills with safety check-ins on scene and help calls: scripted misses
//! and help on the virtual clock, the same run every time, and the
//! report's safety section.

use std::path::{Path, PathBuf};

use pingji_scenarios::drill;

fn safety_drill(dir: &Path) -> PathBuf {
    let map = Path::new(env!("CARGO_MANIFEST_DIR")).join("maps/sample-city.geojson").display().to_string();
    let text = format!(
        r#"
name = "safety drill"
seed = 11
duration_s = 2400
map = "{map}"

[roster.generate]
per_grid = 8
on_duty_share = 0.9
roles = {{ volunteer = 3, community_worker = 1 }}

# Check-ins every 5 minutes in normal mode; half the people on scene stay quiet.
[safety]
interval_min = {{ normal = 5 }}
check_in = 0.5

[behaviour.default]
accept = 1.0
decline = 0.0
on_scene_s = {{ min = 1500, typical = 1800, max = 2000 }}

[[timeline]]
at_s = 0
burst = {{ count = 10, over_s = 120, area = "d1", categories = {{ errand = 1 }}, priority = [2], need = [1] }}

[[timeline]]
at_s = 900
help = {{ area = "d1-s1-c1", text = "fell on the stairs" }}
"#
    );
    let path = dir.join("safety.toml");
    std::fs::write(&path, text).expect("write drill");
    path
}

#[test]
fn a_drill_scripts_missed_check_ins_and_help_and_reports_them_the_same_every_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = safety_drill(dir.path());
    let loaded = drill::load(&path).expect("drill loads");
    let first = pingji_scenarios::run_in_process(&loaded, &dir.path().join("first"), |_| {}).expect("runs");
    let again = drill::load(&path).expect("drill loads");
    pingji_scenarios::run_in_process(&again, &dir.path().join("second"), |_| {}).expect("runs");
    let json = |run: &str| std::fs::read(dir.path().join(run).join("report.json")).expect("report.json");
    assert_eq!(json("first"), json("second"), "the same drill gives the same report");

    let safety = &first.safety;
    assert!(safety.check_ins > 0, "those who check in do: {safety:?}");
    assert!(safety.missed_first > 0 && safety.missed_second > 0, "the quiet ones miss: {safety:?}");
    assert_eq!(safety.welfare_checks, safety.missed_second, "each second miss sends a welfare check");
    assert!(safety.welfare_staffed > 0, "{safety:?}");
    assert_eq!(safety.help_calls, 1);
    assert!(safety.help_to_accept.count == 1, "someone answered the help call: {safety:?}");
    let markdown = std::fs::read_to_string(dir.path().join("first/report.md")).expect("report.md");
    assert!(markdown.contains("## Safety on scene"), "{markdown}");
    assert!(markdown.contains("| help calls | 1 ("), "{markdown}");
}

#[test]
fn a_help_entry_must_name_one_person_or_an_area() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = safety_drill(dir.path());
    let text = std::fs::read_to_string(&path).expect("read").replace("help = { area", "help = { agent = \"p1\", area");
    std::fs::write(&path, text).expect("write");
    let error = drill::load(&path).expect_err("both named");
    assert!(error.contains("line") && error.contains("help: give exactly one of"), "{error}");
}
