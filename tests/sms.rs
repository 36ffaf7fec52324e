//! SMS end to end against a fake Kannel: Vietnamese text as UCS-2, delivery reports through the
//! webhook (reach counts only delivered SMS), opt-out and help by SMS, the Telegram-to-SMS
//! fallback, and importing contacts from CSV.

mod common;

use unicode_normalization::UnicodeNormalization;

use std::process::Command;

use chrono::Duration;
use common::{TestApp, copy_of_repo};
use loa::config::SmsGateway;
use loa::dispatch::deliveries;
use loa::fakes::kannel::FakeKannel;

const SECRET: &str = "bi-mat-webhook";

/// Loa with the fake Kannel as its SMS gateway and its webhooks served; returns the web base URL.
async fn app_with_kannel(start: &str) -> (TestApp, FakeKannel, String) {
    let kannel = FakeKannel::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (url, public) = (kannel.sendsms_url(), base.clone());
    let app = TestApp::spawn_adjusted(start, move |c| {
        c.sms.gateway = Some(SmsGateway::Kannel {
            url,
            username: "loa".into(),
            password: "matkhau".into(),
        });
        c.sms.from = "UBND HHoa".into();
        c.public_url = Some(public);
        c.webhook_secret = Some(SECRET.into());
    })
    .await;
    app.serve_web(listener);
    (app, kannel, base)
}

fn year_2023() -> (chrono::NaiveDate, chrono::NaiveDate) {
    ("2023-01-01".parse().unwrap(), "2023-12-31".parse().unwrap())
}

async fn reached(app: &TestApp) -> u64 {
    let (from, to) = year_2023();
    let c = &app.setup.config;
    loa::reach::report(&app.db, &c.areas, c.campaign.target, from, to)
        .await
        .unwrap()
        .total
        .reached
}

#[tokio::test]
async fn an_sms_counts_as_reaching_someone_only_when_reported_delivered() {
    let (mut app, kannel, _) = app_with_kannel("2023-03-08T08:00:00+07:00").await;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", "+84912345678")
        .await;
    app.engine.scheduler.tick().await.unwrap();
    assert_eq!(app.engine.dispatcher.step().await.unwrap().sent, 1);

    let sms = &kannel.sent()[0];
    assert_eq!(sms.to, "+84912345678");
    assert_eq!(sms.from, "UBND HHoa");
    assert_eq!(sms.coding, "2", "accented Vietnamese goes as UCS-2");
    assert!(
        sms.text.contains("xã Hòa Sơn"),
        "diacritics intact: {}",
        sms.text
    );
    assert!(
        sms.dlr_url
            .as_deref()
            .unwrap()
            .contains(&format!("secret={SECRET}"))
    );
    assert_eq!(
        reached(&app).await,
        0,
        "accepted by the gateway is not reached"
    );

    assert_eq!(kannel.report_all(8).await, [200], "SMSC submit");
    assert_eq!(deliveries(&app.db).await.unwrap()[0].status, "sent");
    assert_eq!(kannel.report_all(1).await, [200], "delivered");
    assert_eq!(deliveries(&app.db).await.unwrap()[0].status, "delivered");
    assert_eq!(reached(&app).await, 1);
    // A late "buffered" after "delivered" changes nothing.
    kannel.report_all(4).await;
    assert_eq!(deliveries(&app.db).await.unwrap()[0].status, "delivered");
}

