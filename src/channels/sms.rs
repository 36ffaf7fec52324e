//! SMS gateways: Kannel's HTTP `sendsms`, and HTTP JSON brandname APIs (eSMS, SpeedSMS, …)
//! described in `loa.toml`.
//!
//! A gateway accepting a message is not delivery: an SMS reaches someone when the gateway's
//! delivery report says so (`/webhooks/sms/dlr`). Loa's delivery id travels with each message —
//! in Kannel's `dlr-url`, and as the request id of APIs that deduplicate on one — so reports find
//! their delivery and a retried request is not sent twice by such a provider.

use std::time::Duration;

use async_trait::async_trait;
use handlebars::Handlebars;
use serde_json::Value;

use super::http::read_answer;
use super::{Channel, Outbound, Receipt, Secrets, SendError, describe_http_error, excerpt};
use crate::config::HttpGateway;
use crate::templates::{SmsEncoding, sms_size};

/// Kannel's DLR mask: delivered (1), failed (2), buffered (4), SMSC submit (8), SMSC reject (16).
pub const DLR_MASK: u32 = 31;

/// How long a gateway may take to answer one request before it counts as unreachable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .expect("a TLS backend is compiled in")
}

/// Where a gateway's delivery reports come back to, with the shared secret.
#[derive(Debug, Clone)]
pub struct Callback {
    /// `LOA_PUBLIC_URL`: the base URL the gateway can reach.
    pub public_url: String,
    pub secret: Option<String>,
}

impl Callback {
    /// The DLR URL for one delivery; Kannel replaces `%d` with the report's type.
    fn dlr_url(&self, delivery_id: i64) -> String {
        let mut url = format!(
            "{}/webhooks/sms/dlr?id={delivery_id}&status=%d",
            self.public_url.trim_end_matches('/')
        );
        if let Some(secret) = &self.secret {
            url.push_str("&secret=");
            url.push_str(&urlencode(secret));
        }
        url
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub struct KannelChannel {
    client: reqwest::Client,
    url: String,
    username: String,
    password: String,
    from: String,
    callback: Option<Callback>,
    /// The password, the user name and the callback secret: never quoted from an answer.
    secrets: Secrets,
}

impl KannelChannel {
    pub fn new(
        url: &str,
        username: &str,
        password: &str,
        from: &str,
        callback: Option<Callback>,
    ) -> Self {
        let secret = callback.as_ref().and_then(|c| c.secret.as_deref());
        let secrets = Secrets::new(
            [Some(password), Some(username), secret]
                .into_iter()
                .flatten(),
        );
        KannelChannel {
            secrets,
            client: client(DEFAULT_TIMEOUT),
            url: url.to_string(),
            username: username.to_string(),
            password: password.to_string(),
            from: from.to_string(),
            callback,
        }
    }

    /// The same gateway with another request timeout (tests provoke timeouts in milliseconds).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.client = client(timeout);
        self
    }
}

#[async_trait]
impl Channel for KannelChannel {
    fn name(&self) -> &'static str {
        "kannel"
    }

    fn reports_delivery(&self) -> bool {
        self.callback.is_some()
    }

    async fn send(&self, message: &Outbound<'_>) -> Result<Receipt, SendError> {
        // Accented Vietnamese needs UCS-2 (coding=2); unaccented text goes as GSM-7 (coding=0).
        let coding = match sms_size(message.text).encoding {
            SmsEncoding::Gsm7 => "0",
            SmsEncoding::Ucs2 => "2",
        };
        let mut query: Vec<(&str, String)> = vec![
            ("username", self.username.clone()),
            ("password", self.password.clone()),
            ("from", self.from.clone()),
            ("to", message.address.to_string()),
            ("text", message.text.to_string()),
            ("coding", coding.to_string()),
            ("charset", "UTF-8".to_string()),
        ];
        if let Some(callback) = &self.callback {
            query.push(("dlr-mask", DLR_MASK.to_string()));
            query.push(("dlr-url", callback.dlr_url(message.delivery_id)));
        }
        let response = self
            .client
            .get(&self.url)
            .query(&query)
            .send()
            .await
            // Not `{e}`: reqwest's message quotes the URL, and this one carries the
            // credentials, the number, the text and the webhook secret.
            .map_err(|e| {
                SendError::Unavailable(format!("kannel unreachable: {}", describe_http_error(&e)))
            })?;
        let status = response.status();
        // A body that broke off is judged on what came: Kannel's verdict is its first line.
        let body = read_answer(response).await.text;
        classify_kannel(status.as_u16(), body.trim(), message, &self.secrets)
    }
}

