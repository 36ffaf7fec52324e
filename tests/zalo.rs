//! Zalo ZNS against a fake that enforces Zalo's API (token expiry and rotation, each
//! parameter's limit, numbers without Zalo, the daily quota): each person gets one message, by
//! Zalo or by SMS; reach counts only what Zalo or the SMS centre confirmed; the token pair is
//! shared by processes without a spent refresh token ever being used; a forged receipt changes
//! nothing; a quota run out waits for the next day.

mod common;

use std::collections::HashMap;

use chrono::Duration;
use common::TestApp;
use loa::channel::ChannelKind;
use loa::config::{SmsGateway, ZaloConfig};
use loa::fakes::kannel::FakeKannel;
use loa::fakes::zalo::{FakeZalo, Reachability, ZaloApp};
use sqlx::Row;

const ADMIN: i64 = 9001;
/// The approved templates the shipped `messages/*.zalo.toml` name.
const CAMPAIGN_TEMPLATE: &str = "7340001";
const STAFF_TEMPLATE: &str = "7340002";

fn zalo_account() -> ZaloApp {
    ZaloApp {
        app_id: "1234567890".into(),
        secret_key: "app-secret".into(),
        refresh_token: "refresh-0".into(),
        oa_secret: "oa-secret".into(),
    }
}

struct Zalo {
    app: TestApp,
    zalo: FakeZalo,
    kannel: FakeKannel,
    base: String,
}

/// Loa on 8 March 2023 at 08:00 with the fake ZNS and Kannel, its web routes served, and
/// `people` residents known by their mobile number only (no Telegram): the 8/3 message goes
/// by Zalo, else SMS. `not_on_zalo` says which numbers have no Zalo account.
async fn zalo_app(people: usize, not_on_zalo: fn(&str) -> bool) -> Zalo {
    let zalo = FakeZalo::start(zalo_account()).await.unwrap();
    for id in [CAMPAIGN_TEMPLATE, STAFF_TEMPLATE] {
        zalo.register_template(id, &[("co_quan", 50), ("noi_dung", 330)]);
    }
    zalo.set_reachability(move |phone| {
        if not_on_zalo(phone) {
            Reachability::NotOnZalo
        } else {
            Reachability::OnZalo
        }
    });
    let kannel = FakeKannel::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (sms_url, api, public) = (kannel.sendsms_url(), zalo.api_url(), base.clone());
    let app = TestApp::spawn_adjusted("2023-03-08T08:00:00+07:00", move |c| {
        c.sms.gateway = Some(SmsGateway::Kannel {
            url: sms_url,
            username: "loa".into(),
            password: "matkhau".into(),
        });
        c.public_url = Some(public);
        c.webhook_secret = Some("kannel-secret".into());
        c.telegram.as_mut().unwrap().admins = vec![ADMIN];
        let a = zalo_account();
        c.zalo = Some(ZaloConfig {
            app_id: a.app_id,
            secret_key: a.secret_key,
            refresh_token: a.refresh_token,
            oa_secret: a.oa_secret,
            api_url: api.clone(),
            oauth_url: api,
        });
    })
    .await;
    app.serve_web(listener);
    if people > 0 {
        app.seed_residents(people).await;
        app.contacts_become_sms().await;
    }
    Zalo {
        app,
        zalo,
        kannel,
        base,
    }
}

/// Every fifth number has no Zalo account.
fn every_fifth(phone: &str) -> bool {
    phone.ends_with('0') || phone.ends_with('5')
}

/// Steps the dispatcher a second at a time until nothing waits (at most `limit` of Loa's time).
async fn send_all(app: &TestApp, limit: Duration) {
    let start = app.clock_now();
    loop {
        app.engine.dispatcher.step().await.unwrap();
        let waiting = app
            .count("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending')")
            .await;
        if waiting == 0 {
            return;
        }
        app.advance(Duration::seconds(1));
        assert!(
            app.clock_now() - start < limit,
            "{waiting} deliveries still waiting"
        );
    }
}

