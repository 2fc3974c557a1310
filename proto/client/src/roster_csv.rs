//! Reading the roster (who can be dispatched) from a CSV file.
//!
//! Community staff keep their roster in spreadsheets, so the import format is
//! CSV: one person per row, matched to [`AgentSpec`] by column name. The
//! contract (columns, allowed values, defaults) is documented in
//! `scenarios/maps/README.md`; `scenarios/maps/sample-roster.csv` follows it.
//!
//! Every row is checked and every problem is reported with its line number,
//! so whoever fixes the file can fix all of it in one pass.
//! [`parse_roster_csv`] accepts a file only when it has no problem at all;
//! [`parse_roster_csv_lenient`] keeps the good rows and returns the bad ones
//! beside them (for an import that skips bad rows). Phone numbers and home
//! coordinates are personal data: error messages never quote them.

use std::collections::HashMap;
use std::fmt;

use csv::StringRecord;
use pingji_proto::v1::{AgentSpec, Location, Role, TravelMode};

use pingji_rules::check_id;
use pingji_rules::{check_name, check_phone, check_skills};

/// Columns every roster must have.
pub const REQUIRED_COLUMNS: [&str; 3] = ["id", "name", "role"];

/// Columns a roster may have; an absent column reads as empty in every row.
pub const OPTIONAL_COLUMNS: [&str; 7] = ["skills", "phone", "home_area_id", "travel_mode", "on_duty", "home_lon", "home_lat"];

/// Every role a roster row may name, in the order of the proto enum.
pub const ROLES: [Role; 10] = [
    Role::CommunityWorker,
    Role::GridLeader,
    Role::BuildingLeader,
    Role::UnitLeader,
    Role::RegisteredMember,
    Role::SunkCadre,
    Role::Volunteer,
    Role::NewEmployment,
    Role::PropertyStaff,
    Role::OwnersCommittee,
];

/// Every travel mode a roster row may name.
pub const TRAVEL_MODES: [TravelMode; 3] = [TravelMode::Walk, TravelMode::Bike, TravelMode::Car];

/// The UTF-8 byte-order mark some spreadsheet programs put at the start.
const BYTE_ORDER_MARK: &[u8] = "\u{feff}".as_bytes();

/// One problem in a roster file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RosterCsvError {
    /// 1-based line in the file; the header is line 1. For a row whose
    /// quoted fields span several lines, the line where the row starts.
    pub line: usize,
    /// What is wrong and what to do about it.
    pub message: String,
}

/// Every problem found in a roster file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterCsvErrors {
    pub errors: Vec<RosterCsvError>,
}

impl fmt::Display for RosterCsvErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.errors.len();
        let noun = if count == 1 { "problem" } else { "problems" };
        write!(formatter, "roster csv has {count} {noun}; fix them and import again:")?;
        for error in &self.errors {
            write!(formatter, "\n{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RosterCsvErrors {}

/// The role named as in the CSV (`grid_leader`, `sunk_cadre`, ...).
pub fn role_from_name(name: &str) -> Option<Role> {
    ROLES.into_iter().find(|role| role_name(*role) == name)
}

/// The CSV name of a role; `unspecified` (which no row may use) for
/// [`Role::Unspecified`].
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Unspecified => "unspecified",
        Role::CommunityWorker => "community_worker",
        Role::GridLeader => "grid_leader",
        Role::BuildingLeader => "building_leader",
        Role::UnitLeader => "unit_leader",
        Role::RegisteredMember => "registered_member",
        Role::SunkCadre => "sunk_cadre",
        Role::Volunteer => "volunteer",
        Role::NewEmployment => "new_employment",
        Role::PropertyStaff => "property_staff",
        Role::OwnersCommittee => "owners_committee",
    }
}

/// The travel mode named as in the CSV (`walk`, `bike`, `car`).
pub fn travel_mode_from_name(name: &str) -> Option<TravelMode> {
    TRAVEL_MODES.into_iter().find(|mode| travel_mode_name(*mode) == name)
}

/// The CSV name of a travel mode; `unspecified` (which no row may use) for
/// [`TravelMode::Unspecified`], which the dispatcher treats as walking.
pub fn travel_mode_name(mode: TravelMode) -> &'static str {
    match mode {
        TravelMode::Unspecified => "unspecified",
        TravelMode::Walk => "walk",
        TravelMode::Bike => "bike",
        TravelMode::Car => "car",
    }
}

