//! Zalo's webhook events: the signature that proves Zalo sent one, and the ZNS receipt
//! (`user_received_message`) read into the delivery it names.
//!
//! Zalo signs each event with `X-ZEvent-Signature: mac=<hex>`, the SHA-256 of the app id, the
//! raw body, the event's `timestamp` and the OA's secret key, concatenated in that order.

use sha2::{Digest, Sha256};

/// The signature Zalo puts on an event (hex, lowercase).
pub fn signature(app_id: &str, body: &str, timestamp: &str, oa_secret: &str) -> String {
    let mut hash = Sha256::new();
    for part in [app_id, body, timestamp, oa_secret] {
        hash.update(part.as_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Why an event is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("no X-ZEvent-Signature")]
    Unsigned,
    #[error("the signature does not match")]
    BadSignature,
    #[error("not an event: {0}")]
    Unreadable(String),
    #[error("the event is for another app")]
    OtherApp,
}

/// A ZNS message received on the resident's phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Loa's delivery id, sent as `tracking_id`.
    pub delivery_id: Option<i64>,
    pub msg_id: Option<String>,
    /// When Zalo says it was received (epoch milliseconds).
    pub at_ms: Option<i64>,
}

/// A verified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Received(Received),
    /// Another event (a follow, a message to the OA…): acknowledged, not acted on.
    Other(String),
}

fn text(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Checks `signature_header` over `body`, then reads the event. Nothing is read from a body
/// whose signature does not match.
pub fn verify(
    body: &str,
    signature_header: Option<&str>,
    app_id: &str,
    oa_secret: &str,
) -> Result<Event, EventError> {
    let given = signature_header
        .map(|h| h.trim())
        .filter(|h| !h.is_empty())
        .ok_or(EventError::Unsigned)?;
    let given = given.strip_prefix("mac=").unwrap_or(given);
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| EventError::Unreadable(e.to_string()))?;
    // The body's own app id and timestamp go into the hash: an event signed for another app
    // or altered in any byte fails.
    let event_app = text(value.get("app_id")).unwrap_or_default();
    let timestamp = text(value.get("timestamp")).unwrap_or_default();
    let expected = signature(&event_app, body, &timestamp, oa_secret);
    if !constant_time_eq(given.to_ascii_lowercase().as_bytes(), expected.as_bytes()) {
        return Err(EventError::BadSignature);
    }
    if event_app != app_id {
        return Err(EventError::OtherApp);
    }
    let name = text(value.get("event_name")).unwrap_or_default();
    if name != "user_received_message" {
        return Ok(Event::Other(name));
    }
    let message = value.get("message");
    Ok(Event::Received(Received {
        delivery_id: text(message.and_then(|m| m.get("tracking_id")))
            .and_then(|t| t.trim().parse().ok()),
        msg_id: text(message.and_then(|m| m.get("msg_id"))),
        at_ms: text(message.and_then(|m| m.get("delivery_time")))
            .or_else(|| Some(timestamp.clone()))
            .and_then(|t| t.trim().parse().ok()),
    }))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(app: &str) -> String {
        format!(
            r#"{{"event_name":"user_received_message","app_id":"{app}","timestamp":"1772960000000","sender":{{"id":"oa1"}},"recipient":{{"id":"84912345678"}},"message":{{"msg_id":"m1","tracking_id":"42","delivery_time":"1772960000500"}}}}"#
        )
    }

    #[test]
    fn only_an_event_signed_with_the_oa_secret_is_read() {
        let body = event("app1");
        let mac = signature("app1", &body, "1772960000000", "oa-secret");
        let header = format!("mac={mac}");
        assert_eq!(
            verify(&body, Some(&header), "app1", "oa-secret"),
            Ok(Event::Received(Received {
                delivery_id: Some(42),
                msg_id: Some("m1".into()),
                at_ms: Some(1_772_960_000_500),
            }))
        );
        // Without the prefix, as some proxies pass it.
        assert!(verify(&body, Some(&mac), "app1", "oa-secret").is_ok());
        assert_eq!(
            verify(&body, None, "app1", "oa-secret"),
            Err(EventError::Unsigned)
        );
        assert_eq!(
            verify(&body, Some(&header), "app1", "another-secret"),
            Err(EventError::BadSignature)
        );
        let altered = body.replace("\"42\"", "\"43\"");
        assert_eq!(
            verify(&altered, Some(&header), "app1", "oa-secret"),
            Err(EventError::BadSignature)
        );
        let other = event("app2");
        let signed = signature("app2", &other, "1772960000000", "oa-secret");
        assert_eq!(
            verify(&other, Some(&signed), "app1", "oa-secret"),
            Err(EventError::OtherApp)
        );
    }
}