async fn health(base: &str) -> serde_json::Value {
    reqwest::get(format!("{base}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_person_gets_one_message_by_zalo_or_sms_and_reach_counts_only_what_was_received() {
    const PEOPLE: usize = 2_000;
    let Zalo {
        mut app,
        zalo,
        kannel,
        base,
    } = zalo_app(PEOPLE, every_fifth).await;
    app.engine.scheduler.tick().await.unwrap();
    // Zalo reaches the SMS numbers: the fan-out gave everyone a Zalo contact and chose it.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE channel = 'zalo'")
            .await,
        PEOPLE as i64
    );
    send_all(&app, Duration::minutes(30)).await;

    let on_zalo: Vec<_> = zalo.sent();
    let by_sms = kannel.sent();
    let mut per_number: HashMap<String, usize> = HashMap::new();
    for m in &on_zalo {
        *per_number.entry(format!("+{}", m.phone)).or_default() += 1;
    }
    for s in &by_sms {
        *per_number.entry(s.to.clone()).or_default() += 1;
    }
    assert_eq!(per_number.len(), PEOPLE, "everyone got a message");
    assert!(
        per_number.values().all(|n| *n == 1),
        "nobody got two: by Zalo or by SMS, never both"
    );
    let expected_sms = per_number.keys().filter(|n| every_fifth(n)).count();
    assert_eq!(by_sms.len(), expected_sms, "SMS only where Zalo cannot");
    assert!(by_sms.iter().all(|s| every_fifth(&s.to)));
    assert_eq!(on_zalo.len(), PEOPLE - expected_sms);
    // What the resident reads: the approved template, filled from the 8/3 message.
    let first = &on_zalo[0];
    assert_eq!(first.template_id, CAMPAIGN_TEMPLATE);
    assert_eq!(first.template_data["co_quan"], "UBND huyện Hiệp Hòa");
    assert!(
        first.template_data["noi_dung"]
            .as_str()
            .unwrap()
            .contains("Ngày Quốc tế Phụ nữ 8/3"),
        "{:?}",
        first.template_data
    );
    // Loa's delivery id rides as tracking_id.
    let tracked: i64 = first.tracking_id.as_deref().unwrap().parse().unwrap();
    let row = sqlx::query("SELECT channel, status FROM deliveries WHERE id = $1")
        .bind(tracked)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "zalo");
    // The numbers without Zalo are known now: their Zalo contact is off, their SMS one is not.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM contacts WHERE channel = 'zalo' AND active = 0")
            .await,
        expected_sms as i64
    );

    // Accepted is not received: nobody is reached yet.
    let reached = "SELECT COUNT(*) FROM deliveries WHERE reached_at IS NOT NULL";
    assert_eq!(app.count(reached).await, 0);
    // Zalo's receipts for every ZNS message; the SMS centre confirms half of the SMS.
    let statuses = zalo
        .deliver_receipts(&format!("{base}/webhooks/zalo"))
        .await;
    assert_eq!(statuses.len(), on_zalo.len());
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let half = std::sync::atomic::AtomicUsize::new(0);
    kannel
        .settle_reports(|_| {
            let n = half.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Some(if n % 2 == 1 { 1 } else { 2 })
        })
        .await;
    let zalo_reached = app
        .count("SELECT COUNT(*) FROM deliveries WHERE reached_at IS NOT NULL AND channel = 'zalo'")
        .await;
    let sms_reached = app
        .count("SELECT COUNT(*) FROM deliveries WHERE reached_at IS NOT NULL AND channel = 'sms'")
        .await;
    assert_eq!(zalo_reached, on_zalo.len() as i64);
    assert_eq!(sms_reached, (expected_sms / 2) as i64);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM reach WHERE period = 'Y2023'")
            .await,
        zalo_reached + sms_reached,
        "reach counts the confirmed messages and only those"
    );
    // A receipt played twice changes nothing.
    let (body, headers) = zalo.receipt_for(first);
    let client = reqwest::Client::new();
    let mut again = client.post(format!("{base}/webhooks/zalo")).body(body);
    for (k, v) in headers {
        again = again.header(k, v);
    }
    assert_eq!(again.send().await.unwrap().status(), 200);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM reach WHERE period = 'Y2023'")
            .await,
        zalo_reached + sms_reached
    );
    let h = health(&base).await;
    assert_eq!(h["zalo"]["token"], "valid", "{h}");
    assert!(h["zalo"]["quota_remaining"].as_i64().is_some(), "{h}");
}