#[tokio::test]
async fn delivery_reports_need_the_secret_and_a_known_delivery() {
    let (mut app, kannel, base) = app_with_kannel("2023-03-08T08:00:00+07:00").await;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", "+84912345678")
        .await;
    app.engine.scheduler.tick().await.unwrap();
    app.engine.dispatcher.step().await.unwrap();
    let id = deliveries(&app.db).await.unwrap()[0].id;
    let client = reqwest::Client::new();
    let get = |q: String| client.get(format!("{base}/webhooks/sms/dlr?{q}")).send();
    assert_eq!(
        get(format!("id={id}&status=1&secret=wrong"))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get(format!("id={id}&status=1")).await.unwrap().status(),
        401
    );
    assert_eq!(
        deliveries(&app.db).await.unwrap()[0].status,
        "sent",
        "nothing changed"
    );
    assert_eq!(
        get(format!("id=999999&status=1&secret={SECRET}"))
            .await
            .unwrap()
            .status(),
        404
    );
    // POST with a form body works too.
    let posted = client
        .post(format!("{base}/webhooks/sms/dlr"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("id={id}&status=2&secret={SECRET}"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert_eq!(deliveries(&app.db).await.unwrap()[0].status, "failed");
    drop(kannel);
}

#[tokio::test]
async fn a_stop_word_by_sms_opts_out_with_one_confirmation_a_day() {
    let (mut app, kannel, base) = app_with_kannel("2023-03-06T09:00:00+07:00").await;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", "+84912345678")
        .await;
    app.subscribe_sms("Lê Văn Nam", "hoa-son", "+84987654321")
        .await;
    let client = reqwest::Client::new();
    let mo = |from: &str, text: &str| {
        client
            .post(format!("{base}/webhooks/sms/mo"))
            .header("X-Loa-Webhook-Secret", SECRET)
            .json(&serde_json::json!({"from": from, "text": text}))
            .send()
    };
    assert_eq!(mo("0912345678", " Hủy ").await.unwrap().status(), 200);
    assert_eq!(mo("0912345678", "STOP").await.unwrap().status(), 200);
    let replies: Vec<_> = kannel
        .sent()
        .into_iter()
        .filter(|m| m.to == "+84912345678")
        .collect();
    assert_eq!(replies.len(), 1, "one automatic reply a day");
    assert!(
        replies[0].text.contains("đã ngừng nhận tin"),
        "{}",
        replies[0].text
    );

    // Anything else: a short help reply with the emergency lines, labelled, once.
    mo("0987654321", "cho toi hoi").await.unwrap();
    mo("0987654321", "alo").await.unwrap();
    let help: Vec<_> = kannel
        .sent()
        .into_iter()
        .filter(|m| m.to == "+84987654321")
        .collect();
    assert_eq!(help.len(), 1);
    assert!(
        help[0].text.contains("113 (công an)")
            && help[0].text.contains("TC")
            && help[0].text.contains("DK"),
        "{}",
        help[0].text
    );

    // The next campaign message reaches only the one still subscribed.
    app.set_clock("2023-03-08T08:00:00+07:00");
    let created = app.engine.scheduler.tick().await.unwrap().created;
    assert_eq!(created[0].recipients, 1);
    app.engine.dispatcher.step().await.unwrap();
    let campaign: Vec<_> = kannel
        .sent()
        .into_iter()
        .filter(|m| m.text.contains("8/3"))
        .collect();
    assert_eq!(campaign.len(), 1);
    assert_eq!(campaign[0].to, "+84987654321");

    // Without the secret, nothing happens.
    let refused = client
        .get(format!("{base}/webhooks/sms/mo?from=0987654321&text=STOP"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

/// Stop phrases as people write them, NFD included; words that only fold to a stop word do not.
#[tokio::test]
async fn stop_phrases_as_people_write_them_opt_out_and_look_alikes_do_not() {
    let (app, _kannel, base) = app_with_kannel("2023-03-06T09:00:00+07:00").await;
    let client = reqwest::Client::new();
    let cases = [
        ("+84912000201", "DỪNG NHẬN TIN", true),
        ("+84912000202", "TC UBND HHoa", true),
        ("+84912000203", "Huy dang ky.", true),
        (
            "+84912000204",
            &"Dừng nhận tin".nfd().collect::<String>(),
            true,
        ),
        ("+84912000205", "Đúng rồi", false),
        ("+84912000206", "Dùng thế nào?", false),
        ("+84912000207", "Dũng đây", false),
    ];
    for (number, text, _) in &cases {
        app.subscribe_sms("Người dân", "hoa-son", number).await;
        let status = client
            .post(format!("{base}/webhooks/sms/mo"))
            .header("X-Loa-Webhook-Secret", SECRET)
            .json(&serde_json::json!({"from": number, "text": text}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{text}");
    }
    for (number, text, stops) in cases {
        let sql = format!(
            "SELECT COUNT(*) FROM persons p JOIN contacts c ON c.person_id = p.id
             WHERE c.address = '{number}' AND p.opted_out_at IS NOT NULL"
        );
        let opted_out: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        assert_eq!(opted_out == 1, stops, "{text:?}");
    }
}

/// TC and unknown words say how to come back; "Đăng ký" (DK) takes a number back.
#[tokio::test]
async fn a_number_that_opted_out_can_subscribe_again_by_sms() {
    let (mut app, kannel, base) = app_with_kannel("2023-03-05T09:00:00+07:00").await;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", "+84912345678")
        .await;
    let client = reqwest::Client::new();
    let mo = |text: &str| {
        client
            .post(format!("{base}/webhooks/sms/mo"))
            .header("X-Loa-Webhook-Secret", SECRET)
            .json(&serde_json::json!({"from": "0912345678", "text": text}))
            .send()
    };
    mo("TC").await.unwrap();
    let told = kannel.sent().last().unwrap().text.clone();
    assert!(
        told.contains("soạn DK"),
        "the opt-out reply says how to come back: {told}"
    );

    // The next day: "Đăng ký", as people type it.
    app.set_clock("2023-03-06T09:00:00+07:00");
    mo(" Đăng ký ").await.unwrap();
    let back = kannel.sent().last().unwrap().text.clone();
    assert!(back.contains("đã đăng ký nhận tin"), "{back}");
    assert!(back.contains("soạn TC"), "and how to stop again: {back}");

    app.set_clock("2023-03-08T08:00:00+07:00");
    let created = app.engine.scheduler.tick().await.unwrap().created;
    assert_eq!(created[0].recipients, 1, "subscribed again");
    app.engine.dispatcher.step().await.unwrap();
    let campaign = kannel.sent().last().unwrap().text.clone();
    assert!(campaign.contains("8/3"), "{campaign}");
    assert!(
        campaign.ends_with("Từ chối nhận tin: báo UBND xã Hòa Sơn"),
        "every campaign SMS ends with how to stop: {campaign}"
    );
}

#[tokio::test]
async fn an_opt_out_after_the_fan_out_is_honoured_at_send_time() {
    let (mut app, kannel, base) = app_with_kannel("2023-03-08T08:00:00+07:00").await;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", "+84912345678")
        .await;
    app.engine.scheduler.tick().await.unwrap();
    reqwest::get(format!(
        "{base}/webhooks/sms/mo?from=%2B84912345678&text=TC&secret={SECRET}"
    ))
    .await
    .unwrap();
    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(step.skipped, 1, "{step:?}");
    assert!(kannel.sent().iter().all(|m| !m.text.contains("8/3")));
}

#[tokio::test]
async fn a_blocked_telegram_falls_back_to_sms_never_both() {
    let (mut app, kannel, _) = app_with_kannel("2023-03-08T08:00:00+07:00").await;
    let person = app.subscribe("Nguyễn Thị Lan", "bac-ly", 4242).await;
    loa::audience::add_contact(
        &app.db,
        person,
        loa::config::ChannelKind::Sms,
        "+84912000111",
        app.clock_now(),
    )
    .await
    .unwrap();
    app.telegram.block(4242);
    app.engine.scheduler.tick().await.unwrap();
    let first = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(first.sent, 0);
    let second = app.engine.dispatcher.step().await.unwrap();
    assert_eq!(second.sent, 1);
    assert!(app.telegram.sent().is_empty());
    assert_eq!(kannel.sent().len(), 1);
    assert_eq!(kannel.sent()[0].to, "+84912000111");
    let d = &deliveries(&app.db).await.unwrap()[0];
    assert_eq!((d.channel.as_str(), d.status.as_str()), ("sms", "sent"));
}

#[tokio::test]
async fn gateway_outages_are_retried_and_refusals_are_final() {
    let (mut app, kannel, _) = app_with_kannel("2023-03-08T08:00:00+07:00").await;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", "+84912345678")
        .await;
    app.subscribe_sms("Lê Văn Nam", "mai-dinh", "+84987654321")
        .await;
    kannel.answer_next(503, "Temporal failure, try again later.");
    kannel.answer_next(403, "Authorization failed for sendsms");
    app.engine.scheduler.tick().await.unwrap();
    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!((step.retrying, step.failed), (1, 1), "{step:?}");
    app.advance(Duration::minutes(1));
    assert_eq!(app.engine.dispatcher.step().await.unwrap().sent, 1);
}

fn loa(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(args)
        .current_dir(dir)
        .env_remove("LOA_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

#[test]
fn import_contacts_reports_bad_rows_by_line_and_never_duplicates() {
    let dir = copy_of_repo();
    let csv = "\u{feff}name,phone,area,tags\n\
        Nguyễn Thị Lan,0912 345 678,bac-ly,thanh-nien\n\
        Trần Văn Hùng,84987654321,mai-dinh,\n\
        Lê Thị Hoa,02043123456,tt-thang,\n\
        Phạm Văn Đức,0987654322,xa-khong-co,\n\
        ,0987654323,bac-ly,\n\
        Đỗ Thị Yến,+84 98 765 4324,xa dong lo,thanh-nien;hoi-phu-nu\n";
    std::fs::write(dir.path().join("danh-ba.csv"), csv).unwrap();
    let first = loa(dir.path(), &["import", "contacts", "danh-ba.csv"]);
    let out = String::from_utf8_lossy(&first.stdout);
    assert_eq!(first.status.code(), Some(1), "{out}");
    assert!(
        out.contains("danh-ba.csv:4: phone: \"02043123456\" is a landline"),
        "{out}"
    );
    assert!(
        out.contains("danh-ba.csv:5: area: unknown area \"xa-khong-co\" (neither a code nor a name in loa.toml)"),
        "{out}"
    );
    assert!(out.contains("danh-ba.csv:6: name is empty"), "{out}");
    assert!(out.contains("3 added, 0 updated, 3 rejected"), "{out}");

    let second = loa(dir.path(), &["import", "contacts", "danh-ba.csv"]);
    assert!(String::from_utf8_lossy(&second.stdout).contains("0 added, 3 updated, 3 rejected"));

    std::fs::write(
        dir.path().join("sai.csv"),
        "ho_ten,dia_chi,xa\nA,0912345670,bac-ly\n",
    )
    .unwrap();
    let wrong = loa(dir.path(), &["import", "contacts", "sai.csv"]);
    assert_eq!(wrong.status.code(), Some(1));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("sai.csv: no header row in the first 10 rows: a column for the name (Họ và tên, or name) and one for the phone number (Số điện thoại, SĐT, or phone) are needed"),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");
}

/// A commune's list names communes, not codes: every commune of the district, in the spellings
/// people type (as written, without diacritics in lower case, the bare name), imports without a
/// rejected row, each person in their commune.
#[tokio::test]
async fn communes_by_name_as_people_type_them_import_without_a_rejection() {
    let dir = common::copy_of_repo();
    let setup = loa::app::Setup::load(&dir.path().join("loa.toml"), &loa::config::Env::default())
        .unwrap_or_else(|p| panic!("{p}"));
    let mut csv = String::from("name,phone,area\n");
    let mut expected = Vec::new();
    let mut n = 0;
    for area in setup.config.areas.leaves() {
        let bare = area
            .name
            .split_once(' ')
            .map_or(area.name.as_str(), |(_, b)| b);
        // "Thị trấn Thắng": the bare name is after two words.
        let bare = bare.strip_prefix("trấn ").unwrap_or(bare);
        for spelling in [
            area.name.clone(),
            loa::templates::unaccent(&area.name).to_lowercase(),
            bare.to_string(),
        ] {
            n += 1;
            let phone = format!("0912{n:06}");
            csv.push_str(&format!("Người {n},{phone},{spelling}\n"));
            expected.push((format!("+84912{n:06}"), area.code.clone()));
        }
    }
    std::fs::write(dir.path().join("ds.csv"), csv).unwrap();
    let out = loa(dir.path(), &["import", "contacts", "ds.csv"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains(&format!("{n} added, 0 updated, 0 rejected")),
        "{report}"
    );
    // The binary ran in `dir`: its database is `dir/data/loa.db`.
    let db_url = format!("sqlite://{}/data/loa.db", dir.path().display());
    let db = loa::app::Setup::load(
        &dir.path().join("loa.toml"),
        &loa::config::Env::default().with("LOA_DATABASE_URL", db_url),
    )
    .unwrap_or_else(|p| panic!("{p}"))
    .open_database()
    .await
    .unwrap();
    for (phone, code) in expected {
        let row = sqlx::query(
            "SELECT p.area_code FROM contacts c JOIN persons p ON p.id = c.person_id
             WHERE c.address = $1",
        )
        .bind(&phone)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        let area: String = sqlx::Row::try_get(&row, 0).unwrap();
        assert_eq!(area, code, "{phone}");
    }
}

/// Numbers as a commune's old spreadsheet holds them: pre-2018 prefixes, a leading zero Excel
/// dropped, a float, two numbers in a cell. Each is imported as the number meant, and the
/// report says what was read differently; a 1900 number is refused with its reason.
#[test]
fn old_and_mangled_numbers_import_as_meant_and_are_reported() {
    let dir = common::copy_of_repo();
    let csv = "name,phone,area\n\
        Nguyễn Thị Lan,01662345678,bac-ly\n\
        Trần Văn Hùng,1682345679,bac-ly\n\
        Lê Thị Hoa,912345670.0,bac-ly\n\
        Phạm Văn Đức,\"02043871234, 0987654321\",bac-ly\n\
        Đỗ Thị Yến,1900969680,bac-ly\n";
    std::fs::write(dir.path().join("cu.csv"), csv).unwrap();
    let out = loa(dir.path(), &["import", "contacts", "cu.csv"]);
    let report = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "cu.csv:2: imported; phone: converted from the pre-2018 number 01662345678 to 0362345678",
        "cu.csv:3: imported; phone: its leading zero, dropped by the spreadsheet, was put back; converted from the pre-2018 number 01682345679 to 0382345679",
        "cu.csv:4: imported; phone: read \"912345670.0\" as 912345670; its leading zero",
        "cu.csv:5: imported; phone: the cell holds 2 numbers; the first mobile one, +84987654321, was taken",
        "cu.csv:6: phone: \"1900969680\" is a 1900/1800 service number, not a mobile",
        "4 added, 0 updated, 1 rejected; 4 row(s) read differently",
    ] {
        assert!(report.contains(expected), "{expected}\n{report}");
    }
}

#[tokio::test]
async fn a_report_that_arrives_before_the_send_is_recorded_is_kept() {
    // The SMSC can report "delivered" before the worker that sent the message has written
    // `sent`: the report must win.
    let (mut app, kannel, base) = app_with_kannel("2023-03-08T08:00:00+07:00").await;
    app.subscribe_sms("Trần Thị Mai", "hoa-son", "+84912345678")
        .await;
    app.engine.scheduler.tick().await.unwrap();
    let batch = app.engine.dispatcher.claim().await.unwrap();
    let id = batch[0].id;
    let early = reqwest::get(format!(
        "{base}/webhooks/sms/dlr?id={id}&status=1&secret={SECRET}"
    ))
    .await
    .unwrap();
    assert_eq!(early.status(), 200);
    assert_eq!(app.engine.dispatcher.deliver(batch).await.unwrap().sent, 1);
    let d = &deliveries(&app.db).await.unwrap()[0];
    assert_eq!(d.status, "delivered");
    assert_eq!(reached(&app).await, 1);
    drop(kannel);
}

/// A brandname API in the eSMS style: JSON in, `{"CodeResult": "100", "SMSID": …}` out.
#[tokio::test]
async fn an_http_brandname_gateway_described_in_config_sends_with_a_request_id() {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let seen = Arc::clone(&received);
    let api = axum::Router::new().route(
        "/api/send",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = Arc::clone(&seen);
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let json: serde_json::Value = serde_json::from_str(&body).expect("the body is JSON");
                let refuse = json["Phone"] == "0987654321";
                seen.lock().unwrap().push((auth, json));
                if refuse {
                    axum::Json(serde_json::json!({"CodeResult": "104", "ErrorMessage": "Brandname chưa đăng ký"}))
                } else {
                    axum::Json(serde_json::json!({"CodeResult": "100", "SMSID": "esms-77"}))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api).await });

    let mut app = TestApp::spawn_adjusted("2023-03-08T08:00:00+07:00", move |c| {
        c.sms.gateway = Some(SmsGateway::Http(loa::config::HttpGateway {
            url,
            method: "POST".into(),
            headers: [("Authorization".to_string(), "Bearer khoa-api".to_string())].into(),
            body: r#"{"Phone":"{{to_national}}","Content":"{{text}}","Brandname":"{{from}}","RequestId":"{{request_id}}","IsUnicode":{{#if unicode}}1{{else}}0{{/if}}}"#.into(),
            success_path: "CodeResult".into(),
            success_value: "100".into(),
            message_id_path: Some("SMSID".into()),
        }));
        c.sms.from = "UBND HHoa".into();
    })
    .await;
    app.subscribe_sms("Trần Thị \"Mai\"", "hoa-son", "+84912345678")
        .await;
    app.subscribe_sms("Lê Văn Nam", "mai-dinh", "+84987654321")
        .await;
    app.engine.scheduler.tick().await.unwrap();
    let step = app.engine.dispatcher.step().await.unwrap();
    assert_eq!((step.sent, step.failed), (1, 1), "{step:?}");

    let received = received.lock().unwrap().clone();
    let (auth, body) = received
        .iter()
        .find(|(_, b)| b["Phone"] == "0912345678")
        .unwrap();
    assert_eq!(auth, "Bearer khoa-api");
    assert!(
        body["Content"].as_str().unwrap().contains("xã Hòa Sơn"),
        "{body}"
    );
    assert_eq!(body["IsUnicode"], 1);
    assert_eq!(body["Brandname"], "UBND HHoa");
    let records = deliveries(&app.db).await.unwrap();
    let sent = records.iter().find(|d| d.status == "sent").unwrap();
    assert_eq!(
        body["RequestId"],
        format!("loa-{}", sent.id),
        "Loa's delivery id is the request id"
    );
    let refused = records.iter().find(|d| d.status == "failed").unwrap();
    assert!(
        refused
            .last_error
            .as_deref()
            .unwrap()
            .contains("CodeResult = 104"),
        "{refused:?}"
    );
    // The provider's id is kept, so its delivery reports can find the message.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE provider_message_id = 'esms-77'")
            .await,
        1
    );
}

/// An SMS callback cannot mark a Telegram delivery, by Loa's id or by the provider's.
#[tokio::test]
async fn a_delivery_report_names_an_sms_delivery_or_is_refused() {
    let (mut app, kannel, base) = app_with_kannel("2023-03-08T08:00:00+07:00").await;
    app.subscribe("Nguyễn Thị Lan", "bac-ly", 4242).await;
    app.engine.scheduler.tick().await.unwrap();
    assert_eq!(app.engine.dispatcher.step().await.unwrap().sent, 1);
    let telegram = deliveries(&app.db).await.unwrap()[0].clone();
    assert_eq!(
        (telegram.channel.as_str(), telegram.status.as_str()),
        ("telegram", "sent")
    );
    let provider_id = app.telegram.sent_to(4242)[0].message_id;
    let client = reqwest::Client::new();
    for query in [
        format!("id={}&status=2", telegram.id),
        format!("id={}&status=1", telegram.id),
        format!("message_id={provider_id}&status=2"),
    ] {
        let answer = client
            .get(format!("{base}/webhooks/sms/dlr?{query}&secret={SECRET}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{query}");
    }
    let after = deliveries(&app.db).await.unwrap()[0].clone();
    assert_eq!((after.status.as_str(), after.last_error), ("sent", None));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM delivery_attempts WHERE outcome <> 'sent'")
            .await,
        0
    );
    drop(kannel);
}
