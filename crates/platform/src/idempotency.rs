//! The `Idempotency-Key` request header, read the same way by every context that takes one.
//!
//! What a valid key is belongs to [`IdempotencyKey`]; this module only gets it out of the
//! headers and names the field `Idempotency-Key` in the 422 when it is missing or malformed, and
//! forgets stored keys past their retention ([`purge_expired`]).

use axum::http::HeaderMap;
use contracts::kernel::{IDEMPOTENCY_KEY_HEADER, IdempotencyKey};
use time::OffsetDateTime;

use crate::db::{RowsAffected, StorePool};
use crate::problem::Problem;

/// The field a problem names for a missing or malformed key.
pub const FIELD: &str = "Idempotency-Key";

/// The header's text, `None` when it was not sent. A value that is not visible ASCII (which
/// `http` cannot show as text) is a 422 here; everything else is left to [`IdempotencyKey::parse`],
/// for contexts that check the key together with the rest of the request.
pub fn header(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| Problem::invalid_field(FIELD, "may only contain visible ASCII characters")),
    }
}

/// The key of a request that must carry one: a 422 naming the field when it is missing or not a
/// valid key.
pub fn required(headers: &HeaderMap) -> Result<IdempotencyKey, Problem> {
    let raw = header(headers)?.ok_or_else(|| Problem::invalid_field(FIELD, "header is required"))?;
    IdempotencyKey::parse(raw).map_err(|e| Problem::invalid_field(FIELD, e))
}

/// Forgets the idempotency records created before `before`, returning how many. Every context
/// that keeps them does so in its own table `idempotency_keys`, with what it records of the
/// answer (a body, a resource id) beside the key and `created_at` (indexed) saying when the key
/// was first used: this is the one retention rule for all of them.
pub async fn purge_expired<DB>(db: &StorePool<DB>, before: OffsetDateTime) -> Result<u64, sqlx::Error>
where
    DB: crate::db::Backend,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'q> OffsetDateTime: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut tx = db.write().await?;
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(before)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, StatusCode};

    use super::*;

    fn headers(value: Option<&[u8]>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert(
                IDEMPOTENCY_KEY_HEADER,
                HeaderValue::from_bytes(v).expect("header value"),
            );
        }
        headers
    }

    #[test]
    fn an_absent_header_is_none_and_a_binary_one_a_422() {
        assert_eq!(header(&headers(None)).expect("absent"), None);
        assert_eq!(header(&headers(Some(b"k-1"))).expect("present"), Some("k-1"));
        let problem = header(&headers(Some("schlüssel".as_bytes()))).expect_err("binary");
        assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem.errors[0].field, FIELD);
    }

    #[test]
    fn a_required_key_names_the_field_when_missing_or_bad() {
        assert_eq!(required(&headers(Some(b"k-1"))).expect("ok").as_str(), "k-1");
        let missing = required(&headers(None)).expect_err("missing");
        assert_eq!(missing.errors[0].field, FIELD);
        assert_eq!(missing.errors[0].message, "header is required");
        let long = "k".repeat(256);
        for bad in [long.as_bytes(), b"a b", "schlüssel".as_bytes()] {
            let problem = required(&headers(Some(bad))).expect_err("bad");
            assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(problem.errors[0].field, FIELD);
        }
    }
}
