//! Prometheus metrics: what the dispatcher is doing, for the operations team.
//!
//! Counters and histograms are derived from the events the runtime already
//! broadcasts, by one observer task ([`crate::observer`]), so the engine
//! carries no counters of its own. Gauges (people connected and available,
//! open incidents, modes, the command queue) are read from the engine's state
//! at scrape time, so they are always exact, also after a restart. The
//! journal append latency is timed by the runtime around each append.
//!
//! Labels carry ids, levels, grades and priorities, never personal data.
//!
//! # Layout
//! - [`http`]: the `/metrics` HTTP endpoint.

pub mod http;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tracing::{debug, warn};

use crate::runtime::Dispatcher;
use crate::sessions::SessionQueueMetrics;
use pingji_engine::areas::AreaLevel;
use pingji_engine::engine::Engine;
use pingji_engine::event::{Event, EventKind};
use pingji_engine::ids::{IncidentId, Millis, OfferId};
use pingji_engine::policy::Mode;

/// How long a scrape waits for the engine's figures before it answers
/// without them.
const STATE_WITHIN: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PriorityLabel {
    priority: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabel {
    level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DistrictLabel {
    district: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IncidentLabels {
    status: String,
    priority: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AreaModeLabels {
    area: String,
    grade: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    reason: &'static str,
}

/// Client connections, counted by the server's connection limits
/// (`server::connections`). A set made on its own, without [`Metrics`],
/// counts for nobody.
#[derive(Clone, Debug, Default)]
pub struct ConnectionMetrics {
    open: Gauge,
    allowed: Gauge,
    refused: Counter,
    closed: Family<ReasonLabel, Counter>,
    accept_errors: Counter,
}

impl ConnectionMetrics {
    pub fn opened(&self) {
        self.open.inc();
    }

    pub fn ended(&self) {
        self.open.dec();
    }

    /// The most connections open at once, as worked out at start.
    pub fn set_allowed(&self, allowed: usize) {
        self.allowed.set(i64::try_from(allowed).unwrap_or(i64::MAX));
    }

    pub fn refused(&self) {
        self.refused.inc();
    }

    /// A connection the dispatcher closed, and why (`first_request_timeout`, `idle`, `stuck_session`).
    pub fn closed(&self, reason: &'static str) {
        self.closed.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn accept_failed(&self) {
        self.accept_errors.inc();
    }
}

fn seconds_histogram() -> Histogram {
    // 1 s to about 2 h: from a quick accept to a slow widening.
    Histogram::new([1.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0])
}

fn append_histogram() -> Histogram {
    // 100 µs to about 3 s: an fsync'd SQLite commit or a Redis round trip.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16))
}

/// The plain counters, by name without the prefix and `_total`, with their help:
/// what is also pushed over OTLP.
pub const COUNTERS: &[(&str, &str)] = &[
    ("offers_sent", "Offers sent to people"),
    ("offers_accepted", "Offers accepted (assignments made)"),
    ("offers_declined", "Offers declined"),
    ("offers_timed_out", "Offers not answered in time"),
    ("offers_withdrawn", "Offers withdrawn (filled, incident ended, person gone)"),
];

/// Times journal appends; the runtime holds one.
#[derive(Clone)]
pub struct AppendTimer {
    histogram: Histogram,
    otlp: Arc<OnceLock<OtlpInstruments>>,
}

impl AppendTimer {
    pub fn observe(&self, took: Duration) {
        self.histogram.observe(took.as_secs_f64());
        if let Some(otlp) = self.otlp.get() {
            otlp.journal_append.record(took.as_secs_f64(), &[]);
        }
    }
}

/// The same counts and durations, pushed over OTLP once an exporter is set
/// up ([`Metrics::export_to`]).
struct OtlpInstruments {
    widenings: opentelemetry::metrics::Counter<u64>,
    incidents_reported: opentelemetry::metrics::Counter<u64>,
    events: opentelemetry::metrics::Counter<u64>,
    time_to_accept: opentelemetry::metrics::Histogram<f64>,
    time_to_staff: opentelemetry::metrics::Histogram<f64>,
    journal_append: opentelemetry::metrics::Histogram<f64>,
}

fn otlp_priority(priority: &str) -> [opentelemetry::KeyValue; 1] {
    [opentelemetry::KeyValue::new("priority", priority.to_string())]
}

/// The dispatcher's metrics, shared by the observer, the runtime and the
/// HTTP endpoint. One per process: it outlives a standby's wait and an
/// owner's serving.
pub struct Metrics {
    registry: Registry,
    offers_sent: Counter,
    offers_accepted: Counter,
    offers_declined: Counter,
    offers_timed_out: Counter,
    offers_withdrawn: Counter,
    widenings: Family<LevelLabel, Counter>,
    incidents_reported: Family<PriorityLabel, Counter>,
    events: Family<KindLabel, Counter>,
    time_to_accept: Family<PriorityLabel, Histogram, fn() -> Histogram>,
    time_to_staff: Family<PriorityLabel, Histogram, fn() -> Histogram>,
    journal_append: Histogram,
    ready: Gauge,
    connected_agents: Gauge,
    available_people: Family<DistrictLabel, Gauge>,
    open_incidents: Family<IncidentLabels, Gauge>,
    unstaffable_incidents: Family<PriorityLabel, Gauge>,
    queue_depth: Gauge,
    area_mode: Family<AreaModeLabels, Gauge>,
    connections: ConnectionMetrics,
    session_queues: SessionQueueMetrics,
    otlp: Arc<OnceLock<OtlpInstruments>>,
    /// The running dispatchers (one per shard this process owns), while it
    /// serves.
    dispatchers: Mutex<Vec<Dispatcher>>,
    /// One scrape at a time: a scrape clears and refills the gauges.
    scraping: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::default(),
            offers_sent: Counter::default(),
            offers_accepted: Counter::default(),
            offers_declined: Counter::default(),
            offers_timed_out: Counter::default(),
            offers_withdrawn: Counter::default(),
            widenings: Family::default(),
            incidents_reported: Family::default(),
            events: Family::default(),
            time_to_accept: Family::new_with_constructor(seconds_histogram),
            time_to_staff: Family::new_with_constructor(seconds_histogram),
            journal_append: append_histogram(),
            ready: Gauge::default(),
            connected_agents: Gauge::default(),
            available_people: Family::default(),
            open_incidents: Family::default(),
            unstaffable_incidents: Family::default(),
            queue_depth: Gauge::default(),
            area_mode: Family::default(),
            connections: ConnectionMetrics::default(),
            session_queues: SessionQueueMetrics::default(),
            otlp: Arc::new(OnceLock::new()),
            dispatchers: Mutex::new(Vec::new()),
            scraping: tokio::sync::Mutex::new(()),
        };
        metrics.register();
        metrics
    }

    fn register(&mut self) {
        let mut root = std::mem::take(&mut self.registry);
        let registry = root.sub_registry_with_prefix("pingji");
        // Counters get `_total` from the encoder.
        for (name, help) in COUNTERS {
            if let Some(counter) = self.counter(name) {
                registry.register(*name, *help, counter.clone());
            }
        }
        registry.register("widenings", "Incidents widened to the next level, by the level widened to", self.widenings.clone());
        registry.register("incidents_reported", "Incidents reported, by priority", self.incidents_reported.clone());
        registry.register("events", "Events journaled, by kind", self.events.clone());
        registry.register_with_unit(
            "time_to_accept",
            "From an offer sent to its acceptance, by incident priority",
            Unit::Seconds,
            self.time_to_accept.clone(),
        );
        registry.register_with_unit(
            "time_to_staff",
            "From an incident reported to fully staffed, by priority",
            Unit::Seconds,
            self.time_to_staff.clone(),
        );
        registry.register_with_unit(
            "journal_append",
            "Latency of one journal append (one batch of events, made durable)",
            Unit::Seconds,
            self.journal_append.clone(),
        );
        registry.register(
            "ready",
            "1 while this process serves (owns its journal and can write it), 0 otherwise",
            self.ready.clone(),
        );
        registry.register("connected_agents", "People with an open session", self.connected_agents.clone());
        registry.register(
            "available_people",
            "Connected people free to take an offer, by the district they are in",
            self.available_people.clone(),
        );
        registry.register("open_incidents", "Open incidents by status and priority", self.open_incidents.clone());
        registry.register(
            "unstaffable_incidents",
            "Open incidents fewer people on the whole roster could take than they need (incident_unstaffable), by priority",
            self.unstaffable_incidents.clone(),
        );
        registry.register("command_queue_depth", "Requests waiting for the engine", self.queue_depth.clone());
        registry.register(
            "area_mode",
            "Areas switched to an emergency grade (1 while switched); normal areas are not listed",
            self.area_mode.clone(),
        );
        let connections = &self.connections;
        registry.register("connections_open", "Client connections open on the gRPC port(s)", connections.open.clone());
        registry.register(
            "connections_allowed",
            "Most client connections open at once: limits.max_connections, or fewer when the open-file limit allows fewer",
            connections.allowed.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused (resource_exhausted, or closed at once) because the most allowed were open",
            connections.refused.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections the dispatcher closed, by reason: first_request_timeout, idle, stuck_session",
            connections.closed.clone(),
        );
        registry.register(
            "accept_errors",
            "New connections that could not be accepted (out of file descriptors, say); each makes the server wait 100 ms",
            connections.accept_errors.clone(),
        );
        registry.register(
            "session_queue_bytes",
            "Bytes of messages waiting in people's session queues, all sessions together",
            self.session_queues.queued_bytes.clone(),
        );
        registry.register(
            "sessions_stuck",
            "Sessions closed because their client stopped taking messages, by cause: queue_full, not_reading",
            self.session_queues.stuck.clone(),
        );
        self.registry = root;
    }

    fn counter(&self, name: &str) -> Option<&Counter> {
        match name {
            "offers_sent" => Some(&self.offers_sent),
            "offers_accepted" => Some(&self.offers_accepted),
            "offers_declined" => Some(&self.offers_declined),
            "offers_timed_out" => Some(&self.offers_timed_out),
            "offers_withdrawn" => Some(&self.offers_withdrawn),
            _ => None,
        }
    }

    /// The value of one of [`COUNTERS`]; 0 for an unknown name.
    pub fn counter_total(&self, name: &str) -> u64 {
        self.counter(name).map_or(0, Counter::get)
    }

    /// What the server's connection limits count.
    pub fn connection_metrics(&self) -> ConnectionMetrics {
        self.connections.clone()
    }

    /// What people's session queues count.
    pub fn session_queue_metrics(&self) -> SessionQueueMetrics {
        self.session_queues.clone()
    }

    /// 1 while this process serves.
    pub fn ready(&self) -> i64 {
        self.ready.get()
    }

    /// The timer the runtime uses around journal appends.
    pub fn append_timer(&self) -> crate::runtime::AppendObserver {
        let timer = AppendTimer { histogram: self.journal_append.clone(), otlp: self.otlp.clone() };
        Arc::new(move |took| timer.observe(took))
    }

    /// Also records the labelled counters and the histograms with `meter`
    /// (an OTLP exporter's), under the same names with dots.
    pub fn export_to(&self, meter: &opentelemetry::metrics::Meter) {
        let seconds = |name: &'static str, help: &'static str, boundaries: Vec<f64>| {
            meter.f64_histogram(name).with_description(help).with_unit("s").with_boundaries(boundaries).build()
        };
        let response_buckets =
            vec![1.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0];
        let append_buckets = prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16).collect();
        let instruments = OtlpInstruments {
            widenings: meter.u64_counter("pingji.widenings").with_description("Incidents widened, by level").build(),
            incidents_reported: meter
                .u64_counter("pingji.incidents_reported")
                .with_description("Incidents reported, by priority")
                .build(),
            events: meter.u64_counter("pingji.events").with_description("Events journaled, by kind").build(),
            time_to_accept: seconds("pingji.time_to_accept", "From an offer sent to its acceptance", response_buckets.clone()),
            time_to_staff: seconds("pingji.time_to_staff", "From an incident reported to fully staffed", response_buckets),
            journal_append: seconds("pingji.journal_append", "Latency of one journal append", append_buckets),
        };
        let _ = self.otlp.set(instruments);
    }

    /// Reads the state gauges from `dispatcher` from now on (while serving),
    /// added to those of the other shards this process owns.
    pub(crate) fn attach(&self, dispatcher: Dispatcher) {
        self.dispatchers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(dispatcher);
        self.ready.set(1);
    }

    pub(crate) fn detach(&self, dispatcher: &Dispatcher) {
        let mut dispatchers = self.dispatchers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        dispatchers.retain(|attached| !attached.is_same(dispatcher));
        if dispatchers.is_empty() {
            self.ready.set(0);
        }
    }

    /// The metrics in the OpenMetrics text format (which Prometheus reads).
    pub async fn render(&self) -> String {
        let _one_at_a_time = self.scraping.lock().await;
        let dispatchers = self.dispatchers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        self.connected_agents.set(0);
        self.queue_depth.set(0);
        self.available_people.clear();
        self.open_incidents.clear();
        self.unstaffable_incidents.clear();
        self.area_mode.clear();
        if !dispatchers.is_empty() {
            // Serving, but not ready while a store is out of reach (writes refused).
            self.ready.set(i64::from(dispatchers.iter().all(Dispatcher::store_reachable)));
        }
        for dispatcher in dispatchers {
            self.queue_depth.inc_by(dispatcher.queue_depth() as i64);
            let figures = tokio::time::timeout(STATE_WITHIN, dispatcher.query(|engine, _| StateFigures::of(engine))).await;
            match figures {
                Ok(Ok(figures)) => self.add_state(&figures),
                Ok(Err(error)) => debug!(%error, "no state figures for this scrape"),
                Err(_) => warn!("the engine did not answer the scrape in time; state gauges left out"),
            }
        }
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            warn!(%error, "cannot encode the metrics");
        }
        text
    }

    /// Adds one shard's figures to the gauges.
    fn add_state(&self, figures: &StateFigures) {
        self.connected_agents.inc_by(figures.connected as i64);
        for (district, count) in &figures.available_by_district {
            self.available_people.get_or_create(&DistrictLabel { district: district.clone() }).inc_by(*count);
        }
        for ((status, priority), count) in &figures.open_incidents {
            let labels = IncidentLabels { status: (*status).to_string(), priority: priority.to_string() };
            self.open_incidents.get_or_create(&labels).inc_by(*count);
        }
        for (priority, count) in &figures.unstaffable_incidents {
            self.unstaffable_incidents.get_or_create(&PriorityLabel { priority: priority.to_string() }).inc_by(*count);
        }
        for (area, mode) in &figures.area_modes {
            if let Some(grade) = grade_of(*mode) {
                self.area_mode.get_or_create(&AreaModeLabels { area: area.clone(), grade: grade.to_string() }).set(1);
            }
        }
    }
}

/// The emergency grade of a mode, as people write it; `None` for normal.
fn grade_of(mode: Mode) -> Option<&'static str> {
    match mode {
        Mode::Normal => None,
        Mode::EmergencyIv => Some("IV"),
        Mode::EmergencyIii => Some("III"),
        Mode::EmergencyIi => Some("II"),
        Mode::EmergencyI => Some("I"),
    }
}