#[tokio::test]
async fn two_processes_share_the_token_and_never_use_a_spent_refresh_token() {
    let Zalo { mut app, zalo, .. } = zalo_app(200, |_| false).await;
    // Zalo's access tokens last a minute here; each process refreshes through the database.
    zalo.set_access_token_lifetime(60);
    app.engine.scheduler.tick().await.unwrap();
    let second = app.second_engine();
    // Both processes send side by side; halfway, Zalo's tokens expire under them.
    let mut rounds = 0;
    for round in 0..60 {
        rounds = round;
        if round == 4 || round == 8 {
            zalo.expire_access_tokens();
        }
        let (a, b) = tokio::join!(app.engine.dispatcher.step(), second.dispatcher.step());
        a.unwrap();
        b.unwrap();
        app.advance(Duration::seconds(1));
        if app
            .count("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending')")
            .await
            == 0
        {
            break;
        }
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")
            .await,
        200
    );
    assert_eq!(zalo.sent().len(), 200, "each message once");
    assert_eq!(
        zalo.spent_refresh_tokens_presented(),
        0,
        "no process used a refresh token another had spent"
    );
    assert!(
        rounds > 8,
        "both expiries came while messages were going out"
    );
    // One refresh to start, one after each expiry: not one per process or per send.
    assert_eq!(zalo.refreshes(), 3);
    let stored: String =
        sqlx::query_scalar("SELECT refresh_token FROM channel_tokens WHERE channel = 'zalo'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        stored,
        zalo.current_refresh_token(),
        "the live pair is kept"
    );

    // Another host restarts with an old refresh token in its environment: the stored pair
    // works, so it is kept, and that host sends with it.
    let stale = engine_with_token(&app, "refresh-from-last-year");
    zalo.expire_access_tokens();
    let before = zalo.refreshes();
    send_one(&stale, "+84912999001")
        .await
        .expect("sent with the stored pair");
    assert_eq!(zalo.refreshes(), before + 1);
    assert_eq!(zalo.spent_refresh_tokens_presented(), 0);
    let stored: String =
        sqlx::query_scalar("SELECT refresh_token FROM channel_tokens WHERE channel = 'zalo'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(stored, zalo.current_refresh_token());
}

/// Another `loa run` on the same database whose environment gives `refresh_token`.
fn engine_with_token(app: &TestApp, refresh_token: &str) -> loa::app::Engine {
    let mut setup = app.setup.clone();
    std::sync::Arc::make_mut(&mut setup.config)
        .zalo
        .as_mut()
        .unwrap()
        .refresh_token = refresh_token.to_string();
    let clock = app.clock.clone() as loa::clock::SharedClock;
    let transports = setup
        .transports()
        .unwrap()
        .with_all(setup.zalo_transport(&app.db, &clock).unwrap());
    loa::app::Engine::new(&setup, app.db.clone(), clock, transports)
}

/// One ZNS message of the campaign template to `phone`, straight through the engine's Zalo
/// transport.
async fn send_one(
    engine: &loa::app::Engine,
    phone: &str,
) -> Result<loa::channels::Receipt, loa::channels::SendError> {
    let payload = loa::channel::ZnsPayload {
        template_id: CAMPAIGN_TEMPLATE.into(),
        template_data: [
            ("co_quan".to_string(), "UBND huyện Hiệp Hòa".to_string()),
            ("noi_dung".to_string(), "Thử".to_string()),
        ]
        .into(),
        text: "UBND huyện Hiệp Hòa gửi bà con:\nThử".into(),
    }
    .to_json();
    let zalo = engine
        .dispatcher
        .transports()
        .get(ChannelKind::Zalo)
        .unwrap()
        .clone();
    zalo.send(&loa::channels::Outbound {
        delivery_id: 999_999,
        kind: ChannelKind::Zalo,
        address: phone,
        text: &payload,
    })
    .await
}

#[tokio::test]
async fn a_new_refresh_token_and_a_restart_bring_zalo_back() {
    let Zalo { mut app, zalo, .. } = zalo_app(5, |_| false).await;
    zalo.revoke_refresh_token();
    app.engine.scheduler.tick().await.unwrap();
    for _ in 0..3 {
        app.engine.dispatcher.step().await.unwrap();
        app.advance(Duration::seconds(1));
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM channel_outages").await, 1);
    // The OA's admin authorises the app again; the operator sets the new token and restarts.
    let fresh = zalo.reauthorize();
    let restarted = engine_with_token(&app, &fresh);
    for _ in 0..300 {
        restarted.dispatcher.step().await.unwrap();
        if zalo.sent().len() == 5 {
            break;
        }
        app.advance(Duration::seconds(1));
    }
    assert_eq!(zalo.sent().len(), 5, "back within a probe's wait");
    assert_eq!(app.count("SELECT COUNT(*) FROM channel_outages").await, 0);
    let failure: Option<String> =
        sqlx::query_scalar("SELECT failure FROM channel_tokens WHERE channel = 'zalo'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(failure, None);
}

#[tokio::test]
async fn a_receipt_must_name_the_message_the_delivery_was_sent_as() {
    let Zalo {
        mut app,
        zalo,
        base,
        ..
    } = zalo_app(1, |_| false).await;
    app.engine.scheduler.tick().await.unwrap();
    send_all(&app, Duration::minutes(1)).await;
    let mut sent = zalo.sent()[0].clone();
    // Signed by Zalo, but for another database's message that had the same delivery id.
    sent.msg_id = "another-oa-message".into();
    let (body, headers) = zalo.receipt_for(&sent);
    let mut request = reqwest::Client::new()
        .post(format!("{base}/webhooks/zalo"))
        .body(body);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM reach").await, 0);
    zalo.deliver_receipts(&format!("{base}/webhooks/zalo"))
        .await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_puts_zalo_down_with_what_to_do_and_tells_the_admins() {
    let Zalo {
        mut app,
        zalo,
        kannel,
        base,
    } = zalo_app(20, |_| false).await;
    zalo.revoke_refresh_token();
    app.engine.scheduler.tick().await.unwrap();
    for _ in 0..5 {
        app.engine.dispatcher.step().await.unwrap();
        app.advance(Duration::seconds(1));
    }
    let h = health(&base).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["zalo"]["token"], "refused", "{h}");
    let problem = h["zalo"]["problem"].as_str().unwrap();
    assert!(problem.contains("LOA_ZALO_REFRESH_TOKEN"), "{problem}");
    assert!(
        !problem.contains("refresh-0"),
        "no token in /healthz: {problem}"
    );
    assert!(h["down"]["zalo"]["since"].is_string(), "{h}");
    // Nothing was given up and nothing went by SMS instead: the messages wait for Zalo.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE channel = 'zalo' AND status = 'pending'")
            .await,
        20
    );
    assert!(kannel.sent().is_empty());
    assert_eq!(zalo.sent().len(), 0);
    let to_admin: Vec<String> = app
        .telegram
        .sent()
        .into_iter()
        .filter(|m| m.chat_id == ADMIN)
        .map(|m| m.text)
        .collect();
    assert_eq!(to_admin.len(), 1, "{to_admin:?}");
    assert!(
        to_admin[0].starts_with("⚠️ <b>KÊNH ZALO BỊ GIÁN ĐOẠN</b>"),
        "{}",
        to_admin[0]
    );
    assert!(
        to_admin[0].contains("LOA_ZALO_REFRESH_TOKEN"),
        "{}",
        to_admin[0]
    );

    // Left down until the occurrence is about to expire (a day later): then SMS takes over.
    let expires: i64 = sqlx::query_scalar("SELECT MIN(expires_at) FROM deliveries")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    app.set_clock(
        &chrono::DateTime::from_timestamp(expires - 20 * 60, 0)
            .unwrap()
            .to_rfc3339(),
    );
    send_all(&app, Duration::minutes(15)).await;
    assert_eq!(kannel.sent().len(), 20, "sent by SMS before expiring");
    assert_eq!(zalo.sent().len(), 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM contacts WHERE channel = 'zalo' AND active = 1")
            .await,
        20,
        "Zalo failed, not the residents: their Zalo contacts stay"
    );
}

#[tokio::test]
async fn a_forged_or_altered_receipt_is_refused_and_changes_nothing() {
    let Zalo {
        mut app,
        zalo,
        base,
        ..
    } = zalo_app(3, |_| false).await;
    app.engine.scheduler.tick().await.unwrap();
    send_all(&app, Duration::minutes(1)).await;
    let sent = zalo.sent();
    assert_eq!(sent.len(), 3);
    let client = reqwest::Client::new();
    let post = |body: String, headers: Vec<(String, String)>| {
        let mut request = client.post(format!("{base}/webhooks/zalo")).body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        request.send()
    };
    let (body, headers) = zalo.receipt_for(&sent[0]);
    let unsigned: Vec<_> = headers
        .iter()
        .filter(|(k, _)| k != "X-ZEvent-Signature")
        .cloned()
        .collect();
    assert_eq!(
        post(body.clone(), unsigned.clone()).await.unwrap().status(),
        401
    );
    // Signed with a guessed secret.
    let forged_sig = loa::fakes::zalo::sign(&zalo_account().app_id, &body, "1", "guess");
    let mut forged = unsigned.clone();
    forged.push(("X-ZEvent-Signature".into(), forged_sig));
    assert_eq!(post(body.clone(), forged).await.unwrap().status(), 401);
    // Zalo's signature over another delivery's receipt.
    let other = body.replace(
        sent[0].tracking_id.as_deref().unwrap(),
        sent[1].tracking_id.as_deref().unwrap(),
    );
    assert_eq!(post(other, headers).await.unwrap().status(), 401);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE reached_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM reach").await, 0);
    // The genuine ones count.
    let statuses = zalo
        .deliver_receipts(&format!("{base}/webhooks/zalo"))
        .await;
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'")
            .await,
        3
    );
}

#[tokio::test]
async fn a_spent_daily_quota_waits_for_the_next_day_without_a_dead_letter() {
    let Zalo { mut app, zalo, .. } = zalo_app(50, |_| false).await;
    zalo.set_daily_quota(20);
    app.engine.scheduler.tick().await.unwrap();
    // A message worth sending for two more days (the 8/3 greeting itself expires the same
    // evening: see the next test).
    sqlx::query("UPDATE deliveries SET expires_at = expires_at + 172800")
        .execute(&app.db.pool)
        .await
        .unwrap();
    for _ in 0..30 {
        app.engine.dispatcher.step().await.unwrap();
        app.advance(Duration::seconds(1));
    }
    assert_eq!(zalo.sent().len(), 20);
    let requests = zalo.requests();
    for _ in 0..30 {
        app.engine.dispatcher.step().await.unwrap();
        app.advance(Duration::seconds(10));
    }
    assert!(
        zalo.requests() <= requests + 1,
        "once the quota is spent, the rest wait without asking Zalo again"
    );
    let rows = sqlx::query(
        "SELECT status, attempts, failures, due_at FROM deliveries WHERE status <> 'sent'",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 30);
    let midnight = common::at("2023-03-09T00:00:00+07:00").timestamp();
    for row in &rows {
        assert_eq!(row.get::<String, _>(0), "pending");
        assert_eq!(row.get::<i64, _>(2), 0, "no attempt spent on the quota");
        assert!(
            row.get::<i64, _>(3) >= midnight,
            "waits for the next quota day"
        );
    }
    // The next day, with a new quota, the rest go.
    zalo.new_quota_day();
    zalo.set_daily_quota(100);
    app.set_clock("2023-03-09T08:00:00+07:00");
    send_all(&app, Duration::minutes(5)).await;
    assert_eq!(zalo.sent().len(), 50);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE status IN ('dead', 'failed')")
            .await,
        0
    );
}