/// Parses a whole roster file (its bytes, or text). Succeeds only when every
/// row is good; otherwise returns every problem found.
pub fn parse_roster_csv(data: &(impl AsRef<[u8]> + ?Sized)) -> Result<Vec<AgentSpec>, RosterCsvErrors> {
    let (agents, errors) = parse_roster_csv_lenient(data);
    if errors.is_empty() { Ok(agents) } else { Err(RosterCsvErrors { errors }) }
}

/// Parses a roster file, keeping the good rows: returns them with the
/// problems of the bad ones. A header too broken to read rows by (a missing
/// required column, a column named twice) yields no rows; an unknown column
/// is reported and ignored.
pub fn parse_roster_csv_lenient(data: &(impl AsRef<[u8]> + ?Sized)) -> (Vec<AgentSpec>, Vec<RosterCsvError>) {
    let (rows, errors) = parse_roster_csv_rows(data);
    (rows.into_iter().map(|(_, agent)| agent).collect(), errors)
}

/// As [`parse_roster_csv_lenient`], each good row with the line it starts
/// on, for checks made later against the dispatcher (home areas on its map).
/// The file is read as bytes so that a row that is not UTF-8 (a spreadsheet
/// saved as GBK) is one bad row, told with its line, not a failed file.
pub fn parse_roster_csv_rows(data: &(impl AsRef<[u8]> + ?Sized)) -> (Vec<(usize, AgentSpec)>, Vec<RosterCsvError>) {
    let data = data.as_ref();
    let data = data.strip_prefix(BYTE_ORDER_MARK).unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(data);
    let mut records = reader.records();

    let mut errors = Vec::new();
    let header = match records.next() {
        None => {
            errors.push(RosterCsvError {
                line: 1,
                message: format!("the file is empty; start it with a header row naming the columns, e.g. {}", all_column_names()),
            });
            return (Vec::new(), errors);
        }
        Some(Err(error)) => {
            errors.push(csv_error(&error, 1));
            return (Vec::new(), errors);
        }
        Some(Ok(header)) => header,
    };
    let header_line = line_of(&header, 1);
    let (columns, header_errors) = read_header(&header, header_line);
    errors.extend(header_errors);
    let Some(columns) = columns else {
        return (Vec::new(), errors);
    };

    let mut agents = Vec::new();
    let mut first_line_of_id: HashMap<String, usize> = HashMap::new();
    let mut last_line = header_line;
    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let has_position = error.position().is_some();
                errors.push(csv_error(&error, last_line + 1));
                // Without a position the reader cannot say where it is, so
                // going on could report nonsense.
                if has_position {
                    continue;
                }
                break;
            }
        };
        let line = line_of(&record, last_line + 1);
        last_line = line;
        // Spreadsheets often export trailing rows of empty cells.
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        match parse_row(&record, &columns, line, &mut first_line_of_id) {
            Ok(agent) => agents.push((line, agent)),
            Err(messages) => {
                errors.extend(messages.into_iter().map(|message| RosterCsvError { line, message }));
            }
        }
    }
    (agents, errors)
}

/// Where each known column is in the file.
struct Columns {
    count: usize,
    id: usize,
    name: usize,
    role: usize,
    skills: Option<usize>,
    phone: Option<usize>,
    home_area_id: Option<usize>,
    travel_mode: Option<usize>,
    on_duty: Option<usize>,
    home_lon: Option<usize>,
    home_lat: Option<usize>,
}

