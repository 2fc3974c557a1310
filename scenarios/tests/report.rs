//! The after-action report as a reader meets it, on the typhoon drill of the
//! README: the prose tells one story with one set of figures on one clock,
//! and the pictures, rendered with resvg and the machine's own fonts so that
//! every text is measured as it is drawn, keep their text on the canvas,
//! their legends off the data, nothing drawn over a label, and Chinese in a
//! font that has it.
//!
//! The PNGs are written to `$PINGJI_REPORT_PNG_DIR` when set (to look at
//! them), else under Cargo's test scratch folder.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pingji_scenarios::report::{Report, thousands};
use resvg::tiny_skia;
use resvg::usvg::{self, FontFamily, Node, Rect};

const PICTURES: [&str; 4] = ["accept.svg", "arrive.svg", "staffing.svg", "map.svg"];

/// Fonts with Chinese glyphs; one of them must come first in every text's
/// font list, or renderers that do no per-glyph fallback draw boxes.
const CJK_FAMILIES: [&str; 4] = ["Noto Sans CJK SC", "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei"];

/// Half a pixel of slack for anti-aliasing and rounding.
const SLACK: f32 = 0.5;

struct Run {
    out: PathBuf,
    report: Report,
}

/// The typhoon drill of the README, run once for every test of this file.
fn typhoon() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        // One directory per process: a runner that starts a process per test
        // (cargo nextest) runs this drill in several at once.
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pictures-typhoon-{}", std::process::id()));
        // A journal left by an earlier run would be appended to.
        let _ = std::fs::remove_dir_all(&out);
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("drills/typhoon.toml");
        let drill = pingji_scenarios::drill::load(&path).expect("the typhoon drill loads");
        let report = pingji_scenarios::run_in_process(&drill, &out, |_| {}).expect("the typhoon drill runs");
        Run { out, report }
    })
}

fn options() -> &'static usvg::Options<'static> {
    static OPTIONS: OnceLock<usvg::Options<'static>> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let mut options = usvg::Options::default();
        options.fontdb_mut().load_system_fonts();
        options
    })
}

fn png_dir() -> PathBuf {
    std::env::var_os("PINGJI_REPORT_PNG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-png"))
}

/// A leaf of the rendered tree, in drawing order, with the ids of the groups
/// it sits in.
struct Drawn<'a> {
    node: &'a Node,
    groups: Vec<String>,
}

fn flatten<'a>(group: &'a usvg::Group, groups: &mut Vec<String>, out: &mut Vec<Drawn<'a>>) {
    for child in group.children() {
        match child {
            Node::Group(inner) => {
                groups.push(inner.id().to_string());
                flatten(inner, groups, out);
                groups.pop();
            }
            _ => out.push(Drawn { node: child, groups: groups.clone() }),
        }
    }
}

/// Where a text's glyphs are drawn (its ink, not its line box, which runs
/// from the font's ascent to its descent and so overlaps the next line's in
/// fonts with tall line boxes such as Noto Sans CJK).
fn ink(text: &usvg::Text) -> Rect {
    let glyphs = text.flattened().abs_bounding_box();
    if glyphs.width() > 0.0 { glyphs } else { text.abs_bounding_box() }
}

fn text_of(text: &usvg::Text) -> String {
    text.chunks().iter().map(|chunk| chunk.text()).collect()
}

/// How far two rectangles overlap: the smaller of the widths and heights of
/// their intersection, or zero.
fn overlap(a: Rect, b: Rect) -> f32 {
    let width = a.right().min(b.right()) - a.left().max(b.left());
    let height = a.bottom().min(b.bottom()) - a.top().max(b.top());
    width.min(height).max(0.0)
}

fn describe(drawn: &Drawn<'_>) -> String {
    let id = drawn.node.id();
    let group = drawn.groups.iter().rev().find(|id| !id.is_empty());
    match (id.is_empty(), group) {
        (false, _) => format!("#{id}"),
        (true, Some(group)) => format!("a shape in #{group}"),
        (true, None) => "a shape".to_string(),
    }
}

/// Which fonts a picture is measured with.
#[derive(Clone, Copy, PartialEq)]
enum Fonts {
    /// The fonts the picture names, as installed here.
    AsNamed,
    /// DejaVu Sans, a wide Latin font: a reader without any of the named
    /// fonts gets something like it, and the text must still fit.
    Wide,
}

/// The picture with every font list replaced by DejaVu Sans.
fn with_wide_font(svg: &str) -> String {
    let mut out = String::new();
    let mut rest = svg;
    while let Some(start) = rest.find("font-family=\"") {
        let value_start = start + "font-family=\"".len();
        out.push_str(&rest[..value_start]);
        out.push_str("DejaVu Sans");
        let value_end = rest[value_start..].find('"').map_or(rest.len(), |end| value_start + end);
        rest = &rest[value_end..];
    }
    out.push_str(rest);
    out
}

