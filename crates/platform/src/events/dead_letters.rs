//! Admin endpoints over a context's dead letters: list, replay (runs the handler again now) and
//! discard. Mounted at `/api/v1/<context>/admin/dead-letters` for each consuming context.

use std::sync::Arc;

use crate::http::Path;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Event;
use super::consumer::Consumer;
use crate::auth::AuthUser;
use crate::db::Db;
use crate::http::{Json, Query};
use crate::pagination::{self, Page};
use crate::problem::Problem;

/// A delivery a consumer gave up on.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: Uuid,
    pub consumer: String,
    /// Absent when the payload was not an event envelope at all.
    pub event_id: Option<Uuid>,
    pub event_type: Option<String>,
    /// The message exactly as delivered.
    pub payload: String,
    /// The last handler error.
    pub error: String,
    pub attempts: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub failed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub replayed_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    consumer: String,
    event_id: Option<Uuid>,
    event_type: Option<String>,
    payload: String,
    error: String,
    attempts: i64,
    failed_at: OffsetDateTime,
    replayed_at: Option<OffsetDateTime>,
}

impl From<Row> for DeadLetter {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            consumer: r.consumer,
            event_id: r.event_id,
            event_type: r.event_type,
            payload: r.payload,
            error: r.error,
            attempts: r.attempts,
            failed_at: r.failed_at,
            replayed_at: r.replayed_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this consumer's dead letters.
    consumer: Option<String>,
    /// Include dead letters already replayed (default false).
    #[serde(default)]
    include_replayed: bool,
    limit: Option<u32>,
    cursor: Option<String>,
}

type Consumers = Arc<Vec<Arc<Consumer>>>;

/// One router per consuming context, each over that context's database.
pub(super) fn router(consumers: Vec<Arc<Consumer>>) -> Router {
    let mut contexts: Vec<&'static str> = consumers.iter().map(|c| c.context()).collect();
    contexts.sort_unstable();
    contexts.dedup();
    let mut router = Router::new();
    for context in contexts {
        let mine: Consumers = Arc::new(consumers.iter().filter(|c| c.context() == context).cloned().collect());
        let base = format!("/api/v1/{context}/admin/dead-letters");
        router = router.merge(
            Router::new()
                .route(&base, get(list))
                .route(&format!("{base}/{{id}}/replay"), post(replay))
                .route(&format!("{base}/{{id}}"), delete(discard))
                .with_state(mine),
        );
    }
    router
}

fn db_of(consumers: &Consumers) -> Result<&Db, Problem> {
    consumers
        .first()
        .map(|c| c.db())
        .ok_or_else(|| Problem::not_found("this context has no event consumers"))
}

const COLUMNS: &str = "id, consumer, event_id, event_type, payload, error, attempts, failed_at, replayed_at";

/// Lists dead letters, oldest first.
#[utoipa::path(get, path = "/api/v1/{context}/admin/dead-letters", tag = "events",
    params(("context" = String, Path, description = "A consuming context, e.g. `inventory`"), ListParams),
    security(("bearer" = [])),
    responses((status = 200, body = inline(Page<DeadLetter>), description = "Open dead letters, oldest first"),
        (status = 401, description = "No valid access token"), (status = 403, description = "Not an admin")))]
async fn list(
    user: AuthUser,
    State(consumers): State<Consumers>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<DeadLetter>>, Problem> {
    user.require_any_role(&["admin"])?;
    let limit = pagination::limit(params.limit)?;
    let after = pagination::decode_cursor(params.cursor.as_deref())?;
    let filter = Filter {
        consumer: params.consumer,
        include_replayed: params.include_replayed,
        after,
    };
    let items = list_in(db_of(&consumers)?, &filter, limit + 1).await?;
    Ok(Json(pagination::page_from(items, limit, |d| d.id)))
}

pub(super) struct Filter {
    pub consumer: Option<String>,
    pub include_replayed: bool,
    pub after: Option<Uuid>,
}

/// Up to `fetch` dead letters matching `filter`, oldest first.
pub(super) async fn list_in(db: &Db, filter: &Filter, fetch: u32) -> Result<Vec<DeadLetter>, Problem> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM event_dead_letters
         WHERE id > $1 AND ($2 OR replayed_at IS NULL) AND (CAST($3 AS TEXT) IS NULL OR consumer = CAST($3 AS TEXT))
         ORDER BY id LIMIT $4"
    ));
    let after = filter.after.unwrap_or(Uuid::nil());
    let fetch = i64::from(fetch);
    let rows: Vec<Row> = crate::with_pool!(db, |p| sqlx::query_as(sql)
        .bind(after)
        .bind(filter.include_replayed)
        .bind(&filter.consumer)
        .bind(fetch)
        .fetch_all(p)
        .await)
    .map_err(Problem::internal)?;
    Ok(rows.into_iter().map(DeadLetter::from).collect())
}

async fn fetch_one(db: &Db, id: Uuid) -> Result<DeadLetter, Problem> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM event_dead_letters WHERE id = $1"));
    let row: Option<Row> =
        crate::with_pool!(db, |p| sqlx::query_as(sql).bind(id).fetch_optional(p).await).map_err(Problem::internal)?;
    row.map(DeadLetter::from)
        .ok_or_else(|| Problem::not_found(format!("no dead letter {id}")))
}

