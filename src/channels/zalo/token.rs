//! The Zalo OA's access token, kept fresh with its single-use refresh token.
//!
//! Zalo's refresh token works once: a refresh answers a new access token (about 25 hours) and a
//! new refresh token, and the old one is dead. Two processes refreshing with the same refresh
//! token would lose the pair for good (the second is refused, and the first one's new token is
//! the only live one). So the current pair lives in the database (`channel_tokens`), and a
//! process refreshes only while it holds the row's lease (`lock_holder`, `lock_until_ms`, on the
//! database's clock), after reading the row again under it: whoever comes second finds the
//! fresh token and uses it. A refused refresh token is recorded (`failure`): the channel is
//! down (`SendError::Account`) until an operator sets a new `LOA_ZALO_REFRESH_TOKEN`, which
//! replaces the stored pair at the next start.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};

use crate::channels::describe_http_error;
use crate::channels::http::read_answer;
use crate::store::Db;

/// A token with less than this left is refreshed before use (or a quarter of its lifetime,
/// when that is shorter).
pub const REFRESH_AHEAD: Duration = Duration::from_secs(30 * 60);
/// The lease on a refresh: well over twice what a refresh request may take (the client's
/// 20 s timeout), and checked again just before Zalo is asked.
const LOCK: Duration = Duration::from_secs(60);
/// How long a process waits for another's refresh before it gives up on this send.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(20);
/// Writing a new pair is tried this many times, a second apart, before it is kept in memory
/// only (and written at the next use): the refresh token it replaces is dead already.
const SAVE_ATTEMPTS: u32 = 5;
/// Zalo's documented lifetime of an access token, when the answer does not say.
const DEFAULT_LIFETIME_SECS: i64 = 90_000;

/// The row of this channel.
const CHANNEL: &str = "zalo";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Zalo refused the refresh token or the app's credentials: nothing goes until an operator
    /// acts.
    #[error("{0}")]
    Refused(String),
    /// Zalo's OAuth server could not be reached, or another process's refresh took too long.
    #[error("{0}")]
    Unavailable(String),
}

struct Cached {
    token: String,
    /// Until when it is used without asking the database (local monotonic clock).
    fresh_until: Instant,
}

/// The OA's token pair, shared through the database.
pub struct ZaloTokens {
    db: Db,
    client: reqwest::Client,
    refresh_url: reqwest::Url,
    app_id: String,
    secret_key: String,
    /// The refresh token the environment gave: seeds the row, or replaces the stored pair when
    /// it changed since.
    seed: String,
    holder: String,
    seeded: tokio::sync::OnceCell<()>,
    cached: Mutex<Option<Cached>>,
    /// A pair Zalo issued that could not be written yet: the only live refresh token, so it is
    /// written before anything else is done with the row.
    unsaved: Mutex<Option<Pair>>,
}

/// What `/healthz` and `loa doctor` say of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    /// Milliseconds the access token has left (negative: expired); `None` before the first.
    pub access_left_ms: Option<i64>,
    /// Why Zalo refused the refresh token, if it did.
    pub failure: Option<String>,
    pub quota_remaining: Option<i64>,
    pub quota_daily: Option<i64>,
}

impl TokenStatus {
    /// Reads the row (`None`: Zalo has not been used on this database).
    pub async fn read(db: &Db) -> Result<Option<TokenStatus>, sqlx::Error> {
        let sql = format!(
            "SELECT access_expires_ms - {now}, failure, quota_remaining, quota_daily
             FROM channel_tokens WHERE channel = $1",
            now = db.backend.now_millis()
        );
        let Some(row) = sqlx::query(AssertSqlSafe(sql))
            .bind(CHANNEL)
            .fetch_optional(&db.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(TokenStatus {
            access_left_ms: row.try_get(0)?,
            failure: row.try_get(1)?,
            quota_remaining: row.try_get(2)?,
            quota_daily: row.try_get(3)?,
        }))
    }
}

