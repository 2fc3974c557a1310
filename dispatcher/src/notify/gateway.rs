//! The gateway providers: how one SMS or call is asked of a gateway. The
//! phone number leaves the dispatcher only here, in the request's body,
//! and is never in a log, an event or an error.
//!
//! - `webhook`: a generic HTTP webhook; the JSON body is a template with
//!   `{{to}}`, `{{text}}`, `{{channel}}`, `{{key}}` and `{{agent}}` filled in
//!   (JSON-escaped), HMAC-SHA256 signed like the outbound webhooks
//!   (`x-pingji-timestamp`, `x-pingji-signature: v1=HEX` over
//!   `TIMESTAMP.BODY`), with the step's idempotency key in
//!   `idempotency-key`.
//! - `twilio`: Twilio's REST API 2010-04-01: an SMS is `POST
//!   /2010-04-01/Accounts/{AccountSid}/Messages.json` with the form fields
//!   `To`, `From`, `Body`; a call is `POST …/Calls.json` with `To`, `From`
//!   and `Twiml` (`<Response><Say>…</Say></Response>`); HTTP basic
//!   authentication with the Account SID and the Auth Token. With a
//!   `callback_url` (where Twilio reaches this dispatcher's web port), each
//!   request names `StatusCallback` = `{callback_url}/notify/inbound/twilio?key=KEY`,
//!   and Twilio's own signed posts (receipts, and replies when the number's
//!   messaging webhook points there too) are taken in there.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::body::Bytes;

use crate::posting::Target;
use pingji_engine::event::NoticeChannel;

/// Where Twilio posts its receipts and replies, under the web port.
pub const TWILIO_INBOUND_PATH: &str = "/notify/inbound/twilio";

/// The default body of the generic webhook.
pub const DEFAULT_TEMPLATE: &str =
    r#"{"to":"{{to}}","text":"{{text}}","channel":"{{channel}}","key":"{{key}}","agent":"{{agent}}"}"#;

/// One gateway as configured. Its secrets are never logged.
#[derive(Clone)]
pub enum Gateway {
    Webhook { url: String, secret: String, template: String },
    Twilio { api_base: String, account_sid: String, auth_token: String, from: String, callback_url: Option<String> },
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gateway::Webhook { url, .. } => f.debug_struct("Webhook").field("url", url).finish_non_exhaustive(),
            Gateway::Twilio { api_base, account_sid, .. } => {
                f.debug_struct("Twilio").field("api_base", api_base).field("account_sid", account_sid).finish_non_exhaustive()
            }
        }
    }
}

/// One request to a gateway, ready to post.
pub struct GatewayRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Gateway {
    /// A short name for events and logs: the provider and the gateway's host.
    pub fn name(&self) -> String {
        match self {
            Gateway::Webhook { url, .. } => format!("webhook {}", host_of(url)),
            Gateway::Twilio { api_base, .. } => format!("twilio {}", host_of(api_base)),
        }
    }

