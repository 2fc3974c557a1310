//! Names for the API's enums and times, shared by tables, JSON and the live
//! view. JSON uses the short snake_case names (`emergency_ii`, `off_duty`,
//! `grid_leader`); tables use the same, except modes, which read as
//! "emergency II (orange)".

use crate::roster_csv::{role_name, travel_mode_name};
use pingji_proto::v1 as pb;

/// Short snake_case name of a mode: `normal`, `emergency_iv` .. `emergency_i`.
pub fn mode_key(mode: i32) -> &'static str {
    match pb::Mode::try_from(mode) {
        Ok(pb::Mode::Normal) => "normal",
        Ok(pb::Mode::EmergencyIv) => "emergency_iv",
        Ok(pb::Mode::EmergencyIii) => "emergency_iii",
        Ok(pb::Mode::EmergencyIi) => "emergency_ii",
        Ok(pb::Mode::EmergencyI) => "emergency_i",
        Ok(pb::Mode::Unspecified) | Err(_) => "unspecified",
    }
}

/// A mode as people say it: "normal", "emergency II (orange)".
pub fn mode_text(mode: i32) -> &'static str {
    match pb::Mode::try_from(mode) {
        Ok(pb::Mode::Normal) => "normal",
        Ok(pb::Mode::EmergencyIv) => "emergency IV (blue)",
        Ok(pb::Mode::EmergencyIii) => "emergency III (yellow)",
        Ok(pb::Mode::EmergencyIi) => "emergency II (orange)",
        Ok(pb::Mode::EmergencyI) => "emergency I (red)",
        Ok(pb::Mode::Unspecified) | Err(_) => "unspecified",
    }
}

/// A grade as written on a plan: `IV`, `III`, `II`, `I` (`normal` for normal).
pub fn grade_name(mode: i32) -> &'static str {
    match pb::Mode::try_from(mode) {
        Ok(pb::Mode::Normal) => "normal",
        Ok(pb::Mode::EmergencyIv) => "IV",
        Ok(pb::Mode::EmergencyIii) => "III",
        Ok(pb::Mode::EmergencyIi) => "II",
        Ok(pb::Mode::EmergencyI) => "I",
        Ok(pb::Mode::Unspecified) | Err(_) => "unspecified",
    }
}

/// Whether a mode is one of the emergency grades.
pub fn is_emergency(mode: i32) -> bool {
    matches!(
        pb::Mode::try_from(mode),
        Ok(pb::Mode::EmergencyIv | pb::Mode::EmergencyIii | pb::Mode::EmergencyIi | pb::Mode::EmergencyI)
    )
}

/// How severe a mode is, 0 (normal) to 4 (grade I): the wire numbers already
/// grow with severity, which the dispatcher's "strictest wins" relies on too.
pub fn mode_severity(mode: i32) -> i32 {
    (mode - pb::Mode::Normal as i32).max(0)
}

/// Why a person was passed over, in a few words ("lacks a skill", "busy").
pub fn pass_over_reason_name(reason: i32) -> &'static str {
    match pb::PassOverReason::try_from(reason) {
        Ok(pb::PassOverReason::LacksSkill) => "lack a skill",
        Ok(pb::PassOverReason::Busy) => "busy",
        Ok(pb::PassOverReason::OffDuty) => "off duty",
        Ok(pb::PassOverReason::Reserve) => "reserve",
        Ok(pb::PassOverReason::LocationStale) => "location stale",
        Ok(pb::PassOverReason::BeyondTravelLimit) => "beyond the travel limit",
        Ok(pb::PassOverReason::Declined) => "declined",
        Ok(pb::PassOverReason::AlreadyAssigned) => "already assigned",
        Ok(pb::PassOverReason::OutsideArea) => "outside the area",
        Ok(pb::PassOverReason::HoldsOffer) => "answering another offer",
        Ok(pb::PassOverReason::NotConnected) => "not connected",
        Ok(pb::PassOverReason::OffShift) => "off shift",
        Ok(pb::PassOverReason::Unspecified) | Err(_) => "other",
    }
}

pub fn level_name(level: i32) -> &'static str {
    match pb::AreaLevel::try_from(level) {
        Ok(pb::AreaLevel::City) => "city",
        Ok(pb::AreaLevel::District) => "district",
        Ok(pb::AreaLevel::Street) => "street",
        Ok(pb::AreaLevel::Community) => "community",
        Ok(pb::AreaLevel::Grid) => "grid",
        Ok(pb::AreaLevel::Building) => "building",
        Ok(pb::AreaLevel::Unspecified) | Err(_) => "unspecified",
    }
}

pub fn agent_status_name(status: i32) -> &'static str {
    match pb::AgentStatus::try_from(status) {
        Ok(pb::AgentStatus::Available) => "available",
        Ok(pb::AgentStatus::Busy) => "busy",
        Ok(pb::AgentStatus::OffDuty) => "off_duty",
        Ok(pb::AgentStatus::Unspecified) | Err(_) => "unspecified",
    }
}