/// Everything wrong with one picture, as sentences; empty when it is fine.
fn problems(name: &str, svg: &str, fonts: Fonts) -> (Vec<String>, usvg::Tree) {
    let wide;
    let (name, svg) = match fonts {
        Fonts::AsNamed => (name.to_string(), svg),
        Fonts::Wide => {
            wide = with_wide_font(svg);
            (format!("{name} (in DejaVu Sans)"), wide.as_str())
        }
    };
    let name = name.as_str();
    let tree = usvg::Tree::from_str(svg, options()).unwrap_or_else(|error| panic!("{name} parses: {error}"));
    let size = tree.size();
    let canvas = Rect::from_xywh(0.0, 0.0, size.width(), size.height()).expect("a canvas");
    let mut problems = Vec::new();
    let mut wrong_fonts = false;
    let mut drawn = Vec::new();
    flatten(tree.root(), &mut Vec::new(), &mut drawn);

    for (index, item) in drawn.iter().enumerate() {
        let Node::Text(text) = item.node else { continue };
        let content = text_of(text);
        let bounds = ink(text);
        if bounds.left() < -SLACK
            || bounds.top() < -SLACK
            || bounds.right() > canvas.right() + SLACK
            || bounds.bottom() > canvas.bottom() + SLACK
        {
            problems.push(format!(
                "{name}: text {content:?} spans x {:.0}..{:.0}, y {:.0}..{:.0}, outside the {:.0}×{:.0} canvas",
                bounds.left(),
                bounds.right(),
                bounds.top(),
                bounds.bottom(),
                canvas.width(),
                canvas.height()
            ));
        }
        let first_families: Vec<&FontFamily> =
            text.chunks().iter().flat_map(|chunk| chunk.spans()).filter_map(|span| span.font().families().first()).collect();
        let cjk_first = first_families
            .iter()
            .all(|family| matches!(family, FontFamily::Named(named) if CJK_FAMILIES.contains(&named.as_str())));
        if fonts == Fonts::AsNamed && !cjk_first && !wrong_fonts {
            wrong_fonts = true;
            problems.push(format!(
                "{name}: text {content:?} (and perhaps others) names {first_families:?} first, not a CJK font of {CJK_FAMILIES:?}"
            ));
        }
        let missing: String = text
            .layouted()
            .iter()
            .flat_map(|span| &span.positioned_glyphs)
            .filter(|glyph| glyph.id.0 == 0)
            .map(|glyph| glyph.text.as_str())
            .collect();
        if fonts == Fonts::AsNamed && !missing.is_empty() {
            problems.push(format!(
                "{name}: text {content:?} draws {missing:?} as boxes: no installed font has them \
                 (apt-get install fonts-noto-cjk)"
            ));
        }
        for later in &drawn[index + 1..] {
            let later_bounds = match later.node {
                Node::Text(other) => ink(other),
                other => other.abs_bounding_box(),
            };
            if overlap(bounds, later_bounds) <= SLACK {
                continue;
            }
            match later.node {
                Node::Text(other) => {
                    problems.push(format!("{name}: the texts {content:?} and {:?} overlap", text_of(other)));
                }
                Node::Path(path) if !path.is_visible() => continue,
                _ => problems.push(format!("{name}: {} is drawn over the text {content:?}", describe(later))),
            }
            break;
        }
        if item.groups.iter().any(|group| group == "legend")
            && let Some(legend_box) = tree.node_by_id("legend-box")
        {
            let frame = legend_box.abs_bounding_box();
            if bounds.left() < frame.left() - SLACK
                || bounds.right() > frame.right() + SLACK
                || bounds.top() < frame.top() - SLACK
                || bounds.bottom() > frame.bottom() + SLACK
            {
                problems.push(format!("{name}: the legend text {content:?} sticks out of the legend box"));
            }
        }
    }

    match (tree.node_by_id("legend"), tree.node_by_id("plot-area")) {
        (Some(legend), Some(plot)) => {
            let legend_box = legend.abs_stroke_bounding_box();
            let plot_box = plot.abs_bounding_box();
            if overlap(legend_box, plot_box) > SLACK {
                problems.push(format!(
                    "{name}: the legend (x {:.0}..{:.0}, y {:.0}..{:.0}) lies on the plot area (x {:.0}..{:.0}, y {:.0}..{:.0})",
                    legend_box.left(),
                    legend_box.right(),
                    legend_box.top(),
                    legend_box.bottom(),
                    plot_box.left(),
                    plot_box.right(),
                    plot_box.top(),
                    plot_box.bottom()
                ));
            }
            if legend_box.right() > canvas.right() + SLACK || legend_box.bottom() > canvas.bottom() + SLACK {
                problems.push(format!("{name}: the legend box leaves the canvas"));
            }
        }
        (legend, plot) => {
            if legend.is_none() {
                problems.push(format!("{name}: no legend (an element with id \"legend\")"));
            }
            if plot.is_none() {
                problems.push(format!("{name}: no plot area (an element with id \"plot-area\")"));
            }
        }
    }
    (problems, tree)
}

