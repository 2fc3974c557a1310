//! Dispatch policy per mode: offer timeouts, parallel offers, widening waits,
//! location report intervals, staleness and travel speeds.
//!
//! A policy file (TOML) overrides any subset of the defaults; unknown fields
//! and out-of-range values are refused with the field and the reason.
//! The defaults and why they were chosen are in `docs/policy.md`.

use serde::{Deserialize, Serialize};

use crate::areas::AreaLevel;
use crate::ids::AreaId;
use crate::roster::Role;
pub use crate::travel::Speeds;

/// Normal mode or an emergency grade (I is the most severe).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Normal,
    EmergencyIv,
    EmergencyIii,
    EmergencyIi,
    EmergencyI,
}

impl Mode {
    pub fn is_emergency(self) -> bool {
        self != Mode::Normal
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::EmergencyIv => "emergency IV (blue)",
            Mode::EmergencyIii => "emergency III (yellow)",
            Mode::EmergencyIi => "emergency II (orange)",
            Mode::EmergencyI => "emergency I (red)",
        }
    }
}

/// How incidents that wait at the same time are given their offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// One incident at a time, most urgent first, each to its best people.
    Greedy,
    /// An incident arriving in a quiet moment is offered at once; incidents
    /// that follow within the batch window are matched together at the end
    /// of the window as a min-cost assignment (see `crate::assignment`).
    Batch,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidenAfter {
    pub grid: u64,
    pub community: u64,
    pub street: u64,
    pub district: u64,
}

/// The rules of one mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModePolicy {
    /// Seconds a person has to answer an offer.
    pub offer_timeout_s: u64,
    /// Offers out at once per person still needed.
    pub parallel_offers: u32,
    /// How often connected people are asked to report their location.
    pub location_interval_s: u32,
    /// Normal mode only: seconds an unstaffed incident waits at a level before
    /// it widens to the next one.
    pub widen_after_s: WidenAfter,
    /// Reserve roles (see `Policy::reserve_roles`) who may be offered tasks
    /// in this mode; everyone else on duty always may.
    pub eligible_reserves: Vec<Role>,
    /// Nobody is offered a task they would take longer than this to reach.
    pub max_travel_s: u64,
    /// Roles called up when an area is switched to this mode (people whose
    /// home is in the area).
    pub call_up: Vec<Role>,
    /// Seconds a called-up person has to check in.
    pub checkin_deadline_s: u64,
    /// Available people a grid should have; fewer is an event.
    pub grid_minimum: u32,
    /// Call up the grid's reserves when it falls below its minimum.
    pub call_up_when_grid_low: bool,
    /// Field-report categories dispatched at once, without waiting for triage.
    pub auto_dispatch_reports: Vec<String>,
    /// Greedy (one by one) or batch (min-cost matching in a surge).
    pub assignment: Assignment,
    /// Batch: incidents arriving within this many milliseconds of the last
    /// dispatch wait for the end of the window and are matched together.
    pub batch_window_ms: u64,
    /// Batch: at most this many incidents in one matching (most urgent
    /// first); the rest are offered greedily.
    pub batch_max_incidents: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub normal: ModePolicy,
    pub emergency_iv: ModePolicy,
    pub emergency_iii: ModePolicy,
    pub emergency_ii: ModePolicy,
    pub emergency_i: ModePolicy,
    /// A live location older than this is not used to offer by distance.
    pub location_stale_s: u64,
    /// How often an incident nobody fits is tried again.
    pub waiting_retry_s: u64,
    /// Assignments within this window count as recent workload (tie-break).
    pub workload_window_s: u64,
    pub speeds: Speeds,
    /// Roles held in reserve: offered tasks only in modes that list them in
    /// `eligible_reserves` (registered members and sunk cadres by default).
    pub reserve_roles: Vec<Role>,
    /// How often grid staffing is checked against the minimum; 0 turns the
    /// check off.
    pub staffing_check_s: u64,
    /// Batch assignment: people considered per incident beyond the offers it
    /// still needs (its nearest qualified people by ETA).
    pub batch_spare_candidates: u32,
    /// Batch assignment: seconds of ETA one recent assignment (within the
    /// workload window) costs, so that work is spread when ETAs are close.
    pub workload_penalty_s: u64,
    /// Mutual aid (对口支援): areas whose people may be offered the
    /// incidents of an area in emergency although they are not in the same
    /// emergency themselves. Without a rule, help crosses a border only
    /// between touching areas in emergency at the incident's grade or
    /// stricter.
    #[serde(default)]
    pub mutual_aid: Vec<MutualAid>,
    /// The escalation ladder (push, SMS, voice) towards people who are not
    /// reached in their app; without it nobody is notified outside the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<Ladder>,
    /// Duplicates at intake: which open incidents a new report may repeat.
    #[serde(default)]
    pub duplicates: Duplicates,
    /// Safety check-ins on scene (PAR): how often people holding an
    /// assignment must say they are safe, per grade. Off unless set.
    #[serde(default)]
    pub safety: Safety,
    /// Duty rosters: the local time zone of shifts and who is offered
    /// tasks off shift.
    #[serde(default)]
    pub rosters: Rosters,
    /// Shelters: when a shelter's places taken raise an alert.
    #[serde(default)]
    pub shelters: ShelterPolicy,
}

