//! A fake of Zalo's ZNS send API and its OA token endpoint, following what
//! `/work/shared/notes/zalo.md` ("Verified") records of the real ones. It enforces:
//!
//! * `POST /message/template` with an `access_token` header that is a token this fake issued,
//!   not expired (its `expires_in` has passed in real time), not swept by
//!   [`FakeZalo::expire_access_tokens`], and — as Zalo does — not replaced by a later refresh
//!   (see [`FakeZalo::keep_old_access_tokens_on_refresh`]); otherwise `-124 Access token invalid`;
//! * the phone as `84` and 8–11 more digits, no `+` (`-108`); a registered template (`-109`);
//!   `template_data` with exactly the template's parameters, each no longer than its limit in
//!   characters (`-111` empty, `-112` otherwise);
//! * the quota ([`FakeZalo::set_daily_quota`], `-144`) and balance ([`FakeZalo::set_balance`],
//!   `-115`); per-number reachability (`-118` not on Zalo, `-141` refuses this OA);
//! * `POST /v4/oa/access_token` (form `refresh_token`, `app_id`, `grant_type=refresh_token`,
//!   header `secret_key`) with single-use rotating refresh tokens: only the latest one works,
//!   a spent one answers `-14014` and is counted ([`FakeZalo::spent_refresh_tokens_presented`]);
//!   `expires_in` is a string of seconds, as Zalo sends it.
//!
//! Every answer is HTTP 200 with Zalo's JSON envelope, unless the fake is down
//! ([`FakeZalo::set_down`]: 503 to everything, as a load balancer in front would answer).
//! Accepted messages get unique, deterministic hex `msg_id`s, and can be receipted to Loa's
//! webhook as signed `user_received_message` events ([`FakeZalo::deliver_receipts`]).

mod oauth;
mod send;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

/// The Zalo app and OA the fake stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZaloApp {
    pub app_id: String,
    /// The app secret: the `secret_key` header of a token refresh.
    pub secret_key: String,
    /// The first refresh token, as an OA admin's authorization hands it out.
    pub refresh_token: String,
    /// The OA secret key: signs the webhook events.
    pub oa_secret: String,
}

/// How a phone number answers a ZNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// Has Zalo and accepts the OA's messages: the send succeeds.
    OnZalo,
    /// No Zalo account: `-118 Zalo account not existed`.
    NotOnZalo,
    /// Refuses ZNS from this OA: `-141`.
    BlockedOa,
}

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct ZnsMessage {
    pub phone: String,
    pub template_id: String,
    pub template_data: Map<String, Value>,
    pub tracking_id: Option<String>,
    pub msg_id: String,
    /// When the fake accepted it (real time).
    pub received_at: Instant,
}

/// The ZNS error codes and messages the fake answers (see the notes for their sources).
pub mod codes {
    pub const UNKNOWN: (i64, &str) = (-100, "Unknown error");
    pub const PHONE_INVALID: (i64, &str) = (-108, "Phone number invalid");
    pub const TEMPLATE_INVALID: (i64, &str) = (-109, "Template ID invalid");
    pub const TEMPLATE_DATA_EMPTY: (i64, &str) = (-111, "Template data empty");
    pub const TEMPLATE_DATA_INVALID: (i64, &str) = (-112, "Template data invalid");
    pub const OUT_OF_QUOTA: (i64, &str) = (-115, "Out of quota");
    pub const NOT_ON_ZALO: (i64, &str) = (-118, "Zalo account not existed");
    pub const BODY_INVALID: (i64, &str) = (-122, "Body format invalid");
    pub const ACCESS_TOKEN_INVALID: (i64, &str) = (-124, "Access token invalid");
    pub const USER_REJECTED_OA: (i64, &str) = (-141, "User rejected receiving ZNS from this OA");
    pub const DAILY_QUOTA_EXCEEDED: (i64, &str) = (-144, "OA has exceeded the daily quota");
    /// OAuth: invalid, expired, revoked or already-used refresh token.
    pub const INVALID_REFRESH_TOKEN: (i64, &str) = (-14014, "Invalid refresh token");
    pub const INVALID_APP_ID: (i64, &str) = (-14002, "Invalid appId");
    pub const INVALID_SECRET_KEY: (i64, &str) = (-14004, "Invalid secret key");
    pub const INVALID_GRANT_TYPE: (i64, &str) = (-14018, "Invalid grant type");
}