/// Gauges read from the state for one scrape.
struct StateFigures {
    connected: usize,
    available_by_district: BTreeMap<String, i64>,
    open_incidents: BTreeMap<(&'static str, u8), i64>,
    /// By priority: open incidents the whole roster could not staff now.
    unstaffable_incidents: BTreeMap<u8, i64>,
    area_modes: Vec<(String, Mode)>,
}

impl StateFigures {
    fn of(engine: &Engine) -> StateFigures {
        let state = engine.state();
        let mut connected = 0;
        let mut available_by_district = BTreeMap::new();
        for (agent, live) in &engine.live().agents {
            if !live.connected {
                continue;
            }
            connected += 1;
            if state.agents.get(agent).is_some_and(|record| record.is_free()) {
                let district = engine
                    .live_placement(live)
                    .at(AreaLevel::District)
                    .map_or_else(|| "none".to_string(), |area| area.to_string());
                *available_by_district.entry(district).or_insert(0) += 1;
            }
        }
        let mut open_incidents = BTreeMap::new();
        let mut unstaffable_incidents = BTreeMap::new();
        for id in &state.open_incidents {
            if let Some(incident) = state.incidents.get(id) {
                *open_incidents.entry((incident.status().name(), incident.spec.priority)).or_insert(0) += 1;
                // Worked out now rather than from the last event: a roster
                // change since may have made it staffable (cheap: the
                // engine counts from its skill index).
                if engine.roster_shortfall(incident).is_some() {
                    *unstaffable_incidents.entry(incident.spec.priority).or_insert(0) += 1;
                }
            }
        }
        let area_modes = state.modes.iter().map(|(area, setting)| (area.to_string(), setting.mode)).collect();
        StateFigures { connected, available_by_district, open_incidents, unstaffable_incidents, area_modes }
    }
}

/// What the observer remembers to turn pairs of events into durations.
#[derive(Default)]
pub(crate) struct Pending {
    /// Open incidents: priority and when reported.
    incidents: HashMap<IncidentId, (u8, Millis)>,
    /// Open offers: when sent and for which incident.
    offers: HashMap<OfferId, (Millis, IncidentId)>,
    pub(crate) last_seq: u64,
}

impl Pending {
    pub(crate) fn of(engine: &Engine) -> Pending {
        let state = engine.state();
        let mut pending = Pending { last_seq: state.last_seq, ..Pending::default() };
        for id in &state.open_incidents {
            let Some(incident) = state.incidents.get(id) else { continue };
            pending.incidents.insert(id.clone(), (incident.spec.priority, incident.reported_at));
            for (offer, record) in &incident.open_offers {
                pending.offers.insert(offer.clone(), (record.sent_at, id.clone()));
            }
        }
        pending
    }