/// Whether people off shift are offered tasks in normal mode, in an area
/// that has a duty roster (an area without one is not affected, nor any
/// area in an emergency: then everyone mobilisable is eligible).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OffShift {
    /// People on shift first; off-shift people only when too few on shift qualify.
    #[default]
    AfterOnShift,
    /// Only people on shift.
    Never,
    /// Everyone alike, as without a roster.
    Always,
}

impl OffShift {
    pub fn name(self) -> &'static str {
        match self {
            OffShift::AfterOnShift => "after_on_shift",
            OffShift::Never => "never",
            OffShift::Always => "always",
        }
    }
}

/// `[rosters]`: see `crate::rosters`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rosters {
    /// The deployment's local time, in minutes east of UTC (480: China
    /// Standard Time). Shifts start at local times.
    pub utc_offset_minutes: i32,
    pub off_shift_in_normal: OffShift,
}

impl Default for Rosters {
    fn default() -> Self {
        Rosters { utc_offset_minutes: 480, off_shift_in_normal: OffShift::AfterOnShift }
    }
}

/// Shelters (避难场所): an alert when the places taken (people checked in
/// and places reserved for groups on their way) reach `alert_percent` of a
/// shelter's capacity, and another when it is full.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShelterPolicy {
    pub alert_percent: u8,
}

impl Default for ShelterPolicy {
    fn default() -> Self {
        ShelterPolicy { alert_percent: 90 }
    }
}

/// Safety check-ins (PAR, 报平安) per grade: people holding an assignment
/// (accepted, on the way or on scene) check in every `interval_min`
/// minutes of the grade in force at their incident. A grade left out asks
/// for none. A missed check-in is an event; the second in a row sends a
/// welfare check (see `engine::check_ins`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Safety {
    #[serde(default)]
    pub interval_min: SafetyIntervals,
}

/// Minutes between check-ins per grade, named as the grades are spoken of:
/// `{ I = 10, II = 15 }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyIntervals {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal: Option<u32>,
    #[serde(default, rename = "IV", skip_serializing_if = "Option::is_none")]
    pub emergency_iv: Option<u32>,
    #[serde(default, rename = "III", skip_serializing_if = "Option::is_none")]
    pub emergency_iii: Option<u32>,
    #[serde(default, rename = "II", skip_serializing_if = "Option::is_none")]
    pub emergency_ii: Option<u32>,
    #[serde(default, rename = "I", skip_serializing_if = "Option::is_none")]
    pub emergency_i: Option<u32>,
}

/// The longest interval between check-ins a policy may ask for (4 hours).
pub const MAX_SAFETY_INTERVAL_MIN: u32 = 240;