    /// Checks the gateway once, when the settings are read.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Gateway::Webhook { url, secret, template } => {
                Target::parse(url)?;
                if secret.len() < 16 {
                    return Err("the webhook's secret must be at least 16 characters".to_string());
                }
                let filled = fill(template, "+10000000000", "text", "sms", "key", "agent");
                serde_json::from_str::<serde_json::Value>(&filled)
                    .map_err(|error| format!("the body template is not JSON once filled in: {error}"))?;
                if !template.contains("{{to}}") || !template.contains("{{text}}") {
                    return Err("the body template needs {{to}} and {{text}}".to_string());
                }
                Ok(())
            }
            Gateway::Twilio { api_base, account_sid, auth_token, from, callback_url } => {
                Target::parse(api_base)?;
                if account_sid.is_empty() || auth_token.is_empty() || from.is_empty() {
                    return Err("twilio needs account_sid, auth_token and from".to_string());
                }
                if let Some(url) = callback_url {
                    Target::parse(url).map_err(|reason| format!("callback_url: {reason}"))?;
                }
                Ok(())
            }
        }
    }

    /// The request that sends `text` to `to` on `channel`, with the step's
    /// idempotency key.
    pub fn request(&self, channel: NoticeChannel, to: &str, text: &str, key: &str, agent: &str) -> GatewayRequest {
        match self {
            Gateway::Webhook { url, secret, template } => {
                let body = Bytes::from(fill(template, to, text, channel.name(), key, agent));
                let mut headers = vec![
                    ("content-type", "application/json".to_string()),
                    ("user-agent", concat!("pingji-dispatcher/", env!("CARGO_PKG_VERSION")).to_string()),
                    ("idempotency-key", key.to_string()),
                ];
                headers.extend(signing_header_values(secret, &body));
                GatewayRequest { url: url.clone(), headers, body }
            }
            Gateway::Twilio { api_base, account_sid, auth_token, from, callback_url } => {
                let base = api_base.trim_end_matches('/');
                let (resource, content) = match channel {
                    NoticeChannel::Voice => ("Calls", ("Twiml", format!("<Response><Say>{}</Say></Response>", xml_escape(text)))),
                    _ => ("Messages", ("Body", text.to_string())),
                };
                let url = format!("{base}/2010-04-01/Accounts/{account_sid}/{resource}.json");
                let mut form = vec![("To", to.to_string()), ("From", from.clone()), content];
                if let Some(callback) = callback_url {
                    let callback = format!("{}{TWILIO_INBOUND_PATH}?key={}", callback.trim_end_matches('/'), form_encode(key));
                    form.push(("StatusCallback", callback));
                }
                let body: Vec<String> = form.iter().map(|(name, value)| format!("{name}={}", form_encode(value))).collect();
                let credentials = STANDARD.encode(format!("{account_sid}:{auth_token}"));
                let headers = vec![
                    ("content-type", "application/x-www-form-urlencoded".to_string()),
                    ("authorization", format!("Basic {credentials}")),
                    ("user-agent", concat!("pingji-dispatcher/", env!("CARGO_PKG_VERSION")).to_string()),
                    // Twilio does not dedupe on it; kept for a relay in front.
                    ("idempotency-key", key.to_string()),
                ];
                GatewayRequest { url, headers, body: Bytes::from(body.join("&")) }
            }
        }
    }
}

