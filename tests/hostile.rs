//! The console played by a hostile staff account, and the web server under abuse (#13): each
//! test tries what an attacker would and checks that it fails — and that honest use still works.

mod common;

use chrono::Duration;
use common::console::{content, hidden_field, spawn_console, spawn_console_with};
use loa::console::{Role, accounts};
use loa::web::guard::{self, CONTENT_SECURITY_POLICY, RouteLimits};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Typed by staff, opened by an approver: with handlebars, the triple braces wrote the span as
/// markup and its handler ran in the approver's browser with the page's CSRF token at hand.
const XSS: &str =
    r#"{{{vn_date "<span autofocus tabindex=1 onfocus=document.title='PWNED'>x</span>"}}}"#;
/// With handlebars, this recursed until the process aborted.
const RECURSION: &str = r#"{{#*inline "a"}}{{> a}}{{/inline}}{{> a}}"#;

fn id_of(item: &Value) -> i64 {
    item["id"].as_i64().expect("an id")
}

#[tokio::test]
async fn staff_text_is_never_a_template() {
    let mut c = spawn_console().await;
    c.app.subscribe("Trần Thị Mai", "bac-ly", 7002).await;
    c.app
        .subscribe_sms("Lê Văn Nam", "bac-ly", "+84912345678")
        .await;
    let staff = c.sign_in("lan", Role::Staff, None).await;
    let approver = c.sign_in("binh", Role::Approver, None).await;
    let mut body = content("Tin có mã độc", &["bac-ly"]);
    body["telegram_text"] = json!(XSS);
    body["sms_text"] = json!(format!("{RECURSION} {{{{person.name}}}}"));

    // The preview and the queue take both without running either.
    let (status, preview) = c
        .api_as(&staff, "POST", "/api/preview", Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        preview["channels"][1]["text"],
        format!("{RECURSION} Nguyễn Thị Lan\nTừ chối nhận tin: báo UBND xã Bắc Lý"),
        "the SMS preview is the text as typed, the placeholder filled in for a sample person"
    );
    let (status, item) = c.api_as(&staff, "POST", "/api/contents", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = id_of(&item);
    let r = c.http.get(c.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "Loa is still up");

    // The approver opens it: the span is text on the page, in the form and in the preview.
    c.api_as(
        &staff,
        "POST",
        &format!("/api/contents/{id}/submit"),
        c.version(id).await,
    )
    .await;
    let (status, page) = c.page(&approver, &format!("/queue/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("<span autofocus"), "{page}");
    assert!(page.contains("&lt;span autofocus"), "shown as text");

    // Approved and sent: residents get the characters that were typed, nothing else.
    let (status, _) = c
        .api_as(
            &approver,
            "POST",
            &format!("/api/contents/{id}/approve"),
            c.version(id).await,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.app.set_clock("2026-12-01T08:00:00+07:00");
    c.app.engine.scheduler.tick().await.unwrap();
    c.app.engine.dispatcher.step().await.unwrap();
    let telegram = c.app.telegram.sent_to(7002);
    assert_eq!(
        telegram[0].text,
        loa::templates::escape_telegram_html(XSS),
        "Telegram shows the braces and the tag as text"
    );
    assert_eq!(
        c.kannel.sent()[0].text,
        format!("{RECURSION} Lê Văn Nam\nTừ chối nhận tin: báo UBND xã Bắc Lý")
    );
}

/// The tags of an HTML page, as written (`<span class="x">`).
fn tags(html: &str) -> Vec<&str> {
    html.split('<')
        .skip(1)
        .filter_map(|t| t.split_once('>').map(|(tag, _)| tag))
        .collect()
}

#[tokio::test]
async fn pages_carry_no_inline_script_and_every_answer_its_security_headers() {
    let c = spawn_console().await;
    let admin = c.sign_in("quan-tri", Role::Admin, None).await;
    let (_, item) = c
        .api_as(
            &admin,
            "POST",
            "/api/contents",
            Some(content("Một tin", &[])),
        )
        .await;
    let id = id_of(&item);
    let check = |path: &str, r: &reqwest::Response| {
        let h = r.headers();
        assert_eq!(
            h["content-security-policy"], CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        let csp = CONTENT_SECURITY_POLICY;
        assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe-eval"));
        assert!(csp.contains("frame-ancestors 'none'"));
    };
    for path in [
        "/dashboard".to_string(),
        "/report".into(),
        "/calendar".into(),
        "/queue".into(),
        "/queue/new".into(),
        format!("/queue/{id}"),
        "/activities".into(),
        "/audit".into(),
        "/account/password".into(),
    ] {
        let r = c
            .http
            .get(c.url(&path))
            .header("cookie", &admin.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        check(&path, &r);
        let page = r.text().await.unwrap();
        for tag in tags(&page) {
            let lower = tag.to_lowercase();
            assert!(
                !lower.starts_with("script") || lower.contains(" src="),
                "{path}: inline script <{tag}>"
            );
            assert!(
                !lower
                    .split_whitespace()
                    .skip(1)
                    .any(|attr| attr.starts_with("on")),
                "{path}: inline event handler <{tag}>"
            );
        }
    }
    for path in [
        "/login",
        "/api/me",
        "/api/openapi.json",
        "/assets/console.js",
        "/healthz",
        "/exports/reach.csv",
    ] {
        let r = c
            .http
            .get(c.url(path))
            .header("cookie", &admin.cookie)
            .send()
            .await
            .unwrap();
        check(path, &r);
    }
    let r = c
        .http
        .get(c.url("/assets/console.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let script = r.text().await.unwrap();
    assert!(
        !script.contains("innerHTML"),
        "the live preview builds nodes, never HTML"
    );
}

#[tokio::test]
async fn the_telegram_preview_keeps_telegrams_tags_and_nothing_else() {
    let c = spawn_console().await;
    let staff = c.sign_in("lan", Role::Staff, None).await;
    // A template of messages/ speaks Telegram HTML: its <b> stays bold in the preview.
    let mut body = content("Mẫu", &[]);
    body["template"] = json!("bdg-phat-dong");
    let (status, preview) = c.api_as(&staff, "POST", "/api/preview", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let rich = preview["channels"][0]["rich"].to_string();
    assert!(rich.contains(r#""tag":"b""#), "{rich}");
    // Typed by staff, the same tag is text.
    let mut body = content("Tự soạn", &[]);
    body["telegram_text"] = json!("<b>Đậm</b> <a href=\"javascript:alert(1)\">x</a>");
    let (_, preview) = c.api_as(&staff, "POST", "/api/preview", Some(body)).await;
    assert_eq!(
        preview["channels"][0]["rich"],
        json!(["<b>Đậm</b> <a href=\"javascript:alert(1)\">x</a>"])
    );
}

#[tokio::test]
async fn approval_is_bound_to_a_version_and_to_people_who_wrote_none_of_it() {
    let c = spawn_console().await;
    let author = c.sign_in("lan", Role::Staff, None).await;
    let editor = c.sign_in("binh", Role::Approver, None).await;
    let other = c.sign_in("chi", Role::Approver, None).await;

    // An approver who edits someone's draft cannot then approve their own words.
    let (_, item) = c
        .api_as(
            &author,
            "POST",
            "/api/contents",
            Some(content("Tin A", &[])),
        )
        .await;
    let id = id_of(&item);
    assert_eq!(item["version"], 1);
    let mut changed = content("Tin A", &[]);
    changed["sms_text"] = json!("UBND huyen: noi dung do nguoi duyet tu viet.");
    let (status, item) = c
        .api_as(
            &editor,
            "PUT",
            &format!("/api/contents/{id}"),
            Some(changed),
        )
        .await;
    assert_eq!(
        (status, item["version"].as_i64()),
        (StatusCode::OK, Some(2))
    );
    c.api_as(
        &author,
        "POST",
        &format!("/api/contents/{id}/submit"),
        c.version(id).await,
    )
    .await;
    let (status, answer) = c
        .api_as(
            &editor,
            "POST",
            &format!("/api/contents/{id}/approve"),
            c.version(id).await,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (_, page) = c.page(&editor, &format!("/queue/{id}")).await;
    assert!(
        !page.contains(&format!("action=\"/queue/{id}/approve\"")),
        "no approve button for someone who wrote it"
    );
    let (status, item) = c
        .api_as(
            &other,
            "POST",
            &format!("/api/contents/{id}/approve"),
            c.version(id).await,
        )
        .await;
    assert_eq!(
        (status, item["state"].as_str()),
        (StatusCode::OK, Some("approved"))
    );

    // The author changes the text between the approver opening the page and pressing the
    // button: the approval of what the approver saw is refused.
    let (_, item) = c
        .api_as(
            &author,
            "POST",
            "/api/contents",
            Some(content("Tin B", &[])),
        )
        .await;
    let id = id_of(&item);
    c.form(&author, &format!("/queue/{id}/submit"), &[("version", "1")])
        .await;
    let (_, page) = c.page(&other, &format!("/queue/{id}")).await;
    let approve_form = &page[page
        .find(&format!("action=\"/queue/{id}/approve\""))
        .unwrap()..];
    let seen = hidden_field(approve_form, "version");
    assert_eq!(seen, "1");
    let mut changed = content("Tin B", &[]);
    changed["sms_text"] = json!("UBND huyen: noi dung da bi doi sau khi nguoi duyet mo trang.");
    c.api_as(
        &author,
        "PUT",
        &format!("/api/contents/{id}"),
        Some(changed),
    )
    .await;
    c.api_as(
        &author,
        "POST",
        &format!("/api/contents/{id}/submit"),
        c.version(id).await,
    )
    .await;
    let (status, _) = c
        .form(
            &other,
            &format!("/queue/{id}/approve"),
            &[("version", &seen)],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = c
        .api_as(
            &other,
            "POST",
            &format!("/api/contents/{id}/approve"),
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, answer) = c
        .api_as(&other, "POST", &format!("/api/contents/{id}/approve"), None)
        .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("version")),
        "an approval names the version it approves"
    );
    let (status, item) = c
        .api_as(
            &other,
            "POST",
            &format!("/api/contents/{id}/approve"),
            Some(json!({"version": 2})),
        )
        .await;
    assert_eq!(
        (status, item["state"].as_str()),
        (StatusCode::OK, Some("approved"))
    );
}

async fn failed_sign_ins(rows: &[Value], actor: &str) -> Vec<i64> {
    rows.iter()
        .filter(|e| e["action"] == "session.sign_in_failed" && e["actor"] == actor)
        .map(|e| e["repeats"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn sign_ins_are_throttled_by_name_and_by_address() {
    let c = spawn_console().await;
    c.sign_in("lan", Role::Staff, None).await;
    for _ in 0..10 {
        let r = c.log_in("lan", "doan-mo", "/dashboard").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // The right password now waits too: it is not even checked.
    let r = c.log_in("lan", "lan-mat-khau-moi", "/dashboard").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    assert!(r.text().await.unwrap().contains("quá nhiều lần"));
    // So does any other name from the same address.
    accounts::add_user(
        &c.app.db,
        &c.app.setup.config.areas,
        "binh",
        Role::Approver,
        None,
        c.app.clock_now(),
    )
    .await
    .unwrap();
    let r = c.log_in("binh", "bat-ky", "/dashboard").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Ten minutes after the first failure, the right password works again.
    c.app.advance(Duration::minutes(10) + Duration::seconds(1));
    let r = c.log_in("lan", "lan-mat-khau-moi", "/dashboard").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The ten failures are one row of the audit log, counted.
    let admin = c.token("quan-tri", Role::Admin, None).await;
    let (_, log) = c.api(&admin, "GET", "/api/audit?limit=100", None).await;
    assert_eq!(
        failed_sign_ins(log.as_array().unwrap(), "user:lan").await,
        [10]
    );
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    // Not trusted: X-Forwarded-For is the attacker's to write, so it changes nothing.
    let c = spawn_console().await;
    for i in 0..10 {
        let r = c
            .log_in_from(&format!("ai-do-{i}"), "sai", &format!("203.0.113.{i}"))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = c.log_in_from("ai-do-khac", "sai", "198.51.100.1").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    // Behind a trusted proxy, each client is counted on its own.
    let c = spawn_console_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    for i in 0..10 {
        let r = c
            .log_in_from(&format!("ai-do-{i}"), "sai", "203.0.113.7")
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = c.log_in_from("ai-do-khac", "sai", "203.0.113.7").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = c.log_in_from("ai-do-khac", "sai", "198.51.100.1").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_sign_in_form_needs_its_own_token_and_goes_back_only_to_local_paths() {
    let c = spawn_console().await;
    c.sign_in("lan", Role::Staff, None).await;
    // A form posted from elsewhere carries no token of ours.
    let r = c
        .http
        .post(c.url("/login"))
        .form(&[("name", "lan"), ("password", "lan-mat-khau-moi")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_some(), "a fresh form");
    for evil in [
        "//evil.example",
        "/\\evil.example",
        "/\t/evil.example",
        "https://evil.example",
    ] {
        let r = c.log_in("lan", "lan-mat-khau-moi", evil).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/dashboard", "{evil:?}");
    }
    let r = c.log_in("lan", "lan-mat-khau-moi", "/queue?x=1").await;
    assert_eq!(r.headers()["location"], "/queue?x=1");
}

#[tokio::test]
async fn exports_defuse_formulas_and_the_delivery_log_is_audited() {
    let mut c = spawn_console().await;
    let person = c
        .app
        .subscribe_sms(
            "=HYPERLINK(\"http://x.example\",\"Bấm\")",
            "bac-ly",
            "+84912345678",
        )
        .await;
    c.app.subscribe("@SUM(1+1)", "bac-ly", 7005).await;
    let staff = c.token("soan-tin", Role::Staff, None).await;
    let approver = c.token("duyet", Role::Approver, None).await;
    let (_, item) = c
        .api(
            &staff,
            "POST",
            "/api/contents",
            Some(content("Tin", &["bac-ly"])),
        )
        .await;
    let id = id_of(&item);
    c.api(&staff, "POST", &format!("/api/contents/{id}/submit"), None)
        .await;
    c.api(
        &approver,
        "POST",
        &format!("/api/contents/{id}/approve"),
        c.version(id).await,
    )
    .await;
    c.app.set_clock("2026-12-01T08:00:00+07:00");
    c.app.engine.scheduler.tick().await.unwrap();
    c.app.engine.dispatcher.step().await.unwrap();
    assert!(person > 0);

    let official = c.sign_in("lanh-dao", Role::Official, None).await;
    let r = c
        .http
        .get(c.url("/exports/deliveries.csv?period=year&year=2026"))
        .header("cookie", &official.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csv = r.text().await.unwrap();
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://x.example\"\",\"\"Bấm\"\")\""),
        "{csv}"
    );
    assert!(csv.contains(",'@SUM(1+1),"), "{csv}");
    assert!(
        csv.contains(",+8491…678,"),
        "masked numbers as they are: {csv}"
    );
    assert!(!csv.contains("7005"), "chat ids are masked: {csv}");
    let admin = c.token("quan-tri", Role::Admin, None).await;
    let (_, log) = c.api(&admin, "GET", "/api/audit?limit=100", None).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "export.deliveries" && e["actor"] == "user:lanh-dao"),
        "{log}"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_anything_is_read_into_the_queue() {
    let c = spawn_console().await;
    let staff = c.token("soan-tin", Role::Staff, None).await;
    let mut body = content("Tin", &[]);
    body["telegram_text"] = json!("x".repeat(RouteLimits::FORMS.body_bytes));
    let r = c
        .http
        .post(c.url("/api/contents"))
        .bearer_auth(&staff)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(c.app.count("SELECT COUNT(*) FROM contents").await, 0);
    let r = c
        .http
        .post(c.url("/webhooks/sms/mo"))
        .body("x".repeat(RouteLimits::CALLBACKS.body_bytes + 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A server of `router` with Loa's connection handling, on a free port.
async fn serve(router: axum::Router, header_timeout: std::time::Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(guard::serve(
        listener,
        router,
        header_timeout,
        std::future::pending(),
    ));
    base
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let base = serve(
        axum::Router::new().route("/", axum::routing::get(|| async { "ok" })),
        std::time::Duration::from_millis(300),
    )
    .await;
    let mut slow = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // The server closes the connection; the bound only keeps a broken build from hanging.
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the slow connection was not closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_slow_route_times_out_and_a_flood_is_shed_not_queued() {
    // A handler that tells when it has started, then waits to be let go.
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel::<()>();
    let waiting = {
        let gate = gate.clone();
        axum::routing::get(move || {
            let (gate, entered_tx) = (gate.clone(), entered_tx.clone());
            async move {
                let _ = entered_tx.send(());
                gate.notified().await;
                "done"
            }
        })
    };
    let slow = RouteLimits {
        body_bytes: 1024,
        timeout: std::time::Duration::from_millis(200),
    }
    .apply(axum::Router::new().route("/slow", waiting.clone()));
    let base = serve(slow, guard::HEADER_READ_TIMEOUT).await;
    let r = reqwest::get(format!("{base}/slow")).await.unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
    entered.recv().await.unwrap();

    let capped = guard::capped(axum::Router::new().route("/wait", waiting), 2);
    let base = serve(capped, guard::HEADER_READ_TIMEOUT).await;
    let client = reqwest::Client::new();
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(client.get(format!("{base}/wait")).send()))
        .collect();
    entered.recv().await.unwrap();
    entered.recv().await.unwrap();
    // Both places are taken: a third request is turned away at once, not queued.
    let third = client.get(format!("{base}/wait")).send().await.unwrap();
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(third.headers()["retry-after"], "1");
    gate.notify_waiters();
    for h in held {
        assert_eq!(h.await.unwrap().unwrap().status(), StatusCode::OK);
    }
}