impl SafetyIntervals {
    /// Minutes between check-ins in `mode`, if it asks for any.
    pub fn for_mode(&self, mode: Mode) -> Option<u32> {
        match mode {
            Mode::Normal => self.normal,
            Mode::EmergencyIv => self.emergency_iv,
            Mode::EmergencyIii => self.emergency_iii,
            Mode::EmergencyIi => self.emergency_ii,
            Mode::EmergencyI => self.emergency_i,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let grades = [
            ("normal", self.normal),
            ("IV", self.emergency_iv),
            ("III", self.emergency_iii),
            ("II", self.emergency_ii),
            ("I", self.emergency_i),
        ];
        for (name, minutes) in grades {
            if let Some(minutes) = minutes
                && !(1..=MAX_SAFETY_INTERVAL_MIN).contains(&minutes)
            {
                return Err(format!(
                    "safety.interval_min.{name} = {minutes} is out of range; use 1..={MAX_SAFETY_INTERVAL_MIN} minutes, \
                     or leave the grade out for no check-ins"
                ));
            }
        }
        Ok(())
    }
}

/// The escalation ladder per grade: the steps tried, in order, towards a
/// person an offer, a call-up or a message did not reach in the app, until
/// they answer. A grade without steps notifies nobody outside the app.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ladder {
    #[serde(default)]
    pub normal: Vec<LadderStep>,
    #[serde(default)]
    pub emergency_iv: Vec<LadderStep>,
    #[serde(default)]
    pub emergency_iii: Vec<LadderStep>,
    #[serde(default)]
    pub emergency_ii: Vec<LadderStep>,
    #[serde(default)]
    pub emergency_i: Vec<LadderStep>,
}

/// How a person is reached outside their app session (see the
/// dispatcher's `notify`): a rung of the escalation ladder. Here rather
/// than in `event`, which uses the policy's types, not the other way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeChannel {
    Push,
    Sms,
    Voice,
}

impl NoticeChannel {
    pub fn name(self) -> &'static str {
        match self {
            NoticeChannel::Push => "push",
            NoticeChannel::Sms => "sms",
            NoticeChannel::Voice => "voice",
        }
    }
}

/// One rung of the ladder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderStep {
    pub channel: NoticeChannel,
    /// Seconds after the offer, call-up or message, for a person without a
    /// live session.
    pub after_s: u64,
    /// Seconds after it for a person with a live session who has not
    /// answered yet; left out, the step is only for people without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_connected_after_s: Option<u64>,
}

/// The most rungs a grade's ladder may have.
pub const MAX_LADDER_STEPS: usize = 8;

impl Ladder {
    pub fn for_mode(&self, mode: Mode) -> &[LadderStep] {
        match mode {
            Mode::Normal => &self.normal,
            Mode::EmergencyIv => &self.emergency_iv,
            Mode::EmergencyIii => &self.emergency_iii,
            Mode::EmergencyIi => &self.emergency_ii,
            Mode::EmergencyI => &self.emergency_i,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let grades = [
            ("normal", &self.normal),
            ("emergency_iv", &self.emergency_iv),
            ("emergency_iii", &self.emergency_iii),
            ("emergency_ii", &self.emergency_ii),
            ("emergency_i", &self.emergency_i),
        ];
        for (name, steps) in grades {
            if steps.len() > MAX_LADDER_STEPS {
                return Err(format!("ladder.{name} has {} steps; at most {MAX_LADDER_STEPS} are allowed", steps.len()));
            }
            for (index, step) in steps.iter().enumerate() {
                let longest = step.after_s.max(step.if_connected_after_s.unwrap_or(0));
                if longest > 24 * 3600 {
                    return Err(format!("ladder.{name}[{index}] waits {longest} s; use at most 86400 seconds"));
                }
            }
        }
        Ok(())
    }
}

/// When an open incident is shown as a possible duplicate of a new report:
/// near enough, recent enough, and of the same category or one of a group
/// of similar ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Duplicates {
    /// At most this far from the new report (great-circle metres).
    pub within_m: u32,
    /// Reported at most this many minutes before.
    pub within_minutes: u32,
    /// Groups of categories that are alike ("fire" and "smoke"): a report
    /// of one may repeat an incident of another in the same group.
    pub similar_categories: Vec<Vec<String>>,
}

