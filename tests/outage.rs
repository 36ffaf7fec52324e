//! A gateway that is down: its deliveries wait without spending attempts, a probe finds out
//! when it is back, and nothing is lost or sent twice. The SMS centre behind a fake Kannel goes
//! down for an hour of Loa's clock on the morning of 8 March.

mod common;

use std::collections::HashMap;

use chrono::Duration;
use common::TestApp;
use loa::config::SmsGateway;
use loa::dispatch::deliveries;
use loa::fakes::kannel::FakeKannel;

const PEOPLE: usize = 2_000;
const ADMIN: i64 = 9001;

/// Loa with the fake Kannel as its SMS gateway, an admin on Telegram, and its web routes
/// served; `PEOPLE` residents reachable by SMS only. Returns the web base URL.
async fn app_with_kannel() -> (TestApp, FakeKannel, String) {
    app_with(PEOPLE, None).await
}

/// `people` residents; `lease_seconds` instead of the shipped lease when given.
async fn app_with(people: usize, lease_seconds: Option<u32>) -> (TestApp, FakeKannel, String) {
    let kannel = FakeKannel::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let url = kannel.sendsms_url();
    let app = TestApp::spawn_adjusted("2023-03-08T08:00:00+07:00", move |c| {
        c.sms.gateway = Some(SmsGateway::Kannel {
            url,
            username: "loa".into(),
            password: "matkhau".into(),
        });
        c.telegram.as_mut().unwrap().admins = vec![ADMIN];
        if let Some(lease) = lease_seconds {
            c.dispatch.lease_seconds = lease;
        }
    })
    .await;
    app.serve_web(listener);
    app.seed_residents(people).await;
    // Everyone's contact becomes a mobile number: the occurrence goes by SMS alone.
    app.contacts_become_sms().await;
    (app, kannel, base)
}

async fn get(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn an_hour_long_sms_outage_costs_time_and_nothing_else() {
    let (mut app, kannel, base) = app_with_kannel().await;
    let start = app.clock_now();
    kannel.set_down(true);
    app.engine.scheduler.tick().await.unwrap();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE channel = 'sms'")
            .await,
        PEOPLE as i64
    );

    // An hour of Loa's clock, a step every five seconds.
    while app.clock_now() < start + Duration::hours(1) {
        app.engine.dispatcher.step().await.unwrap();
        app.advance(Duration::seconds(5));
    }
    let health: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/healthz")).await).expect("healthz is JSON");
    assert_eq!(health["status"], "degraded", "{health}");
    let since: chrono::DateTime<chrono::Utc> = health["down"]["sms"]["since"]
        .as_str()
        .expect("since when SMS is down")
        .parse()
        .unwrap();
    assert!(
        since >= start && since <= start + Duration::minutes(1),
        "marked down within the first minute of the outage: {since}"
    );
    let metrics = get(&format!("{base}/metrics")).await;
    assert!(
        metrics.contains("loa_channel_down{channel=\"sms\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("loa_channel_down{channel=\"telegram\"} 0"));
    // While it is down, a probe now and then, not 2,000 retries: the streak that marked it
    // down (ten seconds of sends) and a probe every three minutes at most after.
    let during = kannel.requests();
    assert!(
        during <= 100,
        "{during} requests to a gateway that was down"
    );
    let records = deliveries(&app.db).await.unwrap();
    assert!(records.iter().all(|d| d.status == "pending"), "none ended");
    assert!(
        records.iter().all(|d| d.failures <= 1),
        "no delivery spent more than the one attempt before the channel was marked down"
    );

    kannel.set_down(false);
    let back = app.clock_now();
    loop {
        app.engine.dispatcher.step().await.unwrap();
        let waiting = app
            .count("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending')")
            .await;
        if waiting == 0 {
            break;
        }
        app.advance(Duration::seconds(1));
        assert!(
            app.clock_now() < back + Duration::hours(1),
            "{waiting} deliveries still waiting an hour after the gateway came back"
        );
    }
    // Back within one probe interval, then at the channel's rate: 2,000 at 10/s.
    let took = app.clock_now() - back;
    assert!(
        took <= Duration::seconds(180 + PEOPLE as i64 / 10 + 30),
        "took {took} after the gateway came back"
    );
    let records = deliveries(&app.db).await.unwrap();
    let not_sent: Vec<_> = records.iter().filter(|d| d.status != "sent").collect();
    assert!(not_sent.is_empty(), "not sent: {:?}", &not_sent[..1]);
    let mut per_number: HashMap<String, usize> = HashMap::new();
    for sms in kannel.sent() {
        *per_number.entry(sms.to).or_default() += 1;
    }
    assert_eq!(per_number.len(), PEOPLE, "everyone got their message");
    assert!(per_number.values().all(|n| *n == 1), "nobody got two");

    let health: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/healthz")).await).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert!(
        get(&format!("{base}/metrics"))
            .await
            .contains("loa_channel_down{channel=\"sms\"} 0")
    );
    // The admin heard once that SMS was down and once that it was back, in that order.
    let to_admin: Vec<String> = app
        .telegram
        .sent()
        .into_iter()
        .filter(|m| m.chat_id == ADMIN)
        .map(|m| m.text)
        .collect();
    assert_eq!(to_admin.len(), 2, "{to_admin:?}");
    assert!(
        to_admin[0].starts_with("⚠️ <b>KÊNH SMS BỊ GIÁN ĐOẠN</b>\nTừ: 08:0"),
        "{}",
        to_admin[0]
    );
    assert!(to_admin[0].contains("Temporal failure"), "{}", to_admin[0]);
    assert!(
        to_admin[1].starts_with("✅ <b>KÊNH SMS ĐÃ HOẠT ĐỘNG TRỞ LẠI</b>\nLúc: 09:0"),
        "{}",
        to_admin[1]
    );
}

