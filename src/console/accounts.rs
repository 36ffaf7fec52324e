//! Users, browser sessions and API tokens. Owns the tables `users`, `sessions`, `api_tokens`.
//!
//! Passwords are hashed with argon2. Session and API tokens are long random strings that only
//! their holder has: the database keeps their SHA-256, so a copy of it lets no one in.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Actor, ConsoleError, Role};
use crate::config::AreaTree;
use crate::store::{Db, to_epoch};

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
            area: self.area.clone(),
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

fn check_area(area: Option<&str>, areas: &AreaTree) -> Result<(), ConsoleError> {
    match area {
        Some(code) if !areas.contains(code) => Err(ConsoleError::invalid(
            "area",
            format!("unknown area {code:?} (see [[areas]] in loa.toml)"),
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

fn hash_password(password: &str) -> Result<String, ConsoleError> {
    let bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&bytes)
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("argon2 salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("argon2: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
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
    check_area(area, areas)?;
    let password = one_time_password();
    let hash = hash_password(&password)?;
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

/// Creates an API token and returns it; only its hash is kept, so it is shown once.
pub async fn create_token(
    db: &Db,
    areas: &AreaTree,
    name: &str,
    role: Role,
    area: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, ConsoleError> {
    check_name(name)?;
    check_area(area, areas)?;
    let token = format!("loa_{}", random_token());
    sqlx::query(
        "INSERT INTO api_tokens (token_hash, name, role, area_code, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&token))
    .bind(name)
    .bind(role.as_str())
    .bind(area)
    .bind(to_epoch(now))
    .execute(&db.pool)
    .await?;
    Ok(token)
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
        let _ = hash_password(password);
        return Ok(None);
    };
    let hash: String = row.try_get("password_hash")?;
    if !verify_password(password, &hash) {
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

/// The actor behind a bearer token.
pub async fn token_actor(db: &Db, token: &str) -> Result<Option<Actor>, ConsoleError> {
    let row = sqlx::query("SELECT name, role, area_code FROM api_tokens WHERE token_hash = $1")
        .bind(token_hash(token))
        .fetch_optional(&db.pool)
        .await?;
    row.map(|row| {
        let name: String = row.try_get(0)?;
        let role: String = row.try_get(1)?;
        Ok(Actor {
            id: format!("token:{name}"),
            name,
            role: Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("unknown role {role:?} in api_tokens"))?,
            area: row.try_get(2)?,
        })
    })
    .transpose()
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
    if !verify_password(current, &hash) {
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
        .bind(hash_password(new)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("mật khẩu dài").unwrap();
        assert!(verify_password("mật khẩu dài", &hash));
        assert!(!verify_password("mat khau dai", &hash));
        assert!(!verify_password("mật khẩu dài", "not a hash"));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("lan.hh").is_ok());
        assert!(check_name("Lan").is_err());
        assert!(check_name("x").is_err());
        assert!(check_name("lan hh").is_err());
    }
}
