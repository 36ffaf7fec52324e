use serde_json::{Value, json};

use super::*;

fn app() -> ZaloApp {
    ZaloApp {
        app_id: "1860141329355019864".into(),
        secret_key: "app-secret".into(),
        refresh_token: "first-refresh".into(),
        oa_secret: "oa-secret".into(),
    }
}

async fn fake() -> FakeZalo {
    let fake = FakeZalo::start(app()).await.expect("start fake zalo");
    fake.register_template("400001", &[("name", 10), ("code", 6)]);
    fake
}

async fn refresh(fake: &FakeZalo, refresh_token: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{}/v4/oa/access_token", fake.oauth_url()))
        .header("secret_key", "app-secret")
        .form(&[
            ("refresh_token", refresh_token),
            ("app_id", "1860141329355019864"),
            ("grant_type", "refresh_token"),
        ])
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("refresh json")
}

async fn send(fake: &FakeZalo, token: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/message/template", fake.api_url()))
        .header("access_token", token)
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn message(phone: &str, name: &str) -> Value {
    json!({
        "phone": phone,
        "template_id": "400001",
        "template_data": { "name": name, "code": "123456" },
        "tracking_id": "delivery-1",
    })
}

/// A fresh access token from the first refresh token.
async fn token(fake: &FakeZalo) -> String {
    let answer = refresh(fake, "first-refresh").await;
    answer["access_token"]
        .as_str()
        .expect("access token")
        .to_string()
}

#[tokio::test]
async fn a_valid_send_is_accepted_and_recorded() {
    let fake = fake().await;
    let token = token(&fake).await;
    let (status, answer) = send(&fake, &token, message("84912345678", "Lan")).await;
    assert_eq!(status, 200);
    assert_eq!(answer["error"], 0, "{answer}");
    let msg_id = answer["data"]["msg_id"].as_str().expect("msg_id");
    assert_eq!(msg_id.len(), 32);
    assert_eq!(answer["data"]["quota"]["remainingQuota"], "99999");
    assert!(answer["data"]["sent_time"].is_string());
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].msg_id, msg_id);
    assert_eq!(sent[0].phone, "84912345678");
    assert_eq!(sent[0].tracking_id.as_deref(), Some("delivery-1"));
    assert_eq!(fake.requests(), 1);

    let (_, second) = send(&fake, &token, message("84912345679", "Minh")).await;
    assert_ne!(second["data"]["msg_id"], answer["data"]["msg_id"]);
}