struct Row0 {
    access: Option<String>,
    left_ms: Option<i64>,
    /// How long the token was issued for.
    lifetime_ms: Option<i64>,
    refresh: String,
    failure: Option<String>,
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ZaloTokens {
    pub fn new(
        db: Db,
        client: reqwest::Client,
        oauth_url: &str,
        app_id: &str,
        secret_key: &str,
        refresh_token: &str,
    ) -> Result<Self, String> {
        let refresh_url = reqwest::Url::parse(&format!(
            "{}/v4/oa/access_token",
            oauth_url.trim_end_matches('/')
        ))
        .map_err(|_| format!("zalo oauth_url {oauth_url:?} is not a URL"))?;
        Ok(ZaloTokens {
            db,
            client,
            refresh_url,
            app_id: app_id.to_string(),
            secret_key: secret_key.to_string(),
            seed: refresh_token.to_string(),
            holder: format!("{:016x}", rand::random::<u64>()),
            seeded: tokio::sync::OnceCell::new(),
            cached: Mutex::new(None),
            unsaved: Mutex::new(None),
        })
    }

    /// The secrets to blank in anything quoted from an answer.
    pub(super) fn secret_values(&self) -> Vec<String> {
        vec![self.secret_key.clone(), self.seed.clone()]
    }

    /// A valid access token: the one in hand, the stored one, or a fresh one.
    pub async fn access_token(&self) -> Result<String, TokenError> {
        if let Some(c) = self.cached.lock().expect("token cache").as_ref()
            && c.fresh_until > Instant::now()
        {
            return Ok(c.token.clone());
        }
        self.current(None).await
    }

    /// Zalo refused `token` (expired, or replaced by another process's refresh): the stored
    /// one if it is another, else a refreshed one.
    pub async fn renew(&self, refused: &str) -> Result<String, TokenError> {
        self.cached.lock().expect("token cache").take();
        self.current(Some(refused)).await
    }

    async fn current(&self, refused: Option<&str>) -> Result<String, TokenError> {
        self.seeded
            .get_or_try_init(|| self.seed_row())
            .await
            .map_err(|e| TokenError::Unavailable(format!("zalo token: database: {e}")))?;
        self.save_unsaved().await?;
        let started = Instant::now();
        loop {
            let row = self.read().await.map_err(db_error)?;
            if let Some(token) = self.usable(&row, refused) {
                return Ok(token);
            }
            if let Some(failure) = row.failure {
                return Err(TokenError::Refused(failure));
            }
            if self.lock().await.map_err(db_error)? {
                let outcome = self.refresh_locked(refused).await;
                if let Err(e) = self.unlock().await {
                    tracing::warn!("zalo token: cannot release the refresh lease: {e}");
                }
                return outcome;
            }
            if started.elapsed() > WAIT_FOR_OTHERS {
                return Err(TokenError::Unavailable(
                    "zalo token: another process's refresh has not finished".to_string(),
                ));
            }
            // Another process is refreshing: its result is in the row within a request's time.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Under the lease: the row again (another process may have refreshed between our read and
    /// the lease), then a refresh if it is still needed.
    async fn refresh_locked(&self, refused: Option<&str>) -> Result<String, TokenError> {
        let row = self.read().await.map_err(db_error)?;
        if let Some(token) = self.usable(&row, refused) {
            return Ok(token);
        }
        if let Some(failure) = row.failure {
            return Err(TokenError::Refused(failure));
        }
        // A pause since the lease was taken may have let another process take it: only the
        // holder of a live lease may spend the refresh token.
        if !self.holds_lease().await.map_err(db_error)? {
            return Err(TokenError::Unavailable(
                "zalo token: the refresh lease lapsed before the refresh".to_string(),
            ));
        }
        match self.call_refresh(&row.refresh).await {
            Ok(pair) => {
                let lifetime = pair.lifetime_secs * 1000;
                self.remember(&pair.access, lifetime, ahead_ms(Some(lifetime)));
                let access = pair.access.clone();
                *self.unsaved.lock().expect("unsaved pair") = Some(pair);
                // Written whatever happened to the lease: the old refresh token is spent now.
                for attempt in 1..=SAVE_ATTEMPTS {
                    match self.save_unsaved().await {
                        Ok(()) => break,
                        Err(e) if attempt == SAVE_ATTEMPTS => {
                            tracing::error!(
                                "zalo: the new token pair is kept in memory only until the database takes it: {e}"
                            );
                        }
                        Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                    }
                }
                tracing::info!(
                    expires_in_s = lifetime / 1000,
                    "zalo: access token refreshed"
                );
                Ok(access)
            }
            Err(TokenError::Refused(why)) => {
                tracing::error!("zalo: {why}");
                // Only against the refresh token that was refused: a pair another process
                // wrote meanwhile stays good.
                sqlx::query(
                    "UPDATE channel_tokens SET failure = $1 WHERE channel = $2 AND refresh_token = $3",
                )
                .bind(&why)
                .bind(CHANNEL)
                .bind(&row.refresh)
                .execute(&self.db.pool)
                .await
                .map_err(db_error)?;
                Err(TokenError::Refused(why))
            }
            Err(other) => Err(other),
        }
    }

    /// Writes the pair Zalo issued that is not in the database yet, if any.
    async fn save_unsaved(&self) -> Result<(), TokenError> {
        let Some(pair) = self.unsaved.lock().expect("unsaved pair").clone() else {
            return Ok(());
        };
        let sql = format!(
            "UPDATE channel_tokens SET access_token = $1, access_expires_ms = {now} + $2,
                 refresh_token = $3, refreshed_ms = {now}, failure = NULL
             WHERE channel = $4",
            now = self.db.backend.now_millis()
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&pair.access)
            .bind(pair.lifetime_secs * 1000)
            .bind(&pair.refresh)
            .bind(CHANNEL)
            .execute(&self.db.pool)
            .await
            .map_err(db_error)?;
        let mut unsaved = self.unsaved.lock().expect("unsaved pair");
        if unsaved.as_ref() == Some(&pair) {
            *unsaved = None;
        }
        Ok(())
    }

    /// Whether this process still holds the refresh lease.
    async fn holds_lease(&self) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "SELECT COUNT(*) FROM channel_tokens
             WHERE channel = $1 AND lock_holder = $2 AND lock_until_ms > {now}",
            now = self.db.backend.now_millis()
        );
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(CHANNEL)
            .bind(&self.holder)
            .fetch_one(&self.db.pool)
            .await?;
        Ok(n == 1)
    }

    fn usable(&self, row: &Row0, refused: Option<&str>) -> Option<String> {
        let access = row.access.as_deref()?;
        let left = row.left_ms?;
        let ahead = ahead_ms(row.lifetime_ms);
        if refused == Some(access) || left <= ahead {
            return None;
        }
        self.remember(access, left, ahead);
        Some(access.to_string())
    }

    fn remember(&self, token: &str, left_ms: i64, ahead_ms: i64) {
        let fresh_for = Duration::from_millis((left_ms - ahead_ms).max(0) as u64);
        *self.cached.lock().expect("token cache") = Some(Cached {
            token: token.to_string(),
            fresh_until: Instant::now() + fresh_for,
        });
    }

    /// The row, created from the environment's refresh token the first time. A different one
    /// there since replaces the stored pair only when Zalo refused that pair (an operator's new
    /// token after a revocation): a host with an old token in its environment must not erase
    /// the live pair.
    async fn seed_row(&self) -> Result<(), sqlx::Error> {
        let hash = sha256_hex(&self.seed);
        sqlx::query(
            "INSERT INTO channel_tokens (channel, refresh_token, seeded_from) VALUES ($1, $2, $3)
             ON CONFLICT (channel) DO NOTHING",
        )
        .bind(CHANNEL)
        .bind(&self.seed)
        .bind(&hash)
        .execute(&self.db.pool)
        .await?;
        let replaced = sqlx::query(
            "UPDATE channel_tokens SET refresh_token = $1, seeded_from = $2, access_token = NULL,
                 access_expires_ms = NULL, failure = NULL
             WHERE channel = $3 AND seeded_from <> $2 AND failure IS NOT NULL",
        )
        .bind(&self.seed)
        .bind(&hash)
        .bind(CHANNEL)
        .execute(&self.db.pool)
        .await?
        .rows_affected();
        if replaced > 0 {
            tracing::warn!("zalo: a new LOA_ZALO_REFRESH_TOKEN replaces the refused token pair");
        } else {
            let other: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM channel_tokens WHERE channel = $1 AND seeded_from <> $2",
            )
            .bind(CHANNEL)
            .bind(&hash)
            .fetch_optional(&self.db.pool)
            .await?;
            if other.is_some() {
                tracing::warn!(
                    "zalo: LOA_ZALO_REFRESH_TOKEN differs from the token the stored pair started from; \
                     the stored pair works, so it is kept (a new token is taken only after Zalo refused the pair)"
                );
            }
        }
        Ok(())
    }

