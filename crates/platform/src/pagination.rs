//! Cursor pagination (`?limit=&cursor=`), the one list convention across Emporium.
//! A cursor is opaque to clients: base64url of the sort key of the last item returned.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::Problem;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// One page of a list and the cursor of the next page, if any.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next: Option<String>,
}

/// Validates `limit` (1..=MAX_LIMIT, default DEFAULT_LIMIT).
pub fn limit(requested: Option<u32>) -> Result<u32, Problem> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(Problem::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

pub fn encode_cursor(key: &uuid::Uuid) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// Decodes a cursor made by [`encode_cursor`]; anything else is a 422 naming `cursor`.
pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<uuid::Uuid>, Problem> {
    let Some(text) = cursor else { return Ok(None) };
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| uuid::Uuid::from_slice(&bytes).ok())
        .map(Some)
        .ok_or_else(|| Problem::invalid_field("cursor", "is not a cursor returned by this API"))
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says another page exists.
pub fn page_from<T>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> uuid::Uuid) -> Page<T> {
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|last| encode_cursor(&key(last)))
    } else {
        None
    };
    Page { items: rows, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_garbage_is_rejected() {
        let id = uuid::Uuid::now_v7();
        let c = encode_cursor(&id);
        assert_eq!(decode_cursor(Some(&c)).expect("ok"), Some(id));
        assert_eq!(
            decode_cursor(Some("not a cursor!")).expect_err("bad").errors[0].field,
            "cursor"
        );
        assert_eq!(decode_cursor(Some("AAAA")).expect_err("short").status.as_u16(), 422);
    }

    #[test]
    fn page_keeps_limit_items_and_points_past_the_last() {
        let ids: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::now_v7()).collect();
        let page = page_from(ids.clone(), 2, |id| *id);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next, Some(encode_cursor(&ids[1])));
        let last = page_from(ids, 3, |id| *id);
        assert!(last.next.is_none());
    }

    #[test]
    fn limit_bounds() {
        assert_eq!(limit(None).expect("default"), DEFAULT_LIMIT);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(MAX_LIMIT + 1)).is_err());
    }
}