/// An access token the fake issued.
#[derive(Debug, Clone)]
struct IssuedToken {
    issued_at: Instant,
    lifetime: Duration,
    /// Swept by `expire_access_tokens`, or replaced by a later refresh.
    dead: bool,
}

type Rule = Box<dyn Fn(&str) -> Reachability + Send + Sync>;

struct FakeState {
    app: ZaloApp,
    oa_id: String,
    down: bool,
    /// Send requests answered, whatever the answer.
    requests: usize,
    sent: Vec<ZnsMessage>,
    /// Messages whose receipt has been played.
    receipted: usize,
    templates: HashMap<String, Vec<(String, usize)>>,
    reachability: Option<Rule>,
    daily_quota: u32,
    remaining_quota: u32,
    /// Sends still paid for; `None`: unlimited.
    balance: Option<u32>,
    access_tokens: HashMap<String, IssuedToken>,
    current_access_token: Option<String>,
    keep_old_access_tokens: bool,
    access_token_lifetime: u64,
    current_refresh_token: String,
    refresh_revoked: bool,
    spent_refresh_tokens: HashSet<String>,
    spent_presented: usize,
    refreshes: usize,
    /// Counts every token and message id minted, to keep them unique and deterministic.
    minted: u64,
}

impl FakeState {
    fn new(app: ZaloApp) -> FakeState {
        const E18: u64 = 1_000_000_000_000_000_000;
        let oa_id = (E18 + digest_u64(&app.app_id) % E18).to_string();
        FakeState {
            current_refresh_token: app.refresh_token.clone(),
            app,
            oa_id,
            down: false,
            requests: 0,
            sent: Vec::new(),
            receipted: 0,
            templates: HashMap::new(),
            reachability: None,
            daily_quota: DEFAULT_DAILY_QUOTA,
            remaining_quota: DEFAULT_DAILY_QUOTA,
            balance: None,
            access_tokens: HashMap::new(),
            current_access_token: None,
            keep_old_access_tokens: false,
            access_token_lifetime: DEFAULT_ACCESS_TOKEN_LIFETIME,
            refresh_revoked: false,
            spent_refresh_tokens: HashSet::new(),
            spent_presented: 0,
            refreshes: 0,
            minted: 0,
        }
    }

    /// A fresh deterministic hex string of `len` characters, unique within this fake.
    fn mint(&mut self, kind: &str, len: usize) -> String {
        self.minted += 1;
        let mut hasher = Sha256::new();
        hasher.update(self.app.app_id.as_bytes());
        hasher.update(kind.as_bytes());
        hasher.update(self.minted.to_be_bytes());
        let hex = hex(&hasher.finalize());
        hex[..len.min(hex.len())].to_string()
    }

    fn reachability(&self, phone: &str) -> Reachability {
        self.reachability
            .as_ref()
            .map_or(Reachability::OnZalo, |rule| rule(phone))
    }

    fn access_token_valid(&self, token: &str, now: Instant) -> bool {
        self.access_tokens
            .get(token)
            .is_some_and(|t| !t.dead && now < t.issued_at + t.lifetime)
    }
}

/// The daily quota until a test sets another.
pub const DEFAULT_DAILY_QUOTA: u32 = 100_000;
/// `expires_in` of a refreshed access token until a test sets another: Zalo's 25 hours.
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: u64 = 90_000;

type Shared = Arc<Mutex<FakeState>>;

fn lock(state: &Shared) -> MutexGuard<'_, FakeState> {
    state.lock().expect("fake zalo")
}