    async fn read(&self) -> Result<Row0, sqlx::Error> {
        let sql = format!(
            "SELECT access_token, access_expires_ms - {now}, refresh_token, failure,
                 access_expires_ms - refreshed_ms
             FROM channel_tokens WHERE channel = $1",
            now = self.db.backend.now_millis()
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(CHANNEL)
            .fetch_one(&self.db.pool)
            .await?;
        Ok(Row0 {
            access: row.try_get(0)?,
            left_ms: row.try_get(1)?,
            refresh: row.try_get(2)?,
            failure: row.try_get(3)?,
            lifetime_ms: row.try_get(4)?,
        })
    }

    /// Takes the refresh lease when nobody holds it (or theirs ran out).
    async fn lock(&self) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "UPDATE channel_tokens SET lock_holder = $1, lock_until_ms = {now} + $2
             WHERE channel = $3 AND (lock_until_ms IS NULL OR lock_until_ms < {now})",
            now = self.db.backend.now_millis()
        );
        let won = sqlx::query(AssertSqlSafe(sql))
            .bind(&self.holder)
            .bind(LOCK.as_millis() as i64)
            .bind(CHANNEL)
            .execute(&self.db.pool)
            .await?
            .rows_affected();
        Ok(won == 1)
    }

    async fn unlock(&self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE channel_tokens SET lock_holder = NULL, lock_until_ms = NULL
             WHERE channel = $1 AND lock_holder = $2",
        )
        .bind(CHANNEL)
        .bind(&self.holder)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Keeps the daily quota the last send reported, for `/healthz` (at most once a minute).
    pub async fn note_quota(&self, remaining: i64, daily: Option<i64>) -> Result<(), sqlx::Error> {
        let sql = format!(
            "UPDATE channel_tokens SET quota_remaining = $1, quota_daily = COALESCE($2, quota_daily),
                 quota_at_ms = {now}
             WHERE channel = $3 AND (quota_at_ms IS NULL OR quota_at_ms < {now} - 60000
                 OR $1 = 0)",
            now = self.db.backend.now_millis()
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(remaining)
            .bind(daily)
            .bind(CHANNEL)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// `POST /v4/oa/access_token` with the refresh token.
    async fn call_refresh(&self, refresh: &str) -> Result<Pair, TokenError> {
        let form = [
            ("refresh_token", refresh),
            ("app_id", self.app_id.as_str()),
            ("grant_type", "refresh_token"),
        ];
        let response = self
            .client
            .post(self.refresh_url.clone())
            .header("secret_key", &self.secret_key)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                TokenError::Unavailable(format!(
                    "zalo token refresh: oauth server unreachable: {}",
                    describe_http_error(&e)
                ))
            })?;
        let status = response.status().as_u16();
        let answer = read_answer(response).await;
        if answer.broken.is_some() || status >= 500 || status == 429 {
            return Err(TokenError::Unavailable(format!(
                "zalo token refresh: the oauth server answered {status}"
            )));
        }
        parse_refresh(&answer.text, refresh)
    }
}

