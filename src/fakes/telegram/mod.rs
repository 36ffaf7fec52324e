//! A fake Telegram Bot API: the real paths (`/bot<TOKEN>/<method>`, method names matched
//! case-insensitively as Telegram does), the real JSON envelopes, and switches to make a
//! chosen chat answer 429 with `retry_after`, 403 "bot was blocked by the user", or a body
//! that is not JSON (as a proxy's error page would be), to stand behind a broken proxy
//! whose error page echoes the request path, bot token included, and to spoil a seeded share
//! of the sends with the faults a real network has (`faults`: 5xx, hangs, resets, 429 bursts).

mod faults;
mod json;
mod send;

pub use faults::{BotBursts, ChatBursts, Fault, FaultCounts, FaultMix};

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use faults::{HangUp, Plan};
use json::{as_i64, bot_user, chat_member, group_message, mark_command, private_message, user};
use send::send_message;

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub chat_id: i64,
    pub text: String,
    pub parse_mode: Option<String>,
    pub message_id: i64,
    /// When the fake received it (real time).
    pub received_at: Instant,
    /// The `reply_markup` sent with it (inline keyboards), as JSON.
    pub reply_markup: Option<Value>,
}

/// A call the fake answered other than `sendMessage`/`getUpdates`, e.g. `answerCallbackQuery`.
#[derive(Debug, Clone, PartialEq)]
pub struct OtherCall {
    pub method: String,
    pub params: Value,
}

/// Telegram's limits, as the fake enforces them when asked to: over them, 429 with
/// `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnforcedLimits {
    /// Messages accepted in any sliding second, all chats together.
    pub per_second: usize,
    /// Messages accepted in any sliding second to one chat.
    pub per_chat_per_second: usize,
}

/// How the fake will answer the next sends to one chat.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scripted {
    TooManyRequests { retry_after: u32 },
    NotJson,
}

#[derive(Debug, Default)]
struct FakeState {
    sent: Vec<SentMessage>,
    blocked: HashSet<i64>,
    scripted: HashMap<i64, VecDeque<Scripted>>,
    requests: usize,
    next_message_id: i64,
    limits: Option<EnforcedLimits>,
    too_many_requests: usize,
    /// Messages accepted, including those forgotten.
    accepted: usize,
    /// Updates waiting for `getUpdates`, in order.
    updates: Vec<Value>,
    next_update_id: i64,
    other_calls: Vec<OtherCall>,
    broken_proxy: bool,
    /// `getChatMember` statuses by (chat, user); anyone else is a plain `member`.
    members: HashMap<(i64, i64), String>,
    /// Where `setWebhook` last pointed (empty: long polling), and the last error Telegram met
    /// delivering to it, for `getWebhookInfo`.
    webhook_url: String,
    webhook_error: Option<String>,
    /// The faults spoiling sends, when asked for.
    faults: Option<Plan>,
}

pub struct FakeTelegram {
    addr: SocketAddr,
    token: String,
    state: Arc<Mutex<FakeState>>,
    server: JoinHandle<()>,
}

