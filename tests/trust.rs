//! The trust rules of `DESIGN.md` against what a hostile staff account, a careless resident or
//! an unauthenticated client tries second: parallel guesses, forged proxy headers, odd periods,
//! gateways that echo their credentials, slow bodies, version tricks. (`hostile.rs` holds the
//! first round.)

mod common;

use common::console::{content, spawn_console, spawn_console_with};
use loa::channels::sms::KannelChannel;
use loa::channels::{Channel, Outbound};
use loa::config::ChannelKind;
use loa::console::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn id_of(item: &Value) -> i64 {
    item["id"].as_i64().expect("an id")
}

/// Rule 4: after 10 failures for one name, further attempts get 429 with the password
/// unchecked. Guesses sent at once all pass the throttle's check before any failure is
/// counted, so each of them has its password checked.
#[tokio::test]
async fn parallel_guesses_get_no_more_than_ten_password_checks() {
    let c = spawn_console().await;
    c.sign_in("lan", Role::Staff, None).await;
    let mut forms = Vec::new();
    for _ in 0..40 {
        forms.push(c.login_form().await);
    }
    let mut tasks = Vec::new();
    for (i, (cookie, token)) in forms.into_iter().enumerate() {
        let (http, url) = (c.http.clone(), c.url("/login"));
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .header("cookie", cookie)
                .form(&[
                    ("_csrf", token.as_str()),
                    ("name", "lan"),
                    ("password", &format!("doan-{i}")),
                    ("next", "/dashboard"),
                ])
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut checked = 0;
    for t in tasks {
        if t.await.unwrap() == StatusCode::UNAUTHORIZED {
            checked += 1;
        }
    }
    assert!(
        checked <= 10,
        "{checked} of 40 simultaneous guesses had their password checked (at most 10 should)"
    );
}

/// Rule 4: `X-Forwarded-For` counts only as the trusted proxy wrote it. A proxy that adds its
/// own header line (HAProxy's `option forwardfor`) leaves the client's forged line first.
#[tokio::test]
async fn a_forged_first_forwarded_for_line_does_not_choose_the_address() {
    let c = spawn_console_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let (cookie, token) = c.login_form().await;
        let status = c
            .http
            .post(c.url("/login"))
            .header("cookie", cookie)
            // Written by the client…
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            // …and appended, as a line of its own, by the trusted proxy: the real client.
            .header("x-forwarded-for", "198.51.100.1")
            .form(&[
                ("_csrf", token.as_str()),
                ("name", format!("ai-do-{i}").as_str()),
                ("password", "sai"),
                ("next", "/dashboard"),
            ])
            .send()
            .await
            .unwrap()
            .status();
        statuses.push(status);
    }
    assert_eq!(
        statuses[10],
        StatusCode::TOO_MANY_REQUESTS,
        "the 11th failure from 198.51.100.1 must be refused: {statuses:?}"
    );
}