#[tokio::test]
async fn a_burst_of_failures_is_not_an_outage() {
    let (mut app, kannel, base) = app_with_kannel().await;
    // Fifteen failures in a row within two seconds: a blip, not an outage.
    for _ in 0..15 {
        kannel.answer_next(503, "Temporal failure, try again later.");
    }
    app.engine.scheduler.tick().await.unwrap();
    for _ in 0..3 {
        app.engine.dispatcher.step().await.unwrap();
    }
    app.advance(Duration::seconds(2));
    app.engine.dispatcher.step().await.unwrap();
    let health: serde_json::Value =
        serde_json::from_str(&get(&format!("{base}/healthz")).await).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(app.count("SELECT COUNT(*) FROM channel_outages").await, 0);
    assert!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")
            .await
            > 0,
        "sending went on after the blip"
    );
    assert!(
        app.telegram.sent().iter().all(|m| m.chat_id != ADMIN),
        "no notice for a blip"
    );
}

/// As `loa run` drives the dispatcher (`Dispatcher::pump`), while the test moves Loa's clock:
/// the probe is claimed, sent, and brings the channel back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loa_runs_pump_probes_a_channel_that_is_down_and_brings_it_back() {
    const FEW: usize = 300;
    // The test moves Loa's clock hundreds of times faster than sends take: a lease measured on
    // that clock would pass while a send is in flight (in `loa run` it is two minutes of real
    // time against a 20 s timeout), and the row would be claimed again.
    let (mut app, kannel, _) = app_with(FEW, Some(86_400)).await;
    let start = app.clock_now();
    kannel.set_down(true);
    app.engine.scheduler.tick().await.unwrap();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = &app;
    let dispatcher = &app.engine.dispatcher;
    let waiting = || async {
        app.count("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending')")
            .await
    };
    let drive = async {
        // An hour of Loa's clock, five seconds a step, the pump running all along.
        while app.clock_now() < start + Duration::hours(1) {
            app.advance(Duration::seconds(5));
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let down = app.count("SELECT COUNT(*) FROM channel_outages").await;
        let during = kannel.requests();
        kannel.set_down(false);
        let back = app.clock_now();
        while waiting().await > 0 {
            assert!(
                app.clock_now() < back + Duration::hours(1),
                "{} still waiting an hour after the gateway came back",
                waiting().await
            );
            app.advance(Duration::seconds(1));
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        dispatcher.request_stop();
        stop_tx.send(true).unwrap();
        (down, during)
    };
    let ((), (down, during)) = tokio::join!(
        dispatcher.pump(std::time::Duration::from_millis(1), stop_rx),
        drive
    );
    assert_eq!(down, 1, "SMS was marked down during the outage");
    assert!(
        during <= 100,
        "{during} requests to a gateway that was down"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM channel_outages").await, 0);
    let records = deliveries(&app.db).await.unwrap();
    assert!(
        records.iter().all(|d| d.status == "sent"),
        "all sent, none dead"
    );
    let mut per_number: HashMap<String, usize> = HashMap::new();
    for sms in kannel.sent() {
        *per_number.entry(sms.to).or_default() += 1;
    }
    assert_eq!(per_number.len(), FEW);
    assert!(per_number.values().all(|n| *n == 1), "nobody got two");
    let notices = app
        .telegram
        .sent()
        .into_iter()
        .filter(|m| m.chat_id == ADMIN)
        .count();
    assert_eq!(notices, 2, "one notice down, one back");
}