#[tokio::test]
async fn staff_words_go_by_zalo_only_inside_the_approved_template() {
    let Zalo { app, zalo, .. } = zalo_app(0, |_| false).await;
    let channel = app.setup.config.channels.get(ChannelKind::Zalo).unwrap();
    assert!(channel.staff_text);
    let templates = &app.setup.templates;
    assert_eq!(templates.staff_limit(channel), Some(330));
    let context = loa::templates::MessageContext::sample(
        "Ngày Quốc tế Phụ nữ 8/3",
        &loa::templates::SampleData::from_config(&app.setup.config),
    );
    let body = templates
        .staff_body(
            channel,
            "Mời bà con dự buổi nói chuyện về bình đẳng giới tại nhà văn hóa thôn.",
            &context,
            &Default::default(),
        )
        .unwrap();
    let payload = loa::channel::ZnsPayload::parse(&body).unwrap();
    assert_eq!(payload.template_id, STAFF_TEMPLATE);
    assert_eq!(
        payload.text,
        "UBND huyện Hiệp Hòa thông báo:\nMời bà con dự buổi nói chuyện về bình đẳng giới tại nhà văn hóa thôn."
    );
    let too_long = "chữ ".repeat(100);
    let refused = templates
        .staff_body(channel, &too_long, &context, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(refused.contains("noi_dung has 399 characters"), "{refused}");
    drop(zalo);
}

#[tokio::test]
async fn a_quota_spent_till_after_the_message_expires_sends_the_rest_by_sms_now() {
    let Zalo {
        mut app,
        zalo,
        kannel,
        ..
    } = zalo_app(50, |_| false).await;
    zalo.set_daily_quota(20);
    app.engine.scheduler.tick().await.unwrap();
    send_all(&app, Duration::minutes(10)).await;
    // 8/3's greeting expires at 20:00, before Zalo's quota comes back at midnight: the 30
    // left go by SMS today, once each, and keep their Zalo for tomorrow's messages.
    assert_eq!(zalo.sent().len(), 20);
    assert_eq!(kannel.sent().len(), 30);
    let mut numbers: Vec<String> = zalo
        .sent()
        .iter()
        .map(|m| format!("+{}", m.phone))
        .collect();
    numbers.extend(kannel.sent().into_iter().map(|s| s.to));
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 50, "nobody twice");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM contacts WHERE channel = 'zalo' AND active = 1")
            .await,
        50
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE status IN ('dead', 'failed', 'expired')")
            .await,
        0
    );
}