impl Default for Duplicates {
    fn default() -> Self {
        let group = |names: &[&str]| names.iter().map(|name| name.to_string()).collect::<Vec<_>>();
        Duplicates {
            within_m: 300,
            within_minutes: 60,
            similar_categories: vec![
                group(&["fire", "smoke", "explosion"]),
                group(&["flooding", "flood", "water_leak", "waterlogging"]),
                group(&["medical", "injury", "fall", "unconscious"]),
                group(&["rescue", "trapped", "collapse"]),
            ],
        }
    }
}

impl Duplicates {
    /// Whether a report of `new` may repeat an incident of `open`: the same
    /// category (`Some(true)`), a similar one (`Some(false)`), or neither.
    pub fn alike(&self, new: &str, open: &str) -> Option<bool> {
        if new == open {
            return Some(true);
        }
        let similar =
            self.similar_categories.iter().any(|group| group.iter().any(|c| c == new) && group.iter().any(|c| c == open));
        similar.then_some(false)
    }
}

/// One mutual-aid agreement: while `to` (or an area it lies in) is in
/// emergency, its incidents may also be offered to people in `from`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutualAid {
    /// The area helped.
    pub to: AreaId,
    /// The areas that send help.
    pub from: Vec<AreaId>,
    /// The roles that may be sent; empty: everyone eligible in the
    /// incident's mode.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Who agreed to it (an office or an operator), for the record.
    pub approved_by: String,
}

fn mode_policy(offer_timeout_s: u64, parallel_offers: u32, location_interval_s: u32) -> ModePolicy {
    ModePolicy {
        offer_timeout_s,
        parallel_offers,
        location_interval_s,
        widen_after_s: WidenAfter { grid: 600, community: 900, street: 1200, district: 1200 },
        eligible_reserves: Vec::new(),
        max_travel_s: 2700,
        call_up: Vec::new(),
        checkin_deadline_s: 1800,
        // In normal times nobody need be on duty at night: no grid minimum.
        grid_minimum: 0,
        call_up_when_grid_low: false,
        auto_dispatch_reports: Vec::new(),
        assignment: Assignment::Batch,
        batch_window_ms: 2000,
        batch_max_incidents: 1000,
    }
}

impl Default for Policy {
    fn default() -> Self {
        let urgent_reports: Vec<String> = ["fire", "medical", "rescue"].map(String::from).to_vec();
        Policy {
            // Normal times: incidents rarely compete for the same people, and
            // a grid's few candidates leave a matching little to improve.
            normal: ModePolicy { assignment: Assignment::Greedy, ..mode_policy(300, 1, 180) },
            emergency_iv: ModePolicy {
                eligible_reserves: vec![Role::RegisteredMember],
                max_travel_s: 1800,
                grid_minimum: 1,
                ..mode_policy(180, 2, 60)
            },
            emergency_iii: ModePolicy {
                eligible_reserves: vec![Role::RegisteredMember],
                max_travel_s: 1500,
                grid_minimum: 2,
                auto_dispatch_reports: urgent_reports.clone(),
                ..mode_policy(120, 2, 30)
            },
            emergency_ii: ModePolicy {
                eligible_reserves: vec![Role::RegisteredMember, Role::SunkCadre],
                max_travel_s: 1200,
                call_up: vec![Role::SunkCadre],
                checkin_deadline_s: 1800,
                grid_minimum: 3,
                call_up_when_grid_low: true,
                auto_dispatch_reports: urgent_reports.clone(),
                ..mode_policy(90, 3, 15)
            },
            emergency_i: ModePolicy {
                eligible_reserves: vec![Role::RegisteredMember, Role::SunkCadre],
                max_travel_s: 900,
                call_up: Role::ALL.to_vec(),
                checkin_deadline_s: 900,
                grid_minimum: 3,
                call_up_when_grid_low: true,
                auto_dispatch_reports: urgent_reports,
                ..mode_policy(60, 3, 10)
            },
            location_stale_s: 600,
            waiting_retry_s: 15,
            workload_window_s: 4 * 3600,
            speeds: Speeds { walk_mps: 1.4, bike_mps: 4.0, car_mps: 8.0 },
            reserve_roles: vec![Role::RegisteredMember, Role::SunkCadre],
            staffing_check_s: 60,
            batch_spare_candidates: 8,
            workload_penalty_s: 60,
            mutual_aid: Vec::new(),
            ladder: None,
            duplicates: Duplicates::default(),
            safety: Safety::default(),
            rosters: Rosters::default(),
            shelters: ShelterPolicy::default(),
        }
    }
}