#[tokio::test]
async fn refresh_rotates_and_a_spent_refresh_token_is_refused_and_counted() {
    let fake = fake().await;
    let first = refresh(&fake, "first-refresh").await;
    assert_eq!(first["expires_in"], "90000");
    let old_access = first["access_token"].as_str().unwrap().to_string();
    let next_refresh = first["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(fake.current_refresh_token(), next_refresh);
    assert_eq!(fake.refreshes(), 1);

    let again = refresh(&fake, "first-refresh").await;
    assert_eq!(again["error"], -14014, "{again}");
    assert_eq!(fake.spent_refresh_tokens_presented(), 1);

    let second = refresh(&fake, &next_refresh).await;
    let new_access = second["access_token"].as_str().unwrap().to_string();
    assert_eq!(fake.refreshes(), 2);
    assert_eq!(fake.spent_refresh_tokens_presented(), 1);
    // Zalo kills the previous access token when it issues a new one.
    let (_, answer) = send(&fake, &old_access, message("84912345678", "Lan")).await;
    assert_eq!(answer["error"], -124);
    let (_, answer) = send(&fake, &new_access, message("84912345678", "Lan")).await;
    assert_eq!(answer["error"], 0);

    fake.expire_access_tokens();
    let (_, answer) = send(&fake, &new_access, message("84912345678", "Lan")).await;
    assert_eq!(answer["error"], -124);

    fake.revoke_refresh_token();
    let revoked = refresh(&fake, &fake.current_refresh_token()).await;
    assert_eq!(revoked["error"], -14014);
    assert_eq!(fake.spent_refresh_tokens_presented(), 1);
    let fresh = fake.reauthorize();
    assert!(refresh(&fake, &fresh).await["access_token"].is_string());
}

#[tokio::test]
async fn wrong_app_credentials_and_lifetime_are_enforced() {
    let fake = fake().await;
    let wrong_secret: Value = reqwest::Client::new()
        .post(format!("{}/v4/oa/access_token", fake.oauth_url()))
        .header("secret_key", "not-it")
        .form(&[
            ("refresh_token", "first-refresh"),
            ("app_id", "1860141329355019864"),
            ("grant_type", "refresh_token"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(wrong_secret["error"], -14004);
    assert_eq!(fake.current_refresh_token(), "first-refresh");

    fake.keep_old_access_tokens_on_refresh(true);
    fake.set_access_token_lifetime(0);
    let answer = refresh(&fake, "first-refresh").await;
    assert_eq!(answer["expires_in"], "0");
    let dead = answer["access_token"].as_str().unwrap().to_string();
    let (_, answer) = send(&fake, &dead, message("84912345678", "Lan")).await;
    assert_eq!(
        answer["error"], -124,
        "a token past its lifetime is refused"
    );
}

#[tokio::test]
async fn template_data_is_checked_in_characters() {
    let fake = fake().await;
    let token = token(&fake).await;
    // Ten characters, more than ten bytes: accepted.
    let (_, answer) = send(&fake, &token, message("84912345678", "Nguyễn Thị")).await;
    assert_eq!(answer["error"], 0, "{answer}");
    let (_, answer) = send(&fake, &token, message("84912345678", "Nguyễn Thị A")).await;
    assert_eq!(answer["error"], -112);
    let missing = json!({ "phone": "84912345678", "template_id": "400001",
        "template_data": { "name": "Lan" } });
    assert_eq!(send(&fake, &token, missing).await.1["error"], -112);
    let unknown = json!({ "phone": "84912345678", "template_id": "999",
        "template_data": { "name": "Lan", "code": "1" } });
    assert_eq!(send(&fake, &token, unknown).await.1["error"], -109);
    let (_, answer) = send(&fake, &token, message("+84912345678", "Lan")).await;
    assert_eq!(answer["error"], -108);
    assert_eq!(fake.sent().len(), 1);
}

#[tokio::test]
async fn unreachable_numbers_answer_their_codes() {
    let fake = fake().await;
    fake.set_reachability(|phone| match phone {
        "84900000001" => Reachability::NotOnZalo,
        "84900000002" => Reachability::BlockedOa,
        _ => Reachability::OnZalo,
    });
    let token = token(&fake).await;
    let (status, answer) = send(&fake, &token, message("84900000001", "Lan")).await;
    assert_eq!((status, answer["error"].clone()), (200, json!(-118)));
    assert_eq!(answer["message"], "Zalo account not existed");
    let (_, answer) = send(&fake, &token, message("84900000002", "Lan")).await;
    assert_eq!(answer["error"], -141);
    let (_, answer) = send(&fake, &token, message("84900000003", "Lan")).await;
    assert_eq!(answer["error"], 0);
}

#[tokio::test]
async fn quota_runs_out_and_comes_back_the_next_day() {
    let fake = fake().await;
    let token = token(&fake).await;
    fake.set_daily_quota(2);
    for _ in 0..2 {
        assert_eq!(
            send(&fake, &token, message("84912345678", "Lan")).await.1["error"],
            0
        );
    }
    assert_eq!(
        send(&fake, &token, message("84912345678", "Lan")).await.1["error"],
        -144
    );
    fake.new_quota_day();
    let (_, answer) = send(&fake, &token, message("84912345678", "Lan")).await;
    assert_eq!(answer["error"], 0);
    assert_eq!(answer["data"]["quota"]["remainingQuota"], "1");

    fake.set_balance(Some(0));
    assert_eq!(
        send(&fake, &token, message("84912345678", "Lan")).await.1["error"],
        -115
    );
    assert_eq!(fake.sent().len(), 3);
}

#[tokio::test]
async fn down_answers_503_to_everything() {
    let fake = fake().await;
    let token = token(&fake).await;
    fake.set_down(true);
    let (status, _) = send(&fake, &token, message("84912345678", "Lan")).await;
    assert_eq!(status, 503);
    let status = reqwest::Client::new()
        .post(format!("{}/v4/oa/access_token", fake.oauth_url()))
        .header("secret_key", "app-secret")
        .form(&[
            ("refresh_token", "x"),
            ("app_id", "y"),
            ("grant_type", "refresh_token"),
        ])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 503);
    fake.set_down(false);
    assert_eq!(
        send(&fake, &token, message("84912345678", "Lan")).await.0,
        200
    );
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn receipts_are_signed_as_zalo_signs_them() {
    let fake = fake().await;
    let token = token(&fake).await;
    send(&fake, &token, message("84912345678", "Lan")).await;
    let msg = fake.sent().remove(0);
    let (body, headers) = fake.receipt_for(&msg);
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event_name"], "user_received_message");
    assert_eq!(event["message"]["msg_id"], msg.msg_id.as_str());
    assert_eq!(event["message"]["tracking_id"], "delivery-1");
    assert_eq!(event["recipient"]["id"], "84912345678");
    let timestamp = event["timestamp"].as_str().unwrap();
    let signature = headers
        .iter()
        .find(|(name, _)| name == "X-ZEvent-Signature")
        .map(|(_, value)| value.clone())
        .unwrap();
    assert_eq!(
        signature,
        sign("1860141329355019864", &body, timestamp, "oa-secret")
    );
    assert!(signature.starts_with("mac=") && signature.len() == 4 + 64);
    assert_ne!(
        signature,
        sign("1860141329355019864", &body, timestamp, "other")
    );
}

#[tokio::test]
async fn deliver_receipts_posts_each_message_once() {
    use axum::routing::post;
    let hits = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let recorded = Arc::clone(&hits);
    let hook = Router::new().route(
        "/zalo",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let recorded = Arc::clone(&recorded);
            async move {
                let mac = headers["x-zevent-signature"].to_str().unwrap().to_string();
                recorded.lock().unwrap().push((mac, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/zalo", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let fake = fake().await;
    let token = token(&fake).await;
    send(&fake, &token, message("84912345678", "Lan")).await;
    send(&fake, &token, message("84912345679", "Minh")).await;
    assert_eq!(fake.deliver_receipts(&url).await, vec![200, 200]);
    assert!(fake.deliver_receipts(&url).await.is_empty());
    let hits = hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 2);
    for (mac, body) in hits {
        let event: Value = serde_json::from_str(&body).unwrap();
        let ts = event["timestamp"].as_str().unwrap();
        assert_eq!(mac, sign("1860141329355019864", &body, ts, "oa-secret"));
    }
    server.abort();
}