pub fn incident_status_name(status: i32) -> &'static str {
    match pb::IncidentStatus::try_from(status) {
        Ok(pb::IncidentStatus::Waiting) => "waiting",
        Ok(pb::IncidentStatus::Offered) => "offered",
        Ok(pb::IncidentStatus::Staffed) => "staffed",
        Ok(pb::IncidentStatus::Cancelled) => "cancelled",
        Ok(pb::IncidentStatus::Closed) => "closed",
        Ok(pb::IncidentStatus::Reported) => "reported",
        Ok(pb::IncidentStatus::Merged) => "merged",
        Ok(pb::IncidentStatus::Rejected) => "rejected",
        Ok(pb::IncidentStatus::Unspecified) | Err(_) => "unspecified",
    }
}

/// The role's name as in the roster CSV (`grid_leader`, `sunk_cadre`, ...).
pub fn role_key(role: i32) -> &'static str {
    role_name(pb::Role::try_from(role).unwrap_or(pb::Role::Unspecified))
}

/// An operator role's name: `viewer`, `dispatcher`, `commander`, `admin`.
pub fn operator_role_name(role: i32) -> &'static str {
    match pb::OperatorRole::try_from(role) {
        Ok(pb::OperatorRole::Viewer) => "viewer",
        Ok(pb::OperatorRole::Dispatcher) => "dispatcher",
        Ok(pb::OperatorRole::Commander) => "commander",
        Ok(pb::OperatorRole::Admin) => "admin",
        Ok(pb::OperatorRole::Unspecified) | Err(_) => "unspecified",
    }
}

/// The travel mode's name as in the roster CSV (`walk`, `bike`, `car`).
pub fn travel_mode_key(mode: i32) -> &'static str {
    match pb::TravelMode::try_from(mode) {
        // The dispatcher treats an unspecified travel mode as walking.
        Ok(pb::TravelMode::Unspecified) | Err(_) => "walk",
        Ok(mode) => travel_mode_name(mode),
    }
}

/// A time (milliseconds since the Unix epoch) as `2025-01-31 08:05:09Z`, in
/// UTC: the console has no time-zone database, and UTC is unambiguous.
/// Empty for 0, which the API uses for "not yet".
pub fn utc_time(at_ms: i64) -> String {
    if at_ms <= 0 {
        return String::new();
    }
    let seconds = at_ms.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Year, month, day of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`, proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// How long ago `at_ms` was, at `now_ms`: "45s", "12m", "3h05m", "2d04h".
pub fn age(at_ms: i64, now_ms: i64) -> String {
    if at_ms <= 0 {
        return String::new();
    }
    duration((now_ms - at_ms).max(0) / 1000)
}

/// A span of seconds, short: "45s", "12m", "3h05m", "2d04h".
pub fn duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d{:02}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

/// A distance: "240 m" below a kilometre, "11.4 km" above.
pub fn distance(metres: f64) -> String {
    if metres < 1000.0 { format!("{metres:.0} m") } else { format!("{:.1} km", metres / 1000.0) }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// A coordinate pair as "LON,LAT" with 6 decimals (about 0.1 m).
pub fn location_text(location: Option<&pb::Location>) -> String {
    location.map_or_else(String::new, |at| format!("{:.6},{:.6}", at.lon, at.lat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(utc_time(0), "");
        assert_eq!(utc_time(1), "1970-01-01 00:00:00Z");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(utc_time(1_735_689_599_000), "2024-12-31 23:59:59Z");
        assert_eq!(utc_time(1_746_057_600_000 + 3_723_000), "2025-05-01 01:02:03Z");
    }

    #[test]
    fn ages_are_short() {
        let now = 1_700_000_000_000;
        assert_eq!(age(now - 45_000, now), "45s");
        assert_eq!(age(now - 12 * 60_000, now), "12m");
        assert_eq!(age(now - (3 * 3600 + 5 * 60) * 1000, now), "3h05m");
        assert_eq!(age(now + 5_000, now), "0s");
        assert_eq!(age(0, now), "");
        assert_eq!(duration(8151), "2h15m");
        assert_eq!(distance(240.4), "240 m");
        assert_eq!(distance(11_412.0), "11.4 km");
    }

    #[test]
    fn modes_have_keys_text_and_severity() {
        assert_eq!(mode_key(pb::Mode::EmergencyIi as i32), "emergency_ii");
        assert_eq!(mode_text(pb::Mode::EmergencyI as i32), "emergency I (red)");
        assert_eq!(grade_name(pb::Mode::EmergencyIii as i32), "III");
        assert!(is_emergency(pb::Mode::EmergencyIv as i32));
        assert!(!is_emergency(pb::Mode::Normal as i32));
        assert!(mode_severity(pb::Mode::EmergencyI as i32) > mode_severity(pb::Mode::EmergencyIv as i32));
        assert_eq!(mode_severity(pb::Mode::Unspecified as i32), 0);
    }

    #[test]
    fn enum_names_match_the_roster_csv() {
        assert_eq!(role_key(pb::Role::SunkCadre as i32), "sunk_cadre");
        assert_eq!(travel_mode_key(pb::TravelMode::Bike as i32), "bike");
        assert_eq!(travel_mode_key(0), "walk");
        assert_eq!(agent_status_name(pb::AgentStatus::OffDuty as i32), "off_duty");
        assert_eq!(incident_status_name(pb::IncidentStatus::Staffed as i32), "staffed");
        assert_eq!(level_name(pb::AreaLevel::Grid as i32), "grid");
    }
}
