//! Where the person is: a fixed point (`--at lon,lat`) or a track file
//! replayed at its own pace.
//!
//! Track files:
//! - CSV with a header, `lon,lat` or `lon,lat,seconds_offset`. Without
//!   offsets the points are [`DEFAULT_STEP`] apart. Blank lines and lines
//!   starting with `#` are skipped.
//! - GPX: every `<trkpt lat=".." lon="..">`, in order, with its optional
//!   `<time>` (RFC 3339). Either every point has a time or none has.
//!
//! Errors name the line. The GPX reader is a small scanner for the
//! elements above, not a full XML parser: comments are skipped, CDATA and
//! entities in coordinates are not supported.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::event::Location;

/// The time between points of a track without times.
pub const DEFAULT_STEP: Duration = Duration::from_secs(5);

/// One point of a track and when it is reached, from the track's start.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackPoint {
    pub location: Location,
    pub offset: Duration,
}

/// A non-empty list of points in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    points: Vec<TrackPoint>,
}

/// A track file that cannot be used, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|line| format!("line {line}: ")).unwrap_or_default())]
pub struct TrackError {
    /// 1-based; None when the problem is the file as a whole.
    pub line: Option<usize>,
    pub message: String,
}

fn error_at(line: usize, message: impl Into<String>) -> TrackError {
    TrackError { line: Some(line), message: message.into() }
}

impl Track {
    /// A person standing still at `location`.
    pub fn fixed(location: Location) -> Track {
        Track { points: vec![TrackPoint { location, offset: Duration::ZERO }] }
    }

    pub fn points(&self) -> &[TrackPoint] {
        &self.points
    }

    /// Reads a track file: GPX when it ends in `.gpx` or starts with `<`, CSV otherwise.
    pub fn load(path: &Path) -> Result<Track, TrackError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| TrackError { line: None, message: format!("cannot read {}: {error}", path.display()) })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let is_gpx =
            path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("gpx")) || text.trim_start().starts_with('<');
        if is_gpx { parse_gpx(text) } else { parse_csv(text) }
    }
}

/// Parses `lon,lat` as given to `--at`.
pub fn parse_point(text: &str) -> Result<Location, String> {
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    let [lon, lat] = fields.as_slice() else {
        return Err(format!("{text:?} is not lon,lat (for example 120.10,30.25)"));
    };
    checked_location(lon, lat)
}

fn checked_location(lon: &str, lat: &str) -> Result<Location, String> {
    let lon: f64 = lon.parse().map_err(|_| format!("longitude {lon:?} is not a number"))?;
    let lat: f64 = lat.parse().map_err(|_| format!("latitude {lat:?} is not a number"))?;
    if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        return Err(format!("longitude {lon} is out of range; use -180 to 180 degrees"));
    }
    if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
        return Err(format!("latitude {lat} is out of range; use -90 to 90 degrees"));
    }
    Ok(Location::new(lon, lat))
}

/// Parses a CSV track (see the module documentation).
pub fn parse_csv(text: &str) -> Result<Track, TrackError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
    let Some((header_line, header)) = lines.next() else {
        return Err(TrackError {
            line: None,
            message: "the track is empty; give a header lon,lat then one point per line".into(),
        });
    };
    let columns: Vec<String> = header.split(',').map(|name| name.trim().trim_matches('"').to_lowercase()).collect();
    let timed = match columns.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["lon", "lat"] => false,
        ["lon", "lat", "seconds_offset"] => true,
        _ => {
            return Err(error_at(header_line, format!("the header is {header:?}; it must be lon,lat or lon,lat,seconds_offset")));
        }
    };
    let mut points: Vec<TrackPoint> = Vec::new();
    for (line_number, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != columns.len() {
            return Err(error_at(line_number, format!("{} fields where the header has {}", fields.len(), columns.len())));
        }
        let location = checked_location(fields[0], fields[1]).map_err(|message| error_at(line_number, message))?;
        let offset = if timed {
            let seconds: f64 = fields[2]
                .parse()
                .map_err(|_| error_at(line_number, format!("seconds_offset {:?} is not a number", fields[2])))?;
            if !seconds.is_finite() || !(0.0..=1.0e9).contains(&seconds) {
                return Err(error_at(line_number, format!("seconds_offset {seconds} is out of range; use 0 or more")));
            }
            Duration::from_secs_f64(seconds)
        } else {
            DEFAULT_STEP.saturating_mul(points.len() as u32)
        };
        push_in_order(&mut points, TrackPoint { location, offset }, line_number)?;
    }
    if points.is_empty() {
        return Err(TrackError { line: None, message: "the track has a header but no points".into() });
    }
    Ok(Track { points })
}