impl Policy {
    /// May a person of `role` be offered tasks in `mode`?
    pub fn eligible(&self, mode: Mode, role: Role) -> bool {
        !self.reserve_roles.contains(&role) || self.for_mode(mode).eligible_reserves.contains(&role)
    }

    pub fn for_mode(&self, mode: Mode) -> &ModePolicy {
        match mode {
            Mode::Normal => &self.normal,
            Mode::EmergencyIv => &self.emergency_iv,
            Mode::EmergencyIii => &self.emergency_iii,
            Mode::EmergencyIi => &self.emergency_ii,
            Mode::EmergencyI => &self.emergency_i,
        }
    }

    /// Seconds an incident waits at `level` before widening (normal mode).
    pub fn widen_after(&self, level: AreaLevel) -> u64 {
        let waits = &self.normal.widen_after_s;
        match level {
            AreaLevel::Building | AreaLevel::Grid => waits.grid,
            AreaLevel::Community => waits.community,
            AreaLevel::Street => waits.street,
            AreaLevel::District | AreaLevel::City => waits.district,
        }
    }

    /// Reads a TOML policy file over the defaults: any field left out keeps
    /// its default.
    pub fn from_toml(text: &str) -> Result<Policy, String> {
        let overrides: toml::Table =
            toml::from_str(text).map_err(|error| format!("the policy file is not valid TOML: {error}"))?;
        let mut merged = toml::Table::try_from(Policy::default()).map_err(|error| error.to_string())?;
        merge(&mut merged, overrides);
        let policy: Policy =
            toml::Value::Table(merged).try_into().map_err(|error| format!("the policy file has a bad field: {error}"))?;
        policy.validate()?;
        Ok(policy)
    }