pub struct FakeZalo {
    addr: SocketAddr,
    state: Shared,
    server: JoinHandle<()>,
}

impl FakeZalo {
    /// Serves both the ZNS API and the OAuth endpoint on one random loopback port. No access
    /// token exists yet: Loa gets one by refreshing with `app.refresh_token`.
    pub async fn start(app: ZaloApp) -> std::io::Result<FakeZalo> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(FakeState::new(app)));
        let router = Router::new()
            .route("/message/template", post(send::handle))
            .route("/v4/oa/access_token", post(oauth::handle))
            .fallback(not_found)
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(FakeZalo {
            addr,
            state,
            server,
        })
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.state)
    }

    /// The base URL to give Loa as `LOA_ZALO_API_URL`: it posts to `{api_url}/message/template`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL to give Loa as `LOA_ZALO_OAUTH_URL`: it posts to
    /// `{oauth_url}/v4/oa/access_token`. The same server as [`FakeZalo::api_url`].
    pub fn oauth_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OA's id, the `sender.id` of the webhook events.
    pub fn oa_id(&self) -> String {
        self.lock().oa_id.clone()
    }

    /// Approves a template: its parameter names and their maximum lengths in characters.
    /// Registering the same id again replaces it.
    pub fn register_template(&self, template_id: &str, params: &[(&str, usize)]) {
        let params = params.iter().map(|(n, l)| (n.to_string(), *l)).collect();
        self.lock()
            .templates
            .insert(template_id.to_string(), params);
    }

    /// Every message accepted so far, in order.
    pub fn sent(&self) -> Vec<ZnsMessage> {
        self.lock().sent.clone()
    }

    /// Send requests answered so far, accepted or not (503s included).
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Successful token refreshes.
    pub fn refreshes(&self) -> usize {
        self.lock().refreshes
    }

    /// Refresh attempts that presented a refresh token already used (rotated out). Two Loa
    /// processes refreshing at once show up here: it must stay 0.
    pub fn spent_refresh_tokens_presented(&self) -> usize {
        self.lock().spent_presented
    }

    /// Decides per phone number (`84…`) how it answers; the default is [`Reachability::OnZalo`].
    pub fn set_reachability(&self, rule: impl Fn(&str) -> Reachability + Send + Sync + 'static) {
        self.lock().reachability = Some(Box::new(rule));
    }

    /// Sets the daily quota and the sends remaining today to `n`; past it, `-144`.
    pub fn set_daily_quota(&self, n: u32) {
        let mut state = self.lock();
        state.daily_quota = n;
        state.remaining_quota = n;
    }

    /// A new day: the remaining quota goes back to the daily quota.
    pub fn new_quota_day(&self) {
        let mut state = self.lock();
        state.remaining_quota = state.daily_quota;
    }

    /// Sends the account can still pay for (`None`: unlimited, the default); past it,
    /// `-115 Out of quota`, until a new balance is set.
    pub fn set_balance(&self, sends: Option<u32>) {
        self.lock().balance = sends;
    }

    /// Every access token issued so far becomes invalid (`-124`), as when it expires.
    pub fn expire_access_tokens(&self) {
        for token in self.lock().access_tokens.values_mut() {
            token.dead = true;
        }
    }

    /// The current refresh token becomes invalid too (`-14014`): only
    /// [`FakeZalo::reauthorize`] mends it, as an OA admin re-authorizing the app would.
    pub fn revoke_refresh_token(&self) {
        self.lock().refresh_revoked = true;
    }

    /// An OA admin authorizes the app again: a new refresh token, returned, replaces the
    /// current one (which is not counted as spent if presented later, only refused).
    pub fn reauthorize(&self) -> String {
        let mut state = self.lock();
        let token = state.mint("refresh-token", 40);
        state.current_refresh_token = token.clone();
        state.refresh_revoked = false;
        token
    }

    /// The `expires_in` of the next refreshes, in seconds (default 90000); the tokens they
    /// issue are refused once that much real time has passed.
    pub fn set_access_token_lifetime(&self, secs: u64) {
        self.lock().access_token_lifetime = secs;
    }

    /// Zalo kills the previous access token when it issues a new one, and so does the fake by
    /// default; `true` keeps older tokens valid until they expire.
    pub fn keep_old_access_tokens_on_refresh(&self, keep: bool) {
        self.lock().keep_old_access_tokens = keep;
    }

    /// Answers HTTP 503 to everything while `down`.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// The refresh token that works now (the next refresh must present it).
    pub fn current_refresh_token(&self) -> String {
        self.lock().current_refresh_token.clone()
    }

    /// The access token issued by the latest refresh, if any.
    pub fn current_access_token(&self) -> Option<String> {
        self.lock().current_access_token.clone()
    }

    /// Posts one signed `user_received_message` event per accepted message not yet receipted,
    /// to Loa's webhook URL; returns the HTTP statuses Loa answered (0: no answer).
    pub async fn deliver_receipts(&self, webhook_url: &str) -> Vec<u16> {
        let pending: Vec<ZnsMessage> = {
            let mut state = self.lock();
            let pending = state.sent[state.receipted..].to_vec();
            state.receipted = state.sent.len();
            pending
        };
        let client = reqwest::Client::new();
        let mut statuses = Vec::new();
        for msg in pending {
            let (body, headers) = self.receipt_for(&msg);
            let mut request = client.post(webhook_url).body(body);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let status = request.send().await.map_or(0, |r| r.status().as_u16());
            statuses.push(status);
        }
        statuses
    }

    /// The JSON body and headers of a receipt for one message, signed with the OA secret as
    /// Zalo signs it (`X-ZEvent-Signature: mac=<hex>`); tests may alter or forge them.
    pub fn receipt_for(&self, msg: &ZnsMessage) -> (String, Vec<(String, String)>) {
        let (app_id, oa_id, oa_secret) = {
            let state = self.lock();
            (
                state.app.app_id.clone(),
                state.oa_id.clone(),
                state.app.oa_secret.clone(),
            )
        };
        let now = epoch_millis().to_string();
        let mut message = json!({ "msg_id": msg.msg_id, "delivery_time": now });
        if let Some(tracking_id) = &msg.tracking_id {
            message["tracking_id"] = json!(tracking_id);
        }
        let body = json!({
            "event_name": "user_received_message",
            "app_id": app_id,
            "timestamp": now,
            "sender": { "id": oa_id },
            "recipient": { "id": msg.phone },
            "message": message,
        })
        .to_string();
        let signature = sign(&app_id, &body, &now, &oa_secret);
        let headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("X-ZEvent-Signature".to_string(), signature),
            ("X-ZEvent-Server".to_string(), "ZNS".to_string()),
        ];
        (body, headers)
    }
}

impl Drop for FakeZalo {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The fake's computation of the webhook signature header, as Zalo computes it:
/// `mac=` followed by the lowercase hex SHA-256 of `app_id + body + timestamp + oa_secret`
/// (plain SHA-256 of the concatenation, not an HMAC; `timestamp` is the body's own).
pub fn sign(app_id: &str, body: &str, timestamp: &str, oa_secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(app_id.as_bytes());
    hasher.update(body.as_bytes());
    hasher.update(timestamp.as_bytes());
    hasher.update(oa_secret.as_bytes());
    format!("mac={}", hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest_u64(s: &str) -> u64 {
    let digest = Sha256::digest(s.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

fn epoch_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Zalo's error envelope, always with HTTP 200.
fn zns_error((code, message): (i64, &str)) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({ "error": code, "message": message })),
    )
        .into_response()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "503 Service Temporarily Unavailable",
    )
        .into_response()
}

async fn not_found(axum::extract::State(state): axum::extract::State<Shared>) -> Response {
    if lock(&state).down {
        return unavailable();
    }
    (StatusCode::NOT_FOUND, "404 Not Found").into_response()
}