fn push_in_order(points: &mut Vec<TrackPoint>, point: TrackPoint, line: usize) -> Result<(), TrackError> {
    if let Some(previous) = points.last()
        && point.offset < previous.offset
    {
        return Err(error_at(
            line,
            format!(
                "this point is at {:.1} s, before the previous one at {:.1} s; times must not go back",
                point.offset.as_secs_f64(),
                previous.offset.as_secs_f64()
            ),
        ));
    }
    points.push(point);
    Ok(())
}

/// Parses a GPX track (see the module documentation).
pub fn parse_gpx(text: &str) -> Result<Track, TrackError> {
    let mut lines = LineCounter { text, position: 0, line: 1 };
    let mut points: Vec<TrackPoint> = Vec::new();
    // Seconds since the epoch of each point, while reading.
    let mut times: Vec<Option<f64>> = Vec::new();
    let mut position = 0;
    while let Some(found) = text[position..].find('<') {
        let start = position + found;
        let rest = &text[start..];
        if rest.starts_with("<!--") {
            let Some(end) = rest.find("-->") else {
                return Err(error_at(lines.at(start), "a comment is never closed"));
            };
            position = start + end + 3;
            continue;
        }
        let is_trkpt = rest
            .strip_prefix("<trkpt")
            .is_some_and(|after| after.starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/'));
        if !is_trkpt {
            position = start + 1;
            continue;
        }
        let line = lines.at(start);
        let Some(tag_end) = rest.find('>') else {
            return Err(error_at(line, "a <trkpt> tag is never closed"));
        };
        let tag = &rest[..tag_end];
        let self_closing = tag.ends_with('/');
        let lat = attribute(tag, "lat").ok_or_else(|| error_at(line, "this <trkpt> has no lat attribute"))?;
        let lon = attribute(tag, "lon").ok_or_else(|| error_at(line, "this <trkpt> has no lon attribute"))?;
        let location = checked_location(lon, lat).map_err(|message| error_at(line, message))?;
        let mut time = None;
        position = start + tag_end + 1;
        if !self_closing {
            let Some(close) = text[position..].find("</trkpt>") else {
                return Err(error_at(line, "this <trkpt> is never closed with </trkpt>"));
            };
            let body = &text[position..position + close];
            if let Some(time_start) = body.find("<time>") {
                let time_line = lines.at(position + time_start);
                let value_start = time_start + "<time>".len();
                let Some(time_len) = body[value_start..].find("</time>") else {
                    return Err(error_at(time_line, "a <time> is never closed with </time>"));
                };
                let value = body[value_start..value_start + time_len].trim();
                time = Some(parse_rfc3339(value).map_err(|message| error_at(time_line, message))?);
            }
            position += close + "</trkpt>".len();
        }
        if let Some(first) = times.first()
            && first.is_some() != time.is_some()
        {
            return Err(error_at(line, "some points have a <time> and some do not; give every point a time or none"));
        }
        let offset = match (time, times.first().copied().flatten()) {
            (Some(seconds), Some(first)) if seconds < first => {
                return Err(error_at(line, "this point's time is before the first point's; times must not go back"));
            }
            (Some(seconds), Some(first)) => Duration::from_secs_f64(seconds - first),
            (Some(_), None) => Duration::ZERO,
            (None, _) => DEFAULT_STEP.saturating_mul(points.len() as u32),
        };
        times.push(time);
        push_in_order(&mut points, TrackPoint { location, offset }, line)?;
    }
    if points.is_empty() {
        return Err(TrackError { line: None, message: "the GPX file has no <trkpt> points".into() });
    }
    Ok(Track { points })
}

/// Line numbers of byte positions, counted incrementally: the scanner asks
/// in increasing order, so a large file is read once, not once per point.
struct LineCounter<'a> {
    text: &'a str,
    position: usize,
    line: usize,
}

