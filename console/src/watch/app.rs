//! The live view's state, without I/O: what the view knows (areas, people,
//! open incidents, the event feed, the selection) and how each kind of news
//! changes it. The runtime feeds it; [`super::draw`] shows it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use pb::event::Body;
use pingji_proto::v1 as pb;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::map::{Bounds, Outline};
use pingji_client::{events, labels};

/// Lines kept in the event feed.
pub const FEED_LINES: usize = 500;

/// The pane that arrow keys act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Incidents,
    Feed,
    Map,
}

impl Pane {
    fn next(self) -> Pane {
        match self {
            Pane::Incidents => Pane::Feed,
            Pane::Feed => Pane::Map,
            Pane::Map => Pane::Incidents,
        }
    }

    fn previous(self) -> Pane {
        match self {
            Pane::Incidents => Pane::Map,
            Pane::Feed => Pane::Incidents,
            Pane::Map => Pane::Feed,
        }
    }
}

/// What the runtime should do after a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    /// Fetch this incident (with its offers and assignments) for the detail.
    ShowIncident(String),
}

/// How the view's link to the dispatcher is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Live,
    /// The event stream broke; the next try is in this many seconds.
    Reconnecting {
        attempt: u32,
        in_s: u64,
    },
}

/// A person on the map.
#[derive(Clone, Debug, PartialEq)]
pub struct PersonDot {
    pub id: String,
    pub lon: f64,
    pub lat: f64,
    pub status: i32,
}

impl PersonDot {
    /// The person's dot, if they have a live location.
    pub fn from_agent(agent: &pb::Agent) -> Option<PersonDot> {
        let at = agent.location.as_ref()?;
        let id = agent.spec.as_ref().map(|spec| spec.id.clone()).unwrap_or_default();
        Some(PersonDot { id, lon: at.lon, lat: at.lat, status: agent.status })
    }
}

/// An open incident as the list and the map show it.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentRow {
    pub id: String,
    pub category: String,
    pub priority: i32,
    pub status: i32,
    pub reported_at_ms: i64,
    pub lon: f64,
    pub lat: f64,
    pub headcount: u32,
    pub assigned: u32,
    pub offers: u32,
}

impl IncidentRow {
    /// A row for an incident (or field report) just reported, as its event says.
    fn reported(id: &str, spec: Option<&pb::IncidentSpec>, status: pb::IncidentStatus, at_ms: i64) -> IncidentRow {
        let spec = spec.cloned().unwrap_or_default();
        let (lon, lat) = spec.location.map_or((f64::NAN, f64::NAN), |at| (at.lon, at.lat));
        IncidentRow {
            id: id.to_string(),
            category: spec.category,
            priority: spec.priority,
            status: status as i32,
            reported_at_ms: at_ms,
            lon,
            lat,
            headcount: spec.headcount,
            assigned: 0,
            offers: 0,
        }
    }

    pub fn from_incident(incident: &pb::Incident) -> IncidentRow {
        let (lon, lat) = incident.location.as_ref().map_or((f64::NAN, f64::NAN), |at| (at.lon, at.lat));
        IncidentRow {
            id: incident.id.clone(),
            category: incident.category.clone(),
            priority: incident.priority,
            status: incident.status,
            reported_at_ms: incident.reported_at_ms,
            lon,
            lat,
            headcount: incident.headcount,
            assigned: u32::try_from(incident.assignments.len()).unwrap_or(u32::MAX),
            offers: u32::try_from(incident.open_offers.len()).unwrap_or(u32::MAX),
        }
    }
}

/// An area in an emergency, for its banner.
#[derive(Clone, Debug, PartialEq)]
pub struct Banner {
    pub area_id: String,
    pub name: String,
    pub mode: i32,
    /// Why, when the switch was seen in the event feed.
    pub reason: Option<String>,
}

/// A grid the dispatcher reported below its minimum of available people
/// (`grid_staffing_low`), until it reports it staffed again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowGrid {
    pub grid_id: String,
    pub available: u32,
    pub minimum: u32,
}