/// The signature headers of a body signed now under `secret`, as the
/// outbound webhooks sign theirs.
fn signing_header_values(secret: &str, body: &Bytes) -> [(&'static str, String); 2] {
    let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs().to_string();
    let signed = crate::webhooks::signature(secret, &timestamp, body);
    [(crate::webhooks::TIMESTAMP_HEADER, timestamp), (crate::webhooks::SIGNATURE_HEADER, signed)]
}

fn host_of(url: &str) -> String {
    url.parse::<hyper::Uri>().ok().and_then(|uri| uri.authority().map(|authority| authority.to_string())).unwrap_or_default()
}

fn fill(template: &str, to: &str, text: &str, channel: &str, key: &str, agent: &str) -> String {
    template
        .replace("{{to}}", &json_escape(to))
        .replace("{{text}}", &json_escape(text))
        .replace("{{channel}}", &json_escape(channel))
        .replace("{{key}}", &json_escape(key))
        .replace("{{agent}}", &json_escape(agent))
}

/// A string's JSON form without the quotes.
fn json_escape(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    quoted[1..quoted.len().saturating_sub(1).max(1)].to_string()
}

fn xml_escape(value: &str) -> String {
    value.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(value: &str) -> String {
    let mut encoded = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => encoded.push(byte as char),
            b' ' => encoded.push('+'),
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    encoded
}

/// Twilio's signature of a post to `url` with the form `params`
/// (`X-Twilio-Signature`): the HMAC-SHA1 under the Auth Token of the URL
/// followed by each parameter's name and value, sorted by name, in base64.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    STANDARD.encode(ring::hmac::sign(&key, data.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_body_is_the_template_filled_in_and_signed() {
        let gateway = Gateway::Webhook {
            url: "http://127.0.0.1:9/send".into(),
            secret: "gateway-secret-0123".into(),
            template: DEFAULT_TEMPLATE.into(),
        };
        gateway.check().expect("valid");
        let request = gateway.request(NoticeChannel::Sms, "+8613800000001", "台风 \"到\"", "k1", "p1");
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
        assert_eq!(body["to"], "+8613800000001");
        assert_eq!(body["text"], "台风 \"到\"");
        assert_eq!(body["channel"], "sms");
        let timestamp = request.headers.iter().find(|(name, _)| *name == "x-pingji-timestamp").expect("timestamp").1.clone();
        let signed = request.headers.iter().find(|(name, _)| *name == "x-pingji-signature").expect("signature").1.clone();
        assert_eq!(signed, crate::webhooks::signature("gateway-secret-0123", &timestamp, &request.body));
        assert!(!format!("{gateway:?}").contains("secret-0123"), "the secret is never in a log");
    }

    #[test]
    fn twilio_requests_follow_the_rest_api() {
        let gateway = Gateway::Twilio {
            api_base: "https://api.twilio.com".into(),
            account_sid: "ACabc".into(),
            auth_token: "token".into(),
            from: "+15005550006".into(),
            callback_url: None,
        };
        let sms = gateway.request(NoticeChannel::Sms, "+8613800000001", "reply 1 & go", "k", "p");
        assert_eq!(sms.url, "https://api.twilio.com/2010-04-01/Accounts/ACabc/Messages.json");
        assert_eq!(std::str::from_utf8(&sms.body).expect("utf-8"), "To=%2B8613800000001&From=%2B15005550006&Body=reply+1+%26+go");
        assert!(sms.headers.contains(&("authorization", format!("Basic {}", STANDARD.encode(b"ACabc:token")))));
        let call = gateway.request(NoticeChannel::Voice, "+8613800000001", "a <call>", "k", "p");
        assert!(call.url.ends_with("/Calls.json"));
        assert!(std::str::from_utf8(&call.body).expect("utf-8").contains("Twiml=%3CResponse%3E%3CSay%3Ea+%26lt%3Bcall%26gt%3B"));
    }

    #[test]
    fn twilio_requests_name_the_status_callback_with_the_steps_key() {
        let gateway = Gateway::Twilio {
            api_base: "https://api.twilio.com".into(),
            account_sid: "ACabc".into(),
            auth_token: "token".into(),
            from: "+15005550006".into(),
            callback_url: Some("https://pingji.example.org/".into()),
        };
        let sms = gateway.request(NoticeChannel::Sms, "+8613800000001", "text", "k-0001", "p");
        let body = std::str::from_utf8(&sms.body).expect("utf-8");
        assert!(
            body.ends_with("&StatusCallback=https%3A%2F%2Fpingji.example.org%2Fnotify%2Finbound%2Ftwilio%3Fkey%3Dk-0001"),
            "{body}"
        );
    }

    /// Known answers from Twilio's own Python library
    /// (`twilio.request_validator.RequestValidator("12345").compute_signature`).
    #[test]
    fn twilio_signatures_match_twilios_library() {
        let params =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect::<Vec<_>>();
        let receipt = params(&[
            ("MessageSid", "SM0001"),
            ("MessageStatus", "delivered"),
            ("To", "+8613800000000"),
            ("AccountSid", "ACabc"),
        ]);
        assert_eq!(
            twilio_signature("12345", "https://pingji.example.org/notify/inbound/twilio?key=k-0001", &receipt),
            "GZVTnEISFgo+HCYYAZklmgDYBY4="
        );
        let reply = params(&[("From", "+8613800000000"), ("Body", "1"), ("MessageSid", "SM0002"), ("To", "+10000000000")]);
        assert_eq!(
            twilio_signature("12345", "https://pingji.example.org/notify/inbound/twilio", &reply),
            "lxOowlOsxcTdp/ioHulcAX8VhIQ="
        );
    }
}