impl LineCounter<'_> {
    fn at(&mut self, position: usize) -> usize {
        if position < self.position {
            self.position = 0;
            self.line = 1;
        }
        self.line += self.text[self.position..position].matches('\n').count();
        self.position = position;
        self.line
    }
}

/// The value of `name="..."` (or single quotes) in a tag.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut search = 0;
    while let Some(found) = tag[search..].find(name) {
        let at = search + found;
        search = at + name.len();
        let before_ok = tag[..at].ends_with(|c: char| c.is_whitespace());
        let after = tag[at + name.len()..].trim_start();
        let Some(after_equals) = after.strip_prefix('=') else {
            continue;
        };
        if !before_ok {
            continue;
        }
        let value = after_equals.trim_start();
        let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let inner = &value[1..];
        let end = inner.find(quote)?;
        return Some(inner[..end].trim());
    }
    None
}

/// Seconds since the Unix epoch of an RFC 3339 time such as
/// `2024-05-01T08:30:05Z` or `2024-05-01T16:30:05.5+08:00` (no zone: UTC).
pub fn parse_rfc3339(text: &str) -> Result<f64, String> {
    let invalid = || format!("time {text:?} is not like 2024-05-01T08:30:05Z");
    let bytes = text.as_bytes();
    if bytes.len() < 19
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return Err(invalid());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = text.get(range).ok_or_else(invalid)?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        part.parse::<i64>().map_err(|_| invalid())
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(invalid());
    }
    let mut rest = &text[19..];
    let mut fraction = 0.0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        fraction = format!("0.{}", &after_dot[..digits]).parse::<f64>().map_err(|_| invalid())?;
        rest = &after_dot[digits..];
    }
    let zone_seconds = match rest {
        "" | "Z" | "z" => 0,
        zone if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) && zone.as_bytes()[3] == b':' => {
            let hours = number_in(zone, 1..3).ok_or_else(invalid)?;
            let minutes = number_in(zone, 4..6).ok_or_else(invalid)?;
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return Err(invalid()),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - zone_seconds;
    Ok(seconds as f64 + fraction)
}

