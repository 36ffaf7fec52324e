//! Users, browser sessions and API tokens. Owns the tables `users`, `sessions`, `api_tokens`.
//!
//! Passwords are hashed with argon2. Session and API tokens are long random strings that only
//! their holder has: the database keeps their SHA-256, so a copy of it lets no one in.
//!
//! Argon2 is slow and large on purpose (tens of milliseconds of CPU and about 19 MiB per hash),
//! so every hash and verification runs on tokio's blocking pool, at most one per core at a time:
//! a flood of sign-ins queues up there instead of stalling the async workers that run the
//! scheduler and the dispatcher, or allocating 19 MiB per request.

use std::sync::{Arc, LazyLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::Semaphore;

use super::{Actor, ConsoleError, Role, audit};
use crate::config::AreaTree;
use crate::store::{Db, from_epoch, to_epoch};

/// How long a browser session lasts: a working day, then sign in again.
pub const SESSION_HOURS: i64 = 12;
/// The shortest password a person may choose.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// A user as an admin sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub area: Option<String>,
    pub must_change_password: bool,
}

impl User {
    pub fn actor(&self) -> Actor {
        Actor {
            id: format!("user:{}", self.name),
            name: self.name.clone(),
            role: self.role,
            // An admin is the whole district's, whatever an older database says.
            area: self.area.clone().filter(|_| self.role != Role::Admin),
        }
    }
}

/// A signed-in browser: the cookie's token, and the CSRF token its forms must echo.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub csrf: String,
    pub user: User,
}

/// Account names: what a person types to sign in; also used in the audit log.
fn check_name(name: &str) -> Result<(), ConsoleError> {
    let ok = (2..=40).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ConsoleError::invalid(
            "name",
            "2–40 characters: lowercase letters a–z, digits, '.', '_' or '-'",
        ))
    }
}

/// An account's area: a known one, and none for an admin — an admin's work (accounts, tokens,
/// the audit log, the organisations) is the whole district's, so an admin limited to one
/// commune would still read and change every other's.
fn check_area(role: Role, area: Option<&str>, areas: &AreaTree) -> Result<(), ConsoleError> {
    match area {
        Some(code) if !areas.contains(code) => Err(ConsoleError::invalid(
            "area",
            format!("unknown area {code:?} (see [[areas]] in loa.toml)"),
        )),
        Some(_) if role == Role::Admin => Err(ConsoleError::invalid(
            "area",
            "an admin account is for the whole district: give --area to staff, approvers \
             and officials only",
        )),
        _ => Ok(()),
    }
}

/// A random token: 32 bytes, hex.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A password a person can read out and type: no 0/O, 1/l/I.
fn one_time_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..14)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn argon2_hash(password: &str) -> Result<String, ConsoleError> {
    let bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&bytes)
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("argon2 salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("argon2: {e}")))
}

fn argon2_verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// How many argon2 computations may run at once: one per core. More would only share the
/// cores (each finishing later) while holding 19 MiB apiece.
pub fn hashing_permits() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Process-wide, so the bound holds across the console's pages, its API and the CLI.
static HASHING: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(hashing_permits())));

/// Runs `job` (an argon2 computation) on the blocking pool once a hashing permit is free.
async fn off_the_workers<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ConsoleError> {
    let permit = Arc::clone(&HASHING)
        .acquire_owned()
        .await
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("password hashing: {e}")))?;
    #[cfg(test)]
    let job = probe::wrap(job);
    // The permit moves into the blocking task: if the caller gives up (a browser disconnects
    // mid sign-in), the hash still runs to its end and keeps its permit until then, so the
    // bound counts every hash actually running.
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job()
    })
    .await
    .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("password hashing: {e}")))
}

async fn hash_password(password: &str) -> Result<String, ConsoleError> {
    let password = password.to_owned();
    off_the_workers(move || argon2_hash(&password)).await?
}

async fn verify_password(password: &str, hash: String) -> Result<bool, ConsoleError> {
    let password = password.to_owned();
    off_the_workers(move || argon2_verify(&password, &hash)).await
}

/// Creates a user and returns the one-time password to hand them: it signs in once, then the
/// console asks for a new one.
pub async fn add_user(
    db: &Db,
    areas: &AreaTree,
    name: &str,
    role: Role,
    area: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, ConsoleError> {
    check_name(name)?;
    check_area(role, area, areas)?;
    let password = one_time_password();
    let hash = hash_password(&password).await?;
    let inserted = sqlx::query(
        "INSERT INTO users (name, role, area_code, password_hash, must_change_password, created_at)
         VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(area)
    .bind(hash)
    .bind(to_epoch(now))
    .execute(&db.pool)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(ConsoleError::Conflict(format!(
            "a user named {name:?} already exists"
        )));
    }
    Ok(password)
}

/// How many console accounts exist (none: the operator is told how to create one).
pub async fn count_users(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) FROM users")
        .fetch_one(&db.pool)
        .await?
        .try_get(0)
}