fn render_png(drill: &str, name: &str, tree: &usvg::Tree) -> PathBuf {
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).expect("a non-empty picture");
    resvg::render(tree, tiny_skia::Transform::identity(), &mut pixmap.as_mut());
    let dir = png_dir().join(drill);
    std::fs::create_dir_all(&dir).expect("png folder");
    let path = dir.join(name.replace(".svg", ".png"));
    pixmap.save_png(&path).expect("write png");
    path
}

/// Checks a drill's four pictures, as named and in a wide font, and
/// renders them to PNG.
fn picture_problems(drill: &str, out: &Path) -> Vec<String> {
    let has_wide_font = options().fontdb.faces().any(|face| face.families.iter().any(|(family, _)| family == "DejaVu Sans"));
    assert!(has_wide_font, "the pictures are also measured in DejaVu Sans: apt-get install fonts-dejavu-core");
    let mut all = Vec::new();
    for name in PICTURES {
        let svg = std::fs::read_to_string(out.join(name)).expect("picture written");
        let label = format!("{drill}/{name}");
        let (as_named, tree) = problems(&label, &svg, Fonts::AsNamed);
        let png = render_png(drill, name, &tree);
        let (wide, _) = problems(&label, &svg, Fonts::Wide);
        eprintln!("{label}: {} problems; rendered to {}", as_named.len() + wide.len(), png.display());
        all.extend(as_named);
        all.extend(wide);
    }
    all
}

#[test]
fn every_picture_keeps_its_text_on_the_canvas_and_its_legend_off_the_data() {
    let all = picture_problems("typhoon", &typhoon().out);
    assert!(all.is_empty(), "{} problems with the pictures:\n{}", all.len(), all.join("\n"));
}

/// The typhoon's shelter occupancy (drawn only by drills with shelters)
/// passes the same checks.
#[test]
fn the_shelter_picture_keeps_its_text_on_the_canvas_and_its_legend_off_the_data() {
    let name = "shelters.svg";
    let svg = std::fs::read_to_string(typhoon().out.join(name)).expect("shelters.svg written");
    let label = format!("typhoon/{name}");
    let (mut all, tree) = problems(&label, &svg, Fonts::AsNamed);
    let png = render_png("typhoon", name, &tree);
    all.extend(problems(&label, &svg, Fonts::Wide).0);
    eprintln!("{label}: {} problems; rendered to {}", all.len(), png.display());
    assert!(all.is_empty(), "{} problems with the shelter picture:\n{}", all.len(), all.join("\n"));
}

/// The sample drills other than the typhoon (which the tests above run), one
/// test each so that they run side by side.
const OTHER_DRILLS: [&str; 6] = ["city-border", "flood-plan", "highrise-fire", "public-health", "smoke", "winter-outage"];

fn other_drills_pictures_pass_the_same_checks(stem: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("drills").join(format!("{stem}.toml"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pictures-{stem}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let drill = pingji_scenarios::drill::load(&path).unwrap_or_else(|error| panic!("{error}"));
    pingji_scenarios::run_in_process(&drill, &out, |_| {}).expect("the drill runs");
    let all = picture_problems(stem, &out);
    assert!(all.is_empty(), "{} problems with the pictures of {stem}:\n{}", all.len(), all.join("\n"));
}

#[test]
fn every_sample_drill_has_its_picture_test() {
    let drills = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("drills");
    let mut found: Vec<String> = std::fs::read_dir(&drills)
        .expect("drills folder")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "toml").then(|| path.file_stem()?.to_str().map(str::to_string))?
        })
        .filter(|stem| stem != "typhoon")
        .collect();
    found.sort();
    assert_eq!(found, OTHER_DRILLS, "a sample drill was added or removed: list it in OTHER_DRILLS");
}

/// The real-size city: 2,521 grids, 436 communities named where they fit,
/// the view fitted to the two districts in emergency, under 300 KB.
#[test]
fn the_city_border_drills_pictures_pass_the_same_checks() {
    other_drills_pictures_pass_the_same_checks("city-border");
}

#[test]
fn the_flood_plan_drills_pictures_pass_the_same_checks() {
    other_drills_pictures_pass_the_same_checks("flood-plan");
}

#[test]
fn the_highrise_fire_drills_pictures_pass_the_same_checks() {
    other_drills_pictures_pass_the_same_checks("highrise-fire");
}

#[test]
fn the_public_health_drills_pictures_pass_the_same_checks() {
    other_drills_pictures_pass_the_same_checks("public-health");
}

#[test]
fn the_smoke_drills_pictures_pass_the_same_checks() {
    other_drills_pictures_pass_the_same_checks("smoke");
}

#[test]
fn the_winter_outage_drills_pictures_pass_the_same_checks() {
    other_drills_pictures_pass_the_same_checks("winter-outage");
}