fn number_in(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = text.get(range)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Replays a track in real time (times divided by `speed`).
#[derive(Clone, Debug)]
pub struct TrackPlayer {
    track: Track,
    speed: f64,
    started: Instant,
    /// The next point not yet handed out.
    next: usize,
}

impl TrackPlayer {
    /// `speed` multiplies the track's own pace (2.0 plays twice as fast).
    pub fn new(track: Track, speed: f64, started: Instant) -> TrackPlayer {
        let speed = if speed.is_finite() && speed > 0.0 { speed } else { 1.0 };
        TrackPlayer { track, speed, started, next: 0 }
    }

    fn due_at(&self, index: usize) -> Option<Instant> {
        let point = self.track.points.get(index)?;
        Some(self.started + point.offset.div_f64(self.speed))
    }

    /// When the next point is due; None once the track is done.
    pub fn next_at(&self) -> Option<Instant> {
        self.due_at(self.next)
    }

    /// The latest point that has come due by `now` and was not handed out
    /// yet (points passed over in between are skipped).
    pub fn due(&mut self, now: Instant) -> Option<Location> {
        let mut latest = None;
        while let Some(at) = self.due_at(self.next)
            && at <= now
        {
            latest = self.track.points.get(self.next).map(|point| point.location);
            self.next += 1;
        }
        latest
    }

    pub fn finished(&self) -> bool {
        self.next >= self.track.points.len()
    }

    /// Where the person is at `now`: the latest point due by then (the
    /// first point before the track starts), whether handed out yet or not.
    pub fn location_at(&self, now: Instant) -> Option<Location> {
        let due =
            (0..self.track.points.len()).take_while(|index| self.due_at(*index).is_some_and(|at| at <= now)).last().unwrap_or(0);
        self.track.points.get(due).map(|point| point.location)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordinates(track: &Track) -> Vec<(f64, f64, f64)> {
        track.points().iter().map(|point| (point.location.lon, point.location.lat, point.offset.as_secs_f64())).collect()
    }

    #[test]
    fn csv_with_offsets() {
        let track = parse_csv("lon,lat,seconds_offset\n120.1,30.2,0\n\n# a pause\n120.2,30.3,12.5\n").expect("parses");
        assert_eq!(coordinates(&track), vec![(120.1, 30.2, 0.0), (120.2, 30.3, 12.5)]);
    }

    #[test]
    fn csv_without_offsets_spaces_points_by_the_default_step() {
        let track = parse_csv("\u{20}Lon , LAT\n120.1,30.2\n120.2,30.3\n120.3,30.4\n").expect("parses");
        assert_eq!(coordinates(&track), vec![(120.1, 30.2, 0.0), (120.2, 30.3, 5.0), (120.3, 30.4, 10.0)]);
    }

    #[test]
    fn csv_errors_name_the_line() {
        let cases = [
            ("120.1,30.2\n", "line 1: the header is \"120.1,30.2\"; it must be lon,lat or lon,lat,seconds_offset"),
            ("lon,lat\n120.1,30.2\n\n120.x,30.2\n", "line 4: longitude \"120.x\" is not a number"),
            ("lon,lat\n120.1,30.2,7\n", "line 2: 3 fields where the header has 2"),
            ("lon,lat\n200,30.2\n", "line 2: longitude 200 is out of range; use -180 to 180 degrees"),
            ("lon,lat\n120,-91\n", "line 2: latitude -91 is out of range; use -90 to 90 degrees"),
            (
                "lon,lat,seconds_offset\n120,30,5\n120,30,4\n",
                "line 3: this point is at 4.0 s, before the previous one at 5.0 s; times must not go back",
            ),
            ("lon,lat,seconds_offset\n120,30,-1\n", "line 2: seconds_offset -1 is out of range; use 0 or more"),
            ("lon,lat\n", "the track has a header but no points"),
            ("\n# nothing\n", "the track is empty; give a header lon,lat then one point per line"),
        ];
        for (text, expected) in cases {
            let error = parse_csv(text).expect_err(text);
            assert_eq!(error.to_string(), expected, "for {text:?}");
        }
    }

    const GPX: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="test">
  <!-- <trkpt lat="0" lon="0"> in a comment is not a point -->
  <trk><name>patrol</name><trkseg>
    <trkpt lat="30.25" lon="120.10"><ele>5</ele><time>2024-05-01T08:30:00Z</time></trkpt>
    <trkpt lon='120.11' lat='30.26'>
      <time>2024-05-01T16:30:20.5+08:00</time>
    </trkpt>
    <trkpt lat="30.27" lon="120.12"><time>2024-05-01T08:31:00Z</time></trkpt>
  </trkseg></trk>
</gpx>
"#;

    #[test]
    fn gpx_with_times() {
        let track = parse_gpx(GPX).expect("parses");
        assert_eq!(coordinates(&track), vec![(120.10, 30.25, 0.0), (120.11, 30.26, 20.5), (120.12, 30.27, 60.0)]);
    }

    #[test]
    fn gpx_without_times_uses_the_default_step() {
        let text = "<gpx><trk><trkseg><trkpt lat=\"30.1\" lon=\"120.1\"/><trkpt lat=\"30.2\" lon=\"120.2\"></trkpt></trkseg></trk></gpx>";
        let track = parse_gpx(text).expect("parses");
        assert_eq!(coordinates(&track), vec![(120.1, 30.1, 0.0), (120.2, 30.2, 5.0)]);
    }

    #[test]
    fn gpx_errors_name_the_line() {
        let cases = [
            ("<gpx>\n<trkpt lon=\"120\">\n</trkpt></gpx>", "line 2: this <trkpt> has no lat attribute"),
            ("<gpx>\n\n<trkpt lat=\"abc\" lon=\"120\"/></gpx>", "line 3: latitude \"abc\" is not a number"),
            (
                "<gpx>\n<trkpt lat=\"30\" lon=\"120\"><time>2024-05-01T08:30:00Z</time></trkpt>\n<trkpt lat=\"30\" lon=\"120\"/></gpx>",
                "line 3: some points have a <time> and some do not; give every point a time or none",
            ),
            (
                "<gpx>\n<trkpt lat=\"30\" lon=\"120\">\n<time>yesterday</time></trkpt></gpx>",
                "line 3: time \"yesterday\" is not like 2024-05-01T08:30:05Z",
            ),
            (
                "<gpx><trkpt lat=\"30\" lon=\"120\"><time>2024-05-01T08:30:00Z</time></trkpt>\n<trkpt lat=\"30\" lon=\"120\"><time>2024-05-01T08:29:00Z</time></trkpt></gpx>",
                "line 2: this point's time is before the first point's; times must not go back",
            ),
            ("<gpx>\n<trkpt lat=\"30\" lon=\"120\">\n", "line 2: this <trkpt> is never closed with </trkpt>"),
            ("<gpx><trk></trk></gpx>", "the GPX file has no <trkpt> points"),
        ];
        for (text, expected) in cases {
            let error = parse_gpx(text).expect_err(text);
            assert_eq!(error.to_string(), expected, "for {text:?}");
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0.0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Ok(951_868_800.0));
        assert_eq!(parse_rfc3339("2024-05-01T16:30:05+08:00"), parse_rfc3339("2024-05-01T08:30:05Z"));
        assert_eq!(parse_rfc3339("2024-05-01T08:30:05.25Z"), Ok(1_714_552_205.25));
        assert!(parse_rfc3339("2024-13-01T08:30:05Z").is_err());
        assert!(parse_rfc3339("2024-05-01T08:30").is_err());
    }

    #[test]
    fn load_chooses_the_format_by_extension_or_content() {
        let dir = tempfile::tempdir().expect("temp dir");
        let gpx = dir.path().join("walk.gpx");
        std::fs::write(&gpx, GPX).expect("write");
        assert_eq!(Track::load(&gpx).expect("gpx loads").points().len(), 3);
        let csv = dir.path().join("walk.csv");
        std::fs::write(&csv, "\u{feff}lon,lat\n120.1,30.2\n").expect("write");
        assert_eq!(Track::load(&csv).expect("csv loads").points().len(), 1);
        let missing = Track::load(&dir.path().join("missing.csv")).expect_err("missing file");
        assert!(missing.to_string().starts_with("cannot read "), "{missing}");
    }

    #[test]
    fn at_flag_points() {
        assert_eq!(parse_point(" 120.1 , 30.2 "), Ok(Location::new(120.1, 30.2)));
        assert!(parse_point("120.1").is_err());
        assert!(parse_point("120.1,30.2,4").is_err());
        assert!(parse_point("181,30").is_err());
    }

    #[test]
    fn player_hands_out_points_at_their_time_scaled_by_speed() {
        let track = parse_csv("lon,lat,seconds_offset\n1,1,0\n2,2,10\n3,3,20\n4,4,30\n").expect("parses");
        let start = Instant::now();
        let mut player = TrackPlayer::new(track, 2.0, start);
        assert_eq!(player.due(start), Some(Location::new(1.0, 1.0)));
        assert_eq!(player.due(start), None);
        assert_eq!(player.next_at(), Some(start + Duration::from_secs(5)));
        assert_eq!(player.due(start + Duration::from_secs(4)), None);
        assert_eq!(player.due(start + Duration::from_secs(5)), Some(Location::new(2.0, 2.0)));
        // Late: the point passed over is skipped, the latest is handed out.
        assert_eq!(player.due(start + Duration::from_secs(16)), Some(Location::new(4.0, 4.0)));
        assert!(player.finished());
        assert_eq!(player.next_at(), None);
    }

    #[test]
    fn the_location_at_a_time_is_the_latest_point_due() {
        let track = parse_csv("lon,lat,seconds_offset\n1,1,0\n2,2,10\n3,3,20\n").expect("parses");
        let start = Instant::now();
        let player = TrackPlayer::new(track, 1.0, start + Duration::from_secs(1));
        assert_eq!(player.location_at(start), Some(Location::new(1.0, 1.0)));
        assert_eq!(player.location_at(start + Duration::from_secs(12)), Some(Location::new(2.0, 2.0)));
        assert_eq!(player.location_at(start + Duration::from_secs(60)), Some(Location::new(3.0, 3.0)));
    }
}