/// Creates an API token that never expires and returns it; only its hash is kept, so it is
/// shown once.
pub async fn create_token(
    db: &Db,
    areas: &AreaTree,
    name: &str,
    role: Role,
    area: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, ConsoleError> {
    Ok(create_token_until(db, areas, name, role, area, None, now)
        .await?
        .token)
}

/// A token just created: the secret, shown once, and its row.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: i64,
    pub token: String,
}

/// Creates an API token that stops working at `expires_at` (`None`: never).
///
/// The audit log and content authorship know a token by its name (`token:<name>`), so a name
/// is refused while another live token (neither revoked nor expired) carries it.
pub async fn create_token_until(
    db: &Db,
    areas: &AreaTree,
    name: &str,
    role: Role,
    area: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<NewToken, ConsoleError> {
    check_name(name)?;
    check_area(role, area, areas)?;
    if expires_at.is_some_and(|at| at <= now) {
        return Err(ConsoleError::invalid(
            "expires",
            "the expiry is in the past",
        ));
    }
    let token = format!("loa_{}", random_token());
    // One statement, so the check and the insert see the same table.
    let row = sqlx::query(
        "INSERT INTO api_tokens (token_hash, name, role, area_code, created_at, expires_at)
         SELECT $1, $2, $3, $4, $5, $6
         WHERE NOT EXISTS (
             SELECT 1 FROM api_tokens
             WHERE name = $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $5))
         RETURNING id",
    )
    .bind(token_hash(&token))
    .bind(name)
    .bind(role.as_str())
    .bind(area)
    .bind(to_epoch(now))
    .bind(expires_at.map(to_epoch))
    .fetch_optional(&db.pool)
    .await?;
    match row {
        Some(row) => Ok(NewToken {
            id: row.try_get(0)?,
            token,
        }),
        None => {
            let live = list_tokens(db)
                .await?
                .into_iter()
                .find(|t| t.name == name && t.state(now) == TokenState::Active)
                .map_or_else(|| "?".to_string(), |t| t.id.to_string());
            Err(ConsoleError::Conflict(format!(
                "a live token is already named {name:?} (id {live}); the audit log tells tokens \
                 apart by name: choose another name, or revoke that token first"
            )))
        }
    }
}

/// Whether a token still lets its holder in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Active,
    Expired,
    Revoked,
}

impl TokenState {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

/// An API token as an admin sees it: everything but the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub area: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Recorded to the minute (see [`token_actor`]).
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TokenInfo {
    pub fn state(&self, now: DateTime<Utc>) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }
}

/// Every API token ever created, oldest first.
pub async fn list_tokens(db: &Db) -> Result<Vec<TokenInfo>, ConsoleError> {
    let rows = sqlx::query(
        "SELECT id, name, role, area_code, created_at, expires_at, revoked_at, last_used_at
         FROM api_tokens ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            let role: String = row.try_get("role")?;
            let at = |column: &str| -> Result<Option<DateTime<Utc>>, sqlx::Error> {
                Ok(row.try_get::<Option<i64>, _>(column)?.map(from_epoch))
            };
            Ok(TokenInfo {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                role: Role::parse(&role)
                    .ok_or_else(|| anyhow::anyhow!("unknown role {role:?} in api_tokens"))?,
                area: row.try_get("area_code")?,
                created_at: from_epoch(row.try_get("created_at")?),
                expires_at: at("expires_at")?,
                revoked_at: at("revoked_at")?,
                last_used_at: at("last_used_at")?,
            })
        })
        .collect()
}