#[test]
fn the_picture_checks_catch_cut_text_a_legend_on_the_data_and_a_dot_over_a_label() {
    let family = "font-family=\"'Noto Sans CJK SC', sans-serif\"";
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100" {family} font-size="12">
<rect id="plot-area" x="20" y="10" width="160" height="80" fill="none" stroke="#333"/>
<text x="150" y="40">a subtitle that runs off the right edge</text>
<text x="40" y="70">label</text>
<circle cx="50" cy="66" r="4" fill="red"/>
<g id="legend"><rect x="100" y="20" width="60" height="20" fill="white"/><text x="104" y="34">P1</text></g>
</svg>"##
    );
    let (problems, _) = problems("broken.svg", &svg, Fonts::AsNamed);
    let all = problems.join("\n");
    assert!(all.contains("a subtitle that runs off") && all.contains("outside the"), "{all}");
    assert!(all.contains("the legend") && all.contains("lies on the plot area"), "{all}");
    assert!(all.contains("drawn over the text \"label\""), "{all}");
}

/// The drill clock: the drill's start time of day (UTC) plus the offset.
fn expected_clock(started_at_ms: i64, at_s: f64) -> String {
    let second_of_day = (started_at_ms / 1000 + at_s as i64).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", second_of_day / 3600, second_of_day / 60 % 60, second_of_day % 60)
}

fn markdown() -> String {
    std::fs::read_to_string(typhoon().out.join("report.md")).expect("report.md written")
}

#[test]
fn every_incident_count_in_the_prose_is_the_drills_own() {
    let report = &typhoon().report;
    let total = thousands(report.totals.incidents);
    let markdown = markdown();
    let mut seen = 0;
    // Tables break figures down (per priority, per community); the prose
    // speaks of the whole drill.
    for line in markdown.lines().filter(|line| !line.starts_with('|')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            let is_count = pair[0].chars().all(|c| c.is_ascii_digit() || c == ',');
            if is_count && pair[1].starts_with("incident") {
                seen += 1;
                assert_eq!(pair[0], total, "the prose says {:?} where the drill had {total} incidents: {line}", pair.join(" "));
            }
        }
    }
    assert!(seen >= 2, "the story and the headline give the number of incidents:\n{markdown}");
}

#[test]
fn every_time_in_the_report_is_on_the_drill_clock() {
    let report = &typhoon().report;
    let markdown = markdown();
    let start = expected_clock(report.drill.started_at_ms, 0.0);
    assert_eq!(start, "08:00:00", "the typhoon story starts at 08:00");
    assert!(markdown.contains(&start), "the report says when the drill starts:\n{markdown}");
    let switch = report.timeline.iter().find(|key| key.kind == "mode_switched").expect("the typhoon drill switches d1");
    assert_eq!(expected_clock(report.drill.started_at_ms, switch.at_s), "08:05:00");
    let table = markdown.split("## Key events").nth(1).expect("a key events table");
    for key in report.timeline.iter().take(20) {
        let row = format!("| {} | {} |", expected_clock(report.drill.started_at_ms, key.at_s), key.text);
        assert!(table.contains(&row), "missing {row:?} in the key events table:\n{table}");
    }
    assert!(!markdown.contains("| 00:05:00 |"), "key events on a clock of their own:\n{markdown}");
}

/// The drill has no gateways: `[channels]` scripts who is reached by push,
/// SMS or a call; each of those who checked in counts once, by the last
/// rung sent before they did, or by the app session when none was.
#[test]
fn the_report_says_how_many_were_reached_by_each_channel() {
    let report = &typhoon().report;
    let callups = &report.callups;
    let reached: usize = callups.reached_by.values().sum();
    assert_eq!(reached, callups.checked_in_in_time + callups.checked_in_late, "{:?}", callups.reached_by);
    for channel in ["app session", "push", "SMS", "voice"] {
        assert!(callups.reached_by.get(channel).is_some_and(|count| *count > 0), "{channel}: {:?}", callups.reached_by);
    }
    let line = format!(
        "Reached, of those who checked in: app session {}, push {}, SMS {}, voice {}.",
        callups.reached_by["app session"], callups.reached_by["push"], callups.reached_by["SMS"], callups.reached_by["voice"]
    );
    assert!(markdown().contains(&line), "{line}");
}

#[test]
fn counts_of_one_are_singular() {
    let report = &typhoon().report;
    let markdown = markdown();
    assert_eq!(report.totals.mode_switches, 1, "the typhoon drill switches one area");
    assert!(markdown.contains("1 mode switch,") || markdown.contains("1 mode switch."), "{markdown}");
    assert!(!markdown.contains("1 mode switches"), "{markdown}");
    assert_eq!(report.callups.callups, 1, "the switch calls up one roll-call");
    assert!(markdown.contains("1 call-up "), "{markdown}");
    assert!(!markdown.contains(" 1 times") && !markdown.contains(" 1 people"), "{markdown}");
}

