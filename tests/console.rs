//! The staff console and the officials' dashboard over HTTP, as a browser or a script uses
//! them: sign-in and roles, the content queue and its approval, what reaches residents, the
//! dashboard's figures and filters, exports, and the OpenAPI document.

mod common;

use chrono::Duration;
use common::console::{Console, content, spawn_console};
use loa::config::ChannelKind;
use loa::console::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn every_route_refuses_callers_without_credentials_or_with_the_wrong_role() {
    let c = spawn_console().await;
    let staff = c.token("soan-tin", Role::Staff, None).await;
    let (status, item) = c
        .api(
            &staff,
            "POST",
            "/api/contents",
            Some(content("Một tin", &[])),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = item["id"].to_string();
    let tokens = [
        (Role::Staff, staff),
        (Role::Approver, c.token("duyet", Role::Approver, None).await),
        (
            Role::Official,
            c.token("lanh-dao", Role::Official, None).await,
        ),
        (Role::Admin, c.token("quan-tri", Role::Admin, None).await),
    ];

    // A resident's text for the inbox's routes (an unknown number: the district's).
    let (inbox_id, _) = loa::inbound::inbox::record(
        &c.app.db,
        ChannelKind::Sms,
        "+84987000999",
        "cho tôi hỏi",
        false,
        c.app.clock_now(),
    )
    .await
    .unwrap();
    let inbox_id = inbox_id.to_string();

    // The API: every operation of the OpenAPI document, with the roles it names.
    let doc: Value = serde_json::from_str(loa::web::api::OPENAPI).unwrap();
    let mut walked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let path = if path.starts_with("/api/inbox/") {
            path.replace("{id}", &inbox_id)
        } else {
            path.replace("{id}", &id)
        };
        for (method, op) in ops.as_object().unwrap() {
            let method = method.to_uppercase();
            let body = (method != "GET").then(|| content("Một tin", &[]));
            let r = c
                .http
                .request(method.parse().unwrap(), c.url(&path))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} without credentials"
            );
            let allowed: Vec<&str> = op["x-roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            for (role, token) in &tokens {
                let (status, answer) = c.api(token, &method, &path, body.clone()).await;
                if allowed.contains(&role.as_str()) {
                    assert!(
                        status != StatusCode::UNAUTHORIZED
                            && status != StatusCode::FORBIDDEN
                            && status != StatusCode::NOT_FOUND,
                        "{method} {path} as {role}: {status} {answer}"
                    );
                } else {
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{method} {path} as {role}: {answer}"
                    );
                }
                walked += 1;
            }
        }
    }
    assert!(walked >= 60, "walked only {walked} route × role pairs");

    // The pages: without a session, 401 with the sign-in form in the body.
    let pages = [
        ("GET", "/dashboard"),
        ("GET", "/report"),
        ("GET", "/calendar"),
        ("GET", "/queue"),
        ("GET", "/queue/new"),
        ("GET", &format!("/queue/{id}")),
        ("POST", "/queue"),
        ("POST", &format!("/queue/{id}")),
        ("POST", &format!("/queue/{id}/approve")),
        ("GET", "/activities"),
        ("POST", "/activities"),
        ("GET", "/audit"),
        ("GET", "/inbox"),
        ("GET", &format!("/inbox/{inbox_id}")),
        ("POST", &format!("/inbox/{inbox_id}/answer")),
        ("POST", &format!("/inbox/{inbox_id}/state")),
        ("GET", "/account/password"),
        ("POST", "/logout"),
    ];
    for (method, path) in pages {
        let r = c
            .http
            .request(method.parse().unwrap(), c.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(
            r.text().await.unwrap().contains("Đăng nhập"),
            "{method} {path} shows the sign-in form"
        );
    }
    // Pages a role may not open.
    for (role, path) in [
        (2, "/queue"),
        (2, "/queue/new"),
        (0, "/audit"),
        (1, "/audit"),
        (0, "/exports/deliveries.csv"),
    ] {
        let r = c
            .http
            .get(c.url(path))
            .bearer_auth(&tokens[role].1)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "{path} as {}",
            tokens[role].0
        );
        assert!(r.text().await.unwrap().contains("Không có quyền"));
    }
    // A token that does not exist is no token.
    let (status, _) = c.api("loa_khong-co", "GET", "/api/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The same content, sent this afternoon: within the sessions' 12 hours.
fn afternoon(mut body: Value) -> Value {
    body["send_at"] = json!("2026-11-30T15:00");
    body
}

#[tokio::test]
async fn content_is_sent_only_after_someone_other_than_its_author_approves_it() {
    let mut c = spawn_console().await;
    let chat = 7001;
    c.app.subscribe("Nguyễn Thị Hoa", "bac-ly", chat).await;
    c.app
        .subscribe_sms("Lê Văn Nam", "bac-ly", "+84912345678")
        .await;
    let writer = c.sign_in("lan", Role::Approver, None).await;
    let other = c.sign_in("binh", Role::Approver, None).await;

    let (status, item) = c
        .api_as(
            &writer,
            "POST",
            "/api/contents",
            Some(afternoon(content("Nói chuyện chuyên đề", &["bac-ly"]))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = item["id"].as_i64().unwrap();
    assert_eq!(item["state"], "draft");
    assert_eq!(item["author"], "user:lan");

    // Approval needs a submission first, and never comes from the author.
    let (status, _) = c
        .api_as(
            &other,
            "POST",
            &format!("/api/contents/{id}/approve"),
            c.version(id).await,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, item) = c
        .api_as(&writer, "POST", &format!("/api/contents/{id}/submit"), None)
        .await;
    assert_eq!(
        (status, item["state"].as_str()),
        (StatusCode::OK, Some("awaiting_approval"))
    );
    let (status, answer) = c
        .api_as(
            &writer,
            "POST",
            &format!("/api/contents/{id}/approve"),
            c.version(id).await,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
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
    assert_eq!(item["approver"], "user:binh");

    // Approved content is on everyone's calendar; a draft only on the queue's workers'.
    let official = c.token("lanh-dao", Role::Official, None).await;
    let on_calendar = |calendar: &Value| {
        calendar
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == format!("content:{id}"))
    };
    let (_, calendar) = c.api(&official, "GET", "/api/calendar", None).await;
    assert!(on_calendar(&calendar));

    // Editing approved content sends it back to draft: it must be approved again.
    let mut changed = afternoon(content("Nói chuyện chuyên đề (sửa)", &["bac-ly"]));
    changed["sms_text"] = json!(
        "UBND huyen: moi ba con du buoi noi chuyen ve binh dang gioi tai {{area.in_sentence}}."
    );
    let (status, item) = c
        .api_as(
            &writer,
            "PUT",
            &format!("/api/contents/{id}"),
            Some(changed),
        )
        .await;
    assert_eq!(
        (status, item["state"].as_str()),
        (StatusCode::OK, Some("draft")),
        "{item}"
    );
    assert_eq!(item["approver"], Value::Null);
    let (_, calendar) = c.api(&official, "GET", "/api/calendar", None).await;
    assert!(
        !on_calendar(&calendar),
        "a draft is not on an official's calendar"
    );
    let (_, calendar) = c.api_as(&writer, "GET", "/api/calendar", None).await;
    assert!(on_calendar(&calendar), "but on its author's");

    // Its send time comes while it is a draft: nothing goes out.
    c.app.set_clock("2026-11-30T15:00:00+07:00");
    c.app.engine.scheduler.tick().await.unwrap();
    c.app.engine.dispatcher.step().await.unwrap();
    assert!(c.app.telegram.sent().is_empty() && c.kannel.sent().is_empty());

    // Submitted and approved again (late): it goes at once, to each person once.
    c.api_as(&writer, "POST", &format!("/api/contents/{id}/submit"), None)
        .await;
    let (status, _) = c
        .api_as(
            &other,
            "POST",
            &format!("/api/contents/{id}/approve"),
            c.version(id).await,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.app.advance(Duration::minutes(5));
    let report = c.app.engine.scheduler.tick().await.unwrap();
    assert_eq!(report.created.len(), 1);
    assert_eq!(report.created[0].schedule_id, format!("content:{id}"));
    assert_eq!(report.created[0].recipients, 2);
    let (_, item) = c
        .api_as(&writer, "GET", &format!("/api/contents/{id}"), None)
        .await;
    assert_eq!(item["state"], "sending");
    assert_eq!(c.app.engine.dispatcher.step().await.unwrap().sent, 2);
    let telegram = c.app.telegram.sent_to(chat);
    assert_eq!(telegram.len(), 1);
    assert_eq!(
        telegram[0].text,
        "Kính gửi Nguyễn Thị Hoa: tuần này xã Bắc Lý tổ chức nói chuyện về bình đẳng giới."
    );
    assert_eq!(
        c.kannel.sent()[0].text,
        "UBND huyen: moi ba con du buoi noi chuyen ve binh dang gioi tai xã Bắc Lý.\n\
         Từ chối nhận tin: báo UBND xã Bắc Lý",
        "a campaign SMS typed without the opt-out line gets it"
    );
    // A second tick sends nothing again; once every delivery is finished the content is done.
    assert!(
        c.app
            .engine
            .scheduler
            .tick()
            .await
            .unwrap()
            .created
            .is_empty()
    );
    let (_, item) = c
        .api_as(&writer, "GET", &format!("/api/contents/{id}"), None)
        .await;
    assert_eq!(item["state"], "done");
    let (status, _) = c
        .api_as(&writer, "POST", &format!("/api/contents/{id}/cancel"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "sent content cannot be cancelled"
    );

    // The audit log has every step, by whom; only an admin reads it.
    let admin = c.token("quan-tri", Role::Admin, None).await;
    let (_, log) = c.api(&admin, "GET", "/api/audit?limit=100", None).await;
    let steps: Vec<(String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter(|e| e["subject"] == format!("content:{id}"))
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("user:lan", "content.create"),
        ("user:lan", "content.submit"),
        ("user:binh", "content.approve"),
        ("user:lan", "content.edit"),
        ("user:lan", "content.submit"),
        ("user:binh", "content.approve"),
    ];
    assert_eq!(
        steps,
        expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn html_typed_by_staff_is_shown_as_text_in_pages_and_in_telegram() {
    let mut c = spawn_console().await;
    c.app.subscribe("Trần Thị Mai", "bac-ly", 7002).await;
    let staff = c.sign_in("lan", Role::Staff, None).await;
    let approver = c.token("duyet", Role::Approver, None).await;
    let (status, location) = c
        .form(
            &staff,
            "/queue",
            &[
                ("title", "<script>alert('x')</script> Tiêu đề"),
                (
                    "telegram_text",
                    "<b>Đậm?</b> <script>alert(1)</script> & {{area.name}}",
                ),
                ("channels", "telegram"),
                ("areas", "bac-ly"),
                ("send_at", "2026-12-01T08:00"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (status, page) = c.page(&staff, &location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains("<script>alert"),
        "typed HTML must not become markup"
    );
    assert!(page.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Tiêu đề"));
    // The live preview shows what Telegram will show: the tags as text.
    assert!(page.contains("&lt;b&gt;Đậm?&lt;/b&gt;"), "preview");

    let id = location
        .trim_start_matches("/queue/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    c.form(&staff, &format!("/queue/{id}/submit"), &[]).await;
    let (status, _) = c
        .api(
            &approver,
            "POST",
            &format!("/api/contents/{id}/approve"),
            c.version(id.parse().unwrap()).await,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.app.set_clock("2026-12-01T08:00:00+07:00");
    c.app.engine.scheduler.tick().await.unwrap();
    c.app.engine.dispatcher.step().await.unwrap();
    let sent = c.app.telegram.sent_to(7002);
    assert_eq!(sent[0].parse_mode.as_deref(), Some("HTML"));
    assert_eq!(
        sent[0].text,
        "&lt;b&gt;Đậm?&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt; &amp; Xã Bắc Lý"
    );
}

#[tokio::test]
async fn forms_and_scripts_of_a_session_need_its_csrf_token() {
    let c = spawn_console().await;
    let mut staff = c.sign_in("lan", Role::Staff, None).await;
    let real = std::mem::replace(&mut staff.csrf, "0".repeat(64));
    let (status, _) = c
        .form(
            &staff,
            "/queue",
            &[
                ("title", "x"),
                ("channels", "sms"),
                ("sms_text", "x"),
                ("send_at", "2026-12-01T08:00"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = c
        .api_as(&staff, "POST", "/api/contents", Some(content("x", &[])))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    staff.csrf = real;
    let (status, _) = c
        .api_as(&staff, "POST", "/api/contents", Some(content("x", &[])))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // A session lasts a working day.
    c.app.advance(Duration::hours(12));
    let (status, _) = c.api_as(&staff, "GET", "/api/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A wrong password: 401 with the form again; the one-time password no longer works.
    let r = c.log_in("lan", "sai", "/dashboard").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Tên đăng nhập hoặc mật khẩu không đúng.")
    );
    let r = c.log_in("lan", "lan-mat-khau-moi", "//evil.example").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/dashboard");
}

#[tokio::test]
async fn bad_input_gets_400_or_422_naming_the_field_and_nothing_is_stored() {
    let c = spawn_console().await;
    let staff = c.token("soan-tin", Role::Staff, None).await;
    let r = c
        .http
        .post(c.url("/api/contents"))
        .bearer_auth(&staff)
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let answer: Value = r.json().await.unwrap();
    assert!(
        answer["message"].as_str().unwrap().contains("EOF"),
        "{answer}"
    );

    let (status, answer) = c
        .api(&staff, "POST", "/api/contents", Some(json!({"title": 5})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");

    for (change, field) in [
        (json!({"channels": []}), "channels"),
        (json!({"channels": ["fax"]}), "channels"),
        (json!({"areas": ["khong-co"]}), "areas"),
        (json!({"send_at": "mai"}), "send_at"),
        (json!({"title": "  "}), "title"),
        (
            json!({"telegram_text": "Chào {{ten_sai}}"}),
            "telegram_text",
        ),
        (json!({"sms_text": "x".repeat(1000)}), "sms_text"),
        // Every stored text has a length limit.
        (json!({"title": "t".repeat(201)}), "title"),
        (json!({"telegram_text": "x".repeat(4097)}), "telegram_text"),
        (json!({"sms_text": "x".repeat(1001)}), "sms_text"),
        (
            json!({"tags": (0..21).map(|i| format!("nhan-{i}")).collect::<Vec<_>>()}),
            "tags",
        ),
        (json!({"tags": ["a".repeat(51)]}), "tags"),
        (
            json!({"send_at": "2026-12-01T08:00".repeat(100)}),
            "send_at",
        ),
        (json!({"template": "khong-co-mau"}), "template"),
        (json!({"observance": "khong-co"}), "observance"),
        (json!({"tags": ["Thanh niên"]}), "tags"),
    ] {
        let mut body = content("Tin thử", &[]);
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = c.api(&staff, "POST", "/api/contents", Some(body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{change}: {answer}"
        );
        assert_eq!(answer["field"], field, "{change}: {answer}");
        assert!(!answer["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(c.app.count("SELECT COUNT(*) FROM contents").await, 0);

    let (status, answer) = c
        .api(
            &staff,
            "POST",
            "/api/activities",
            Some(json!({"date": "2026-13-01", "area": "bac-ly", "kind": "banner", "audience": 10})),
        )
        .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("date"))
    );
    let (status, answer) = c
        .api(
            &staff,
            "GET",
            "/api/dashboard?period=custom&from=2026-02-01&to=2026-01-01",
            None,
        )
        .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("to"))
    );
}

/// Residents of three communes; some on Telegram, some by SMS, some both; one tagged youth.
async fn send_a_month(c: &mut Console) {
    let app = &c.app;
    let areas = &app.setup.config.areas;
    let now = app.clock_now();
    let mut chat = 8000;
    for (area, telegram, sms, both) in [
        ("bac-ly", 3, 1, 1),
        ("hoa-son", 1, 0, 0),
        ("tt-thang", 0, 2, 0),
    ] {
        for i in 0..(telegram + sms + both) {
            let tags: &[&str] = if area == "bac-ly" && i == 0 {
                &["thanh-nien"]
            } else {
                &[]
            };
            let person = loa::audience::add_person(
                &app.db,
                areas,
                &format!("Người {area} {i}"),
                area,
                tags,
                now,
            )
            .await
            .unwrap();
            if i < telegram || i >= telegram + sms {
                chat += 1;
                loa::audience::add_contact(
                    &app.db,
                    person,
                    ChannelKind::Telegram,
                    &chat.to_string(),
                    now,
                )
                .await
                .unwrap();
            }
            if i >= telegram {
                let number = format!("+8491234{:04}", chat * 10 + i);
                loa::audience::add_contact(&app.db, person, ChannelKind::Sms, &number, now)
                    .await
                    .unwrap();
            }
        }
    }
    // One message on both channels (Telegram preferred), one by SMS only: the person with both
    // contacts is reached on both.
    let staff = c.token("soan-tin", Role::Staff, None).await;
    let approver = c.token("duyet", Role::Approver, None).await;
    for (title, channels, at) in [
        ("Tin 1", json!(["telegram", "sms"]), "2026-12-01T08:00"),
        ("Tin 2", json!(["sms"]), "2026-12-02T08:00"),
    ] {
        let mut body = content(title, &[]);
        body["channels"] = channels;
        body["send_at"] = json!(at);
        body["observance"] = json!("thang-binh-dang-gioi");
        let (status, item) = c.api(&staff, "POST", "/api/contents", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{item}");
        let id = item["id"].as_i64().unwrap();
        c.api(&staff, "POST", &format!("/api/contents/{id}/submit"), None)
            .await;
        c.api(
            &approver,
            "POST",
            &format!("/api/contents/{id}/approve"),
            c.version(id).await,
        )
        .await;
    }
    for day in ["2026-12-01T08:00:00+07:00", "2026-12-02T08:00:00+07:00"] {
        c.app.set_clock(day);
        c.app.engine.scheduler.tick().await.unwrap();
        c.app.engine.dispatcher.step().await.unwrap();
        c.kannel.report_all(1).await;
    }
}

#[tokio::test]
async fn the_dashboard_splits_reach_by_channel_and_agrees_with_the_report() {
    let mut c = spawn_console().await;
    send_a_month(&mut c).await;
    let official = c.token("lanh-dao", Role::Official, None).await;
    let (status, d) = c
        .api(
            &official,
            "GET",
            "/api/dashboard?period=custom&from=2026-12-01&to=2026-12-31",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let line = |code: &str| {
        d["communes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["code"] == code)
            .unwrap()
            .clone()
    };
    let bac_ly = line("bac-ly");
    assert_eq!(bac_ly["reached"], 5);
    assert_eq!(
        bac_ly["split"],
        json!({"telegram": 3, "sms": 1, "telegram+sms": 1})
    );
    assert_eq!(line("tt-thang")["split"], json!({"sms": 2}));
    assert_eq!(d["total"]["reached"], 8);

    // The same figures as `loa report reach`, which counts from the reach table.
    let config = &c.app.setup.config;
    let report = loa::reach::report(
        &c.app.db,
        &config.areas,
        config.campaign.target,
        "2026-12-01".parse().unwrap(),
        "2026-12-31".parse().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(d["total"]["reached"].as_u64(), Some(report.total.reached));
    for row in report
        .areas
        .iter()
        .filter(|r| config.areas.is_leaf(&r.code))
    {
        assert_eq!(
            line(&row.code)["reached"].as_u64(),
            Some(row.reached),
            "{}",
            row.code
        );
        assert_eq!(
            line(&row.code)["percent"].as_f64(),
            row.percent,
            "{}",
            row.code
        );
    }
    // Furthest below the band first: communes nobody reached come before those reached.
    let gaps: Vec<f64> = d["communes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["gap"].as_f64().unwrap())
        .collect();
    assert!(gaps.windows(2).all(|w| w[0] >= w[1]), "{gaps:?}");

    // Filters: the youth tag, one message, an observance, a period before anything was sent.
    let (_, youth) = c
        .api(
            &official,
            "GET",
            "/api/dashboard?period=custom&from=2026-12-01&to=2026-12-31&tag=thanh-nien",
            None,
        )
        .await;
    assert_eq!(youth["total"]["reached"], 1);
    let (_, second) = c
        .api(
            &official,
            "GET",
            "/api/dashboard?period=custom&from=2026-12-01&to=2026-12-31&content=2",
            None,
        )
        .await;
    assert_eq!(second["total"]["split"], json!({"sms": 4}));
    let (_, observance) = c.api(&official, "GET", "/api/dashboard?period=obs:thang-binh-dang-gioi&year=2026&observance=thang-binh-dang-gioi", None).await;
    assert_eq!(observance["total"]["reached"], 8, "{observance}");
    let (_, before) = c
        .api(&official, "GET", "/api/dashboard?period=q3&year=2026", None)
        .await;
    assert_eq!(before["total"]["reached"], 0);

    // Offline activities are shown apart and never added to the measured reach.
    let staff = c.token("soan-tin-2", Role::Staff, None).await;
    let (status, _) = c.api(&staff, "POST", "/api/activities", Some(json!({"date": "2026-12-02", "area": "bac-ly", "kind": "loudspeaker", "audience": 1200, "note": "Phát thanh 3 buổi"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, after) = c
        .api(
            &official,
            "GET",
            "/api/dashboard?period=custom&from=2026-12-01&to=2026-12-31",
            None,
        )
        .await;
    let bac_ly_after = after["communes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["code"] == "bac-ly")
        .unwrap()
        .clone();
    assert_eq!(bac_ly_after["reached"], 5);
    assert_eq!(bac_ly_after["offline_estimate"], 1200);
    assert_eq!(after["total"]["reached"], 8);
    assert_eq!(after["activities"].as_array().unwrap().len(), 1);

    // The page draws each commune against the band, and the printable report lists them all.
    let r = c
        .http
        .get(c.url("/dashboard?period=custom&from=2026-12-01&to=2026-12-31"))
        .bearer_auth(&official)
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    assert_eq!(
        page.matches("<tr class=\"commune\"").count(),
        config.areas.leaves().count()
    );
    assert!(
        page.contains(&format!(
            "data-area=\"bac-ly\" data-percent=\"{}\"",
            (5.0 / config.areas.population("bac-ly") as f64 * 10_000.0).round() / 100.0
        )),
        "bac-ly 5 of its population"
    );
    assert!(page.contains("class=\"band\""));
    assert!(page.contains("Phát thanh trên loa truyền thanh"));
    let r = c
        .http
        .get(c.url("/report?period=custom&from=2026-12-01&to=2026-12-31"))
        .bearer_auth(&official)
        .send()
        .await
        .unwrap();
    let report_page = r.text().await.unwrap();
    assert!(
        report_page.contains("BÁO CÁO")
            && report_page.contains("Xã Bắc Lý")
            && report_page.contains("NGƯỜI LẬP BIỂU")
    );
}

#[tokio::test]
async fn exports_are_csv_with_a_byte_order_mark_for_excel() {
    let mut c = spawn_console().await;
    send_a_month(&mut c).await;
    let official = c.token("lanh-dao", Role::Official, None).await;
    let q = "period=custom&from=2026-12-01&to=2026-12-31";
    let r = c
        .http
        .get(c.url(&format!("/exports/reach.csv?{q}")))
        .bearer_auth(&official)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF");
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[1], "Địa bàn");
    let both = headers
        .iter()
        .position(|h| h == "Cả Telegram và SMS")
        .expect("a column for those reached on both");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1 + 25, "the district and its 25 communes");
    let bac_ly = rows.iter().find(|r| &r[0] == "bac-ly").unwrap();
    assert_eq!(
        (&bac_ly[1], &bac_ly[3], &bac_ly[both]),
        ("Xã Bắc Lý", "5", "1")
    );

    let r = c
        .http
        .get(c.url(&format!("/exports/deliveries.csv?{q}")))
        .bearer_auth(&official)
        .send()
        .await
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF");
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(&bytes[3..])
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows.len() as i64,
        c.app.count("SELECT COUNT(*) FROM deliveries").await
    );
    assert!(
        rows.iter()
            .all(|r| !r[7].starts_with("+849123") || r[7].contains('…')),
        "numbers are masked"
    );
}

#[tokio::test]
async fn an_account_limited_to_a_commune_sees_and_addresses_only_that_commune() {
    let mut c = spawn_console().await;
    send_a_month(&mut c).await;
    let commune = c.token("can-bo-bac-ly", Role::Staff, Some("bac-ly")).await;
    let (_, d) = c
        .api(
            &commune,
            "GET",
            "/api/dashboard?period=custom&from=2026-12-01&to=2026-12-31",
            None,
        )
        .await;
    let codes: Vec<&str> = d["communes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["bac-ly"]);
    assert_eq!(
        (d["total"]["code"].as_str(), d["total"]["reached"].as_u64()),
        (Some("bac-ly"), Some(5))
    );

    // District-wide content is not theirs to see; their own goes to their commune only.
    let (_, list) = c.api(&commune, "GET", "/api/contents", None).await;
    assert!(list.as_array().unwrap().is_empty(), "{list}");
    let (status, _) = c.api(&commune, "GET", "/api/contents/1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = c
        .api(
            &commune,
            "POST",
            "/api/contents",
            Some(content("Tin xã khác", &["hoa-son"])),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, item) = c
        .api(
            &commune,
            "POST",
            "/api/contents",
            Some(content("Tin của xã", &[])),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(item["areas"], json!(["bac-ly"]));
    let (_, preview) = c
        .api(
            &commune,
            "POST",
            "/api/preview",
            Some(content("Tin của xã", &[])),
        )
        .await;
    assert_eq!(preview["recipients"], 5, "{preview}");
    let sms = preview["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["channel"] == "sms")
        .unwrap();
    // "Xã Bắc Lý" has Vietnamese letters, so the SMS goes as UCS-2: two parts of 70.
    assert_eq!(
        (sms["recipients"].as_i64(), sms["sms_segments"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(sms["cost_vnd"].as_f64(), Some(700.0));
    let (status, _) = c
        .api(
            &commune,
            "POST",
            "/api/activities",
            Some(
                json!({"date": "2026-12-02", "area": "hoa-son", "kind": "banner", "audience": 10}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The calendar counts their commune's people only.
    let (_, calendar) = c.api(&commune, "GET", "/api/calendar", None).await;
    let mine = calendar
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == format!("content:{}", item["id"]))
        .unwrap();
    assert_eq!(mine["recipients"], 5);
    let district = c.token("lanh-dao", Role::Admin, None).await;
    let (_, calendar) = c.api(&district, "GET", "/api/calendar", None).await;
    let fire = calendar
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == "schedule")
        .unwrap();
    assert_eq!(
        fire["recipients"], 8,
        "the district: everyone with a contact {fire}"
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_and_describes_every_console_operation() {
    let c = spawn_console().await;
    let r = c.http.get(c.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/dashboard",
        "/api/calendar",
        "/api/contents",
        "/api/contents/{id}/approve",
        "/api/preview",
        "/api/activities",
        "/api/audit",
        "/exports/reach.csv",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    // Every reference resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/").skip(1) {
        let target = &piece[..piece.find('"').unwrap()];
        let (kind, name) = target.split_once('/').unwrap();
        assert!(doc["components"][kind][name].is_object(), "{target}");
    }
}
