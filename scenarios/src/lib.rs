//! Pingji drills (实战演练): drill files, the runners, and the after-action
//! report.
//!
//! A drill file describes the map, the roster (a file or a generator), how
//! people behave, a timeline of mode switches, incidents and cancellations,
//! and what the response must achieve. The fast runner plays it on the engine
//! in process on a virtual clock; the report is computed from the event log
//! it leaves, the same record a live dispatcher keeps.
//!
//! # Layout
//! - [`drill`]: the drill file format and its checks.
//! - [`citymap`]: maps made for drills: a real-size city of districts, and
//!   any district map cut into streets, communities and grids.
//! - [`border`]: incidents near a border, and the figures of help across
//!   borders (from the offers' `from_area`).
//! - [`roster`]: people from a CSV or generated per grid.
//! - [`population`]: a city's people at a realistic density (denser in the
//!   centre), a million in seconds, and their roster CSV.
//! - [`sim`]: the in-process runner on a virtual clock.
//! - [`shifts`]: a drill's duty roster (`[[shift]]`) and the share of offers to people on shift.
//! - [`supplies`]: a drill's depots and scripted supply requests, and the report's supply figures.
//! - [`shelters`]: a drill's shelters and scripted evacuations, and the report's occupancy figures.
//! - [`live`]: the live runner: real gRPC sessions against a dispatcher,
//!   connected through `pingji-client` as the console and field agent are;
//!   it says what it finds, does not start on a dispatcher in use unless
//!   told to go ahead, and leaves the dispatcher as it found it.
//! - [`demo`]: a dispatcher in process with the command map, and a live
//!   drill against it on a clock at the drill's speed (`drill demo`).
//! - [`report`]: figures from the event log; report.json and report.md.
//! - [`safety`]: the report's safety section: check-ins on scene, welfare
//!   checks and help calls.
//! - [`svg`]: the report's pictures.
//! - [`files`]: writing the report's files (JSON, Markdown, pictures).

#![forbid(unsafe_code)]

pub mod border;
pub mod citymap;
pub mod demo;
pub mod drill;
pub mod files;
pub mod live;
pub mod population;
pub mod report;
pub mod roster;
pub mod safety;
pub mod shelters;
pub mod shifts;
pub mod sim;
pub mod supplies;
pub mod svg;

use std::path::Path;

use pingji_dispatcher::convert::event_from_stored;
use pingji_dispatcher::journal::{Journal, SqliteJournal};
use pingji_engine::event::Event;

use crate::drill::{Drill, ExpectEntry};
use crate::report::{DrillSummary, Report, ReportInput};

/// Name of the event log a drill run leaves in its output folder.
pub const JOURNAL_FILE: &str = "journal.db";

/// Runs a drill in process and writes its report into `out`.
pub fn run_in_process(drill: &Drill, out: &Path, progress: impl FnMut(u64)) -> anyhow::Result<Report> {
    std::fs::create_dir_all(out)?;
    let journal_path = out.join(JOURNAL_FILE);
    let record = sim::run(drill, &journal_path, progress)?;
    // The report is made from the journal on disk, not from memory: the same
    // record an auditor can open with sqlite3.
    let events = read_journal(&journal_path)?;
    anyhow::ensure!(
        events.len() == record.events.len(),
        "the journal holds {} events, the run made {}",
        events.len(),
        record.events.len()
    );
    let report = build_report(drill, &events, record.started_at, record.ended_at);
    files::write(&report, &drill.map, out)?;
    Ok(report)
}

/// Every event of a journal file, in order.
pub fn read_journal(path: &Path) -> anyhow::Result<Vec<Event>> {
    let journal = SqliteJournal::open(path)?;
    let mut events = Vec::new();
    loop {
        let page = journal.read_from(events.len() as u64 + 1, 10_000)?;
        if page.is_empty() {
            return Ok(events);
        }
        for stored in &page {
            events.push(event_from_stored(stored).map_err(anyhow::Error::msg)?);
        }
    }
}

/// The report of a drill from its events.
pub fn build_report(
    drill: &Drill,
    events: &[Event],
    started_at: pingji_engine::ids::Millis,
    ended_at: pingji_engine::ids::Millis,
) -> Report {
    let people = events
        .iter()
        .map(|event| match &event.kind {
            pingji_engine::event::EventKind::AgentsUpserted { agents } => agents.len(),
            _ => 0,
        })
        .sum();
    let expectations: Vec<_> = drill
        .file
        .expectations
        .iter()
        .filter_map(|spanned| match spanned.get_ref() {
            ExpectEntry::Report(expectation) => Some(expectation.clone()),
            ExpectEntry::Border(_) => None,
        })
        .collect();
    let mut report = report::build(ReportInput {
        summary: DrillSummary {
            name: drill.file.name.clone(),
            description: drill.file.description.clone(),
            seed: drill.file.seed,
            duration_s: drill.file.duration_s,
            started_at_ms: started_at.0,
            people,
            events: events.len(),
        },
        map: &drill.map,
        expectations: &expectations,
        staffed_in_time_s: drill.file.report.staffed_in_time_s,
        events,
        started_at,
        ended_at,
    });
    // Border expectations are judged here, from the same events, and take
    // their place in the file's order among the report's own.
    let areas = pingji_engine::areas::AreaMap::from(drill.map.clone());
    let mut judged = std::mem::take(&mut report.expectations).into_iter();
    for entry in &drill.file.expectations {
        let result = match entry.get_ref() {
            ExpectEntry::Report(_) => judged.next(),
            ExpectEntry::Border(expectation) => Some(border::judge(expectation, &areas, &drill.policy, events)),
        };
        report.expectations.extend(result);
    }
    report.passed = report.expectations.iter().all(|result| result.passed);
    report.shifts = shifts::figures(events, drill.policy.rosters.utc_offset_minutes);
    report
}