/// Kannel's answers: `0: Accepted for delivery` and `3: Queued for later delivery` (202) are
/// accepted; 503 is temporary; other 4xx are permanent for this message. What is quoted of the
/// answer is a short excerpt, the message's number and text masked.
pub fn classify_kannel(
    status: u16,
    body: &str,
    message: &Outbound<'_>,
    secrets: &Secrets,
) -> Result<Receipt, SendError> {
    if (200..=299).contains(&status) && (body.starts_with("0:") || body.starts_with("3:")) {
        return Ok(Receipt::default());
    }
    let body = excerpt(body, message, secrets);
    match status {
        200..=299 => Err(SendError::Retryable(format!(
            "kannel answered {status} {body:?}"
        ))),
        503 => Err(SendError::Unavailable(format!(
            "kannel temporarily failed: {body}"
        ))),
        400..=499 => Err(SendError::Message(format!(
            "kannel refused ({status}): {body}"
        ))),
        500..=599 => Err(SendError::Unavailable(format!(
            "kannel answered {status}: {body}"
        ))),
        _ => Err(SendError::Retryable(format!(
            "kannel answered {status}: {body}"
        ))),
    }
}

/// A brandname HTTP API described in `[sms.http]`.
pub struct HttpSmsChannel {
    client: reqwest::Client,
    gateway: HttpGateway,
    from: String,
    body: Handlebars<'static>,
    /// Header values, the URL's query values and the body's literal strings (API keys travel in
    /// any of them): never quoted from an answer.
    secrets: Secrets,
}

/// Escapes a value for the inside of a JSON string.
fn escape_json(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("strings serialise");
    quoted[1..quoted.len() - 1].to_string()
}

impl HttpSmsChannel {
    pub fn new(gateway: &HttpGateway, from: &str) -> Result<Self, String> {
        let mut body = Handlebars::new();
        body.set_strict_mode(true);
        body.register_escape_fn(escape_json);
        body.register_template_string("body", &gateway.body)
            .map_err(|e| format!("sms.http.body: {e}"))?;
        Ok(HttpSmsChannel {
            secrets: gateway_secrets(gateway),
            client: client(DEFAULT_TIMEOUT),
            gateway: gateway.clone(),
            from: from.to_string(),
            body,
        })
    }

    /// The same gateway with another request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.client = client(timeout);
        self
    }
}

/// What of a gateway's configuration may be a credential: every header value, every value of
/// the URL's query, and every literal string of the body template (placeholders left out).
fn gateway_secrets(gateway: &HttpGateway) -> Secrets {
    fn literals(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) if !s.contains("{{") => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| literals(v, out)),
            Value::Object(fields) => fields.values().for_each(|v| literals(v, out)),
            _ => {}
        }
    }
    let mut values: Vec<String> = gateway.headers.values().cloned().collect();
    if let Some((_, query)) = gateway.url.split_once('?') {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        values.extend(pairs.into_iter().map(|(_, v)| v));
    }
    if let Ok(body) = serde_json::from_str::<Value>(&gateway.body) {
        literals(&body, &mut values);
    }
    Secrets::new(values)
}

