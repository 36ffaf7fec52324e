//! The JSON API's lists, a page at a time: `limit` and the keyset cursor in `X-Next-Cursor`.
//! A script walking the pages sees every row once, and an account limited to an area never
//! sees another area's rows on any page.

mod common;

use std::collections::BTreeSet;

use common::console::{Console, content, spawn_console};
use loa::config::ChannelKind;
use loa::console::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every page of `path` (which has no query yet, or ends in one) as `token` sees it, `limit`
/// at a time, following `X-Next-Cursor`; the pages' items in order.
async fn walk(c: &Console, token: &str, path: &str, limit: usize) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..1000 {
        let mut url = c.url(&format!("{path}{sep}limit={limit}"));
        if let Some(cursor) = &after {
            url.push_str(&format!("&after={cursor}"));
        }
        let r = c.http.get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let next = r
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_string());
        if let Some(next) = &next {
            let link = r.headers()["link"].to_str().unwrap().to_string();
            assert!(
                link.contains(&format!("after={next}")) && link.ends_with("rel=\"next\""),
                "{link}"
            );
        }
        let page: Vec<Value> = r.json().await.unwrap();
        assert!(page.len() <= limit);
        if next.is_some() {
            assert_eq!(page.len(), limit, "only the last page is short");
        }
        items.extend(page);
        match next {
            Some(next) => after = Some(next),
            None => return items,
        }
    }
    panic!("{path}: the pages never end");
}

fn ids(items: &[Value]) -> Vec<i64> {
    items.iter().map(|i| i["id"].as_i64().unwrap()).collect()
}