/// Revokes a token at once, in the audit log as done by `actor` (`token.revoke`, subject
/// `token:<name>`). `NotFound` for an unknown id; `Conflict` if it was revoked already.
pub async fn revoke_token(
    db: &Db,
    id: i64,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<TokenInfo, ConsoleError> {
    let mut tx = db.pool.begin().await?;
    let row = sqlx::query("SELECT name, role, revoked_at FROM api_tokens WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    let name: String = row.try_get("name")?;
    let role: String = row.try_get("role")?;
    // Guarded by `revoked_at IS NULL`: of two revocations at once, one reports the conflict.
    let revoked =
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(to_epoch(now))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() || revoked == 0 {
        return Err(ConsoleError::Conflict(format!(
            "token {id} ({name}) is already revoked"
        )));
    }
    audit::record(
        &mut *tx,
        now,
        actor,
        "token.revoke",
        Some(&format!("token:{name}")),
        Some(&format!("id {id}, role {role}")),
    )
    .await?;
    tx.commit().await?;
    list_tokens(db)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or(ConsoleError::NotFound)
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<User, ConsoleError> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role)
            .ok_or_else(|| anyhow::anyhow!("unknown role {role:?} in users"))?,
        area: row.try_get("area_code")?,
        must_change_password: row.try_get::<i64, _>("must_change_password")? != 0,
    })
}

/// Checks a name and password and opens a session. The same answer for an unknown name and a
/// wrong password, so the form does not tell which names exist.
pub async fn sign_in(
    db: &Db,
    name: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<Option<Session>, ConsoleError> {
    let row = sqlx::query(
        "SELECT id, name, role, area_code, must_change_password, password_hash FROM users WHERE name = $1",
    )
    .bind(name.trim())
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else {
        // Spend the same time as a real check.
        let _ = hash_password(password).await;
        return Ok(None);
    };
    let hash: String = row.try_get("password_hash")?;
    if !verify_password(password, hash).await? {
        return Ok(None);
    }
    let user = user_from_row(&row)?;
    let token = random_token();
    let csrf = random_token();
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&token))
    .bind(user.id)
    .bind(&csrf)
    .bind(to_epoch(now))
    .bind(to_epoch(now + Duration::hours(SESSION_HOURS)))
    .execute(&db.pool)
    .await?;
    Ok(Some(Session { token, csrf, user }))
}

