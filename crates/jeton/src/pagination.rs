//! Cursor pagination: `{data, next_cursor}`. A cursor is the base64url of
//! the last id of a page, opaque to clients; pages are taken by id, so they
//! do not shift when rows are added.
//!
//! Below both `http` and the caches, which build pages alike; a bad `limit`
//! or `cursor` comes back as [`FieldError`]s for the caller to answer with.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{FieldError, ids::parse_id};

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: i64,
    /// The id the page starts after.
    pub after: Option<String>,
}

/// The cursor of the page that starts after `id`.
pub fn cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

impl PageRequest {
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<PageRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                format!("must be from 1 to {MAX_LIMIT}"),
            ));
        }
        let after = match cursor {
            None => None,
            Some(cursor) => {
                let decoded = URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .and_then(|id| parse_id(&id));
                if decoded.is_none() {
                    errors.push(FieldError::new(
                        "cursor",
                        "is not a cursor this API returned",
                    ));
                }
                decoded
            }
        };
        if errors.is_empty() {
            Ok(PageRequest { limit, after })
        } else {
            Err(errors)
        }
    }

    /// What to ask the store for: one more than the page, to know whether
    /// there is a next page.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }

    pub fn page<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> &str) -> Page<T> {
        let limit = usize::try_from(self.limit).expect("limit is positive");
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| cursor(id(last)))
        } else {
            None
        };
        Page {
            data: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::new_id;

    #[test]
    fn cursors_round_trip() {
        let ids: Vec<String> = (0..3).map(|_| new_id()).collect();
        let request = PageRequest::parse(Some(2), None).unwrap();
        let page = request.page(ids.clone(), |id| id);
        assert_eq!(page.data.len(), 2);
        let next = PageRequest::parse(Some(2), page.next_cursor.as_deref()).unwrap();
        assert_eq!(next.after.as_deref(), Some(ids[1].as_str()));
    }

    #[test]
    fn bad_requests() {
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(101), None).is_err());
        assert!(PageRequest::parse(None, Some("garbage!")).is_err());
        assert!(PageRequest::parse(None, Some(&URL_SAFE_NO_PAD.encode("1 OR 1=1"))).is_err());
    }
}