#[test]
fn the_readmes_describe_the_typhoon_drill_as_it_runs() {
    let report = &typhoon().report;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The incidents the drill scripts; the welfare checks and the help call
    // its safety check-ins bring come later, and are told apart.
    let scripted: Vec<_> =
        report.incidents.iter().filter(|figures| !matches!(figures.category.as_str(), "welfare_check" | "help")).collect();
    let incidents = format!("{} incidents in the first half hour", thousands(scripted.len()));
    let people = format!("{} people", thousands(report.drill.people));
    let last_report_s = scripted.iter().map(|figures| figures.reported_at_s).fold(0.0, f64::max);
    assert!(last_report_s <= 1800.0, "the last incident comes at {last_report_s} s, after the first half hour");
    for readme in [root.join("../README.md"), root.join("README.md")] {
        let text = std::fs::read_to_string(&readme).expect("readme");
        let line = text
            .lines()
            .find(|line| line.contains("typhoon") && line.contains("incidents"))
            .or_else(|| text.lines().find(|line| line.contains("incidents in")))
            .unwrap_or_default();
        let paragraph: String = text.split("\n\n").filter(|part| part.contains("typhoon")).collect::<Vec<_>>().join(" ");
        let paragraph = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            paragraph.contains(&incidents) && paragraph.contains(&people),
            "{} should say {incidents:?} and {people:?} of the typhoon drill; it says: {line}",
            readme.display()
        );
    }
}