/// How long before its expiry a token is replaced: [`REFRESH_AHEAD`], or a quarter of its
/// lifetime when that is shorter.
fn ahead_ms(lifetime_ms: Option<i64>) -> i64 {
    let most = REFRESH_AHEAD.as_millis() as i64;
    lifetime_ms.map_or(most, |l| (l / 4).clamp(0, most))
}

fn db_error(e: sqlx::Error) -> TokenError {
    TokenError::Unavailable(format!("zalo token: database: {e}"))
}

/// A new pair from Zalo.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pair {
    access: String,
    refresh: String,
    lifetime_secs: i64,
}

/// What to do when Zalo refuses the refresh token: said to the admins and in `/healthz`.
const WHAT_TO_DO: &str = "get a new refresh token for the OA in the Zalo app's console, set \
    LOA_ZALO_REFRESH_TOKEN to it and restart Loa";

/// Reads the refresh answer. Success has both tokens; anything else — an `error` code, an empty
/// body (seen for a refresh token used twice) — is a refusal.
fn parse_refresh(body: &str, refresh: &str) -> Result<Pair, TokenError> {
    let value: serde_json::Value = match serde_json::from_str(body.trim()) {
        Ok(v) => v,
        Err(_) if body.trim().is_empty() => {
            return Err(TokenError::Refused(format!(
                "Zalo refused the refresh token (empty answer): {WHAT_TO_DO}"
            )));
        }
        Err(_) => {
            return Err(TokenError::Unavailable(
                "zalo token refresh: the answer is not JSON".to_string(),
            ));
        }
    };
    let text = |key: &str| {
        value.get(key).and_then(|v| match v {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    if let (Some(access), Some(new_refresh)) = (text("access_token"), text("refresh_token")) {
        let lifetime_secs = text("expires_in")
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_LIFETIME_SECS);
        return Ok(Pair {
            access,
            refresh: new_refresh,
            lifetime_secs,
        });
    }
    let code = text("error").unwrap_or_else(|| "?".to_string());
    let name = text("error_name")
        .or_else(|| text("message"))
        .unwrap_or_default()
        .replace(refresh, "[refresh token]");
    Err(TokenError::Refused(format!(
        "Zalo refused the refresh token ({code} {name}): {WHAT_TO_DO}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_answer_gives_both_tokens_or_is_a_refusal() {
        let ok = parse_refresh(
            r#"{"access_token":"A2","refresh_token":"R2","expires_in":"90000"}"#,
            "R1",
        )
        .unwrap();
        assert_eq!(ok.access, "A2");
        assert_eq!(ok.refresh, "R2");
        assert_eq!(ok.lifetime_secs, 90_000);
        let number = parse_refresh(
            r#"{"access_token":"A2","refresh_token":"R2","expires_in":3600}"#,
            "R1",
        )
        .unwrap();
        assert_eq!(number.lifetime_secs, 3600);
        let refused = parse_refresh(
            r#"{"error":-14014,"error_name":"Invalid refresh token R1","error_description":"x"}"#,
            "R1",
        )
        .unwrap_err();
        let TokenError::Refused(why) = refused else {
            panic!("{refused:?}")
        };
        assert!(
            why.contains("-14014 Invalid refresh token [refresh token]"),
            "{why}"
        );
        assert!(why.contains("LOA_ZALO_REFRESH_TOKEN"), "{why}");
        assert!(!why.contains("R1"), "{why}");
        assert!(matches!(
            parse_refresh("", "R1"),
            Err(TokenError::Refused(_))
        ));
        assert!(matches!(
            parse_refresh("<html>bad gateway</html>", "R1"),
            Err(TokenError::Unavailable(_))
        ));
    }
}