#[derive(Clone)]
struct AppState {
    token: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeTelegram {
    /// Serves on a random loopback port, accepting only `token`.
    pub async fn start(token: &str) -> std::io::Result<FakeTelegram> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(FakeState::default()));
        let app = Router::new()
            .route("/{bot}/{method}", post(handle))
            .with_state(AppState {
                token: token.to_string(),
                state: Arc::clone(&state),
            });
        let server = tokio::spawn(faults::serve(listener, app));
        Ok(FakeTelegram {
            addr,
            token: token.to_string(),
            state,
            server,
        })
    }

    /// The base URL to give Loa as `TELEGRAM_API_URL`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// From now on (`true`) every call gets a misrouting proxy's 404 page that echoes the
    /// request path, `/bot<TOKEN>/<method>`, as many web servers' error pages do (a 5xx would
    /// make teloxide wait 10 s before reading it); `false` restores the API.
    pub fn answer_through_broken_proxy(&self, broken: bool) {
        self.lock().broken_proxy = broken;
    }

    /// Every message accepted so far, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.lock().sent.clone()
    }

    pub fn sent_to(&self, chat_id: i64) -> Vec<SentMessage> {
        self.lock()
            .sent
            .iter()
            .filter(|m| m.chat_id == chat_id)
            .cloned()
            .collect()
    }

    /// Messages accepted since the start, including forgotten ones.
    pub fn accepted(&self) -> usize {
        self.lock().accepted
    }

    /// Drops the recorded messages (a long benchmark's sink keeps only counts).
    pub fn forget_sent(&self) {
        self.lock().sent.clear();
    }

    /// Requests of any kind, answered or refused.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// From now on, sends to `chat_id` get 403 "Forbidden: bot was blocked by the user".
    pub fn block(&self, chat_id: i64) {
        self.lock().blocked.insert(chat_id);
    }

    /// The next send to `chat_id` gets 429 with `parameters.retry_after`.
    pub fn rate_limit_next(&self, chat_id: i64, retry_after: u32) {
        self.lock()
            .scripted
            .entry(chat_id)
            .or_default()
            .push_back(Scripted::TooManyRequests { retry_after });
    }

    /// Queues an update as a user would cause it; `getUpdates` returns it.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let mut state = self.lock();
        state.next_update_id += 1;
        let id = state.next_update_id;
        update["update_id"] = json!(id);
        state.updates.push(update);
        id
    }

    /// A private message from user `user_id` (their chat has the same id), commands marked
    /// as Telegram marks them.
    pub fn user_says(&self, user_id: i64, text: &str) -> i64 {
        let mut message = private_message(user_id, 0);
        message["text"] = json!(text);
        mark_command(&mut message, text);
        self.push_update(json!({ "message": message }))
    }

    /// User `user_id` shares their phone number with the contact button.
    pub fn user_shares_contact(&self, user_id: i64, phone: &str) -> i64 {
        let mut message = private_message(user_id, 0);
        message["contact"] =
            json!({"phone_number": phone, "first_name": "Cư dân", "user_id": user_id});
        self.push_update(json!({ "message": message }))
    }

    /// User `user_id` presses an inline button with `data` under message `message_id`.
    pub fn user_presses(&self, user_id: i64, message_id: i64, data: &str) -> i64 {
        let id = format!("cb{}", self.lock().next_update_id + 1);
        self.push_update(json!({
            "callback_query": {
                "id": id,
                "from": user(user_id),
                "message": private_message(user_id, message_id),
                "chat_instance": format!("ci{user_id}"),
                "data": data,
            }
        }))
    }

    /// A message in group chat `chat_id` (negative) from user `user_id`.
    pub fn group_says(&self, chat_id: i64, user_id: i64, text: &str) -> i64 {
        let mut message = group_message(chat_id, user(user_id), 1);
        message["text"] = json!(text);
        mark_command(&mut message, text);
        self.push_update(json!({ "message": message }))
    }

    /// A message with a shared contact in group chat `chat_id` from user `user_id`.
    pub fn group_shares_contact(&self, chat_id: i64, user_id: i64, phone: &str) -> i64 {
        let mut message = group_message(chat_id, user(user_id), 1);
        message["contact"] =
            json!({"phone_number": phone, "first_name": "Cư dân", "user_id": user_id});
        self.push_update(json!({ "message": message }))
    }

    /// User `user_id` presses an inline button with `data` under the bot's message
    /// `message_id` in group chat `chat_id`.
    pub fn user_presses_in_group(
        &self,
        chat_id: i64,
        user_id: i64,
        message_id: i64,
        data: &str,
    ) -> i64 {
        let id = format!("cb{}", self.lock().next_update_id + 1);
        self.push_update(json!({
            "callback_query": {
                "id": id,
                "from": user(user_id),
                "message": group_message(chat_id, bot_user(), message_id),
                "chat_instance": format!("ci{chat_id}"),
                "data": data,
            }
        }))
    }

    /// What `getChatMember` answers for `user_id` in `chat_id`: `creator`, `administrator`,
    /// `member` (the default), `restricted`, `left` or `kicked`.
    /// Points the bot's webhook at `url`, as another service holding the token would.
    pub fn point_webhook_at(&self, url: &str) {
        self.state.lock().expect("fake state").webhook_url = url.to_string();
    }

    /// The error `getWebhookInfo` reports as Telegram's last one delivering updates.
    pub fn webhook_fails_with(&self, message: &str) {
        self.state.lock().expect("fake state").webhook_error = Some(message.to_string());
    }

    pub fn set_member_status(&self, chat_id: i64, user_id: i64, status: &str) {
        assert!(
            [
                "creator",
                "administrator",
                "member",
                "restricted",
                "left",
                "kicked"
            ]
            .contains(&status),
            "not a chat member status: {status}"
        );
        self.lock()
            .members
            .insert((chat_id, user_id), status.to_string());
    }

    /// Calls other than sending and polling, in order.
    pub fn other_calls(&self, method: &str) -> Vec<OtherCall> {
        self.lock()
            .other_calls
            .iter()
            .filter(|c| c.method.eq_ignore_ascii_case(method))
            .cloned()
            .collect()
    }

    /// Enforce Telegram's rates from now on, in real time.
    pub fn enforce_limits(&self, limits: EnforcedLimits) {
        self.lock().limits = Some(limits);
    }

    /// 429s answered because a rate was exceeded (scripted ones not counted).
    pub fn too_many_requests(&self) -> usize {
        self.lock().too_many_requests
    }

    /// The most messages accepted in any sliding second.
    pub fn busiest_second(&self) -> usize {
        let times: Vec<Instant> = self.lock().sent.iter().map(|m| m.received_at).collect();
        max_in_window(&times, Duration::from_secs(1))
    }

    /// The next send to `chat_id` gets an HTML error page instead of JSON.
    pub fn answer_not_json_next(&self, chat_id: i64) {
        self.lock()
            .scripted
            .entry(chat_id)
            .or_default()
            .push_back(Scripted::NotJson);
    }

    /// From now on, spoil `sendMessage` requests as `mix` says (on top of the switches above,
    /// which come first); the counts start again.
    pub fn inject_faults(&self, mix: FaultMix) {
        self.lock().faults = Some(Plan::new(mix));
    }

    /// What the fault mix has done so far.
    pub fn fault_counts(&self) -> FaultCounts {
        self.lock()
            .faults
            .as_ref()
            .map(|plan| plan.counts)
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake telegram state")
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error(status: StatusCode, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({"ok": false, "error_code": status.as_u16(), "description": description});
    if let Some(p) = parameters {
        body["parameters"] = p;
    }
    (status, axum::Json(body)).into_response()
}

/// An answer, or what the fake does instead of answering.
enum Reply {
    Now(Response),
    /// Nothing until this has passed.
    Hang(Duration),
    /// The connection reset, no answer.
    Reset,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Reply::Now(response)
    }
}

