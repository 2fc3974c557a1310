//! An issued alert as CAP 1.2 XML (validated against the OASIS schema by
//! the tests), and the Atom index of the alerts.

use std::fmt::Write;

use pingji_engine::cap::IssuedCapAlert;
use pingji_engine::ids::Millis;

use super::config::CapConfig;
use crate::journal::iso8601_utc_from_ms;

pub const NAMESPACE: &str = "urn:oasis:names:tc:emergency:cap:1.2";
/// Alerts are dated in China Standard Time (CAP forbids `Z`).
const OFFSET_MS: i64 = 8 * 3_600_000;

/// A time as CAP writes it: `2026-12-07T14:30:00+08:00`.
pub fn cap_time(at: Millis) -> String {
    let local = iso8601_utc_from_ms(at.0 + OFFSET_MS);
    format!("{}+08:00", &local[..19.min(local.len())])
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(character),
        }
    }
    out
}

fn element(out: &mut String, indent: &str, name: &str, text: &str) {
    let _ = writeln!(out, "{indent}<{name}>{}</{name}>", escape(text));
}

/// A CAP polygon: `lat,lon` pairs separated by spaces, the ring closed
/// (first point repeated last), at least four points.
fn cap_polygon(ring: &[[f64; 2]]) -> Option<String> {
    let mut points: Vec<[f64; 2]> = ring.to_vec();
    if points.first() != points.last() {
        points.push(points[0]);
    }
    (points.len() >= 4).then(|| points.iter().map(|[lon, lat]| format!("{lat:.6},{lon:.6}")).collect::<Vec<_>>().join(" "))
}

/// A grade as written on the public alert: I, II, III, IV.
fn grade_numeral(mode: pingji_engine::policy::Mode) -> &'static str {
    use pingji_engine::policy::Mode;
    match mode {
        Mode::EmergencyI => "I",
        Mode::EmergencyIi => "II",
        Mode::EmergencyIii => "III",
        Mode::EmergencyIv => "IV",
        Mode::Normal => "normal",
    }
}

/// The alert issued at `sent`, as CAP 1.2 XML.
pub fn alert_xml(alert: &IssuedCapAlert, sent: Millis, config: &CapConfig) -> String {
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<alert xmlns=\"{NAMESPACE}\">");
    element(&mut out, "  ", "identifier", &alert.identifier);
    element(&mut out, "  ", "sender", &config.sender);
    element(&mut out, "  ", "sent", &cap_time(sent));
    element(&mut out, "  ", "status", config.status());
    element(&mut out, "  ", "msgType", alert.msg_type.name());
    element(&mut out, "  ", "scope", "Public");
    if !alert.references.is_empty() {
        let references: Vec<String> = alert
            .references
            .iter()
            .map(|reference| format!("{},{},{}", config.sender, reference.identifier, cap_time(reference.sent)))
            .collect();
        element(&mut out, "  ", "references", &references.join(" "));
    }
    out.push_str("  <info>\n");
    element(&mut out, "    ", "language", "zh-CN");
    element(&mut out, "    ", "category", &alert.category);
    element(&mut out, "    ", "event", &alert.event);
    if alert.msg_type == pingji_engine::cap::CapMsgType::Cancel {
        element(&mut out, "    ", "responseType", "AllClear");
    }
    element(&mut out, "    ", "urgency", &alert.urgency);
    element(&mut out, "    ", "severity", &alert.severity);
    element(&mut out, "    ", "certainty", &alert.certainty);
    let _ = writeln!(
        out,
        "    <eventCode>\n      <valueName>pingji:grade</valueName>\n      <value>{}</value>\n    </eventCode>",
        grade_numeral(alert.mode)
    );
    element(&mut out, "    ", "senderName", &config.sender_name);
    let headline = if alert.msg_type == pingji_engine::cap::CapMsgType::Cancel {
        format!("解除：{}", alert.headline)
    } else {
        alert.headline.clone()
    };
    element(&mut out, "    ", "headline", &headline);
    if !alert.description.is_empty() {
        element(&mut out, "    ", "description", &alert.description);
    }
    if !alert.instruction.is_empty() {
        element(&mut out, "    ", "instruction", &alert.instruction);
    }
    out.push_str("    <area>\n");
    element(&mut out, "      ", "areaDesc", &alert.area_name);
    for polygon in &alert.polygons {
        // CAP has no holes: the outer ring only.
        if let Some(text) = polygon.first().and_then(|ring| cap_polygon(ring)) {
            element(&mut out, "      ", "polygon", &text);
        }
    }
    let _ = writeln!(
        out,
        "      <geocode>\n        <valueName>pingji:area</valueName>\n        <value>{}</value>\n      </geocode>",
        escape(alert.area.as_str())
    );
    out.push_str("    </area>\n");
    out.push_str("  </info>\n");
    out.push_str("</alert>\n");
    out
}

/// The Atom index of the alerts issued, newest first, each linking to its XML.
pub fn atom_index(alerts: &[(IssuedCapAlert, Millis)], base: &str, config: &CapConfig) -> String {
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    element(&mut out, "  ", "id", &format!("{base}/cap/alerts.atom"));
    element(&mut out, "  ", "title", &format!("{} CAP alerts", config.sender_name));
    let updated = alerts.iter().map(|(_, sent)| *sent).max().unwrap_or(Millis(0));
    element(&mut out, "  ", "updated", &cap_time(updated));
    let _ = writeln!(out, "  <author><name>{}</name></author>", escape(&config.sender));
    let _ = writeln!(out, "  <link rel=\"self\" href=\"{}\"/>", escape(&format!("{base}/cap/alerts.atom")));
    for (alert, sent) in alerts.iter().rev() {
        let href = format!("{base}/cap/alerts/{}.xml", alert.identifier);
        out.push_str("  <entry>\n");
        element(&mut out, "    ", "id", &href);
        element(&mut out, "    ", "title", &format!("{} {}: {}", alert.msg_type.name(), alert.area_name, alert.headline));
        element(&mut out, "    ", "updated", &cap_time(*sent));
        let _ = writeln!(out, "    <link rel=\"alternate\" type=\"application/cap+xml\" href=\"{}\"/>", escape(&href));
        out.push_str("  </entry>\n");
    }
    out.push_str("</feed>\n");
    out
}