    pub fn validate(&self) -> Result<(), String> {
        let modes = [
            ("normal", &self.normal),
            ("emergency_iv", &self.emergency_iv),
            ("emergency_iii", &self.emergency_iii),
            ("emergency_ii", &self.emergency_ii),
            ("emergency_i", &self.emergency_i),
        ];
        for (name, mode) in modes {
            if mode.offer_timeout_s == 0 || mode.offer_timeout_s > 3600 {
                return Err(format!("{name}.offer_timeout_s = {} is out of range; use 1..=3600 seconds", mode.offer_timeout_s));
            }
            if !(1..=10).contains(&mode.parallel_offers) {
                return Err(format!("{name}.parallel_offers = {} is out of range; use 1..=10", mode.parallel_offers));
            }
            if mode.location_interval_s == 0 {
                return Err(format!("{name}.location_interval_s must be at least 1 second"));
            }
            let waits = &mode.widen_after_s;
            if [waits.grid, waits.community, waits.street, waits.district].contains(&0) {
                return Err(format!("{name}.widen_after_s: every level needs a wait of at least 1 second"));
            }
            if mode.max_travel_s < 60 {
                return Err(format!("{name}.max_travel_s = {} is too short; allow at least 60 seconds", mode.max_travel_s));
            }
            if mode.checkin_deadline_s == 0 || mode.checkin_deadline_s > 24 * 3600 {
                return Err(format!(
                    "{name}.checkin_deadline_s = {} is out of range; use 1..=86400 seconds",
                    mode.checkin_deadline_s
                ));
            }
            if mode.batch_window_ms == 0 || mode.batch_window_ms > 60_000 {
                return Err(format!(
                    "{name}.batch_window_ms = {} is out of range; use 1..=60000 milliseconds",
                    mode.batch_window_ms
                ));
            }
            if !(1..=5000).contains(&mode.batch_max_incidents) {
                return Err(format!("{name}.batch_max_incidents = {} is out of range; use 1..=5000", mode.batch_max_incidents));
            }
        }
        if !(1..=100).contains(&self.shelters.alert_percent) {
            return Err(format!("shelters.alert_percent = {} is out of range; use 1..=100", self.shelters.alert_percent));
        }
        if self.batch_spare_candidates > 64 {
            return Err(format!("batch_spare_candidates = {} is out of range; use 0..=64", self.batch_spare_candidates));
        }
        if self.workload_penalty_s > 3600 {
            return Err(format!("workload_penalty_s = {} is out of range; use 0..=3600 seconds", self.workload_penalty_s));
        }
        if self.location_stale_s == 0 || self.waiting_retry_s == 0 {
            return Err("location_stale_s and waiting_retry_s must be at least 1 second".to_string());
        }
        for (index, aid) in self.mutual_aid.iter().enumerate() {
            if aid.from.is_empty() {
                return Err(format!("mutual_aid[{index}] (to {}): name the areas that send help in `from`", aid.to));
            }
            if aid.approved_by.trim().is_empty() {
                return Err(format!("mutual_aid[{index}] (to {}): say who approved it in `approved_by`", aid.to));
            }
        }
        if let Some(ladder) = &self.ladder {
            ladder.validate()?;
        }
        self.safety.interval_min.validate()?;
        if !(-14 * 60..=14 * 60).contains(&self.rosters.utc_offset_minutes) {
            return Err(format!(
                "rosters.utc_offset_minutes = {} is out of range; use -840..=840 (480 is China Standard Time)",
                self.rosters.utc_offset_minutes
            ));
        }
        if !(1..=10_000).contains(&self.duplicates.within_m) {
            return Err(format!("duplicates.within_m = {} is out of range; use 1..=10000 metres", self.duplicates.within_m));
        }
        if !(1..=7 * 24 * 60).contains(&self.duplicates.within_minutes) {
            return Err(format!(
                "duplicates.within_minutes = {} is out of range; use 1..=10080 minutes (a week)",
                self.duplicates.within_minutes
            ));
        }
        let speeds = [self.speeds.walk_mps, self.speeds.bike_mps, self.speeds.car_mps];
        if speeds.iter().any(|speed| !speed.is_finite() || *speed <= 0.0 || *speed > 50.0) {
            return Err("speeds must be between 0 and 50 metres per second".to_string());
        }
        Ok(())
    }
}