async fn handle(
    State(app): State<AppState>,
    Extension(hang_up): Extension<HangUp>,
    Path((bot, method)): Path<(String, String)>,
    body: String,
) -> Response {
    // The state's lock is held while deciding, never across a wait.
    match reply(&app, &bot, &method, &body) {
        Reply::Now(response) => response,
        Reply::Hang(duration) => {
            tokio::time::sleep(duration).await;
            error(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout", None)
        }
        Reply::Reset => {
            hang_up.now();
            std::future::pending().await
        }
    }
}

fn reply(app: &AppState, bot: &str, method: &str, body: &str) -> Reply {
    let mut state = app.state.lock().expect("fake telegram state");
    state.requests += 1;
    if state.broken_proxy {
        return (
            StatusCode::NOT_FOUND,
            format!("<html><body>Cannot POST /{bot}/{method}</body></html>"),
        )
            .into_response()
            .into();
    }
    if bot.strip_prefix("bot") != Some(app.token.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized", None).into();
    }
    let params: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let method = method.to_string();
    if method.eq_ignore_ascii_case("sendmessage") {
        return send_message(&mut state, &params);
    }
    answer(&mut state, &method, &params).into()
}

/// Every method but `sendMessage`.
fn answer(state: &mut FakeState, method: &str, params: &Value) -> Response {
    match method.to_ascii_lowercase().as_str() {
        "getme" => {
            let mut me = bot_user();
            me["can_join_groups"] = json!(true);
            me["can_read_all_group_messages"] = json!(false);
            me["supports_inline_queries"] = json!(false);
            me["can_connect_to_business"] = json!(false);
            me["has_main_web_app"] = json!(false);
            axum::Json(json!({"ok": true, "result": me})).into_response()
        }
        "getwebhookinfo" => {
            let mut info = json!({
                "url": state.webhook_url,
                "has_custom_certificate": false,
                "pending_update_count": state.updates.len(),
            });
            if let Some(message) = &state.webhook_error {
                info["last_error_date"] = json!(1_700_000_000);
                info["last_error_message"] = json!(message);
            }
            axum::Json(json!({"ok": true, "result": info})).into_response()
        }
        "getchatmember" => {
            state.other_calls.push(OtherCall {
                method: method.to_string(),
                params: params.clone(),
            });
            let (Some(chat_id), Some(user_id)) =
                (as_i64(&params["chat_id"]), as_i64(&params["user_id"]))
            else {
                return error(StatusCode::BAD_REQUEST, "Bad Request: chat not found", None);
            };
            let status = state
                .members
                .get(&(chat_id, user_id))
                .map_or("member", String::as_str);
            axum::Json(json!({"ok": true, "result": chat_member(user_id, status)})).into_response()
        }
        "getupdates" => {
            // `offset` confirms every update before it, as Telegram does.
            let offset = params["offset"].as_i64().unwrap_or(0);
            state
                .updates
                .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            let limit = params["limit"].as_u64().unwrap_or(100) as usize;
            let batch: Vec<Value> = state.updates.iter().take(limit).cloned().collect();
            axum::Json(json!({"ok": true, "result": batch})).into_response()
        }
        "setmycommands"
            if !params["commands"].as_array().is_some_and(|cs| {
                cs.iter().all(|c| {
                    c["command"].as_str().is_some_and(|n| {
                        (1..=32).contains(&n.len())
                            && n.chars().all(|ch| {
                                ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'
                            })
                    })
                })
            }) =>
        {
            error(
                StatusCode::BAD_REQUEST,
                "Bad Request: BOT_COMMAND_INVALID",
                None,
            )
        }
        "answercallbackquery"
        | "setmycommands"
        | "deletewebhook"
        | "setwebhook"
        | "editmessagereplymarkup"
        | "editmessagetext" => {
            match method.to_ascii_lowercase().as_str() {
                "setwebhook" => state.webhook_url = params["url"].as_str().unwrap_or("").into(),
                "deletewebhook" => state.webhook_url.clear(),
                _ => {}
            }
            state.other_calls.push(OtherCall {
                method: method.to_string(),
                params: params.clone(),
            });
            let result = if method.eq_ignore_ascii_case("editmessagetext")
                || method.eq_ignore_ascii_case("editmessagereplymarkup")
            {
                private_message(
                    params["chat_id"].as_i64().unwrap_or(0),
                    params["message_id"].as_i64().unwrap_or(0),
                )
            } else {
                json!(true)
            };
            axum::Json(json!({"ok": true, "result": result})).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "Not Found: method not found", None),
    }
}

/// The most instants in any window of length `window` (times in order).
pub fn max_in_window(times: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for (end, t) in times.iter().enumerate() {
        while t.duration_since(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use teloxide::prelude::*;

    /// Every status the fake gives reads as teloxide reads the real API's.
    #[tokio::test]
    async fn chat_members_read_as_the_real_api_s() {
        let fake = FakeTelegram::start("42:fake").await.unwrap();
        let bot = Bot::new("42:fake").set_api_url(fake.api_url().parse().unwrap());
        let group = ChatId(-1001);
        for (user, status, privileged) in [
            (1, "creator", true),
            (2, "administrator", true),
            (3, "member", false),
            (4, "restricted", false),
            (5, "left", false),
            (6, "kicked", false),
            (7, "", false),
        ] {
            if !status.is_empty() {
                fake.set_member_status(group.0, user, status);
            }
            let member = bot.get_chat_member(group, UserId(user as u64)).await;
            let member = member.unwrap_or_else(|e| panic!("{status}: {e}"));
            assert_eq!(member.kind.is_privileged(), privileged, "{status}");
            assert_eq!(member.user.id, UserId(user as u64));
        }
        assert_eq!(fake.other_calls("getChatMember").len(), 7);
    }
}