/// Reads the header. Returns the columns when rows can be read by them, and
/// every problem with the header.
fn read_header(header: &StringRecord, line: usize) -> (Option<Columns>, Vec<RosterCsvError>) {
    let mut errors = Vec::new();
    let mut fatal = false;
    let mut index_of: HashMap<&'static str, usize> = HashMap::new();
    for (index, raw_name) in header.iter().enumerate() {
        let name = raw_name.trim().to_lowercase();
        let known = REQUIRED_COLUMNS.iter().chain(OPTIONAL_COLUMNS.iter()).find(|column| **column == name);
        let Some(known) = known else {
            let message = if name.is_empty() {
                format!("column {} has no name in the header; name it or remove the empty column", index + 1)
            } else {
                format!("unknown column \"{}\"; rename it to one of {} or remove it", raw_name.trim(), all_column_names())
            };
            errors.push(RosterCsvError { line, message });
            continue;
        };
        if index_of.insert(known, index).is_some() {
            fatal = true;
            errors.push(RosterCsvError {
                line,
                message: format!("column \"{known}\" appears more than once in the header; keep only one"),
            });
        }
    }
    for required in REQUIRED_COLUMNS {
        if !index_of.contains_key(required) {
            fatal = true;
            errors.push(RosterCsvError {
                line,
                message: format!(
                    "missing required column \"{required}\"; the header must name {} (in any order)",
                    REQUIRED_COLUMNS.join(", ")
                ),
            });
        }
    }
    let home_lon = index_of.get("home_lon").copied();
    let home_lat = index_of.get("home_lat").copied();
    if home_lon.is_some() != home_lat.is_some() {
        fatal = true;
        let (present, absent) = if home_lon.is_some() { ("home_lon", "home_lat") } else { ("home_lat", "home_lon") };
        errors.push(RosterCsvError {
            line,
            message: format!("column \"{present}\" has no \"{absent}\" beside it; add \"{absent}\" or remove \"{present}\""),
        });
    }
    if fatal {
        return (None, errors);
    }
    let (Some(&id), Some(&name), Some(&role)) = (index_of.get("id"), index_of.get("name"), index_of.get("role")) else {
        debug_assert!(false, "required columns were checked above");
        return (None, errors);
    };
    let columns = Columns {
        count: header.len(),
        id,
        name,
        role,
        skills: index_of.get("skills").copied(),
        phone: index_of.get("phone").copied(),
        home_area_id: index_of.get("home_area_id").copied(),
        travel_mode: index_of.get("travel_mode").copied(),
        on_duty: index_of.get("on_duty").copied(),
        home_lon,
        home_lat,
    };
    (Some(columns), errors)
}

