//! Paging of the JSON API's lists: `limit` (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`])
//! and `after`, the cursor the previous page gave. The answer stays the JSON array it was
//! before lists were paged; when more items follow, the header `X-Next-Cursor` carries the
//! cursor of the next page and `Link: <…>; rel="next"` its whole address. The last page has
//! neither.
//!
//! Cursors are keysets (the sort key of the last item given), not offsets: an item added or
//! removed while a script walks the pages makes no other item repeat or go missing.

use axum::Json;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::ApiError;

pub(super) const DEFAULT_LIMIT: usize = 100;
pub(super) const MAX_LIMIT: usize = 1000;

/// A list's `limit` and `after`, checked.
pub(super) struct Paging {
    pub limit: usize,
    after: Option<String>,
}

#[derive(Deserialize)]
struct RawPaging {
    limit: Option<String>,
    after: Option<String>,
}

impl Paging {
    /// From a request's query string (its other parameters are left to the list).
    pub fn from_query(query: Option<&str>) -> Result<Paging, ApiError> {
        let raw: RawPaging = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(format!("query string: {e}")))?;
        let limit = match raw.limit {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    bad_query("limit", format!("a whole number from 1 to {MAX_LIMIT}"))
                })?,
        };
        Ok(Paging {
            limit,
            after: raw.after,
        })
    }

    /// The cursor given, read by the list's own `parse`; 400 naming `after` when it is not one
    /// this list gives.
    pub fn after<K>(&self, parse: impl FnOnce(&str) -> Option<K>) -> Result<Option<K>, ApiError> {
        self.after
            .as_deref()
            .map(|text| {
                parse(text).ok_or_else(|| {
                    bad_query(
                        "after",
                        "not a cursor of this list (take it from X-Next-Cursor)".to_string(),
                    )
                })
            })
            .transpose()
    }

    /// Whether a cursor was given.
    pub fn has_after(&self) -> bool {
        self.after.is_some()
    }

    /// How many to read: one more than the page, to learn whether a next page exists.
    pub fn read(&self) -> i64 {
        self.limit as i64 + 1
    }
}

pub(super) fn bad_query(field: &'static str, message: String) -> ApiError {
    ApiError::BadQuery { field, message }
}

/// The parts of a cursor (`a.b.c`), each read by `parse`; `None` unless there are `n`.
pub(super) fn cursor_parts(text: &str, n: usize) -> Option<Vec<&str>> {
    let parts: Vec<&str> = text.split('.').collect();
    (parts.len() == n && parts.iter().all(|p| !p.is_empty())).then_some(parts)
}

/// `0` or `1` as a flag of a cursor.
pub(super) fn cursor_flag(text: &str) -> Option<bool> {
    match text {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// One page of a list.
pub(super) struct Paged<T> {
    items: Vec<T>,
    next: Option<String>,
    uri: Uri,
}

impl<T> Paged<T> {
    /// `items` as read with [`Paging::read`]: when there is one more than the page, it is
    /// left for the next page, whose cursor is `key` of the page's last item.
    pub fn new(mut items: Vec<T>, paging: &Paging, uri: &Uri, key: impl Fn(&T) -> String) -> Self {
        let next = if items.len() > paging.limit {
            items.truncate(paging.limit);
            items.last().map(key)
        } else {
            None
        };
        Paged {
            items,
            next,
            uri: uri.clone(),
        }
    }
}

impl<T: Serialize> IntoResponse for Paged<T> {
    fn into_response(self) -> Response {
        let mut response = Json(self.items).into_response();
        let Some(next) = self.next else {
            return response;
        };
        let mut pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(self.uri.query().unwrap_or("")).unwrap_or_default();
        pairs.retain(|(name, _)| name != "after");
        pairs.push(("after".to_string(), next.clone()));
        let link = serde_urlencoded::to_string(&pairs)
            .map(|query| format!("<{}?{query}>; rel=\"next\"", self.uri.path()));
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&next) {
            headers.insert("x-next-cursor", value);
        }
        if let Some(value) = link.ok().and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LINK, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_the_documented_range_are_refused_by_name() {
        assert_eq!(Paging::from_query(None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(Paging::from_query(Some("limit=1000")).unwrap().limit, 1000);
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=abc", "limit="] {
            match Paging::from_query(Some(bad)) {
                Err(ApiError::BadQuery { field, .. }) => assert_eq!(field, "limit", "{bad}"),
                _ => panic!("{bad} accepted"),
            }
        }
    }

    #[test]
    fn the_next_page_keeps_the_other_parameters() {
        let paging = Paging::from_query(Some("limit=2&period=year&after=9")).unwrap();
        let uri: Uri = "/api/activities?limit=2&period=year&after=9"
            .parse()
            .unwrap();
        let r = Paged::new(vec![5, 4, 3], &paging, &uri, |n| n.to_string()).into_response();
        assert_eq!(r.headers()["x-next-cursor"], "4");
        assert_eq!(
            r.headers()[header::LINK],
            "</api/activities?limit=2&period=year&after=4>; rel=\"next\""
        );
        let last = Paged::new(vec![2, 1], &paging, &uri, |n| n.to_string()).into_response();
        assert!(last.headers().get("x-next-cursor").is_none());
    }
}
