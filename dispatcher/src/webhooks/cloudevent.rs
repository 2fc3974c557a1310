//! One journaled event as a partner sees it: a CloudEvents 1.0 document in
//! structured mode (`application/cloudevents+json`), its `data` the typed
//! event in the API's JSON (proto field names) with the masking of an
//! external reader: phones masked, people's positions to about 1 km unless
//! the subscriber was granted precision, message texts withheld.

use serde_json::{Value, json};

use crate::convert;
use crate::convert::event::Disclosure;
use crate::journal::{StoredEvent, iso8601_utc_from_ms};

pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// Unix seconds when the delivery was signed.
pub const TIMESTAMP_HEADER: &str = "x-pingji-timestamp";
/// `v1=` and the hex HMAC-SHA256 of `TIMESTAMP.BODY` (see `signing`).
pub const SIGNATURE_HEADER: &str = "x-pingji-signature";
/// The subscriber's id, so that one receiver can serve several.
pub const WEBHOOK_HEADER: &str = "x-pingji-webhook";

/// The CloudEvents `type` of a journal kind: `incident_reported` is
/// `org.pingji.incident.reported`.
pub fn event_type(kind: &str) -> String {
    format!("org.pingji.{}", kind.replace('_', "."))
}

/// The CloudEvents document of `stored`; `None` when the journal's record
/// cannot be read (logged by the caller).
pub fn cloud_event(stored: &StoredEvent, source: &str, precise: bool, cap: &crate::cap::CapConfig) -> Result<Value, String> {
    let event = convert::event_from_stored(stored)?;
    if let pingji_engine::event::EventKind::CapAlertIssued { alert } = &event.kind {
        return Ok(cap_cloud_event(stored, source, alert, cap));
    }
    let mut typed = convert::event::event_to_pb(&event);
    let disclosure = if precise { Disclosure::Precise } else { Disclosure::Coarse };
    convert::event::redact(&mut typed, disclosure);
    let data = serde_json::to_value(&typed).map_err(|error| format!("event {} cannot be written: {error}", stored.seq))?;
    let mut document = json!({
        "specversion": "1.0",
        "id": stored.seq.to_string(),
        "source": source,
        "type": event_type(&stored.kind),
        "time": iso8601_utc_from_ms(stored.at_ms),
        "datacontenttype": "application/json",
        "pingjiseq": stored.seq,
        "data": data,
    });
    let subject = stored.incident_id.as_ref().or(stored.area_id.as_ref());
    if let (Some(subject), Some(object)) = (subject, document.as_object_mut()) {
        object.insert("subject".to_string(), json!(subject));
    }
    Ok(document)
}

/// A CAP alert we issued, as partners take it: CloudEvents type
/// `org.pingji.cap.alert`, its data the alert's CAP 1.2 XML.
fn cap_cloud_event(
    stored: &StoredEvent,
    source: &str,
    alert: &pingji_engine::cap::IssuedCapAlert,
    cap: &crate::cap::CapConfig,
) -> Value {
    json!({
        "specversion": "1.0",
        "id": stored.seq.to_string(),
        "source": source,
        "type": CAP_ALERT_TYPE,
        "time": iso8601_utc_from_ms(stored.at_ms),
        "datacontenttype": "application/cap+xml",
        "pingjiseq": stored.seq,
        "subject": alert.identifier,
        "data": crate::cap::alert_xml(alert, pingji_engine::ids::Millis(stored.at_ms), cap),
    })
}

/// The CloudEvents type of a CAP alert we issued.
pub const CAP_ALERT_TYPE: &str = "org.pingji.cap.alert";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_journal_kinds() {
        assert_eq!(event_type("incident_reported"), "org.pingji.incident.reported");
        assert_eq!(event_type("mode_switched"), "org.pingji.mode.switched");
    }
}