/// Checks one row; returns the person or every problem with the row.
fn parse_row(
    record: &StringRecord,
    columns: &Columns,
    line: usize,
    first_line_of_id: &mut HashMap<String, usize>,
) -> Result<AgentSpec, Vec<String>> {
    if record.len() != columns.count {
        return Err(vec![format!(
            "expected {} fields as in the header, found {}; check for a missing or extra comma, \
             and quote fields that contain commas",
            columns.count,
            record.len()
        )]);
    }
    let mut problems = Vec::new();

    // The limits are the engine's (`check_id`, `check_name`, `check_skills`,
    // `check_phone`), so a file takes the values UpsertAgent takes.
    let id = field(record, Some(columns.id));
    if let Err(problem) = check_id("id", id) {
        problems.push(problem);
    } else if let Some(first_line) = first_line_of_id.get(id) {
        problems.push(format!("id \"{id}\" is already used on line {first_line}; give every person a unique id"));
    } else {
        first_line_of_id.insert(id.to_owned(), line);
    }

    let name = field(record, Some(columns.name));
    if let Err(problem) = check_name("name", name) {
        problems.push(problem);
    }

    let role_text = field(record, Some(columns.role)).to_lowercase();
    let role = role_from_name(&role_text);
    if role.is_none() {
        let what = if role_text.is_empty() { "role is empty".to_owned() } else { format!("unknown role \"{role_text}\"") };
        problems.push(format!("{what}; use one of {}", all_role_names()));
    }

    let skills = match parse_skills(field(record, columns.skills)) {
        Ok(skills) => skills,
        Err(problem) => {
            problems.push(problem);
            Vec::new()
        }
    };

    let phone = field(record, columns.phone);
    if let Err(problem) = check_phone(phone) {
        problems.push(problem);
    }

    let travel_mode_text = field(record, columns.travel_mode).to_lowercase();
    let travel_mode = if travel_mode_text.is_empty() { Some(TravelMode::Walk) } else { travel_mode_from_name(&travel_mode_text) };
    if travel_mode.is_none() {
        problems.push(format!("unknown travel_mode \"{travel_mode_text}\"; use walk, bike or car, or leave it empty for walk"));
    }

    let on_duty_text = field(record, columns.on_duty).to_lowercase();
    let on_duty = match on_duty_text.as_str() {
        "" | "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    };
    if on_duty.is_none() {
        problems.push(format!(
            "on_duty \"{on_duty_text}\" is not a yes/no value; use true or false (yes/no and 1/0 also work), \
             or leave it empty for true"
        ));
    }

    let home = match parse_home(field(record, columns.home_lon), field(record, columns.home_lat)) {
        Ok(home) => home,
        Err(mut home_problems) => {
            problems.append(&mut home_problems);
            None
        }
    };

    let (Some(role), Some(travel_mode), Some(on_duty), true) = (role, travel_mode, on_duty, problems.is_empty()) else {
        debug_assert!(!problems.is_empty(), "every rejected value adds a problem");
        return Err(problems);
    };
    Ok(AgentSpec {
        id: id.to_owned(),
        name: name.to_owned(),
        role: role as i32,
        skills,
        phone: phone.to_owned(),
        home_area_id: field(record, columns.home_area_id).to_owned(),
        travel_mode: travel_mode as i32,
        on_duty,
        home,
    })
}

/// The value of a column in a row, trimmed; empty for an absent column.
fn field(record: &StringRecord, index: Option<usize>) -> &str {
    index.and_then(|index| record.get(index)).unwrap_or("").trim()
}

/// Splits `first_aid;driving` into trimmed, lowercase skills.
fn parse_skills(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let skills: Vec<String> = text.split(';').map(|item| item.trim().to_lowercase()).collect();
    if skills.iter().any(String::is_empty) {
        return Err("skills has an empty item; separate skills with a single ';' and leave no ';' at either end".to_owned());
    }
    check_skills(&skills)?;
    for (index, skill) in skills.iter().enumerate() {
        if skills[..index].contains(skill) {
            return Err(format!("skill \"{skill}\" is listed more than once; list each skill once"));
        }
    }
    Ok(skills)
}

/// Reads the optional home location: both coordinates or neither. Messages
/// do not quote the values: a home location is personal data.
fn parse_home(lon_text: &str, lat_text: &str) -> Result<Option<Location>, Vec<String>> {
    match (lon_text.is_empty(), lat_text.is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => {
            return Err(vec!["home_lon is given but home_lat is empty; give both or leave both empty".to_owned()]);
        }
        (true, false) => {
            return Err(vec!["home_lat is given but home_lon is empty; give both or leave both empty".to_owned()]);
        }
        (false, false) => {}
    }
    let mut problems = Vec::new();
    let lon = parse_degrees("home_lon", lon_text, 180.0, "120.15", &mut problems);
    let lat = parse_degrees("home_lat", lat_text, 90.0, "30.27", &mut problems);
    match (lon, lat) {
        (Some(lon), Some(lat)) if problems.is_empty() => Ok(Some(Location::wgs84(lon, lat))),
        _ => Err(problems),
    }
}

fn parse_degrees(column: &str, text: &str, limit: f64, example: &str, problems: &mut Vec<String>) -> Option<f64> {
    let Ok(value) = text.parse::<f64>() else {
        problems.push(format!("{column} is not a number; write decimal degrees such as {example}"));
        return None;
    };
    if !value.is_finite() {
        problems.push(format!("{column} is not a finite number; write decimal degrees such as {example}"));
        return None;
    }
    if !(-limit..=limit).contains(&value) {
        problems
            .push(format!("{column} is out of range (-{limit} to {limit}); check that home_lon and home_lat are not swapped"));
        return None;
    }
    Some(value)
}

/// The line a record starts on, or `fallback` when the reader does not say.
fn line_of(record: &StringRecord, fallback: usize) -> usize {
    record.position().and_then(|position| usize::try_from(position.line()).ok()).unwrap_or(fallback)
}

fn csv_error(error: &csv::Error, fallback_line: usize) -> RosterCsvError {
    let line = error.position().and_then(|position| usize::try_from(position.line()).ok()).unwrap_or(fallback_line);
    let message = match error.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!(
            "this row is not UTF-8 text (field {}); save the file as UTF-8 (in Excel: \"CSV UTF-8\") and import again",
            err.field() + 1
        ),
        _ => format!("could not read this row as csv ({error}); check its quotes and commas"),
    };
    RosterCsvError { line, message }
}

fn all_role_names() -> String {
    ROLES.map(role_name).join(", ")
}