/// Rule 3: no NUL reaches the database (PostgreSQL refuses it; SQLite keeps it). A failed
/// sign-in writes the typed name into the audit log as `user:<name>`.
#[tokio::test]
async fn a_nul_in_a_sign_in_name_is_not_stored() {
    let c = spawn_console().await;
    let (cookie, token) = c.login_form().await;
    let r = c
        .http
        .post(c.url("/login"))
        .header("cookie", cookie)
        .form(&[
            ("_csrf", token.as_str()),
            ("name", "ad\u{0}min"),
            ("password", "x"),
            ("next", "/dashboard"),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a NUL in the name is a 500"
    );
    if c.app.db.backend == loa::store::Backend::Sqlite {
        let nul: i64 = c
            .app
            .count("SELECT COUNT(*) FROM audit_log WHERE instr(actor, char(0)) > 0")
            .await;
        assert_eq!(
            nul, 0,
            "the audit log holds a NUL typed by an anonymous client"
        );
    }
}

/// Rule 3: odd periods are refused (422), never a dropped connection.
#[tokio::test]
async fn extreme_custom_periods_are_refused_not_crashed() {
    let c = spawn_console().await;
    let official = c.token("lanh-dao", Role::Official, None).await;
    let staff = c.token("can-bo", Role::Staff, None).await;
    let mut problems = Vec::new();
    for (token, path) in [
        (
            &official,
            "/api/dashboard?period=custom&from=%2B262142-12-01&to=%2B262142-12-31",
        ),
        (
            &official,
            "/api/activities?period=custom&from=%2B262142-12-01&to=%2B262142-12-31",
        ),
        (
            &official,
            "/exports/deliveries.csv?period=custom&from=%2B262142-12-01&to=%2B262142-12-31",
        ),
        (
            &official,
            "/exports/reach.csv?period=custom&from=%2B262142-12-01&to=%2B262142-12-31",
        ),
        (
            &official,
            "/dashboard?period=custom&from=%2B262142-12-01&to=%2B262142-12-31",
        ),
        (
            &staff,
            "/api/dashboard?period=custom&from=-262143-01-01&to=-262143-01-31",
        ),
    ] {
        match c.http.get(c.url(path)).bearer_auth(token).send().await {
            Ok(r) if r.status().is_client_error() || r.status().is_success() => {}
            Ok(r) => problems.push(format!("{path}: {}", r.status())),
            Err(e) => problems.push(format!("{path}: no answer ({e})")),
        }
    }
    // Loa still answers.
    let r = c.http.get(c.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Rule 5: an area-limited account sees only its area. The dashboard's campaign filter lists
/// the titles of every content item sent, whatever its audience.
#[tokio::test]
async fn dashboard_campaign_titles_stay_within_the_area() {
    let mut c = spawn_console().await;
    c.app.subscribe("Trần Thị Mai", "bac-ly", 7002).await;
    let author = c.sign_in("lan", Role::Staff, Some("bac-ly")).await;
    let approver = c.sign_in("binh", Role::Approver, None).await;
    const SECRET_TITLE: &str = "Vu viec bao luc tai thon 3 Bac Ly";
    let (_, item) = c
        .api_as(
            &author,
            "POST",
            "/api/contents",
            Some(content(SECRET_TITLE, &["bac-ly"])),
        )
        .await;
    let id = id_of(&item);
    c.api_as(
        &author,
        "POST",
        &format!("/api/contents/{id}/submit"),
        c.version(id).await,
    )
    .await;
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
    // (Sessions last 12 hours: sign in again on the day of sending.)
    let district = c.sign_in("lanh-dao", Role::Official, None).await;
    let other_commune = c.sign_in("hoa", Role::Staff, Some("chau-minh")).await;
    let (_, everyone) = c.page(&district, "/dashboard").await;
    assert!(
        everyone.contains(SECRET_TITLE),
        "sent, so on the district's filter"
    );
    // Not in the other commune's queue: that part holds.
    let (_, queue) = c.page(&other_commune, "/queue").await;
    assert!(!queue.contains(SECRET_TITLE));
    let (_, dashboard) = c.page(&other_commune, "/dashboard").await;
    assert!(
        !dashboard.contains(SECRET_TITLE),
        "the dashboard of chau-minh's staff names bac-ly's content"
    );
}

/// Rule 6: a gateway's stored error holds no password. A proxy or gateway error page that
/// echoes the request line (with Kannel's `username` and `password` in the query string) is
/// quoted into `deliveries.last_error`, the log and the delivery-log export.
#[tokio::test]
async fn a_kannel_error_page_echoing_the_request_leaks_no_password() {
    const PASSWORD: &str = "matkhau-kannel-9b1c";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let line = request.lines().next().unwrap_or("").to_string();
            // The request path only, no scheme: `redact` looks for `://`.
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let body = format!("Bad Request: {path}");
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    let channel = KannelChannel::new(
        &format!("http://{addr}/cgi-bin/sendsms"),
        "loa",
        PASSWORD,
        "UBND",
        None,
    );
    let error = channel
        .send(&Outbound {
            delivery_id: 1,
            kind: ChannelKind::Sms,
            address: "+84912345678",
            text: "Xin chao",
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        !error.contains(PASSWORD),
        "the stored error quotes the Kannel password: {error}"
    );
}

/// Rule 3: a slow client cannot take the console and the gateways' callbacks down. Bodies that
/// never arrive hold a request place each until the 30 s timeout: one client holds at most
/// its share of them, the others are refused at once, and everyone else is still answered.
#[tokio::test]
async fn slow_bodies_from_one_client_leave_room_for_everyone_else() {
    let c = spawn_console_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let addr = c.base.trim_start_matches("http://").to_string();
    let total = loa::web::guard::MAX_CONCURRENT_REQUESTS;
    let share = loa::web::guard::MAX_REQUESTS_PER_CLIENT;
    let (refused_tx, mut refused_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut held = Vec::new();
    for _ in 0..total {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(
            b"POST /webhooks/sms/mo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\nfrom=",
        )
        .await
        .unwrap();
        let refused_tx = refused_tx.clone();
        held.push(tokio::spawn(async move {
            let mut answer = vec![0u8; 64];
            let n = s.read(&mut answer).await.unwrap_or(0);
            let _ = refused_tx.send(String::from_utf8_lossy(&answer[..n]).to_string());
            s
        }));
    }
    // Every request beyond the client's share is answered at once, without its body.
    for _ in 0..(total - share) {
        let answer = refused_rx.recv().await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    }
    let r = c
        .http
        .get(c.url("/healthz"))
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "one client with {total} unfinished bodies shuts everyone out"
    );
    assert!(
        refused_rx.try_recv().is_err(),
        "the client's own share is still being waited for"
    );
    for h in held {
        h.abort();
    }
}

/// Rule 1: an approval is of the version seen, by someone who wrote none of it. Version tricks
/// and other content's ids.
#[tokio::test]
async fn version_tricks_are_refused() {
    let c = spawn_console().await;
    let author = c.sign_in("lan", Role::Staff, None).await;
    let approver = c.sign_in("binh", Role::Approver, None).await;
    let (_, a) = c
        .api_as(&author, "POST", "/api/contents", Some(content("A", &[])))
        .await;
    let (_, b) = c
        .api_as(&author, "POST", "/api/contents", Some(content("B", &[])))
        .await;
    let (a, b) = (id_of(&a), id_of(&b));
    for id in [a, b] {
        c.api_as(
            &author,
            "POST",
            &format!("/api/contents/{id}/submit"),
            c.version(id).await,
        )
        .await;
    }
    for body in [
        json!({"version": -1}),
        json!({"version": 0}),
        json!({"version": i64::MAX}),
        json!({"version": "1"}),
        json!({"version": 1.0}),
        json!({"version": null}),
        json!({"version": 1, "id": b}),
        json!({}),
    ] {
        let (status, answer) = c
            .api_as(
                &approver,
                "POST",
                &format!("/api/contents/{a}/approve"),
                Some(body.clone()),
            )
            .await;
        assert!(status.is_client_error(), "{body}: {status} {answer}");
    }
    // The author through the form, with the version of someone else's content.
    let (status, _) = c
        .form(&author, &format!("/queue/{a}/approve"), &[("version", "1")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Rule 5: an admin's work (accounts, tokens, the audit log) is the whole district's, so no
/// admin account or token is limited to one area: one would read and change every other's.
#[tokio::test]
async fn no_admin_is_limited_to_an_area() {
    let c = spawn_console().await;
    let areas = &c.app.setup.config.areas;
    let now = c.app.clock_now();
    let token = loa::console::accounts::create_token(
        &c.app.db,
        areas,
        "quan-tri-chau-minh",
        Role::Admin,
        Some("chau-minh"),
        now,
    )
    .await;
    assert!(token.is_err(), "an area-limited admin token was created");
    let user = loa::console::accounts::add_user(
        &c.app.db,
        areas,
        "quan-tri-chau-minh",
        Role::Admin,
        Some("chau-minh"),
        now,
    )
    .await;
    assert!(user.is_err(), "an area-limited admin account was created");
    // Staff of that commune still may be.
    loa::console::accounts::add_user(
        &c.app.db,
        areas,
        "can-bo-chau-minh",
        Role::Staff,
        Some("chau-minh"),
        now,
    )
    .await
    .unwrap();
}

/// Rule 2: nothing typed becomes markup on any page. Payloads in every field staff type, and
/// in a failed sign-in's name (which the audit page shows).
#[tokio::test]
async fn typed_markup_is_text_on_every_page() {
    const P: &str = "<img src=x onerror=alert(1)>{{{person.name}}}";
    let mut c = spawn_console().await;
    c.app.subscribe(P, "bac-ly", 7002).await;
    let staff = c.sign_in("lan", Role::Staff, None).await;
    let approver = c.sign_in("binh", Role::Approver, None).await;
    let mut body = content(P, &["bac-ly"]);
    body["telegram_text"] = json!(format!("{P} {{{{person.name}}}}"));
    body["sms_text"] = json!(P);
    let (status, item) = c.api_as(&staff, "POST", "/api/contents", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = id_of(&item);
    c.api_as(
        &staff,
        "POST",
        &format!("/api/contents/{id}/submit"),
        c.version(id).await,
    )
    .await;
    c.api_as(
        &approver,
        "POST",
        &format!("/api/contents/{id}/approve"),
        c.version(id).await,
    )
    .await;
    let (status, _) = c
        .api_as(
            &staff,
            "POST",
            "/api/activities",
            Some(json!({"date": "2026-11-29", "area": "bac-ly", "kind": "session", "audience": 10, "note": P})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (cookie, token) = c.login_form().await;
    c.http
        .post(c.url("/login"))
        .header("cookie", cookie)
        .form(&[
            ("_csrf", token.as_str()),
            ("name", P),
            ("password", "x"),
            ("next", P),
        ])
        .send()
        .await
        .unwrap();
    let admin = c.sign_in("quan-tri", Role::Admin, None).await;
    for path in [
        "/queue",
        &format!("/queue/{id}"),
        "/calendar",
        "/activities",
        "/audit",
        "/dashboard",
    ] {
        let (status, page) = c.page(&admin, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            !page.contains("<img"),
            "{path} carries the typed tag as markup"
        );
    }
    c.app.set_clock("2026-12-01T08:00:00+07:00");
    c.app.engine.scheduler.tick().await.unwrap();
    c.app.engine.dispatcher.step().await.unwrap();
    let sent = c.app.telegram.sent_to(7002);
    assert!(!sent[0].text.contains("<img"), "{}", sent[0].text);
    let admin = c.sign_in("quan-tri-2", Role::Admin, None).await;
    for path in ["/dashboard", "/report", "/calendar"] {
        let (_, page) = c.page(&admin, path).await;
        assert!(
            !page.contains("<img"),
            "{path} carries the typed tag as markup"
        );
    }
    let r = c
        .http
        .get(c.url("/exports/deliveries.csv?period=year&year=2026"))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap();
    let csv = r.text().await.unwrap();
    assert!(!csv.contains("7002"), "the chat id is masked: {csv}");
}

/// Rule 4: after sign-in Loa goes back to a local path, or to the dashboard; never an error.
#[tokio::test]
async fn a_non_ascii_next_is_no_server_error() {
    let c = spawn_console().await;
    c.sign_in("lan", Role::Staff, None).await;
    let r = c
        .log_in("lan", "lan-mat-khau-moi", "/queue?tìm=bình-đẳng")
        .await;
    assert_ne!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

/// Rule 6: the same for a brandname API whose key travels in the JSON body (eSMS-style
/// `ApiKey`/`SecretKey`) and which echoes the request in its error answer.
#[tokio::test]
async fn a_brandname_api_echoing_its_request_leaks_no_key() {
    const KEY: &str = "SK-7d1f0c9a2b";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = request.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
            let answer = format!("{{\"CodeResult\":\"101\",\"Request\":{body}}}");
            let http = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = socket.write_all(http.as_bytes()).await;
        }
    });
    let gateway = loa::config::HttpGateway {
        url: format!("http://{addr}/api/send"),
        method: "POST".into(),
        headers: Default::default(),
        body: format!(
            r#"{{"ApiKey":"{KEY}","Phone":"{{{{to_national}}}}","Content":"{{{{text}}}}"}}"#
        ),
        success_path: "CodeResult".into(),
        success_value: "100".into(),
        message_id_path: None,
    };
    let channel = loa::channels::sms::HttpSmsChannel::new(&gateway, "UBND").unwrap();
    let error = channel
        .send(&Outbound {
            delivery_id: 1,
            kind: ChannelKind::Sms,
            address: "+84912345678",
            text: "Xin chao",
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        !error.contains(KEY),
        "the stored error quotes the API key: {error}"
    );
}