#[test]
fn loa_check_names_a_zalo_parameter_longer_than_its_approved_limit() {
    let dir = common::copy_of_repo();
    let file = dir.path().join("messages/quoc-te-phu-nu.zalo.toml");
    let source = std::fs::read_to_string(&file).unwrap();
    // The 8/3 text is some 150 characters; the approved parameter here allows 60.
    std::fs::write(&file, source.replace("max = 330", "max = 60")).unwrap();
    let problems = loa::app::Setup::load(&dir.path().join("loa.toml"), &Default::default())
        .unwrap_err()
        .to_string();
    let line = source
        .lines()
        .position(|l| l.starts_with("value = \"\"\""))
        .unwrap()
        + 1;
    assert!(
        problems.contains(&format!(
            "quoc-te-phu-nu.zalo.toml:{line}: ZNS parameter noi_dung has"
        )),
        "{problems}"
    );
    assert!(
        problems.contains("the approved template allows 60"),
        "{problems}"
    );
}

#[tokio::test]
async fn the_preview_shows_what_zalo_s_template_shows_and_staff_words_by_zalo_need_its_template() {
    let c = common::console::spawn_console().await;
    let staff = c.token("soan-tin", loa::console::Role::Staff, None).await;
    let (status, preview) = c
        .api(
            &staff,
            "POST",
            "/api/preview",
            Some(serde_json::json!({
                "title": "8/3",
                "template": "quoc-te-phu-nu",
                "channels": ["zalo", "sms"],
                "send_at": "2026-12-05T08:00",
            })),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{preview}");
    let zalo = &preview["channels"][0];
    assert_eq!(zalo["channel"], "zalo");
    let text = zalo["text"].as_str().unwrap();
    assert!(
        text.starts_with("UBND huyện Hiệp Hòa gửi bà con:\nChúc mừng Ngày Quốc tế Phụ nữ 8/3")
            && !text.contains("template_id"),
        "the wording as the resident reads it: {text}"
    );
    assert!(zalo["error"].is_null(), "{zalo}");
    // Staff's own words go by Zalo inside the configured template, within its limit.
    let (status, preview) = c
        .api(
            &staff,
            "POST",
            "/api/preview",
            Some(serde_json::json!({
                "title": "Họp",
                "texts": {"zalo": "Mời bà con dự họp.", "sms": "Moi ba con du hop."},
                "channels": ["zalo", "sms"],
                "send_at": "2026-12-05T08:00",
            })),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{preview}");
    assert_eq!(
        preview["channels"][0]["text"],
        "UBND huyện Hiệp Hòa thông báo:\nMời bà con dự họp."
    );
}

#[tokio::test]
async fn metrics_show_the_token_and_the_quota() {
    // The fakes stay bound: dropping one stops it.
    let Zalo {
        mut app,
        base,
        zalo: _zalo,
        kannel: _kannel,
    } = zalo_app(3, |_| false).await;
    app.engine.scheduler.tick().await.unwrap();
    send_all(&app, Duration::minutes(1)).await;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("loa_zalo_token_valid 1"), "{metrics}");
    assert!(metrics.contains("loa_zalo_quota_remaining "), "{metrics}");
    assert!(
        metrics.contains("loa_channel_down{channel=\"zalo\"} 0"),
        "{metrics}"
    );
}