/// A story may say when things happen, but only on the drill clock the
/// report uses: from the drill's start time to its end.
#[test]
fn every_sample_drills_story_tells_its_times_on_the_drill_clock() {
    let drills = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("drills");
    // Every drill starts at the same instant; the typhoon run shows which.
    let start_s = (typhoon().report.drill.started_at_ms / 1000).rem_euclid(86_400);
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&drills).expect("drills folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|extension| extension != "toml") {
            continue;
        }
        let drill = pingji_scenarios::drill::load(&path).unwrap_or_else(|error| panic!("{error}"));
        let end_s = start_s + drill.file.duration_s as i64;
        let text = &drill.file.description;
        for (index, _) in text.match_indices(':') {
            let (Some(before), Some(after)) = (text.get(index.saturating_sub(2)..index), text.get(index + 1..index + 3)) else {
                continue;
            };
            let (Ok(hours), Ok(minutes)) = (before.parse::<i64>(), after.parse::<i64>()) else { continue };
            let at_s = hours * 3600 + minutes * 60;
            if at_s < start_s || at_s > end_s {
                wrong.push(format!("{}: {before}:{after} is not on the drill clock", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A city the size of Hangzhou, made up: 13 districts with jagged borders of
/// several hundred vertices each (shared exactly by neighbours), cut into
/// streets, communities and about 2,500 grids by lattices clipped to the
/// districts; and a drill's figures with two neighbouring districts in
/// emergency and 300 incidents with their responders.
mod big_city {
    use std::collections::BTreeMap;

    use geo::{BooleanOps, BoundingRect, Coord, LineString, MultiPolygon, Polygon, Rect};
    use pingji_engine::areas::{AreaImport, AreaLevel, AreaSpec};
    use pingji_engine::ids::AreaId;
    use pingji_scenarios::report::{DrillSummary, IncidentFigures, Report, Responder};

    const KM_PER_DEGREE: f64 = 111.195;
    const LATITUDE: f64 = 30.25;
    /// Fine enough for several hundred vertices per district.
    const STEP_KM: f64 = 0.1;
    pub const DISTRICT_NAMES: [&str; 13] = [
        "上城区",
        "拱墅区",
        "西湖区",
        "滨江区",
        "萧山区",
        "余杭区",
        "临平区",
        "钱塘区",
        "富阳区",
        "临安区",
        "桐庐县",
        "淳安县",
        "建德市",
    ];
    /// The two neighbours in emergency: the second and third of the middle row.
    pub const IN_EMERGENCY: [usize; 2] = [5, 6];

    /// A smooth, jagged displacement in km: every point of a border moves
    /// the same way from either side, so neighbours still share it. Small
    /// enough slopes that no border folds over itself.
    fn jag(x: f64, y: f64) -> (f64, f64) {
        let dx = 0.3 * (0.9 * y + 0.4 * x).sin() + 0.02 * (9.1 * y + 3.3 * x).sin() + 0.006 * (37.0 * y + 11.0 * x).sin();
        let dy = 0.3 * (0.8 * x + 0.5 * y + 1.0).sin() + 0.02 * (8.7 * x + 2.9 * y).sin() + 0.006 * (41.0 * x + 7.0 * y).sin();
        (x + dx, y + dy)
    }

    fn lon_lat(x_km: f64, y_km: f64) -> [f64; 2] {
        [120.0 + x_km / (KM_PER_DEGREE * LATITUDE.to_radians().cos()), 30.0 + y_km / KM_PER_DEGREE]
    }

    /// A rectangle of whole km, its edges walked at `STEP_KM` and jagged.
    fn district_ring(west: i32, south: i32, east: i32, north: i32) -> Vec<[f64; 2]> {
        let steps = |from: i32, to: i32| ((to - from).abs() as f64 / STEP_KM).round() as i32;
        let mut ring = Vec::new();
        let corners = [(west, south), (east, south), (east, north), (west, north)];
        for (index, &(x0, y0)) in corners.iter().enumerate() {
            let (x1, y1) = corners[(index + 1) % 4];
            let count = steps(x0, x1).max(steps(y0, y1));
            for step in 0..count {
                let share = step as f64 / count as f64;
                let (x, y) = jag(x0 as f64 + (x1 - x0) as f64 * share, y0 as f64 + (y1 - y0) as f64 * share);
                ring.push(lon_lat(x, y));
            }
        }
        ring.push(ring[0]);
        ring
    }

    fn polygon_of(ring: &[[f64; 2]]) -> Polygon<f64> {
        Polygon::new(LineString::from(ring.iter().map(|[lon, lat]| (*lon, *lat)).collect::<Vec<_>>()), vec![])
    }

    fn rings_of(pieces: &MultiPolygon<f64>) -> Vec<Vec<Vec<[f64; 2]>>> {
        pieces
            .iter()
            .map(|polygon| {
                std::iter::once(polygon.exterior())
                    .chain(polygon.interiors())
                    .map(|ring| ring.coords().map(|coord| [coord.x, coord.y]).collect())
                    .collect()
            })
            .collect()
    }

    fn area(id: String, name: String, level: AreaLevel, parent: Option<&str>, polygons: Vec<Vec<Vec<[f64; 2]>>>) -> AreaSpec {
        AreaSpec { id: AreaId::new(id), name, level, parent: parent.map(AreaId::new), polygons }
    }

    /// The city: rows of 4, 5 and 4 districts over 60 × 48 km.
    pub fn city() -> AreaImport {
        let rows: [(i32, i32, &[i32]); 3] =
            [(0, 16, &[0, 15, 30, 45, 60]), (16, 32, &[0, 12, 24, 36, 48, 60]), (32, 48, &[0, 15, 30, 45, 60])];
        let mut districts = Vec::new();
        for (south, north, columns) in rows {
            for pair in columns.windows(2) {
                districts.push(district_ring(pair[0], south, pair[1], north));
            }
        }
        let mut areas = Vec::new();
        let mut counters = [0usize; 3];
        for (index, ring) in districts.iter().enumerate() {
            let district_id = format!("d{index}");
            areas.push(area(
                district_id.clone(),
                DISTRICT_NAMES[index].to_string(),
                AreaLevel::District,
                None,
                vec![vec![ring.clone()]],
            ));
            let shape = polygon_of(ring);
            let Some(bounds) = shape.bounding_rect() else { continue };
            // Lattices of 6 km (streets), 3 km (communities) and 1.1 km (grids).
            for (level_index, (level, cell_km, word)) in
                [(AreaLevel::Street, 6.0, "街道"), (AreaLevel::Community, 3.0, "社区"), (AreaLevel::Grid, 1.1, "网格")]
                    .into_iter()
                    .enumerate()
            {
                let [cell_lon, cell_lat] = {
                    let [far_lon, far_lat] = lon_lat(cell_km, cell_km);
                    let [origin_lon, origin_lat] = lon_lat(0.0, 0.0);
                    [far_lon - origin_lon, far_lat - origin_lat]
                };
                let [origin_lon, origin_lat] = lon_lat(-2.0, -2.0);
                let first_column = ((bounds.min().x - origin_lon) / cell_lon).floor() as i64;
                let last_column = ((bounds.max().x - origin_lon) / cell_lon).ceil() as i64;
                let first_row = ((bounds.min().y - origin_lat) / cell_lat).floor() as i64;
                let last_row = ((bounds.max().y - origin_lat) / cell_lat).ceil() as i64;
                for column in first_column..last_column {
                    for row in first_row..last_row {
                        let cell = Rect::new(
                            Coord { x: origin_lon + column as f64 * cell_lon, y: origin_lat + row as f64 * cell_lat },
                            Coord { x: origin_lon + (column + 1) as f64 * cell_lon, y: origin_lat + (row + 1) as f64 * cell_lat },
                        );
                        let piece = shape.intersection(&cell.to_polygon());
                        if piece.0.is_empty() {
                            continue;
                        }
                        counters[level_index] += 1;
                        let number = counters[level_index];
                        let id = format!("{}{number}", &level.name()[..1]);
                        areas.push(area(id, format!("{word}{number}"), level, Some(&district_id), rings_of(&piece)));
                    }
                }
            }
        }
        AreaImport { areas, service_centres: vec![] }
    }

    /// A little generator of numbers in 0..1, the same every run.
    struct Numbers(u64);

    impl Numbers {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// 300 incidents in the two districts in emergency (and 20 elsewhere),
    /// each with one or two responders from up to 3 km away.
    pub fn report(map: &AreaImport) -> Report {
        let emergency: Vec<&AreaSpec> = IN_EMERGENCY
            .iter()
            .filter_map(|index| map.areas.iter().find(|area| area.id.as_str() == format!("d{index}")))
            .collect();
        let mut numbers = Numbers(27);
        let mut incidents = Vec::new();
        for index in 0..320 {
            let (x_km, y_km) = if index < 300 {
                (12.0 + 24.0 * numbers.next(), 16.0 + 16.0 * numbers.next())
            } else {
                (60.0 * numbers.next(), 48.0 * numbers.next())
            };
            let responders = (0..1 + index % 2)
                .map(|person| Responder {
                    agent: format!("agent-{index}-{person}"),
                    from: Some(lon_lat(x_km + 6.0 * numbers.next() - 3.0, y_km + 6.0 * numbers.next() - 3.0)),
                })
                .collect();
            let staffed = index % 9 != 0;
            incidents.push(IncidentFigures {
                id: format!("inc-{index}"),
                category: "flood".to_string(),
                priority: 1 + (index % 3) as u8,
                headcount: 1,
                at: lon_lat(x_km, y_km),
                community: None,
                reported_at_s: index as f64 * 5.0,
                first_offer_s: Some(5.0),
                accepted_s: Some(20.0),
                staffed_s: staffed.then_some(30.0),
                arrived_s: staffed.then_some(300.0),
                ended: None,
                widenings: 0,
                responders,
                why_short: None,
            });
        }
        let emergency_areas: BTreeMap<String, String> =
            emergency.iter().map(|area| (area.id.to_string(), "emergency II (orange)".to_string())).collect();
        Report {
            drill: DrillSummary {
                name: "big city".to_string(),
                description: String::new(),
                seed: 27,
                duration_s: 3600,
                started_at_ms: 1_750_000_000_000,
                people: 0,
                events: 0,
            },
            passed: true,
            expectations: vec![],
            totals: pingji_scenarios::report::Totals { incidents: incidents.len(), ..Default::default() },
            by_priority: BTreeMap::new(),
            communities: vec![],
            staffed_in_time_s: 300,
            timeline: vec![],
            mode_switches: vec![],
            staffing: vec![],
            emergency_areas,
            callups: Default::default(),
            plan_activations: 0,
            grid_staffing_low: 0,
            incidents,
            who_served: Default::default(),
            safety: Default::default(),
            supplies: Vec::new(),
            shifts: None,
            shelters: Vec::new(),
            live: None,
        }
    }
}

#[test]
fn the_map_of_a_city_the_size_of_hangzhou_is_fitted_to_the_emergency_small_and_readable() {
    let city = big_city::city();
    let count = |level| city.areas.iter().filter(|area| area.level == level).count();
    let (districts, streets, communities, grids) = (
        count(pingji_engine::areas::AreaLevel::District),
        count(pingji_engine::areas::AreaLevel::Street),
        count(pingji_engine::areas::AreaLevel::Community),
        count(pingji_engine::areas::AreaLevel::Grid),
    );
    let district_vertices: Vec<usize> = city
        .areas
        .iter()
        .filter(|area| area.level == pingji_engine::areas::AreaLevel::District)
        .map(|area| area.polygons.iter().flatten().map(Vec::len).sum())
        .collect();
    assert_eq!(districts, 13);
    assert!(district_vertices.iter().all(|count| *count >= 500), "{district_vertices:?}");
    assert!((2_000..=3_200).contains(&grids), "{grids} grids");
    let report = big_city::report(&city);
    let svg = pingji_scenarios::svg::map::map(&report, &city);
    let png_dir = png_dir().join("big-city");
    std::fs::create_dir_all(&png_dir).expect("png folder");
    std::fs::write(png_dir.join("map.svg"), &svg).expect("write svg");
    eprintln!(
        "big city: {districts} districts of {district_vertices:?} vertices, {streets} streets, {communities} communities, \
         {grids} grids, {} incidents: map.svg is {} bytes",
        report.incidents.len(),
        svg.len()
    );
    assert!(svg.len() < 300_000, "map.svg is {} bytes, over 300 KB", svg.len());

    // No label on another or under a later shape, every text on the canvas,
    // the legend off the map: as for the drills' pictures.
    let (mut all, tree) = problems("big-city/map.svg", &svg, Fonts::AsNamed);
    let png = render_png("big-city", "map.svg", &tree);
    eprintln!("big city: rendered to {}", png.display());
    all.extend(problems("big-city/map.svg", &svg, Fonts::Wide).0);
    assert!(all.is_empty(), "{} problems with the big city's map:\n{}", all.len(), all.join("\n"));

    // Fitted to the two districts in emergency: both are drawn inside the
    // view and fill most of it, at a scale the whole city would not fit.
    let plot = tree.node_by_id("plot-area").expect("a plot area").abs_bounding_box();
    let tinted: Vec<Rect> = big_city::IN_EMERGENCY
        .iter()
        .map(|index| {
            let id = format!("emergency-d{index}");
            tree.node_by_id(&id).unwrap_or_else(|| panic!("{id} tinted in the view")).abs_bounding_box()
        })
        .collect();
    let emergency = tinted.iter().skip(1).fold(tinted[0], |a, b| {
        Rect::from_ltrb(a.left().min(b.left()), a.top().min(b.top()), a.right().max(b.right()), a.bottom().max(b.bottom()))
            .expect("a rectangle")
    });
    assert!(
        emergency.left() >= plot.left() - SLACK
            && emergency.right() <= plot.right() + SLACK
            && emergency.top() >= plot.top() - SLACK
            && emergency.bottom() <= plot.bottom() + SLACK,
        "the districts in emergency {emergency:?} leave the view {plot:?}"
    );
    assert!(
        emergency.width() >= 0.75 * plot.width() || emergency.height() >= 0.75 * plot.height(),
        "the districts in emergency {emergency:?} fill little of the view {plot:?}"
    );
    // The two districts are 24 of the city's 60 km from west to east.
    let city_width = emergency.width() * 60.0 / 24.0;
    assert!(city_width > 1.5 * plot.width(), "the whole city ({city_width:.0} px wide) would almost fit in the view {plot:?}");

    // The whole city in an inset beside the map, with the view marked in it.
    let inset = tree.node_by_id("inset").expect("an inset").abs_bounding_box();
    assert!(overlap(inset, plot) <= SLACK, "the inset {inset:?} lies on the map {plot:?}");
    let view_in_inset = tree.node_by_id("inset-view").expect("the view marked in the inset").abs_bounding_box();
    assert!(
        view_in_inset.width() < inset.width() * 0.8,
        "the view's box {view_in_inset:?} is not a part of the city in the inset {inset:?}"
    );
}

#[test]
fn with_no_area_in_emergency_the_big_citys_map_shows_the_whole_city_without_an_inset() {
    let city = big_city::city();
    let mut report = big_city::report(&city);
    report.emergency_areas.clear();
    let svg = pingji_scenarios::svg::map::map(&report, &city);
    eprintln!("big city, no emergency: map.svg is {} bytes", svg.len());
    assert!(svg.len() < 300_000, "map.svg is {} bytes, over 300 KB", svg.len());
    let (mut all, tree) = problems("big-city-calm/map.svg", &svg, Fonts::AsNamed);
    let png = render_png("big-city-calm", "map.svg", &tree);
    eprintln!("big city, no emergency: rendered to {}", png.display());
    all.extend(problems("big-city-calm/map.svg", &svg, Fonts::Wide).0);
    assert!(all.is_empty(), "{} problems with the big city's map:\n{}", all.len(), all.join("\n"));
    assert!(tree.node_by_id("inset").is_none(), "an inset of the city beside a map of the whole city");
    // Every district is named: at the city's scale, districts are the level that fits.
    let named: usize = big_city::DISTRICT_NAMES.iter().filter(|name| svg.contains(&format!(">{name}</text>"))).count();
    assert_eq!(named, big_city::DISTRICT_NAMES.len(), "districts named at the city's scale");
}

/// The typhoon drill's depots: its plan pre-positions 2,000 sandbags at the
/// riverside depots, the sandbag teams get theirs, and most flooded streets
/// go without a pump (there are four).
#[test]
fn the_typhoon_report_shows_supplies_delivered_and_short() {
    let run = typhoon();
    let item = |name: &str| run.report.supplies.iter().find(|figures| figures.item == name).expect("the item is in the report");
    let sandbags = item("sandbag");
    assert_eq!(sandbags.moved, 2000, "the typhoon plan moved 2,000 sandbags to the riverside depots");
    assert!(sandbags.asked > 0 && sandbags.delivered == sandbags.asked && sandbags.short == 0, "{sandbags:?}");
    let pumps = item("pump");
    assert_eq!(pumps.reserved, 4, "every pump went out: {pumps:?}");
    assert_eq!(pumps.short, pumps.asked - 4, "{pumps:?}");
    let markdown = std::fs::read_to_string(run.out.join("report.md")).expect("report.md written");
    assert!(markdown.contains("## Supplies"), "the report has a supplies section");
    assert!(markdown.contains(&format!("| pump | {} | 4 | 4 | {} | 0 |", pumps.asked, pumps.short)), "{markdown}");
}

/// The typhoon drill's shelters: the elderly go (with wheelchairs) to the
/// nearest shelters with a ramp and room, the small school fills and the
/// overflow goes on, the hall without a ramp takes nobody, the stadium the
/// typhoon plan opened takes the most; occupancy over time as text and SVG.
#[test]
fn the_typhoon_report_shows_shelter_occupancy_and_overflow() {
    let run = typhoon();
    let shelter =
        |name: &str| run.report.shelters.iter().find(|figures| figures.shelter == name).expect("the shelter is in the report");
    let school = shelter("school-1");
    assert_eq!(school.peak_taken, school.capacity, "the school filled: {school:?}");
    assert!(school.full_at_s.is_some() && school.overflowed > 0, "{school:?}");
    assert_eq!(shelter("hall-2").evacuations, 0, "the hall has no ramp");
    let stadium = shelter("stadium");
    assert!(stadium.evacuations > 0, "the plan opened the stadium and it took groups: {stadium:?}");
    for figures in &run.report.shelters {
        assert!(figures.peak_taken <= figures.capacity, "{figures:?}");
        assert_eq!(figures.arrived + figures.released, figures.residents, "every place used or given back: {figures:?}");
    }
    let markdown = std::fs::read_to_string(run.out.join("report.md")).expect("report.md written");
    assert!(markdown.contains("## Shelters") && markdown.contains("![shelter occupancy](shelters.svg)"), "{markdown}");
    let svg = std::fs::read_to_string(run.out.join("shelters.svg")).expect("shelters.svg written");
    assert!(svg.contains("school-1: peak 40 of 40"), "{svg}");
}
