//! Reading a CAP 1.2 alert posted to us, with the checks of the schema
//! that matter to what we do with it: the root element and namespace, the
//! required elements, the enumerated values, the dateTime pattern, the
//! identifier and sender without spaces, commas or `<&`, and polygons and
//! circles that are well formed (closed rings of at least four WGS84
//! `lat,lon` points; `lat,lon radius_km`). Element order is not checked.

use pingji_engine::cap::{CATEGORIES, CERTAINTIES, CapCircle, ReceivedCapAlert, SEVERITIES, URGENCIES};
use roxmltree::{Document, Node};

use super::xml::NAMESPACE;

/// Why an alert was refused; the message says what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InboundError(pub String);

fn refuse(message: impl Into<String>) -> InboundError {
    InboundError(message.into())
}

const STATUSES: [&str; 5] = ["Actual", "Exercise", "System", "Test", "Draft"];
const MSG_TYPES: [&str; 5] = ["Alert", "Update", "Cancel", "Ack", "Error"];
const SCOPES: [&str; 3] = ["Public", "Restricted", "Private"];
/// Polygons and circles taken from one alert, at most.
const MAX_SHAPES: usize = 200;
const MAX_POINTS: usize = 10_000;

fn children<'a, 'input>(node: Node<'a, 'input>, name: &'a str) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children().filter(move |child| {
        child.is_element() && child.tag_name().name() == name && child.tag_name().namespace() == Some(NAMESPACE)
    })
}

fn text_of(node: Node<'_, '_>, name: &str) -> Option<String> {
    children(node, name).next().map(|child| child.text().unwrap_or_default().trim().to_string())
}

fn required(node: Node<'_, '_>, name: &str, within: &str) -> Result<String, InboundError> {
    match text_of(node, name) {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(refuse(format!("<{name}> is missing or empty in <{within}>; CAP 1.2 requires it"))),
    }
}

fn one_of(name: &str, value: &str, allowed: &[&str]) -> Result<(), InboundError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(refuse(format!("<{name}> is \"{value}\", which is not one of {}", allowed.join(", "))))
    }
}

/// CAP's dateTime: `YYYY-MM-DDThh:mm:ss` and an offset `+hh:mm` or `-hh:mm` (no `Z`).
pub fn is_cap_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    let pattern = b"dddd-dd-ddTdd:dd:dd+dd:dd";
    bytes.len() == pattern.len()
        && bytes.iter().zip(pattern).all(|(byte, want)| match want {
            b'd' => byte.is_ascii_digit(),
            b'+' => *byte == b'+' || *byte == b'-',
            other => byte == other,
        })
}

fn plain_token(name: &str, value: &str) -> Result<(), InboundError> {
    if value.chars().any(|c| c.is_whitespace() || matches!(c, ',' | '<' | '&')) {
        return Err(refuse(format!("<{name}> \"{value}\" has a space, comma, < or &, which CAP 1.2 forbids in it")));
    }
    Ok(())
}

fn point(text: &str, what: &str) -> Result<[f64; 2], InboundError> {
    let bad = || refuse(format!("{what}: \"{text}\" is not a WGS84 \"lat,lon\" pair"));
    let (lat, lon) = text.split_once(',').ok_or_else(bad)?;
    let lat: f64 = lat.trim().parse().map_err(|_| bad())?;
    let lon: f64 = lon.trim().parse().map_err(|_| bad())?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(bad());
    }
    Ok([lon, lat])
}

fn polygon(text: &str) -> Result<Vec<[f64; 2]>, InboundError> {
    let points = text.split_whitespace().map(|pair| point(pair, "<polygon>")).collect::<Result<Vec<_>, _>>()?;
    if points.len() < 4 {
        return Err(refuse(format!(
            "<polygon> has {} points; CAP 1.2 wants at least four, the first repeated last",
            points.len()
        )));
    }
    if points.first() != points.last() {
        return Err(refuse("<polygon> is not closed: its last point must repeat its first"));
    }
    if points.len() > MAX_POINTS {
        return Err(refuse(format!("<polygon> has more than {MAX_POINTS} points; simplify it")));
    }
    Ok(points)
}

fn circle(text: &str) -> Result<CapCircle, InboundError> {
    let bad = || refuse(format!("<circle> \"{text}\" is not \"lat,lon radius_km\""));
    let (centre, radius) = text.trim().split_once(char::is_whitespace).ok_or_else(bad)?;
    let [lon, lat] = point(centre, "<circle>")?;
    let radius_km: f64 = radius.trim().parse().map_err(|_| bad())?;
    if !(0.0..=20_000.0).contains(&radius_km) {
        return Err(bad());
    }
    Ok(CapCircle { lon, lat, radius_km })
}