/// A person in danger on scene: a missed safety check-in (until they
/// check in or their assignment ends) or a help call (求助, until its
/// incident ends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyAlert {
    pub agent_id: String,
    /// The incident they were on (a miss) or the help incident.
    pub incident_id: String,
    /// "missed 1", "missed 2 → welfare inc-…" or "求助".
    pub what: String,
    pub at_ms: i64,
}

/// An open incident nobody on the whole roster could staff: from
/// `incident_unstaffable`, and from the open incidents as listed (their
/// `unstaffable`), until it is staffed, ends, or the roster could staff it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unstaffable {
    pub incident_id: String,
    /// What the roster lacks, in a word or two: "no diving", "1/3 possible",
    /// "none left", "out of reach" (off the map).
    pub lacking: String,
}

impl Unstaffable {
    fn new(incident_id: &str, shortfall: &pb::RosterShortfall) -> Unstaffable {
        let lacking = if shortfall.beyond_reach {
            "out of reach".to_string()
        } else if !shortfall.missing_skills.is_empty() {
            format!("no {}", shortfall.missing_skills.join("/"))
        } else if shortfall.possible == 0 {
            "none left".to_string()
        } else {
            format!("{}/{} possible", shortfall.possible, shortfall.needed)
        };
        Unstaffable { incident_id: incident_id.to_string(), lacking }
    }
}

/// An open call-up and how many of those called have checked in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallupTally {
    pub callup_id: String,
    pub area_id: String,
    pub called: usize,
    /// Who checked in: a set, so that an event seen twice (a replay after
    /// the roll-call was read) counts once.
    pub checked_in: BTreeSet<String>,
    pub deadline_ms: i64,
    pub deadline_passed: bool,
}

/// One line of the event feed.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedLine {
    pub seq: u64,
    pub at_ms: i64,
    pub kind: String,
    pub text: String,
}

/// Everything the live view shows.
#[derive(Debug)]
pub struct App {
    pub server: String,
    pub now_ms: i64,
    pub link: Link,
    /// The last failed request, until one succeeds again.
    pub problem: Option<String>,
    pub focus: Pane,
    outlines: Vec<Outline>,
    outline_index: HashMap<String, usize>,
    bounds: Option<Bounds>,
    mode_reasons: HashMap<String, String>,
    people: Vec<PersonDot>,
    /// Open incidents by id.
    incidents: BTreeMap<String, IncidentRow>,
    selected: Option<String>,
    /// The incident whose offers and assignments are shown, once fetched.
    detail: Option<pb::Incident>,
    showing_detail: bool,
    feed: VecDeque<FeedLine>,
    /// Lines scrolled back from the newest.
    feed_scroll: usize,
    last_seq: u64,
    incidents_stale: bool,
    detail_stale: bool,
    areas_stale: bool,
    low_grids: BTreeMap<String, LowGrid>,
    callups: BTreeMap<String, CallupTally>,
    unstaffable: BTreeMap<String, Unstaffable>,
    /// Missed check-ins by person, help calls by their incident.
    safety: BTreeMap<String, SafetyAlert>,
}

impl App {
    pub fn new(server: &str) -> App {
        App {
            server: server.to_string(),
            now_ms: 0,
            link: Link::Live,
            problem: None,
            focus: Pane::Incidents,
            outlines: Vec::new(),
            outline_index: HashMap::new(),
            bounds: None,
            mode_reasons: HashMap::new(),
            people: Vec::new(),
            incidents: BTreeMap::new(),
            selected: None,
            detail: None,
            showing_detail: false,
            feed: VecDeque::new(),
            feed_scroll: 0,
            last_seq: 0,
            incidents_stale: false,
            detail_stale: false,
            areas_stale: false,
            low_grids: BTreeMap::new(),
            callups: BTreeMap::new(),
            unstaffable: BTreeMap::new(),
            safety: BTreeMap::new(),
        }
    }

    // ------------------------------------------------------------ news

    /// The map: every area with its outline and mode.
    pub fn set_areas(&mut self, response: &pb::ListAreasResponse) {
        self.outlines = response.areas.iter().map(Outline::from_area).collect();
        // Wider levels first, so that finer outlines are drawn over them
        // only where the draw order says.
        self.outlines.sort_by(|a, b| (a.level, &a.id).cmp(&(b.level, &b.id)));
        self.outline_index = self.outlines.iter().enumerate().map(|(index, outline)| (outline.id.clone(), index)).collect();
        self.bounds = Bounds::around(self.outlines.iter().flat_map(|outline| outline.rings.iter().flatten().copied()));
    }

