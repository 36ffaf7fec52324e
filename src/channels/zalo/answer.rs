//! Zalo's answers to a ZNS send, read into what dispatch acts on. Codes from Zalo's table
//! (zalo.cloud, "Cách xử lý mã lỗi"; see `shared/notes/zalo.md` for each code's source).

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::channels::SendError;

/// What one answer means.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Accepted: Zalo's message id, and the daily quota (remaining, daily) when it says.
    Sent {
        msg_id: Option<String>,
        quota: Option<(i64, i64)>,
    },
    /// The access token is invalid (−124): expired, or replaced by a refresh.
    TokenRefused,
    /// The OA's daily quota is used up: nothing more goes until then.
    QuotaUntil(DateTime<Utc>),
    Failed(SendError),
}

/// The next quota day: Zalo counts the daily quota by Vietnam's calendar day.
pub fn next_quota_day(now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let tomorrow = now
        .with_timezone(&tz)
        .date_naive()
        .checked_add_days(Days::new(1))
        .expect("dates this side of 262143")
        .and_time(NaiveTime::MIN);
    tz.from_local_datetime(&tomorrow)
        .earliest()
        .map_or(now + chrono::Duration::days(1), |t| t.with_timezone(&Utc))
}

/// A number or a string holding one (Zalo writes numbers both ways).
fn int(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn classify(status: u16, body: &str, now: DateTime<Utc>, tz: Tz) -> Verdict {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let Some(answer) = parsed.filter(|v| v.get("error").is_some()) else {
        // Zalo itself always answers 200 with JSON: anything else is a gateway in front.
        let what = format!("zalo answered {status} without its JSON envelope");
        return Verdict::Failed(if status >= 500 || status == 429 || status == 408 {
            SendError::Unavailable(what)
        } else {
            SendError::Retryable(what)
        });
    };
    let code = int(answer.get("error")).unwrap_or(i64::MIN);
    let message = answer
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect::<String>();
    let said = format!("zalo {code} {message}");
    match code {
        0 => {
            let data = answer.get("data");
            let msg_id = data.and_then(|d| d.get("msg_id")).and_then(|m| match m {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            let quota = data
                .and_then(|d| d.get("quota"))
                .and_then(|q| Some((int(q.get("remainingQuota"))?, int(q.get("dailyQuota"))?)));
            Verdict::Sent { msg_id, quota }
        }
        -124 => Verdict::TokenRefused,
        // The OA's daily quota.
        -144 => Verdict::QuotaUntil(next_quota_day(now, tz)),
        // No Zalo account, cannot receive ZNS, inactive or refusing, refused this kind of
        // message or the OA, a number Zalo does not take: this contact, not the message.
        -108 | -114 | -118 | -119 | -139 | -141 => Verdict::Failed(SendError::Recipient(said)),
        // The template or its data refused: every recipient would be.
        -109 | -111 | -112 | -117 => Verdict::Failed(SendError::Message(said)),
        // The balance used up; the app, its secret or the OA not set up: an operator must act.
        -105..=-101 | -115 | -135 => Verdict::Failed(SendError::Account(said)),
        // Too many requests.
        -32 => Verdict::Failed(SendError::RateLimited {
            retry_after: std::time::Duration::from_secs(1),
        }),
        -100 => Verdict::Failed(SendError::Retryable(said)),
        // Codes not in Zalo's table as we know it: retried, and said loudly, so the table is
        // brought up to date.
        _ => {
            tracing::warn!("zalo answered a code Loa does not know, retried: {said}");
            Verdict::Failed(SendError::Retryable(said))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn each_answer_means_what_dispatch_must_do() {
        let tz: Tz = "Asia/Ho_Chi_Minh".parse().unwrap();
        let now = at("2026-03-08T10:00:00Z");
        let ok = r#"{"error":0,"message":"Success","data":{"msg_id":"a1","sent_time":"1","quota":{"dailyQuota":"500","remainingQuota":"499"}}}"#;
        assert_eq!(
            classify(200, ok, now, tz),
            Verdict::Sent {
                msg_id: Some("a1".into()),
                quota: Some((499, 500))
            }
        );
        let code = |c: i64| classify(200, &format!(r#"{{"error":{c},"message":"m"}}"#), now, tz);
        assert_eq!(code(-124), Verdict::TokenRefused);
        // 10:00 UTC is 17:00 in Hà Nội: the quota comes back at 00:00 there, 17:00 UTC.
        assert_eq!(code(-144), Verdict::QuotaUntil(at("2026-03-08T17:00:00Z")));
        assert!(matches!(
            code(-118),
            Verdict::Failed(SendError::Recipient(_))
        ));
        assert!(matches!(
            code(-141),
            Verdict::Failed(SendError::Recipient(_))
        ));
        assert!(matches!(code(-112), Verdict::Failed(SendError::Message(_))));
        assert!(matches!(code(-115), Verdict::Failed(SendError::Account(_))));
        assert!(matches!(
            code(-100),
            Verdict::Failed(SendError::Retryable(_))
        ));
        assert!(matches!(
            code(-9999),
            Verdict::Failed(SendError::Retryable(_))
        ));
        assert!(matches!(
            classify(503, "<html>Service Unavailable</html>", now, tz),
            Verdict::Failed(SendError::Unavailable(_))
        ));
    }
}
