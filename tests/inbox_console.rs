//! "Tin nhắn đến" in the console, played by the accounts that may and may not: staff of the
//! sender's commune read (urgent first), open and answer (the answer goes back by SMS through
//! the dispatcher), every change audited; staff of another commune get 404, officials see counts
//! and no text, a post without the CSRF token is refused.

mod common;

use common::console::{SECRET, spawn_console};
use loa::console::Role;
use reqwest::StatusCode;
use serde_json::json;

const HOA_SON: &str = "+84912345678";
const XUAN_CAM: &str = "+84987654321";

async fn sms(c: &common::console::Console, from: &str, text: &str) {
    let status = c
        .http
        .post(c.url("/webhooks/sms/mo"))
        .header("X-Loa-Webhook-Secret", SECRET)
        .json(&json!({"from": from, "text": text}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

async fn id_of(c: &common::console::Console, text: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM inbox WHERE text = $1")
        .bind(text)
        .fetch_one(&c.app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_console_shows_the_inbox_urgent_first_to_the_communes_staff_only() {
    let c = spawn_console().await;
    c.app
        .subscribe_sms("Trần Thị Mai", "hoa-son", HOA_SON)
        .await;
    c.app
        .subscribe_sms("Lê Văn Nam", "xuan-cam", XUAN_CAM)
        .await;
    sms(&c, HOA_SON, "Cho tôi hỏi lịch tập huấn").await;
    c.app.advance(chrono::Duration::minutes(5));
    sms(&c, HOA_SON, "chồng em lại đánh em").await;
    c.app.advance(chrono::Duration::minutes(5));
    sms(&c, HOA_SON, "cảm ơn").await;
    sms(&c, XUAN_CAM, "alo xã Xuân Cẩm").await;
    let urgent = id_of(&c, "chồng em lại đánh em").await;
    let question = id_of(&c, "Cho tôi hỏi lịch tập huấn").await;

    // Staff of Hòa Sơn: the commune's texts, the urgent one first, numbers masked.
    let lan = c.sign_in("lan", Role::Staff, Some("hoa-son")).await;
    let (status, page) = c.page(&lan, "/inbox").await;
    assert_eq!(status, StatusCode::OK);
    let first_row = page.find("data-id=").map(|i| &page[i..i + 20]).unwrap();
    assert!(
        first_row.starts_with(&format!("data-id=\"{urgent}\"")),
        "{first_row}"
    );
    assert!(page.contains("KHẨN") && page.contains("Cho tôi hỏi lịch tập huấn"));
    assert!(!page.contains("alo xã Xuân Cẩm"), "another commune's text");
    assert!(
        !page.contains(HOA_SON) && !page.contains("0912345678"),
        "masked in lists"
    );

    // Opened: the number in full, marked read, audited.
    let (status, page) = c.page(&lan, &format!("/inbox/{urgent}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(HOA_SON) && page.contains("Đã đọc"), "{page}");
    assert!(
        page.contains("Tin trả lời không được gửi từ 21:00 đến 07:00"),
        "the answer box says when answers wait: {page}"
    );

    // Answering needs the CSRF token; then it goes back by SMS on the next dispatch step.
    let answer = "Cán bộ xã sẽ gọi lại cho bà ngay.";
    let refused = c
        .http
        .post(c.url(&format!("/inbox/{urgent}/answer")))
        .header("cookie", &lan.cookie)
        .form(&[("text", answer)])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(refused, StatusCode::FORBIDDEN);
    let (status, location) = c
        .form(
            &lan,
            &format!("/inbox/{urgent}/answer"),
            &[("text", answer)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!(location, format!("/inbox/{urgent}"));
    c.app.engine.dispatcher.step().await.unwrap();
    let answered: Vec<_> = c
        .kannel
        .sent()
        .into_iter()
        .filter(|m| m.to == HOA_SON && m.text.contains(answer))
        .collect();
    assert_eq!(answered.len(), 1, "sent once, by SMS");
    let (_, page) = c.page(&lan, &format!("/inbox/{urgent}")).await;
    assert!(
        page.contains("Đã trả lời") && page.contains("đã gửi"),
        "{page}"
    );
    assert_eq!(
        c.app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'inbox.answer' AND actor = 'user:lan'")
            .await,
        1
    );

    // Staff of another commune: as if the text did not exist.
    let binh = c.sign_in("binh", Role::Staff, Some("xuan-cam")).await;
    let (status, _) = c.page(&binh, &format!("/inbox/{urgent}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = c
        .form(
            &binh,
            &format!("/inbox/{question}/answer"),
            &[("text", "xin chào")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = c
        .form(
            &binh,
            &format!("/inbox/{question}/state"),
            &[("state", "forwarded")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = c.page(&binh, "/inbox").await;
    assert!(page.contains("alo xã Xuân Cẩm") && !page.contains("chồng em"));

    // An official: counts, never a text.
    let chu_tich = c.sign_in("chutich", Role::Official, None).await;
    let (status, page) = c.page(&chu_tich, "/inbox").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"count-total\">4 (1)"), "{page}");
    for text in ["chồng em", "Cho tôi hỏi", "alo xã", "cảm ơn"] {
        assert!(!page.contains(text), "{text} shown to an official");
    }
    let (status, _) = c.page(&chu_tich, &format!("/inbox/{question}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        c.app
            .count("SELECT COUNT(*) FROM inbox_outbox WHERE kind = 'answer'")
            .await,
        1,
        "nothing queued by the refused attempts"
    );
}

#[tokio::test]
async fn the_inbox_api_follows_the_same_rules() {
    let c = spawn_console().await;
    c.app
        .subscribe_sms("Trần Thị Mai", "hoa-son", HOA_SON)
        .await;
    sms(&c, HOA_SON, "Cho tôi hỏi lịch tập huấn").await;
    sms(&c, "+84987000999", "tôi bị xâm hại").await;
    let question = id_of(&c, "Cho tôi hỏi lịch tập huấn").await;
    let unknown = id_of(&c, "tôi bị xâm hại").await;

    let staff = c.token("xa-hoa-son", Role::Staff, Some("hoa-son")).await;
    let (status, list) = c.api(&staff, "GET", "/api/inbox", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "an unknown sender is the district's: {list}"
    );
    assert_eq!(list[0]["sender"], "+849******78");
    assert!(list[0].get("address").is_none());
    let (status, _) = c
        .api(&staff, "GET", &format!("/api/inbox/{unknown}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, item) = c
        .api(&staff, "GET", &format!("/api/inbox/{question}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (item["address"].as_str(), item["state"].as_str()),
        (Some(HOA_SON), Some("read"))
    );
    let path = format!("/api/inbox/{question}/state");
    let (status, item) = c
        .api(&staff, "POST", &path, Some(json!({"state": "forwarded"})))
        .await;
    assert_eq!(
        (status, item["state"].as_str()),
        (StatusCode::OK, Some("forwarded"))
    );
    let (status, _) = c
        .api(&staff, "POST", &path, Some(json!({"state": "answered"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let path = format!("/api/inbox/{question}/answer");
    let (status, _) = c
        .api(&staff, "POST", &path, Some(json!({"text": "  "})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let long = "a".repeat(481);
    let (status, _) = c
        .api(&staff, "POST", &path, Some(json!({"text": long})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let admin = c.token("quan-tri", Role::Admin, None).await;
    let (_, list) = c.api(&admin, "GET", "/api/inbox", None).await;
    assert_eq!(list[0]["id"], unknown, "urgent first: {list}");
    assert_eq!(list[0]["urgent"], true);
    assert!(list[0]["area_code"].is_null());

    // A private Telegram text is answered on Telegram, the staff's words as typed (escaped).
    c.app.subscribe("Lê Thị Hoa", "hoa-son", 5001).await;
    let mut bot = c.app.bot().await;
    c.app.telegram.user_says(5001, "xin hỏi cán bộ xã");
    bot.poll_once(0).await.unwrap();
    let from_chat = id_of(&c, "xin hỏi cán bộ xã").await;
    let path = format!("/api/inbox/{from_chat}/answer");
    let typed = "Chào bà, <b>thứ Hai</b> & thứ Ba";
    let (status, item) = c
        .api(&staff, "POST", &path, Some(json!({"text": typed})))
        .await;
    assert_eq!(
        (status, item["state"].as_str()),
        (StatusCode::OK, Some("answered")),
        "{item}"
    );
    c.app.engine.dispatcher.step().await.unwrap();
    let sent = c.app.telegram.sent_to(5001).last().unwrap().text.clone();
    assert!(
        sent.ends_with("Chào bà, &lt;b&gt;thứ Hai&lt;/b&gt; &amp; thứ Ba"),
        "{sent}"
    );

    let official = c.token("lanh-dao", Role::Official, None).await;
    let (status, _) = c.api(&official, "GET", "/api/inbox", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = c
        .api(&official, "GET", &format!("/api/inbox/{question}"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, counts) = c.api(&official, "GET", "/api/inbox/counts", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (counts["total"].as_i64(), counts["urgent_new"].as_i64()),
        (Some(3), Some(1))
    );
}

/// A resident who wrote gets a reply, not a stream of messages from one account: the fourth
/// answer to one text is refused.
#[tokio::test]
async fn one_text_gets_a_few_answers_not_a_stream() {
    let c = spawn_console().await;
    c.app
        .subscribe_sms("Trần Thị Mai", "hoa-son", HOA_SON)
        .await;
    sms(&c, "0912345678", "Khi nào có buổi tuyên truyền ở thôn?").await;
    let id = id_of(&c, "Khi nào có buổi tuyên truyền ở thôn?").await;
    let staff = c
        .token("can-bo-hoa-son", Role::Staff, Some("hoa-son"))
        .await;
    let path = format!("/api/inbox/{id}/answer");
    for n in 1..=3 {
        let (status, _) = c
            .api(
                &staff,
                "POST",
                &path,
                Some(json!({"text": format!("Trả lời {n}")})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "answer {n}");
    }
    let (status, body) = c
        .api(&staff, "POST", &path, Some(json!({"text": "Trả lời 4"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}