    /// People with a live location (the dispatcher's connected people).
    pub fn set_people(&mut self, people: Vec<PersonDot>) {
        self.people = people;
    }

    /// The open incidents as the dispatcher lists them now.
    pub fn set_incidents(&mut self, incidents: &[pb::Incident]) {
        self.incidents = incidents
            .iter()
            .filter(|incident| is_open(incident.status))
            .map(|incident| (incident.id.clone(), IncidentRow::from_incident(incident)))
            .collect();
        // The list says which incidents nobody on the roster could staff
        // now, also those whose event came before the feed's first.
        self.unstaffable = incidents
            .iter()
            .filter(|incident| is_open(incident.status))
            .filter_map(|incident| incident.unstaffable.as_ref().map(|shortfall| Unstaffable::new(&incident.id, shortfall)))
            .map(|alert| (alert.incident_id.clone(), alert))
            .collect();
    }

    /// The incident whose details were asked for.
    pub fn set_detail(&mut self, incident: pb::Incident) {
        if self.showing_detail && self.selected.as_deref() == Some(incident.id.as_str()) {
            self.detail = Some(incident);
        }
    }

    /// The open call-ups as the roll-call reads them when the view starts;
    /// events keep them current from then on.
    pub fn set_callups(&mut self, callups: &[pb::Callup]) {
        for callup in callups.iter().filter(|callup| callup.ended_at_ms == 0) {
            let tally = CallupTally {
                callup_id: callup.id.clone(),
                area_id: callup.area_id.clone(),
                called: callup.people.len(),
                checked_in: callup
                    .people
                    .iter()
                    .filter(|person| person.checked_in_at_ms > 0)
                    .map(|person| person.agent_id.clone())
                    .collect(),
                deadline_ms: callup.deadline_ms,
                deadline_passed: callup.deadline_ms <= self.now_ms,
            };
            self.callups.insert(tally.callup_id.clone(), tally);
        }
    }