/// Runs the consumer's handler on the dead letter again; on success it is marked replayed.
#[utoipa::path(post, path = "/api/v1/{context}/admin/dead-letters/{id}/replay", tag = "events",
    params(("context" = String, Path), ("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = DeadLetter, description = "Handled; marked replayed"),
        (status = 404, description = "No such dead letter"), (status = 409, description = "Already replayed, or the handler failed again"),
        (status = 422, description = "The payload is not an event; discard it")))]
async fn replay(
    user: AuthUser,
    State(consumers): State<Consumers>,
    Path(id): Path<Uuid>,
) -> Result<Json<DeadLetter>, Problem> {
    user.require_any_role(&["admin"])?;
    let letter = replay_in(&consumers, id).await?;
    tracing::info!(dead_letter_id = %id, by = %user.id(), "dead letter replayed");
    Ok(Json(letter))
}

/// Runs the dead letter's handler again; marks it replayed on success, records the new error
/// otherwise (a 409 problem).
pub(super) async fn replay_in(consumers: &[Arc<Consumer>], id: Uuid) -> Result<DeadLetter, Problem> {
    let db = consumers
        .first()
        .map(|c| c.db())
        .ok_or_else(|| Problem::not_found("this context has no event consumers"))?;
    let letter = fetch_one(db, id).await?;
    if letter.replayed_at.is_some() {
        return Err(Problem::conflict("this dead letter was already replayed"));
    }
    let consumer = consumers
        .iter()
        .find(|c| c.name() == letter.consumer)
        .ok_or_else(|| Problem::conflict(format!("consumer {} no longer exists; discard it", letter.consumer)))?;
    let event: Event = serde_json::from_str(&letter.payload).map_err(|e| {
        Problem::invalid_field("payload", format!("is not an event envelope ({e}); discard it instead"))
    })?;
    let now = OffsetDateTime::now_utc();
    match consumer.run_handler(&event).await {
        Ok(()) => {
            consumer.record_handled(&event).await.map_err(Problem::internal)?;
            let sql = "UPDATE event_dead_letters SET replayed_at = $2, attempts = attempts + 1 WHERE id = $1";
            crate::with_pool!(db, |p| sqlx::query(sql).bind(id).bind(now).execute(p).await.map(|_| ()))
                .map_err(Problem::internal)?;
            fetch_one(db, id).await
        }
        Err(e) => {
            let sql = "UPDATE event_dead_letters SET error = $2, attempts = attempts + 1 WHERE id = $1";
            let message = e.to_string();
            crate::with_pool!(db, |p| sqlx::query(sql)
                .bind(id)
                .bind(&message)
                .execute(p)
                .await
                .map(|_| ()))
            .map_err(Problem::internal)?;
            Err(Problem::conflict(format!("the handler failed again: {message}")))
        }
    }
}

/// Deletes a dead letter without handling it.
#[utoipa::path(delete, path = "/api/v1/{context}/admin/dead-letters/{id}", tag = "events",
    params(("context" = String, Path), ("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Discarded"), (status = 404, description = "No such dead letter")))]
async fn discard(
    user: AuthUser,
    State(consumers): State<Consumers>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Problem> {
    user.require_any_role(&["admin"])?;
    let sql = "DELETE FROM event_dead_letters WHERE id = $1";
    let deleted = crate::with_pool!(db_of(&consumers)?, |p| sqlx::query(sql)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .map_err(Problem::internal)?;
    if deleted == 0 {
        return Err(Problem::not_found(format!("no dead letter {id}")));
    }
    tracing::info!(dead_letter_id = %id, by = %user.id(), "dead letter discarded");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, replay, discard), components(schemas(DeadLetter)))]
struct DeadLetterDoc;

pub(super) fn openapi() -> utoipa::openapi::OpenApi {
    <DeadLetterDoc as utoipa::OpenApi>::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The admin pages read the list back as `Page<DeadLetter>`: times stay RFC 3339 strings and
    /// an open letter has `replayed_at: null`.
    #[test]
    fn a_listed_dead_letter_reads_back() {
        let letter = DeadLetter {
            id: Uuid::nil(),
            consumer: "inventory.order_placed".into(),
            event_id: None,
            event_type: None,
            payload: "not json".into(),
            error: "undecodable".into(),
            attempts: 1,
            failed_at: time::macros::datetime!(2026-01-02 03:04:05 UTC),
            replayed_at: None,
        };
        let wire = serde_json::to_value(Page {
            items: vec![letter],
            next: None,
        })
        .expect("serialise");
        assert_eq!(wire["items"][0]["failed_at"], "2026-01-02T03:04:05Z");
        assert_eq!(wire["items"][0]["replayed_at"], serde_json::Value::Null);
        let read: Page<DeadLetter> = serde_json::from_value(wire).expect("read back");
        assert_eq!(
            read.items[0].failed_at,
            time::macros::datetime!(2026-01-02 03:04:05 UTC)
        );
        assert_eq!(read.items[0].payload, "not json");
        assert!(read.items[0].replayed_at.is_none() && read.next.is_none());
    }
}
