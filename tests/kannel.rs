//! Against a real Kannel (Debian's packages) with its fake SMS centre: a Vietnamese message goes
//! out as UCS-2 with its diacritics intact, and Kannel's delivery reports come back to Loa's
//! webhook until the delivery is `delivered`. Needs `.ci/kannel/start`; `.ci/run` does it:
//!
//! ```sh
//! .ci/kannel/start /tmp/loa-kannel
//! LOA_TEST_KANNEL_URL=http://127.0.0.1:13013/cgi-bin/sendsms \
//! LOA_TEST_KANNEL_SMSC_LOG=/tmp/loa-kannel/fakesmsc.out cargo test --test kannel -- --ignored
//! ```

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use loa::config::SmsGateway;
use loa::dispatch::deliveries;

/// Decodes fakesmsc's UCS-2 fields (percent-encoded UTF-16BE bytes).
fn decode_ucs2(field: &str) -> String {
    let bytes = percent_bytes(field);
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).unwrap()
}

fn percent_bytes(field: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    let raw = field.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            bytes.push(u8::from_str_radix(&field[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else if raw[i] == b'+' {
            bytes.push(b' ');
            i += 1;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    bytes
}

#[tokio::test]
#[ignore = "needs Kannel: .ci/kannel/start, then LOA_TEST_KANNEL_URL"]
async fn a_vietnamese_sms_through_kannel_is_delivered_and_reported() {
    let url = std::env::var("LOA_TEST_KANNEL_URL").expect("LOA_TEST_KANNEL_URL");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let mut app = TestApp::spawn_adjusted("2023-03-08T08:00:00+07:00", move |c| {
        c.sms.gateway = Some(SmsGateway::Kannel {
            url,
            username: "loa".into(),
            password: "loa-test".into(),
        });
        c.sms.from = "UBND".into();
        c.public_url = Some(public);
        c.webhook_secret = Some("kannel-secret".into());
    })
    .await;
    app.serve_web(listener);
    app.subscribe_sms("Trần Thị Mai", "hoa-son", "+84912345678")
        .await;
    app.engine.scheduler.tick().await.unwrap();
    assert_eq!(app.engine.dispatcher.step().await.unwrap().sent, 1);

    // Kannel reports "submitted" (8), then "delivered" (1), to the webhook.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = deliveries(&app.db).await.unwrap()[0].status.clone();
        if status == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "still {status} after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reached = app
        .count("SELECT COUNT(*) FROM reach WHERE period = 'Y2023'")
        .await;
    assert_eq!(reached, 1);

    if let Ok(log) = std::env::var("LOA_TEST_KANNEL_SMSC_LOG") {
        let log = std::fs::read_to_string(log).unwrap();
        // A long message arrives in parts: "udh <header> data <UCS-2 bytes>", the header's
        // last two bytes giving the part count and number.
        let parts: Vec<(Vec<u8>, String)> = log
            .lines()
            .filter(|l| l.contains("+84912345678 udh "))
            .map(|l| {
                let body = l.split_once("udh ").unwrap().1.trim_end_matches('>');
                let (udh, data) = body.split_once(" data ").unwrap();
                (percent_bytes(udh), data.to_string())
            })
            .collect();
        let (last_udh, _) = parts.last().expect("fakesmsc got a multi-part message");
        let total = usize::from(last_udh[4]);
        let text: String = parts[parts.len() - total..]
            .iter()
            .map(|(_, data)| decode_ucs2(data))
            .collect();
        assert!(
            text.contains("Ngày Quốc tế Phụ nữ 8/3")
                && text.contains("xã Hòa Sơn")
                && text.ends_with("Từ chối nhận tin: báo UBND xã Hòa Sơn"),
            "{text}"
        );
    }
}