fn merge(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(override_table)) => merge(base_table, override_table),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_stricter_grades_are_faster() {
        let policy = Policy::default();
        policy.validate().expect("defaults valid");
        assert!(policy.emergency_i.offer_timeout_s < policy.emergency_iv.offer_timeout_s);
        assert!(policy.emergency_iv.offer_timeout_s < policy.normal.offer_timeout_s);
    }

    #[test]
    fn the_documented_policy_file_is_exactly_the_defaults() {
        let documented = Policy::from_toml(include_str!("../../../docs/policy.toml")).expect("docs/policy.toml is valid");
        assert_eq!(documented, Policy::default(), "docs/policy.toml and Policy::default() disagree");
    }

    #[test]
    fn reserves_are_eligible_only_in_the_grades_that_list_them() {
        let policy = Policy::default();
        assert!(!policy.eligible(Mode::Normal, Role::RegisteredMember));
        assert!(policy.eligible(Mode::EmergencyIv, Role::RegisteredMember));
        assert!(!policy.eligible(Mode::EmergencyIii, Role::SunkCadre));
        assert!(policy.eligible(Mode::EmergencyIi, Role::SunkCadre));
        assert!(policy.eligible(Mode::Normal, Role::Volunteer));
    }

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let policy =
            Policy::from_toml("[emergency_i]\noffer_timeout_s = 45\n[normal.widen_after_s]\ngrid = 60\n").expect("valid");
        assert_eq!(policy.emergency_i.offer_timeout_s, 45);
        assert_eq!(policy.emergency_i.parallel_offers, 3);
        assert_eq!(policy.normal.widen_after_s.grid, 60);
        assert_eq!(policy.normal.widen_after_s.street, 1200);
    }

    #[test]
    fn safety_intervals_are_read_per_grade_and_off_by_default() {
        assert_eq!(Policy::default().safety.interval_min.for_mode(Mode::EmergencyI), None, "off unless set");
        let policy = Policy::from_toml("[safety]\ninterval_min = { I = 10, II = 15 }\n").expect("valid");
        assert_eq!(policy.safety.interval_min.for_mode(Mode::EmergencyI), Some(10));
        assert_eq!(policy.safety.interval_min.for_mode(Mode::EmergencyIi), Some(15));
        assert_eq!(policy.safety.interval_min.for_mode(Mode::Normal), None);
        let error = Policy::from_toml("[safety]\ninterval_min = { I = 0 }\n").expect_err("zero minutes");
        assert!(error.contains("safety.interval_min.I"), "{error}");
        let error = Policy::from_toml("[safety]\ninterval_min = { V = 5 }\n").expect_err("no grade V");
        assert!(error.contains('V'), "{error}");
    }

    #[test]
    fn bad_files_name_the_field() {
        let error = Policy::from_toml("[normal]\noffer_timeout_s = 0\n").unwrap_err();
        assert!(error.contains("normal.offer_timeout_s"), "{error}");
        let error = Policy::from_toml("[normal]\nofer_timeout_s = 10\n").unwrap_err();
        assert!(error.contains("ofer_timeout_s"), "{error}");
        let error = Policy::from_toml("[normal]\noffer_timeout_s = \"soon\"\n").unwrap_err();
        assert!(error.contains("offer_timeout_s"), "{error}");
        let error = Policy::from_toml("[emergency_ii]\nassignment = \"hungarian\"\n").unwrap_err();
        assert!(error.contains("assignment") || error.contains("hungarian"), "{error}");
        let error = Policy::from_toml("[emergency_ii]\nbatch_window_ms = 0\n").unwrap_err();
        assert!(error.contains("emergency_ii.batch_window_ms"), "{error}");
    }

    #[test]
    fn a_ladder_is_read_per_grade_and_checked() {
        let text = "[[ladder.emergency_i]]\nchannel = \"sms\"\nafter_s = 0\nif_connected_after_s = 60\n\
                    [[ladder.emergency_i]]\nchannel = \"voice\"\nafter_s = 300\n";
        let policy = Policy::from_toml(text).expect("valid");
        let ladder = policy.ladder.expect("a ladder");
        assert_eq!(ladder.for_mode(Mode::EmergencyI).len(), 2);
        assert_eq!(ladder.for_mode(Mode::EmergencyI)[1].channel, NoticeChannel::Voice);
        assert_eq!(ladder.for_mode(Mode::EmergencyI)[0].if_connected_after_s, Some(60));
        assert!(ladder.for_mode(Mode::Normal).is_empty());
        assert!(Policy::default().ladder.is_none(), "no ladder: nobody is notified outside the app");
        let error = Policy::from_toml("[[ladder.normal]]\nchannel = \"fax\"\nafter_s = 0\n").unwrap_err();
        assert!(error.contains("fax"), "{error}");
        let error = Policy::from_toml("[[ladder.normal]]\nchannel = \"sms\"\nafter_s = 90000\n").unwrap_err();
        assert!(error.contains("ladder.normal[0]"), "{error}");
    }

    #[test]
    fn mutual_aid_is_read_from_the_policy_file_and_needs_its_approval() {
        let text = "[[mutual_aid]]\nto = \"d1\"\nfrom = [\"d2\"]\nroles = [\"volunteer\"]\napproved_by = \"city office\"\n";
        let policy = Policy::from_toml(text).expect("valid");
        assert_eq!(policy.mutual_aid.len(), 1);
        assert_eq!(policy.mutual_aid[0].from, vec![AreaId::new("d2")]);
        assert_eq!(policy.mutual_aid[0].roles, vec![Role::Volunteer]);
        let unapproved = Policy::from_toml("[[mutual_aid]]\nto = \"d1\"\nfrom = [\"d2\"]\napproved_by = \" \"\n");
        assert!(unapproved.is_err_and(|error| error.contains("approved_by")));
        let from_nowhere = Policy::from_toml("[[mutual_aid]]\nto = \"d1\"\nfrom = []\napproved_by = \"x\"\n");
        assert!(from_nowhere.is_err_and(|error| error.contains("from")));
    }
}