    fn priority_of(&self, incident: &IncidentId) -> String {
        self.incidents.get(incident).map_or_else(|| "unknown".to_string(), |(priority, _)| priority.to_string())
    }
}

impl Metrics {
    /// Counts one journaled event of `kind`.
    pub(crate) fn count_kind(&self, kind: &str) {
        self.events.get_or_create(&KindLabel { kind: kind.to_string() }).inc();
        if let Some(otlp) = self.otlp.get() {
            otlp.events.add(1, &[opentelemetry::KeyValue::new("kind", kind.to_string())]);
        }
    }

    /// Turns one event into counts and durations.
    pub(crate) fn count(&self, event: &Event, pending: &mut Pending) {
        match &event.kind {
            EventKind::IncidentReported { incident, spec, .. } => {
                pending.incidents.insert(incident.clone(), (spec.priority, event.at));
                self.incidents_reported.get_or_create(&PriorityLabel { priority: spec.priority.to_string() }).inc();
                if let Some(otlp) = self.otlp.get() {
                    otlp.incidents_reported.add(1, &otlp_priority(&spec.priority.to_string()));
                }
            }
            EventKind::ReportAccepted { incident, priority, .. } => {
                if let Some((known, _)) = pending.incidents.get_mut(incident) {
                    *known = *priority;
                }
            }
            EventKind::OfferSent { offer } => {
                self.offers_sent.inc();
                pending.offers.insert(offer.id.clone(), (offer.sent_at, offer.incident.clone()));
            }
            EventKind::Assigned { offer, incident, .. } => {
                self.offers_accepted.inc();
                if let Some((sent_at, _)) = pending.offers.remove(offer) {
                    let priority = pending.priority_of(incident);
                    let took = seconds_between(sent_at, event.at);
                    if let Some(otlp) = self.otlp.get() {
                        otlp.time_to_accept.record(took, &otlp_priority(&priority));
                    }
                    self.time_to_accept.get_or_create(&PriorityLabel { priority }).observe(took);
                }
            }
            EventKind::OfferDeclined { offer, .. } => {
                self.offers_declined.inc();
                pending.offers.remove(offer);
            }
            EventKind::OfferTimedOut { offer, .. } => {
                self.offers_timed_out.inc();
                pending.offers.remove(offer);
            }
            EventKind::OfferWithdrawn { offer, .. } => {
                self.offers_withdrawn.inc();
                pending.offers.remove(offer);
            }
            EventKind::Widened { to, .. } => {
                self.widenings.get_or_create(&LevelLabel { level: to.name().to_string() }).inc();
                if let Some(otlp) = self.otlp.get() {
                    otlp.widenings.add(1, &[opentelemetry::KeyValue::new("level", to.name())]);
                }
            }
            EventKind::IncidentStaffed { incident } => {
                if let Some((priority, reported_at)) = pending.incidents.get(incident) {
                    let took = seconds_between(*reported_at, event.at);
                    if let Some(otlp) = self.otlp.get() {
                        otlp.time_to_staff.record(took, &otlp_priority(&priority.to_string()));
                    }
                    self.time_to_staff.get_or_create(&PriorityLabel { priority: priority.to_string() }).observe(took);
                }
            }
            EventKind::IncidentCancelled { incident, .. }
            | EventKind::IncidentClosed { incident, .. }
            | EventKind::ReportMerged { incident, .. }
            | EventKind::ReportRejected { incident, .. } => {
                pending.incidents.remove(incident);
            }
            _ => {}
        }
    }
}

fn seconds_between(from: Millis, to: Millis) -> f64 {
    (to.0 - from.0).max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_idle_process_renders_every_family_with_its_unit_and_total() {
        let metrics = Metrics::new();
        metrics.offers_sent.inc();
        (metrics.append_timer())(Duration::from_millis(3));
        let text = metrics.render().await;
        assert!(text.contains("pingji_offers_sent_total 1"), "{text}");
        assert!(text.contains("# TYPE pingji_journal_append_seconds histogram"), "{text}");
        assert!(text.contains("pingji_journal_append_seconds_count 1"), "{text}");
        assert!(text.contains("pingji_ready 0"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn an_incident_nobody_on_the_roster_could_take_is_counted_as_unstaffable() {
        use pingji_engine::engine::Command;
        use pingji_engine::incident::IncidentSpec;
        use pingji_engine::spatial::Position;
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/maps/sample-city.geojson"))
            .expect("the sample city");
        let mut engine = Engine::new(pingji_engine::policy::Policy::default());
        let now = Millis(1_800_000_000_000);
        let map = pingji_engine::areas::parse_geojson(&text).expect("parses");
        engine.execute(Command::ImportAreas(map), "operator:test", now).expect("imports");
        let at = engine.state().areas.centroid(&pingji_engine::ids::AreaId::new("d1-s1-c1-g1")).expect("a grid");
        let spec = |skills: &[&str]| IncidentSpec {
            at: Position { lon: at.lon, lat: at.lat },
            category: "rescue".into(),
            priority: 2,
            skills: skills.iter().map(|skill| skill.to_string()).collect(),
            headcount: 1,
            description: String::new(),
            source_id: String::new(),
        };
        let helper = pingji_engine::roster::AgentProfile {
            id: pingji_engine::ids::AgentId::new("helper"),
            name: "helper".into(),
            role: pingji_engine::roster::Role::Volunteer,
            skills: Default::default(),
            phone: String::new(),
            home_area: None,
            travel_mode: pingji_engine::roster::TravelMode::Walk,
            on_duty: false,
            home: None,
        };
        engine
            .execute(Command::UpsertAgents { agents: vec![helper], all_new: true, tokens: Vec::new() }, "operator:test", now)
            .expect("added");
        engine
            .execute(Command::CreateIncident { id: None, spec: spec(&["diving"]), force: true }, "operator:test", now)
            .expect("forced");
        engine
            .execute(Command::CreateIncident { id: None, spec: spec(&[]), force: true }, "operator:test", now)
            .expect("created");
        let figures = StateFigures::of(&engine);
        assert_eq!(
            figures.unstaffable_incidents,
            BTreeMap::from([(2, 1)]),
            "nobody has diving; the helper (off duty, not connected) could still come to the other"
        );
        let metrics = Metrics::new();
        metrics.add_state(&figures);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).expect("encodes");
        assert!(text.contains("pingji_unstaffable_incidents{priority=\"2\"} 1"), "{text}");
    }
}