/// The value at a dotted path of a JSON document, as text.
fn at_path(value: &Value, path: &str) -> Option<String> {
    let found = path.split('.').try_fold(value, |v, key| v.get(key))?;
    Some(match found {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[async_trait]
impl Channel for HttpSmsChannel {
    fn name(&self) -> &'static str {
        "sms-http"
    }

    /// Brandname APIs report delivery by their own callbacks, posted to `/webhooks/sms/dlr`.
    fn reports_delivery(&self) -> bool {
        true
    }

    async fn send(&self, message: &Outbound<'_>) -> Result<Receipt, SendError> {
        let unicode = sms_size(message.text).encoding == SmsEncoding::Ucs2;
        let body = self
            .body
            .render(
                "body",
                &serde_json::json!({
                    "to": message.address,
                    "to_national": message.address.replacen("+84", "0", 1),
                    "text": message.text,
                    "from": self.from,
                    "request_id": format!("loa-{}", message.delivery_id),
                    "unicode": unicode,
                }),
            )
            .map_err(|e| SendError::Message(format!("sms.http.body: {e}")))?;
        let method = reqwest::Method::from_bytes(self.gateway.method.to_uppercase().as_bytes())
            .map_err(|_| {
                SendError::Message(format!("sms.http.method {:?}", self.gateway.method))
            })?;
        let mut request = self
            .client
            .request(method, &self.gateway.url)
            .header("Content-Type", "application/json")
            .body(body);
        for (name, value) in &self.gateway.headers {
            request = request.header(name, value);
        }
        // Not `{e}`: the URL may carry an API key, as headers and body carry the rest.
        let response = request.send().await.map_err(|e| {
            SendError::Unavailable(format!("gateway unreachable: {}", describe_http_error(&e)))
        })?;
        let status = response.status();
        let text = read_answer(response).await.text;
        // A provider's answer may echo the number or the text: only an excerpt is quoted.
        let quoted = || excerpt(&text, message, &self.secrets);
        if status.is_server_error() {
            return Err(SendError::Unavailable(format!(
                "gateway answered {status}: {}",
                quoted()
            )));
        }
        if status.as_u16() == 429 {
            return Err(SendError::Retryable(format!(
                "gateway answered {status}: {}",
                quoted()
            )));
        }
        if status.is_client_error() {
            return Err(SendError::Message(format!(
                "gateway refused ({status}): {}",
                quoted()
            )));
        }
        let json: Value = serde_json::from_str(&text).map_err(|_| {
            SendError::Retryable(format!("gateway answer is not JSON: {:?}", quoted()))
        })?;
        match at_path(&json, &self.gateway.success_path) {
            Some(code) if code == self.gateway.success_value => Ok(Receipt {
                provider_message_id: self
                    .gateway
                    .message_id_path
                    .as_deref()
                    .and_then(|p| at_path(&json, p)),
            }),
            code => Err(SendError::Message(format!(
                "gateway did not accept the message ({} = {}): {}",
                self.gateway.success_path,
                excerpt(
                    &code.unwrap_or_else(|| "missing".into()),
                    message,
                    &self.secrets,
                ),
                quoted()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: Outbound<'static> = Outbound {
        delivery_id: 1,
        kind: crate::channel::ChannelKind::Sms,
        address: "+84912345678",
        text: "Chúc mừng ngày Quốc tế Phụ nữ 8/3",
    };

    #[test]
    fn kannel_answers_are_classified() {
        let none = Secrets::default();
        let classify = |status, body| classify_kannel(status, body, &MESSAGE, &none);
        assert!(classify(202, "0: Accepted for delivery").is_ok());
        assert!(classify(202, "3: Queued for later delivery").is_ok());
        assert!(matches!(
            classify(503, "Temporal failure, try again later."),
            Err(SendError::Unavailable(_))
        ));
        assert!(matches!(
            classify(403, "Authorization failed for sendsms"),
            Err(SendError::Message(_))
        ));
        assert!(matches!(
            classify(200, "<html>"),
            Err(SendError::Retryable(_))
        ));
        // An answer that echoes the request is quoted masked.
        let echoed = classify(
            400,
            "Invalid receiver +84912345678 for text Chúc mừng ngày Quốc tế Phụ nữ 8/3",
        );
        let Err(SendError::Message(reason)) = echoed else {
            panic!("{echoed:?}")
        };
        assert!(
            !reason.contains("912345678") && !reason.contains("Chúc"),
            "{reason}"
        );
    }

    #[test]
    fn dlr_url_carries_the_delivery_and_the_secret() {
        let cb = Callback {
            public_url: "http://127.0.0.1:8080/".into(),
            secret: Some("s3 cr&t".into()),
        };
        assert_eq!(
            cb.dlr_url(42),
            "http://127.0.0.1:8080/webhooks/sms/dlr?id=42&status=%d&secret=s3%20cr%26t"
        );
    }

    #[test]
    fn json_paths_and_escaping() {
        let v: Value = serde_json::json!({"CodeResult": "100", "data": {"id": 7}});
        assert_eq!(at_path(&v, "CodeResult").as_deref(), Some("100"));
        assert_eq!(at_path(&v, "data.id").as_deref(), Some("7"));
        assert_eq!(escape_json("Lê \"Tý\"\n"), "Lê \\\"Tý\\\"\\n");
    }
}