/// Reads and checks an alert; what the engine needs of it.
pub fn read_alert(xml: &str) -> Result<ReceivedCapAlert, InboundError> {
    let document = Document::parse(xml).map_err(|error| refuse(format!("the body is not well-formed XML: {error}")))?;
    let root = document.root_element();
    if root.tag_name().name() != "alert" || root.tag_name().namespace() != Some(NAMESPACE) {
        return Err(refuse(format!(
            "the root element is <{}> in namespace {:?}; a CAP 1.2 alert is <alert xmlns=\"{NAMESPACE}\">",
            root.tag_name().name(),
            root.tag_name().namespace().unwrap_or("(none)")
        )));
    }
    let identifier = required(root, "identifier", "alert")?;
    plain_token("identifier", &identifier)?;
    let sender = required(root, "sender", "alert")?;
    plain_token("sender", &sender)?;
    let sent = required(root, "sent", "alert")?;
    if !is_cap_time(&sent) {
        return Err(refuse(format!("<sent> \"{sent}\" is not a CAP dateTime such as 2026-09-14T08:00:00+08:00 (no Z)")));
    }
    let status = required(root, "status", "alert")?;
    one_of("status", &status, &STATUSES)?;
    let msg_type = required(root, "msgType", "alert")?;
    one_of("msgType", &msg_type, &MSG_TYPES)?;
    if matches!(msg_type.as_str(), "Ack" | "Error") {
        return Err(refuse(format!("<msgType> {msg_type} is not taken here: post alerts, updates and cancellations")));
    }
    let scope = required(root, "scope", "alert")?;
    one_of("scope", &scope, &SCOPES)?;
    let references: Vec<String> = text_of(root, "references")
        .unwrap_or_default()
        .split_whitespace()
        .map(|triple| {
            let parts: Vec<&str> = triple.split(',').collect();
            match parts.as_slice() {
                [_, identifier, _] => Ok(identifier.to_string()),
                _ => Err(refuse(format!("<references> \"{triple}\" is not sender,identifier,sent"))),
            }
        })
        .collect::<Result<_, _>>()?;
    let infos: Vec<Node> = children(root, "info").collect();
    if infos.is_empty() && msg_type != "Cancel" {
        return Err(refuse("the alert has no <info>; an alert or update needs one, with its event and area"));
    }
    let mut alert = ReceivedCapAlert { identifier, sender, sent, status, msg_type, references, ..ReceivedCapAlert::default() };
    // Every <info> is checked; the Chinese one (else the first) is read.
    for info in &infos {
        let categories: Vec<String> =
            children(*info, "category").map(|node| node.text().unwrap_or_default().trim().to_string()).collect();
        if categories.is_empty() {
            return Err(refuse("an <info> has no <category>; CAP 1.2 requires one"));
        }
        for category in &categories {
            one_of("category", category, &CATEGORIES)?;
        }
        required(*info, "event", "info")?;
        one_of("urgency", &required(*info, "urgency", "info")?, &URGENCIES)?;
        one_of("severity", &required(*info, "severity", "info")?, &SEVERITIES)?;
        one_of("certainty", &required(*info, "certainty", "info")?, &CERTAINTIES)?;
        for area in children(*info, "area") {
            required(area, "areaDesc", "area")?;
            for node in children(area, "polygon") {
                polygon(node.text().unwrap_or_default())?;
            }
            for node in children(area, "circle") {
                circle(node.text().unwrap_or_default())?;
            }
        }
    }
    let chosen = infos
        .iter()
        .find(|info| text_of(**info, "language").is_some_and(|language| language.to_ascii_lowercase().starts_with("zh")))
        .or(infos.first());
    if let Some(info) = chosen {
        alert.category = text_of(*info, "category").unwrap_or_default();
        alert.event = text_of(*info, "event").unwrap_or_default();
        alert.urgency = text_of(*info, "urgency").unwrap_or_default();
        alert.severity = text_of(*info, "severity").unwrap_or_default();
        alert.certainty = text_of(*info, "certainty").unwrap_or_default();
        alert.headline = text_of(*info, "headline").unwrap_or_default();
        let mut descriptions = Vec::new();
        for area in children(*info, "area") {
            descriptions.push(text_of(area, "areaDesc").unwrap_or_default());
            for node in children(area, "polygon") {
                alert.polygons.push(polygon(node.text().unwrap_or_default())?);
            }
            for node in children(area, "circle") {
                alert.circles.push(circle(node.text().unwrap_or_default())?);
            }
        }
        alert.area_desc = descriptions.join("; ");
    }
    if alert.polygons.len() + alert.circles.len() > MAX_SHAPES {
        return Err(refuse(format!("the alert has more than {MAX_SHAPES} polygons and circles; send fewer")));
    }
    for text in [&alert.headline, &alert.area_desc, &alert.event] {
        if text.chars().count() > 2000 {
            return Err(refuse("a headline, event or areaDesc is longer than 2,000 characters; shorten it"));
        }
    }
    Ok(alert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_times_have_an_offset_and_no_z() {
        assert!(is_cap_time("2026-09-14T08:00:00+08:00"));
        assert!(is_cap_time("2003-06-17T14:57:00-07:00"));
        assert!(!is_cap_time("2026-09-14T08:00:00Z"));
        assert!(!is_cap_time("2026-09-14T08:00:00.5+08:00"));
    }

    #[test]
    fn polygons_must_be_closed_lat_lon_rings() {
        assert!(polygon("30.2,120.1 30.3,120.1 30.3,120.2 30.2,120.1").is_ok());
        assert!(polygon("30.2,120.1 30.3,120.1 30.3,120.2 30.25,120.1").is_err());
        assert!(polygon("30.2,120.1 30.3,120.1 30.2,120.1").is_err());
        assert!(polygon("130.2,120.1 30.3,120.1 30.3,120.2 130.2,120.1").is_err());
        assert_eq!(circle("32.9525,-115.5527 0").map(|c| c.lat), Ok(32.9525));
    }
}