/// `items` again, each once, in the order one unpaged answer gives them.
async fn unpaged(c: &Console, token: &str, path: &str) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, all) = c
        .api(token, "GET", &format!("{path}{sep}limit=1000"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    all.as_array().unwrap().clone()
}

fn assert_each_once(paged: &[Value], whole: &[Value], what: &str) {
    let paged_ids = ids(paged);
    let unique: BTreeSet<i64> = paged_ids.iter().copied().collect();
    assert_eq!(unique.len(), paged_ids.len(), "{what}: a row came twice");
    assert_eq!(
        paged_ids,
        ids(whole),
        "{what}: pages differ from the whole list"
    );
}

#[tokio::test]
async fn the_audit_log_walked_page_by_page_gives_every_entry_once_latest_first() {
    let c = spawn_console().await;
    let admin = c.token("quan-tri", Role::Admin, None).await;
    for i in 0..23 {
        loa::console::audit::record(
            &c.app.db.pool,
            c.app.clock_now(),
            "cli",
            "test.entry",
            Some(&format!("entry:{i}")),
            None,
        )
        .await
        .unwrap();
    }
    let paged = walk(&c, &admin, "/api/audit", 5).await;
    let whole = unpaged(&c, &admin, "/api/audit").await;
    assert!(whole.len() >= 23);
    assert_each_once(&paged, &whole, "audit");
    let order = ids(&paged);
    assert!(order.windows(2).all(|w| w[0] > w[1]), "latest first");
    let total = c.app.count("SELECT COUNT(*) FROM audit_log").await;
    assert_eq!(paged.len() as i64, total);
}

#[tokio::test]
async fn activities_of_other_areas_are_on_no_page_of_a_commune_account() {
    let c = spawn_console().await;
    let staff = c.token("can-bo", Role::Staff, None).await;
    // Several on the same day, so the cursor's tie-break (the id) is walked too.
    for (i, area) in [
        "bac-ly", "hoa-son", "bac-ly", "tt-thang", "bac-ly", "bac-ly", "hoa-son",
    ]
    .iter()
    .enumerate()
    {
        let day = 1 + (i % 3);
        let (status, _) = c
            .api(
                &staff,
                "POST",
                "/api/activities",
                Some(json!({"date": format!("2026-11-0{day}"), "area": area, "kind": "loudspeaker", "audience": 100 + i, "note": format!("Buổi {i}")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let path = "/api/activities?period=custom&from=2026-11-01&to=2026-11-30";
    let district = c.token("lanh-dao", Role::Official, None).await;
    let paged = walk(&c, &district, path, 2).await;
    assert_eq!(paged.len(), 7);
    assert_each_once(&paged, &unpaged(&c, &district, path).await, "activities");

    let commune = c
        .token("lanh-dao-bac-ly", Role::Official, Some("bac-ly"))
        .await;
    let paged = walk(&c, &commune, path, 1).await;
    assert_eq!(paged.len(), 4);
    assert!(paged.iter().all(|a| a["area"] == "bac-ly"), "{paged:?}");
    assert_each_once(
        &paged,
        &unpaged(&c, &commune, path).await,
        "commune's activities",
    );
}

#[tokio::test]
async fn the_queue_walked_by_a_commune_account_holds_its_commune_only_each_item_once() {
    let c = spawn_console().await;
    let staff = c.token("soan-tin", Role::Staff, None).await;
    for i in 0..9 {
        let areas: &[&str] = match i % 3 {
            0 => &["bac-ly"],
            1 => &["hoa-son"],
            _ => &[],
        };
        let mut body = content(&format!("Tin {i}"), areas);
        body["send_at"] = json!(format!("2026-12-0{}T08:00", 1 + i % 4));
        let (status, _) = c.api(&staff, "POST", "/api/contents", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let paged = walk(&c, &staff, "/api/contents", 4).await;
    assert_eq!(paged.len(), 9);
    assert_each_once(&paged, &unpaged(&c, &staff, "/api/contents").await, "queue");

    let commune = c
        .token("soan-tin-bac-ly", Role::Staff, Some("bac-ly"))
        .await;
    let paged = walk(&c, &commune, "/api/contents", 1).await;
    assert_eq!(paged.len(), 3, "{paged:?}");
    assert!(
        paged.iter().all(|i| i["areas"] == json!(["bac-ly"])),
        "{paged:?}"
    );
    assert_each_once(
        &paged,
        &unpaged(&c, &commune, "/api/contents").await,
        "commune's queue",
    );
}

#[tokio::test]
async fn the_inbox_walked_page_by_page_keeps_urgent_first_and_its_area() {
    let c = spawn_console().await;
    for (i, area) in ["bac-ly", "hoa-son", "bac-ly", "bac-ly", "hoa-son", "bac-ly"]
        .iter()
        .enumerate()
    {
        let chat = 9100 + i as i64;
        c.app.subscribe(&format!("Người gửi {i}"), area, chat).await;
        loa::inbound::inbox::record(
            &c.app.db,
            ChannelKind::Telegram,
            &chat.to_string(),
            &format!("Tin thứ {i}"),
            i % 3 == 0,
            c.app.clock_now() + chrono::Duration::minutes(i as i64 % 2),
        )
        .await
        .unwrap();
    }
    let staff = c.token("doc-tin", Role::Staff, None).await;
    let paged = walk(&c, &staff, "/api/inbox", 2).await;
    assert_eq!(paged.len(), 6);
    assert_each_once(&paged, &unpaged(&c, &staff, "/api/inbox").await, "inbox");
    let urgent: Vec<bool> = paged.iter().map(|i| i["urgent"] == true).collect();
    assert!(
        urgent.windows(2).all(|w| w[0] >= w[1]),
        "urgent first: {urgent:?}"
    );

    let commune = c.token("doc-tin-bac-ly", Role::Staff, Some("bac-ly")).await;
    let paged = walk(&c, &commune, "/api/inbox", 1).await;
    assert_eq!(paged.len(), 4);
    assert!(
        paged.iter().all(|i| i["area_code"] == "bac-ly"),
        "{paged:?}"
    );
}

#[tokio::test]
async fn a_bad_limit_or_cursor_is_400_naming_it() {
    let c = spawn_console().await;
    let admin = c.token("quan-tri", Role::Admin, None).await;
    for (path, field) in [
        ("/api/audit?limit=0", "limit"),
        ("/api/audit?limit=1001", "limit"),
        ("/api/contents?limit=abc", "limit"),
        ("/api/inbox?limit=-3", "limit"),
        ("/api/audit?after=abc", "after"),
        ("/api/contents?after=1.2", "after"),
        ("/api/inbox?after=2.0.1.1", "after"),
        ("/api/activities?period=year&after=2026-13-01.4", "after"),
        ("/api/audit?offset=2&after=5", "offset"),
    ] {
        let (status, body) = c.api(&admin, "GET", path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["field"], field, "{path}: {body}");
    }
}

#[tokio::test]
async fn every_list_documents_the_limits_it_keeps() {
    let c = spawn_console().await;
    let doc: Value = c
        .http
        .get(c.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let limit = &doc["components"]["parameters"]["Limit"]["schema"];
    let (default, max) = (
        limit["default"].as_i64().unwrap(),
        limit["maximum"].as_i64().unwrap(),
    );
    let admin = c.token("quan-tri", Role::Admin, None).await;
    for path in [
        "/api/contents",
        "/api/activities",
        "/api/audit",
        "/api/inbox",
    ] {
        let get = &doc["paths"][path]["get"];
        let params = get["parameters"].to_string();
        assert!(
            params.contains("#/components/parameters/Limit")
                && params.contains("#/components/parameters/After"),
            "{path}: {params}"
        );
        assert!(
            get["responses"]["200"]["headers"]["X-Next-Cursor"].is_object(),
            "{path}"
        );
        let (status, _) = c
            .api(&admin, "GET", &format!("{path}?limit={max}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: the documented maximum");
        let (status, _) = c
            .api(&admin, "GET", &format!("{path}?limit={}", max + 1), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: above the maximum");
    }
    // The documented default is what a list gives without `limit`.
    for i in 0..default + 1 {
        loa::console::audit::record(
            &c.app.db.pool,
            c.app.clock_now(),
            "cli",
            "test.entry",
            Some(&format!("entry:{i}")),
            None,
        )
        .await
        .unwrap();
    }
    let r = c
        .http
        .get(c.url("/api/audit"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("x-next-cursor"));
    let page: Vec<Value> = r.json().await.unwrap();
    assert_eq!(page.len() as i64, default);
}

#[tokio::test]
async fn the_queue_page_shows_a_hundred_items_a_page_and_links_the_next() {
    let c = spawn_console().await;
    let staff = c.token("soan-tin", Role::Staff, None).await;
    for i in 0..101 {
        let (status, _) = c
            .api(
                &staff,
                "POST",
                "/api/contents",
                Some(content(&format!("Tin {i}"), &[])),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let browser = c.sign_in("lan", Role::Staff, None).await;
    let row_ids = |page: &str| -> Vec<i64> {
        page.split("<tr data-id=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
            .collect()
    };
    let (status, first) = c.page(&browser, "/queue").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(row_ids(&first).len(), 100);
    let link = first
        .split("<a href=\"/queue?after=")
        .nth(1)
        .expect("a link to the next page");
    let cursor = &link[..link.find('"').unwrap()];
    let (status, second) = c.page(&browser, &format!("/queue?after={cursor}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !second.contains("Trang sau"),
        "the last page links no further"
    );
    let mut all = row_ids(&first);
    all.extend(row_ids(&second));
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!((all.len(), unique.len()), (101, 101));
    let (status, _) = c.page(&browser, "/queue?after=x").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
