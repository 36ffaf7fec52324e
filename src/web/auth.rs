//! Who is calling: a browser session (cookie `loa_session`) or an API bearer token, and the
//! CSRF check for a session's forms and scripts.
//!
//! Without credentials a page answers 401 with the sign-in form in its body (a browser shows
//! the form; a script sees 401), the API answers 401 in JSON: each side's extractor
//! (`PageAuth` in `pages`, `ApiAuth` in `api`) sits beside its routes. A bearer token needs no
//! CSRF token: a browser never sends one on its own.

use axum::http::{HeaderMap, header};

use super::state::WebState;
use crate::console::accounts::{self, Session};
use crate::console::{Actor, ConsoleError};

pub const SESSION_COOKIE: &str = "loa_session";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Auth {
    pub actor: Actor,
    /// Set for a browser session; `None` for a bearer token.
    pub session: Option<Session>,
}

impl Auth {
    /// The CSRF token forms must carry; `None` for bearer tokens.
    pub fn csrf(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.csrf.as_str())
    }

    /// For a session, `given` must be its CSRF token; a bearer token passes.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), ConsoleError> {
        match &self.session {
            None => Ok(()),
            Some(s) if given.is_some_and(|g| constant_time_eq(g, &s.csrf)) => Ok(()),
            Some(_) => Err(ConsoleError::Forbidden(
                "missing or wrong CSRF token; reload the page".to_string(),
            )),
        }
    }
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Resolves the caller, if any.
pub async fn authenticate(
    state: &WebState,
    headers: &HeaderMap,
) -> Result<Option<Auth>, ConsoleError> {
    if let Some(token) = bearer(headers) {
        return Ok(accounts::token_actor(&state.db, token, state.clock.now())
            .await?
            .map(|actor| Auth {
                actor,
                session: None,
            }));
    }
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        return Ok(accounts::session(&state.db, token, state.clock.now())
            .await?
            .map(|session| Auth {
                actor: session.user.actor(),
                session: Some(session),
            }));
    }
    Ok(None)
}