    pub fn set_now(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    pub fn set_link(&mut self, link: Link) {
        self.link = link;
    }

    pub fn set_problem(&mut self, problem: Option<String>) {
        self.problem = problem;
    }

    /// One event of the record: into the feed, and into the state it changes.
    pub fn apply_event(&mut self, event: &pb::Event) {
        if event.seq <= self.last_seq {
            return;
        }
        self.last_seq = event.seq;
        // The audit of reads of personal data is not news for the room, and
        // the view's own reads of people's locations (every 2 s) would push
        // everything else out of a small feed; `pingji events` has them.
        if event.kind == "personal_data_read" {
            return;
        }
        self.feed.push_back(FeedLine {
            seq: event.seq,
            at_ms: event.at_ms,
            kind: event.kind.clone(),
            text: events::summary(event),
        });
        while self.feed.len() > FEED_LINES {
            self.feed.pop_front();
        }
        if self.feed_scroll > 0 {
            // Keep the lines being read in place while new ones arrive.
            self.feed_scroll = (self.feed_scroll + 1).min(self.feed.len().saturating_sub(1));
        }
        if !event.incident_id.is_empty() {
            self.incidents_stale = true;
            if self.showing_detail && self.selected.as_deref() == Some(event.incident_id.as_str()) {
                self.detail_stale = true;
            }
        }
        if let Some(body) = &event.body {
            self.apply_body(body, event.at_ms);
        }
    }

    fn apply_body(&mut self, body: &Body, at_ms: i64) {
        match body {
            Body::IncidentReported(reported) => {
                let row =
                    IncidentRow::reported(&reported.incident_id, reported.spec.as_ref(), pb::IncidentStatus::Waiting, at_ms);
                self.incidents.insert(row.id.clone(), row);
            }
            Body::OfferSent(offer) => {
                if let Some(row) = self.incidents.get_mut(offer.incident_id.as_str()) {
                    row.offers += 1;
                    if row.status == pb::IncidentStatus::Waiting as i32 {
                        row.status = pb::IncidentStatus::Offered as i32;
                    }
                }
            }
            Body::Assigned(assigned) => {
                if let Some(row) = self.incidents.get_mut(assigned.incident_id.as_str()) {
                    row.assigned += 1;
                    row.offers = row.offers.saturating_sub(1);
                }
            }
            Body::OfferDeclined(pb::event::OfferDeclined { incident_id, .. })
            | Body::OfferTimedOut(pb::event::OfferTimedOut { incident_id, .. })
            | Body::OfferWithdrawn(pb::event::OfferWithdrawn { incident_id, .. }) => {
                if let Some(row) = self.incidents.get_mut(incident_id.as_str()) {
                    row.offers = row.offers.saturating_sub(1);
                }
            }
            Body::IncidentStaffed(staffed) => {
                if let Some(row) = self.incidents.get_mut(staffed.incident_id.as_str()) {
                    row.status = pb::IncidentStatus::Staffed as i32;
                }
                self.unstaffable.remove(staffed.incident_id.as_str());
            }
            Body::IncidentCancelled(pb::event::IncidentCancelled { incident_id, .. })
            | Body::IncidentClosed(pb::event::IncidentClosed { incident_id, .. }) => {
                self.incidents.remove(incident_id.as_str());
                self.unstaffable.remove(incident_id.as_str());
                self.safety.retain(|_, alert| alert.incident_id != *incident_id);
            }
            Body::SafetyCheckMissed(missed) => {
                let what = match missed.welfare_incident_id.as_str() {
                    "" => format!("missed {}", missed.miss),
                    welfare => format!("missed {} → welfare {welfare}", missed.miss),
                };
                let alert =
                    SafetyAlert { agent_id: missed.agent_id.clone(), incident_id: missed.incident_id.clone(), what, at_ms };
                self.safety.insert(format!("missed:{}", missed.agent_id), alert);
            }
            Body::SafetyCheckIn(checked) => {
                self.safety.remove(&format!("missed:{}", checked.agent_id));
            }
            Body::AssignmentCompleted(completed) => {
                self.safety.remove(&format!("missed:{}", completed.agent_id));
            }
            Body::HelpRequested(help) => {
                let alert = SafetyAlert {
                    agent_id: help.agent_id.clone(),
                    incident_id: help.incident_id.clone(),
                    what: "求助".to_string(),
                    at_ms,
                };
                self.safety.insert(format!("help:{}", help.incident_id), alert);
            }
            Body::IncidentUnstaffable(unstaffable) => {
                let alert = Unstaffable::new(&unstaffable.incident_id, &events::shortfall_of(unstaffable));
                self.unstaffable.insert(alert.incident_id.clone(), alert);
            }
            Body::ModeSwitched(switched) => {
                if let Some(index) = self.outline_index.get(&switched.area_id).copied() {
                    self.outlines[index].mode = switched.mode;
                    self.recompute_effective_modes();
                }
                self.mode_reasons.insert(switched.area_id.clone(), switched.reason.clone());
            }
            Body::AreasImported(_) => self.areas_stale = true,
            Body::FieldReported(reported) => {
                let row =
                    IncidentRow::reported(&reported.incident_id, reported.spec.as_ref(), pb::IncidentStatus::Reported, at_ms);
                self.incidents.insert(row.id.clone(), row);
            }
            Body::ReportAccepted(accepted) => {
                if let Some(row) = self.incidents.get_mut(accepted.incident_id.as_str()) {
                    row.status = pb::IncidentStatus::Waiting as i32;
                    row.priority = accepted.priority;
                    row.headcount = accepted.headcount;
                }
            }
            Body::ReportMerged(pb::event::ReportMerged { incident_id, .. })
            | Body::ReportRejected(pb::event::ReportRejected { incident_id, .. }) => {
                self.incidents.remove(incident_id.as_str());
            }
            Body::GridStaffingLow(low) => {
                let low = LowGrid { grid_id: low.grid_id.clone(), available: low.available, minimum: low.minimum };
                self.low_grids.insert(low.grid_id.clone(), low);
            }
            Body::GridStaffingRestored(restored) => {
                self.low_grids.remove(restored.grid_id.as_str());
            }
            Body::CallupIssued(issued) => {
                self.callups.entry(issued.callup_id.clone()).or_insert_with(|| CallupTally {
                    callup_id: issued.callup_id.clone(),
                    area_id: issued.area_id.clone(),
                    called: issued.agent_ids.len(),
                    checked_in: BTreeSet::new(),
                    deadline_ms: issued.deadline_ms,
                    deadline_passed: false,
                });
            }
            Body::CheckedIn(checked_in) => {
                if let Some(tally) = self.callups.get_mut(checked_in.callup_id.as_str()) {
                    tally.checked_in.insert(checked_in.agent_id.clone());
                }
            }
            Body::CallupDeadlinePassed(passed) => {
                if let Some(tally) = self.callups.get_mut(passed.callup_id.as_str()) {
                    tally.deadline_passed = true;
                }
            }
            Body::CallupStoodDown(stood_down) => {
                self.callups.remove(stood_down.callup_id.as_str());
            }
            _ => {}
        }
    }

    /// Each area's effective mode: the strictest of its own and its
    /// ancestors' (as the dispatcher computes it).
    fn recompute_effective_modes(&mut self) {
        let effective: Vec<i32> = (0..self.outlines.len())
            .map(|index| {
                let mut strictest = self.outlines[index].mode;
                let mut parent = self.outlines[index].parent_id.clone();
                // The hierarchy is at most six levels; the bound guards a cycle.
                for _ in 0..16 {
                    let Some(&parent_index) = self.outline_index.get(&parent) else {
                        break;
                    };
                    let ancestor = &self.outlines[parent_index];
                    if labels::mode_severity(ancestor.mode) > labels::mode_severity(strictest) {
                        strictest = ancestor.mode;
                    }
                    parent = ancestor.parent_id.clone();
                }
                strictest
            })
            .collect();
        for (outline, mode) in self.outlines.iter_mut().zip(effective) {
            outline.effective_mode = mode;
        }
    }

    // ------------------------------------------------------------ keys

    pub fn handle_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let control = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Char('c') if control => Action::Quit,
            KeyCode::Tab => {
                self.focus = self.focus.next();
                Action::None
            }
            KeyCode::BackTab => {
                self.focus = self.focus.previous();
                Action::None
            }
            KeyCode::Esc => {
                self.close_detail();
                Action::None
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.move_selection(1);
                Action::None
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.move_selection(-1);
                Action::None
            }
            KeyCode::Enter => self.open_detail(),
            _ => Action::None,
        }
    }

    fn move_selection(&mut self, step: isize) {
        match self.focus {
            Pane::Incidents => {
                let order = self.open_incidents();
                if order.is_empty() {
                    self.selected = None;
                    return;
                }
                let current = self.selected_index();
                let next = match current {
                    None => 0,
                    Some(index) => index.saturating_add_signed(step).min(order.len() - 1),
                };
                let id = order[next].id.clone();
                if self.selected.as_deref() != Some(id.as_str()) {
                    self.selected = Some(id);
                    self.close_detail();
                }
            }
            Pane::Feed => {
                // Up scrolls back in time, down towards the newest line.
                let back = self.feed_scroll.saturating_add_signed(-step);
                self.feed_scroll = back.min(self.feed.len().saturating_sub(1));
            }
            Pane::Map => {}
        }
    }

    fn open_detail(&mut self) -> Action {
        if self.selected.is_none() && self.focus == Pane::Incidents {
            self.move_selection(1);
        }
        let Some(id) = self.selected.clone() else {
            return Action::None;
        };
        self.showing_detail = true;
        if self.detail.as_ref().is_some_and(|detail| detail.id != id) {
            self.detail = None;
        }
        self.detail_stale = false;
        Action::ShowIncident(id)
    }

    fn close_detail(&mut self) {
        self.showing_detail = false;
        self.detail = None;
        self.detail_stale = false;
    }

    // ------------------------------------------------------------ requests

    /// Whether the open incidents should be fetched again (an event touched one).
    pub fn incidents_stale(&self) -> bool {
        self.incidents_stale
    }

    /// The incident whose details should be fetched again, if any.
    pub fn stale_detail(&self) -> Option<&str> {
        if self.showing_detail && self.detail_stale { self.selected.as_deref() } else { None }
    }

    /// Marks the requests as sent, until the next event makes them stale.
    pub fn refresh_requested(&mut self) {
        self.incidents_stale = false;
        self.detail_stale = false;
    }

    /// Whether areas were imported since the map was read.
    pub fn areas_stale(&self) -> bool {
        self.areas_stale
    }

    /// Marks the map as asked for again.
    pub fn areas_requested(&mut self) {
        self.areas_stale = false;
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    // ------------------------------------------------------------ reading

    pub fn outlines(&self) -> &[Outline] {
        &self.outlines
    }

    pub fn bounds(&self) -> Option<Bounds> {
        self.bounds
    }

    pub fn people(&self) -> &[PersonDot] {
        &self.people
    }

    /// Open incidents, most urgent first, then oldest first.
    pub fn open_incidents(&self) -> Vec<&IncidentRow> {
        let mut rows: Vec<&IncidentRow> = self.incidents.values().collect();
        rows.sort_by(|a, b| (a.priority, a.reported_at_ms, &a.id).cmp(&(b.priority, b.reported_at_ms, &b.id)));
        rows
    }

    pub fn selected(&self) -> Option<&str> {
        self.selected.as_deref()
    }

    pub fn selected_index(&self) -> Option<usize> {
        let selected = self.selected.as_deref()?;
        self.open_incidents().iter().position(|row| row.id == selected)
    }

    /// The incident detail being shown: `Some(None)` while it loads.
    pub fn detail(&self) -> Option<Option<&pb::Incident>> {
        self.showing_detail.then_some(self.detail.as_ref())
    }

    pub fn feed(&self) -> &VecDeque<FeedLine> {
        &self.feed
    }

    pub fn feed_scroll(&self) -> usize {
        self.feed_scroll
    }

    /// One banner per area switched to an emergency, most severe first.
    pub fn banners(&self) -> Vec<Banner> {
        let mut banners: Vec<Banner> = self
            .outlines
            .iter()
            .filter(|outline| labels::is_emergency(outline.mode))
            .map(|outline| Banner {
                area_id: outline.id.clone(),
                name: outline.name.clone(),
                mode: outline.mode,
                reason: self.mode_reasons.get(&outline.id).cloned(),
            })
            .collect();
        banners.sort_by(|a, b| (labels::mode_severity(b.mode), &a.area_id).cmp(&(labels::mode_severity(a.mode), &b.area_id)));
        banners
    }

    /// Grids below their minimum, by id.
    pub fn low_grids(&self) -> impl Iterator<Item = &LowGrid> {
        self.low_grids.values()
    }

    /// Open call-ups, by id.
    pub fn callups(&self) -> impl Iterator<Item = &CallupTally> {
        self.callups.values()
    }

    /// Open incidents nobody on the roster could staff, by id.
    pub fn unstaffable(&self) -> impl Iterator<Item = &Unstaffable> {
        self.unstaffable.values()
    }

    /// Missed check-ins and help calls still open.
    pub fn safety_alerts(&self) -> impl Iterator<Item = &SafetyAlert> {
        self.safety.values()
    }

    /// Whether there is anything for the alert line.
    pub fn has_alerts(&self) -> bool {
        !self.safety.is_empty() || !self.unstaffable.is_empty() || !self.low_grids.is_empty() || !self.callups.is_empty()
    }

    /// People on the map by status: (available, busy, off duty).
    pub fn people_counts(&self) -> (usize, usize, usize) {
        let count = |status: pb::AgentStatus| self.people.iter().filter(|person| person.status == status as i32).count();
        (count(pb::AgentStatus::Available), count(pb::AgentStatus::Busy), count(pb::AgentStatus::OffDuty))
    }
}

fn is_open(status: i32) -> bool {
    !matches!(
        pb::IncidentStatus::try_from(status),
        Ok(pb::IncidentStatus::Cancelled
            | pb::IncidentStatus::Closed
            | pb::IncidentStatus::Merged
            | pb::IncidentStatus::Rejected)
    )
}