/// The session a cookie's token opens, if it has not expired.
pub async fn session(
    db: &Db,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Session>, ConsoleError> {
    let row = sqlx::query(
        "SELECT u.id, u.name, u.role, u.area_code, u.must_change_password, s.csrf_token
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = $1 AND s.expires_at > $2",
    )
    .bind(token_hash(token))
    .bind(to_epoch(now))
    .fetch_optional(&db.pool)
    .await?;
    row.map(|row| {
        Ok(Session {
            token: token.to_string(),
            csrf: row.try_get("csrf_token")?,
            user: user_from_row(&row)?,
        })
    })
    .transpose()
}

/// Ends a session (and sweeps expired ones while at it).
pub async fn sign_out(db: &Db, token: &str, now: DateTime<Utc>) -> Result<(), ConsoleError> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1 OR expires_at <= $2")
        .bind(token_hash(token))
        .bind(to_epoch(now))
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// How often a token's last use is written: at most once a minute, so a script polling the API
/// does not turn every read into a write.
const LAST_USED_EVERY_SECS: i64 = 60;

/// The actor behind a bearer token, if the token is neither revoked nor expired at `now`.
pub async fn token_actor(
    db: &Db,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Actor>, ConsoleError> {
    let row = sqlx::query(
        "SELECT id, name, role, area_code, last_used_at FROM api_tokens
         WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(token_hash(token))
    .bind(to_epoch(now))
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: i64 = row.try_get("id")?;
    let last_used: Option<i64> = row.try_get("last_used_at")?;
    if last_used.is_none_or(|at| to_epoch(now) - at >= LAST_USED_EVERY_SECS) {
        // Bookkeeping for `loa token list`: failing to write it must not refuse the caller.
        if let Err(e) = sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(to_epoch(now))
            .bind(id)
            .execute(&db.pool)
            .await
        {
            tracing::warn!(token_id = id, "cannot record the token's last use: {e}");
        }
    }
    let name: String = row.try_get("name")?;
    let role: String = row.try_get("role")?;
    let role =
        Role::parse(&role).ok_or_else(|| anyhow::anyhow!("unknown role {role:?} in api_tokens"))?;
    let area: Option<String> = row.try_get("area_code")?;
    Ok(Some(Actor {
        id: format!("token:{name}"),
        name,
        role,
        // An admin is the whole district's, whatever an older database says.
        area: area.filter(|_| role != Role::Admin),
    }))
}

/// Sets a new password; the current one must be given. Other sessions of the user end.
pub async fn change_password(
    db: &Db,
    session: &Session,
    current: &str,
    new: &str,
) -> Result<(), ConsoleError> {
    let hash: String = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(session.user.id)
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?;
    if !verify_password(current, hash).await? {
        return Err(ConsoleError::invalid(
            "current",
            "Mật khẩu hiện tại không đúng.",
        ));
    }
    if new.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ConsoleError::invalid(
            "new",
            format!("Mật khẩu mới cần ít nhất {MIN_PASSWORD_CHARS} ký tự."),
        ));
    }
    if new == current {
        return Err(ConsoleError::invalid(
            "new",
            "Mật khẩu mới phải khác mật khẩu hiện tại.",
        ));
    }
    let mut tx = db.pool.begin().await?;
    sqlx::query("UPDATE users SET password_hash = $1, must_change_password = 0 WHERE id = $2")
        .bind(hash_password(new).await?)
        .bind(session.user.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
        .bind(session.user.id)
        .bind(token_hash(&session.token))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A test hook around every argon2 job: counts the jobs handed to the blocking pool and those
/// running, and can hold running jobs at a gate so a test sees how many run at once.
#[cfg(test)]
mod probe {
    use std::sync::{Condvar, Mutex, MutexGuard};

    #[derive(Debug, Clone, Copy, Default)]
    pub struct Counts {
        /// Handed to the blocking pool, not started yet.
        pub queued: usize,
        /// Started, not finished.
        pub running: usize,
        /// The most ever running at once.
        pub peak: usize,
    }

    struct State {
        counts: Counts,
        gate_closed: bool,
    }

    static STATE: Mutex<State> = Mutex::new(State {
        counts: Counts {
            queued: 0,
            running: 0,
            peak: 0,
        },
        gate_closed: false,
    });
    static CHANGED: Condvar = Condvar::new();

    fn state() -> MutexGuard<'static, State> {
        STATE.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn wrap<T>(
        job: impl FnOnce() -> T + Send + 'static,
    ) -> impl FnOnce() -> T + Send + 'static {
        state().counts.queued += 1;
        move || {
            let mut s = state();
            s.counts.queued -= 1;
            s.counts.running += 1;
            s.counts.peak = s.counts.peak.max(s.counts.running);
            CHANGED.notify_all();
            while s.gate_closed {
                s = CHANGED.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            drop(s);
            let out = job();
            state().counts.running -= 1;
            out
        }
    }

    pub fn set_gate(closed: bool) {
        state().gate_closed = closed;
        CHANGED.notify_all();
    }

    /// Blocks until every job handed to the pool has started (and so waits at a closed gate).
    pub fn wait_until_none_queued() -> Counts {
        let mut s = state();
        while s.counts.queued > 0 {
            s = CHANGED.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.counts
    }

    pub fn counts() -> Counts {
        state().counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = argon2_hash("mật khẩu dài").unwrap();
        assert!(argon2_verify("mật khẩu dài", &hash));
        assert!(!argon2_verify("mat khau dai", &hash));
        assert!(!argon2_verify("mật khẩu dài", "not a hash"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("lan.hh").is_ok());
        assert!(check_name("Lan").is_err());
        assert!(check_name("x").is_err());
        assert!(check_name("lan hh").is_err());
    }

    /// Without the semaphore every sign-in would start its 19 MiB hash at once.
    #[test]
    fn at_most_one_password_hash_per_core_runs_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

        let permits = hashing_permits();
        let n = permits + 2;
        let stored = argon2_hash("mật khẩu đúng").unwrap();
        // One runtime thread: once every task has taken its first step, each has either handed
        // its hash to the blocking pool or is waiting for a permit, and none moves on until
        // this test yields again.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (held, results) = runtime.block_on(async {
            probe::set_gate(true);
            let started = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let (started, stored) = (Arc::clone(&started), stored.clone());
                    tokio::spawn(async move {
                        started.fetch_add(1, SeqCst);
                        // Both kinds of sign-in work: a known name's check, an unknown name's hash.
                        if i % 2 == 0 {
                            verify_password("mật khẩu đúng", stored).await
                        } else {
                            hash_password("mật khẩu sai").await.map(|_| false)
                        }
                    })
                })
                .collect();
            while started.load(SeqCst) < n {
                tokio::task::yield_now().await;
            }
            let held = probe::wait_until_none_queued();
            probe::set_gate(false);
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.unwrap().unwrap());
            }
            (held, results)
        });
        // Exact because no other unit test hashes through the helper: one that did would share
        // the process-wide permits (and be held at the gate too).
        assert_eq!(
            held.running, permits,
            "{n} sign-ins at once: one hash per core runs, the others wait ({held:?})"
        );
        assert!(probe::counts().peak <= permits, "{:?}", probe::counts());
        let verified = results.iter().filter(|&&ok| ok).count();
        assert_eq!(verified, n.div_ceil(2), "every job ran to its end");
    }
}