fn all_column_names() -> String {
    let names: Vec<&str> = REQUIRED_COLUMNS.iter().chain(OPTIONAL_COLUMNS.iter()).copied().collect();
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "id,name,role,skills,phone,home_area_id,travel_mode,on_duty,home_lon,home_lat";

    fn sample_roster() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/maps/sample-roster.csv");
        std::fs::read_to_string(path).expect("scenarios/maps/sample-roster.csv is readable")
    }

    /// A file of the standard header and the given rows.
    fn roster(rows: &[&str]) -> String {
        let mut text = String::from(HEADER);
        for row in rows {
            text.push('\n');
            text.push_str(row);
        }
        text.push('\n');
        text
    }

    fn errors_of(text: &str) -> Vec<RosterCsvError> {
        match parse_roster_csv(text) {
            Ok(agents) => panic!("expected errors, parsed {} agents", agents.len()),
            Err(errors) => errors.errors,
        }
    }

    /// Asserts that the only problem is one on `line` whose message contains
    /// every one of `fragments`.
    fn assert_single_error(text: &str, line: usize, fragments: &[&str]) {
        let errors = errors_of(text);
        assert_eq!(errors.len(), 1, "expected one error, got {errors:?}");
        assert_eq!(errors[0].line, line, "wrong line in {errors:?}");
        for fragment in fragments {
            assert!(errors[0].message.contains(fragment), "message {:?} lacks {fragment:?}", errors[0].message);
        }
    }

    const GOOD: &str = "p1,王芳,grid_leader,first_aid;driving,13912345678,d1-s1-c1-g1,bike,false,120.1,30.2";

    #[test]
    fn sample_roster_parses_fully() {
        let text = sample_roster();
        let agents = match parse_roster_csv(&text) {
            Ok(agents) => agents,
            Err(errors) => panic!("sample roster has problems:\n{errors}"),
        };
        let rows = text.lines().skip(1).filter(|line| !line.is_empty()).count();
        assert_eq!(agents.len(), rows);
        assert!(agents.len() >= 300, "the sample has about 320 people");
        for agent in &agents {
            assert_ne!(agent.role, Role::Unspecified as i32, "{}", agent.id);
            assert_ne!(agent.travel_mode, TravelMode::Unspecified as i32, "{}", agent.id);
            assert!(agent.home_area_id.starts_with('d'), "{}", agent.id);
            assert!(agent.home.is_some(), "{}", agent.id);
            assert!(agent.skills.len() <= 3, "{}", agent.id);
        }
        let grid_leaders = agents.iter().filter(|agent| agent.role == Role::GridLeader as i32).count();
        assert_eq!(grid_leaders, 32, "one grid leader per grid");
        assert!(agents.iter().any(|agent| !agent.on_duty));
        assert!(agents.iter().any(|agent| agent.skills.iter().any(|skill| skill == "first_aid")));
    }

    #[test]
    fn a_good_row_becomes_an_agent_spec() {
        let agents = parse_roster_csv(&roster(&[GOOD])).expect("the row is good");
        let expected = AgentSpec {
            id: "p1".to_owned(),
            name: "王芳".to_owned(),
            role: Role::GridLeader as i32,
            skills: vec!["first_aid".to_owned(), "driving".to_owned()],
            phone: "13912345678".to_owned(),
            home_area_id: "d1-s1-c1-g1".to_owned(),
            travel_mode: TravelMode::Bike as i32,
            on_duty: false,
            home: Some(Location::wgs84(120.1, 30.2)),
        };
        assert_eq!(agents, vec![expected]);
    }

    #[test]
    fn only_id_name_and_role_are_required_and_defaults_apply() {
        let agents = parse_roster_csv("role,name,id\nvolunteer,欧阳娜娜,v7\n").expect("the row is good");
        assert_eq!(agents.len(), 1);
        let agent = &agents[0];
        assert_eq!(agent.id, "v7");
        assert_eq!(agent.name, "欧阳娜娜");
        assert_eq!(agent.role, Role::Volunteer as i32);
        assert_eq!(agent.travel_mode, TravelMode::Walk as i32);
        assert!(agent.on_duty);
        assert!(agent.skills.is_empty());
        assert_eq!(agent.phone, "");
        assert_eq!(agent.home, None);
    }

    #[test]
    fn empty_optional_fields_take_their_defaults() {
        let agents = parse_roster_csv(&roster(&["p1,李强,volunteer,,,,,,,"])).expect("the row is good");
        assert_eq!(agents[0].travel_mode, TravelMode::Walk as i32);
        assert!(agents[0].on_duty);
        assert_eq!(agents[0].home, None);
    }

    #[test]
    fn columns_may_come_in_any_order_and_any_case() {
        let text = " Home_Lat ,ON_DUTY,travel_mode,home_area_id,phone,skills,Role,name,id,home_lon\n\
                    30.2,no,car,g1,+86 139-1234-5678,Rescue ; First_Aid,sunk_cadre,赵建国,p9,120.1\n";
        let agents = parse_roster_csv(text).expect("the row is good");
        assert_eq!(agents[0].id, "p9");
        assert_eq!(agents[0].name, "赵建国");
        assert_eq!(agents[0].role, Role::SunkCadre as i32);
        assert_eq!(agents[0].skills, vec!["rescue".to_owned(), "first_aid".to_owned()]);
        assert_eq!(agents[0].phone, "+86 139-1234-5678");
        assert_eq!(agents[0].travel_mode, TravelMode::Car as i32);
        assert!(!agents[0].on_duty);
        assert_eq!(agents[0].home, Some(Location::wgs84(120.1, 30.2)));
    }

    #[test]
    fn byte_order_mark_is_tolerated() {
        let text = format!("\u{feff}{}", roster(&[GOOD]));
        let agents = parse_roster_csv(&text).expect("a bom is not an error");
        assert_eq!(agents[0].id, "p1");
    }

    #[test]
    fn chinese_text_round_trips_including_quoted_commas() {
        let agents = parse_roster_csv(&roster(&["p1,\"司马,相如\",volunteer,,,,,,,"])).expect("the row is good");
        assert_eq!(agents[0].name, "司马,相如");
    }

    #[test]
    fn on_duty_accepts_yes_no_words_and_digits() {
        let rows = [
            "a,甲,volunteer,,,,,true,,",
            "b,乙,volunteer,,,,,YES,,",
            "c,丙,volunteer,,,,,1,,",
            "d,丁,volunteer,,,,,False,,",
            "e,戊,volunteer,,,,,no,,",
            "f,己,volunteer,,,,,0,,",
        ];
        let agents = parse_roster_csv(&roster(&rows)).expect("all rows are good");
        let on_duty: Vec<bool> = agents.iter().map(|agent| agent.on_duty).collect();
        assert_eq!(on_duty, vec![true, true, true, false, false, false]);
    }

    #[test]
    fn missing_required_column_is_named() {
        assert_single_error("id,name\np1,王芳\n", 1, &["missing required column \"role\""]);
    }

    #[test]
    fn every_missing_required_column_is_reported() {
        let errors = errors_of("skills\nfirst_aid\n");
        let messages: Vec<&str> = errors.iter().map(|error| error.message.as_str()).collect();
        assert_eq!(errors.len(), 3, "{messages:?}");
        assert!(errors.iter().all(|error| error.line == 1));
        for column in REQUIRED_COLUMNS {
            assert!(
                messages.iter().any(|message| message.contains(&format!("\"{column}\""))),
                "{column} not named in {messages:?}"
            );
        }
    }

    #[test]
    fn column_named_twice_is_an_error() {
        assert_single_error("id,name,role,id\np1,王芳,volunteer,p2\n", 1, &["\"id\"", "more than once"]);
    }

    #[test]
    fn lone_coordinate_column_is_an_error() {
        assert_single_error("id,name,role,home_lon\np1,王芳,volunteer,120.1\n", 1, &["home_lat"]);
    }

    #[test]
    fn unknown_column_is_reported_but_lenient_mode_reads_the_rows() {
        let text = "id,name,role,travelmode\np1,王芳,volunteer,car\n";
        assert_single_error(text, 1, &["unknown column \"travelmode\"", "travel_mode"]);
        let (agents, errors) = parse_roster_csv_lenient(text);
        assert_eq!(agents.len(), 1);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn a_row_that_is_not_utf8_is_one_bad_row_with_its_line() {
        let mut data = roster(&[GOOD]).into_bytes();
        data.extend_from_slice(b"p2,\xcd\xf5\xb7\xbc,volunteer,,,,,,,\n");
        data.extend_from_slice("p3,李强,volunteer,,,,,,,\n".as_bytes());
        let (rows, errors) = parse_roster_csv_rows(&data);
        let lines: Vec<(usize, &str)> = rows.iter().map(|(line, agent)| (*line, agent.id.as_str())).collect();
        assert_eq!(lines, [(2, "p1"), (4, "p3")]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 3);
        assert!(errors[0].message.starts_with("this row is not UTF-8 text (field 2); save the file as UTF-8"), "{errors:?}");
    }

    #[test]
    fn empty_file_is_an_error() {
        assert_single_error("", 1, &["empty", "header"]);
        assert_single_error("\u{feff}", 1, &["empty"]);
    }

    #[test]
    fn header_only_is_an_empty_roster() {
        assert_eq!(parse_roster_csv(&roster(&[])), Ok(Vec::new()));
    }

    #[test]
    fn empty_id_is_an_error() {
        assert_single_error(&roster(&[GOOD, ",李强,volunteer,,,,,,,"]), 3, &["id is empty"]);
    }

    #[test]
    fn id_with_whitespace_is_an_error() {
        assert_single_error(&roster(&[GOOD, "p 2,李强,volunteer,,,,,,,"]), 3, &["\"p 2\"", "which ids may not have"]);
    }

    #[test]
    fn ids_names_and_skills_have_the_engines_limits() {
        let long_id = "p".repeat(65);
        assert_single_error(&roster(&[&format!("{long_id},李强,volunteer,,,,,,,")]), 2, &["id", "at most 64 characters"]);
        assert_single_error(&roster(&["p/2,李强,volunteer,,,,,,,"]), 2, &["id \"p/2\"", "A-Z"]);
        let long_name = "王".repeat(101);
        assert_single_error(&roster(&[&format!("p2,{long_name},volunteer,,,,,,,")]), 2, &["name", "at most 100 characters"]);
        assert_single_error(&roster(&["p2,李\u{7}强,volunteer,,,,,,,"]), 2, &["name has a control character"]);
        let long_skill = "a".repeat(33);
        assert_single_error(&roster(&[&format!("p2,李强,volunteer,{long_skill},,,,,,")]), 2, &["skill", "at most 32 characters"]);
        assert_single_error(&roster(&["p2,李强,volunteer,first aid,,,,,,"]), 2, &["skill \"first aid\"", "a-z"]);
        let many: Vec<String> = (0..10_000).map(|n| format!("s{n}")).collect();
        assert_single_error(&roster(&[&format!("p2,李强,volunteer,{},,,,,,", many.join(";"))]), 2, &["10000 skills"]);
    }

    #[test]
    fn duplicate_id_names_the_first_line() {
        let text = roster(&[GOOD, "p2,李强,volunteer,,,,,,,", "p1,张伟,volunteer,,,,,,,"]);
        assert_single_error(&text, 4, &["\"p1\"", "already used on line 2"]);
    }

    #[test]
    fn empty_name_is_an_error() {
        assert_single_error(&roster(&["p1,  ,volunteer,,,,,,,"]), 2, &["name is empty"]);
    }

    #[test]
    fn unknown_role_lists_the_allowed_values() {
        let errors = errors_of(&roster(&[GOOD, "p2,李强,captain,,,,,,,"]));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 3);
        assert!(errors[0].message.contains("unknown role \"captain\""));
        for role in ROLES {
            assert!(errors[0].message.contains(role_name(role)), "{}", errors[0].message);
        }
        assert_single_error(&roster(&["p2,李强,,,,,,,,"]), 2, &["role is empty", "grid_leader"]);
    }

    #[test]
    fn empty_skill_item_is_an_error() {
        assert_single_error(&roster(&["p2,李强,volunteer,first_aid;;rescue,,,,,,"]), 2, &["empty item"]);
        assert_single_error(&roster(&["p2,李强,volunteer,first_aid;,,,,,,"]), 2, &["empty item"]);
    }

    #[test]
    fn duplicate_skill_is_an_error_after_normalising() {
        assert_single_error(&roster(&["p2,李强,volunteer,first_aid; First_Aid ,,,,,,"]), 2, &["\"first_aid\"", "more than once"]);
    }

    #[test]
    fn unknown_travel_mode_is_an_error() {
        assert_single_error(&roster(&["p2,李强,volunteer,,,,plane,,,"]), 2, &["\"plane\"", "walk, bike or car"]);
    }

    #[test]
    fn bad_on_duty_is_an_error() {
        assert_single_error(&roster(&["p2,李强,volunteer,,,,,maybe,,"]), 2, &["\"maybe\"", "true or false"]);
    }

    #[test]
    fn bad_phone_is_an_error_and_is_not_quoted() {
        let text = roster(&["p2,李强,volunteer,,139-ABC-0000,,,,,"]);
        assert_single_error(&text, 2, &["phone is not a phone number"]);
        assert!(!errors_of(&text)[0].message.contains("ABC"));
        assert_single_error(&roster(&["p2,李强,volunteer,,+-,,,,,"]), 2, &["phone"]);
    }

    #[test]
    fn only_one_coordinate_is_an_error() {
        assert_single_error(&roster(&["p2,李强,volunteer,,,,,,120.1,"]), 2, &["home_lat is empty", "both"]);
        assert_single_error(&roster(&["p2,李强,volunteer,,,,,,,30.2"]), 2, &["home_lon is empty", "both"]);
    }

    #[test]
    fn coordinates_must_be_numbers_in_range() {
        assert_single_error(&roster(&["p2,李强,volunteer,,,,,,east,30.2"]), 2, &["home_lon is not a number"]);
        assert_single_error(&roster(&["p2,李强,volunteer,,,,,,120.1,NaN"]), 2, &["home_lat is not a finite number"]);
        assert_single_error(&roster(&["p2,李强,volunteer,,,,,,180.5,30.2"]), 2, &["home_lon is out of range"]);
        assert_single_error(&roster(&["p2,李强,volunteer,,,,,,30.2,120.1"]), 2, &["home_lat is out of range", "swapped"]);
        assert!(parse_roster_csv(&roster(&["p2,李强,volunteer,,,,,,-180,90"])).is_ok());
    }

    #[test]
    fn wrong_number_of_fields_is_an_error() {
        assert_single_error(&roster(&[GOOD, "p2,李强,volunteer"]), 3, &["expected 10 fields", "found 3"]);
    }

    #[test]
    fn rows_of_empty_cells_are_skipped() {
        let agents = parse_roster_csv(&roster(&[GOOD, ",,,,,,,,,", "", "p2,李强,volunteer,,,,,,,"])).expect("good");
        assert_eq!(agents.len(), 2);
    }

    #[test]
    fn every_problem_of_every_row_is_reported_with_its_line() {
        let text = roster(&[
            GOOD,
            "p2,,captain,,,,,,,",                 // line 3: name, role
            "p3,李强,volunteer,,,,,,,",           // line 4: good
            "p1,张伟,volunteer,,,,jet,,,",        // line 5: duplicate id, travel mode
            "\"p4\",\"王\n芳\",volunteer,,,,,,,", // line 6-7: a line break in the name, told on line 6
            "p5,赵六,volunteer,,,,,,,91",         // line 8: lat without lon
        ]);
        let errors = errors_of(&text);
        let lines: Vec<usize> = errors.iter().map(|error| error.line).collect();
        assert_eq!(lines, vec![3, 3, 5, 5, 6, 8], "{errors:?}");
        let display = RosterCsvErrors { errors }.to_string();
        assert!(display.starts_with("roster csv has 6 problems"), "{display}");
        assert!(display.contains("\nline 6: name has a control character ('\\n')"), "{display}");
        assert!(display.contains("\nline 3: name is empty"), "{display}");
        assert!(display.contains("\nline 5: id \"p1\" is already used on line 2"), "{display}");
        assert!(display.contains("\nline 8: home_lat is given"), "{display}");
    }

    #[test]
    fn lenient_mode_returns_good_rows_and_bad_rows() {
        let text = roster(&[GOOD, "p2,李强,captain,,,,,,,", "p3,张伟,volunteer,,,,,,,", "p3,张伟,volunteer,,,,,,,"]);
        let (agents, errors) = parse_roster_csv_lenient(&text);
        let ids: Vec<&str> = agents.iter().map(|agent| agent.id.as_str()).collect();
        assert_eq!(ids, vec!["p1", "p3"]);
        let lines: Vec<usize> = errors.iter().map(|error| error.line).collect();
        assert_eq!(lines, vec![3, 5]);
    }

    #[test]
    fn lenient_mode_reads_no_rows_past_a_broken_header() {
        let (agents, errors) = parse_roster_csv_lenient("id,name\np1,王芳\n");
        assert!(agents.is_empty());
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn role_and_travel_mode_names_round_trip() {
        for role in ROLES {
            assert_eq!(role_from_name(role_name(role)), Some(role));
        }
        assert_eq!(role_from_name("unspecified"), None);
        assert_eq!(role_from_name("GRID_LEADER"), None);
        for mode in TRAVEL_MODES {
            assert_eq!(travel_mode_from_name(travel_mode_name(mode)), Some(mode));
        }
        assert_eq!(travel_mode_from_name("unspecified"), None);
    }
}
