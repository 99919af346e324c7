//! Dead letters (events a consumer gave up on) per context, with replay and delete; the
//! notification delivery log with retry.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::notifications::DeliveryView;
use http::StatusCode;
use minijinja::context;
use platform::events::DeadLetter;
use platform::http::Path;
use platform::pagination::Page;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{query_string, segment, sentence};
use crate::api::CONTEXTS;
use crate::forms::{Form, NoFields};
use crate::render::{page, value_of};
use crate::{PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/dead-letters", get(dead_letters))
        .route("/admin/dead-letters/{context}/{id}/replay", post(replay))
        .route("/admin/dead-letters/{context}/{id}/delete", post(discard))
        .route("/admin/notifications", get(deliveries))
        .route("/admin/notifications/{id}/retry", post(retry))
}

/// Payloads are shown cut to this many characters (the full text is one click away in the API).
const PAYLOAD_PREVIEW_CHARS: usize = 400;

/// The first `max` characters of `text`, with an ellipsis when cut.
fn preview(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

fn context_named(name: &str) -> Result<&'static str, PageError> {
    CONTEXTS.iter().copied().find(|c| *c == name).ok_or(PageError::NotFound)
}

/// One context's dead letters as the page shows them.
#[derive(Debug, Serialize)]
struct DeadLetterSection {
    context: &'static str,
    /// False when the context consumes no events (it has no dead-letter endpoint).
    consumers: bool,
    /// The context did not answer.
    unavailable: bool,
    items: Vec<ShownDeadLetter>,
    /// More than the page lists.
    more: bool,
}

impl DeadLetterSection {
    fn empty(context: &'static str, consumers: bool, unavailable: bool) -> Self {
        Self {
            context,
            consumers,
            unavailable,
            items: Vec::new(),
            more: false,
        }
    }
}

#[derive(Debug, Serialize)]
struct ShownDeadLetter {
    #[serde(flatten)]
    letter: DeadLetter,
    payload_preview: String,
}

impl From<DeadLetter> for ShownDeadLetter {
    fn from(letter: DeadLetter) -> Self {
        Self {
            payload_preview: preview(&letter.payload, PAYLOAD_PREVIEW_CHARS),
            letter,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeadLetterFilter {
    include_replayed: String,
}

/// Each context keeps its own dead letters (its own database in production), so each is listed
/// on its own; a context without event consumers has no dead-letter endpoint (404).
async fn dead_letters(
    State(web): State<WebState>,
    session: Session,
    Query(filter): Query<DeadLetterFilter>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let include_replayed = filter.include_replayed == "true";
    let api = web.api(&session);
    let mut sections = Vec::new();
    for context in CONTEXTS {
        let path = format!("/api/v1/{context}/admin/dead-letters?limit=100&include_replayed={include_replayed}");
        let section = match api.get(context, &path).await {
            Ok(reply) if reply.is_success() => {
                let list: Page<DeadLetter> = api.decode(reply)?;
                DeadLetterSection {
                    more: list.next.is_some(),
                    items: list.items.into_iter().map(ShownDeadLetter::from).collect(),
                    ..DeadLetterSection::empty(context, true, false)
                }
            }
            Ok(reply) if reply.status == StatusCode::NOT_FOUND => DeadLetterSection::empty(context, false, false),
            Ok(reply) => return Err(api.error_for(&reply)),
            Err(PageError::Unavailable { .. }) => DeadLetterSection::empty(context, true, true),
            Err(e) => return Err(e),
        };
        sections.push(section);
    }
    page(
        &session,
        "admin/dead_letters.html",
        context! { sections => value_of(&sections), include_replayed => include_replayed },
    )
}

async fn replay(
    State(web): State<WebState>,
    session: Session,
    Path((context, id)): Path<(String, String)>,
    Form(_): Form<NoFields>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let context = context_named(&context)?;
    let api = web.api(&session);
    let reply = api
        .post(
            context,
            &format!("/api/v1/{context}/admin/dead-letters/{}/replay", segment(&id)),
            &json!({}),
        )
        .await?;
    if reply.is_success() {
        session.flash("success", format!("Dead letter replayed by {context}."));
    } else if matches!(reply.status, StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY) {
        // The handler failed again: its error is the news.
        session.flash("error", format!("Replay failed: {}", sentence(&reply.problem_detail())));
    } else {
        return Err(api.error_for(&reply));
    }
    Ok(Redirect::to("/admin/dead-letters").into_response())
}

async fn discard(
    State(web): State<WebState>,
    session: Session,
    Path((context, id)): Path<(String, String)>,
    Form(_): Form<NoFields>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let context = context_named(&context)?;
    let api = web.api(&session);
    let reply = api
        .delete(
            context,
            &format!("/api/v1/{context}/admin/dead-letters/{}", segment(&id)),
        )
        .await?;
    if !reply.is_success() {
        return Err(api.error_for(&reply));
    }
    session.flash("success", "Dead letter deleted.");
    Ok(Redirect::to("/admin/dead-letters").into_response())
}

const DELIVERY_STATUSES: [&str; 4] = ["pending", "sent", "failed", "dead"];

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct DeliveryFilter {
    status: String,
    to: String,
    kind: String,
    cursor: String,
}

async fn deliveries(
    State(web): State<WebState>,
    session: Session,
    Query(filter): Query<DeliveryFilter>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let status = if DELIVERY_STATUSES.contains(&filter.status.as_str()) {
        filter.status.as_str()
    } else {
        ""
    };
    let filters = [
        ("status", status),
        ("to", filter.to.as_str()),
        ("kind", filter.kind.as_str()),
    ];
    let mut query = filters.to_vec();
    query.extend([("limit", "100"), ("cursor", filter.cursor.as_str())]);
    let api = web.api(&session);
    let reply = api
        .get(
            "notifications",
            &format!("/api/v1/notifications/admin/deliveries{}", query_string(&query)),
        )
        .await?;
    let (list, error) = if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
        let none = Page::<DeliveryView> {
            items: Vec::new(),
            next: None,
        };
        (none, Some(sentence(&reply.problem_detail())))
    } else {
        (api.decode::<Page<DeliveryView>>(reply)?, None)
    };
    let next_page = list.next.as_deref().map(|cursor| {
        let mut query = filters.to_vec();
        query.push(("cursor", cursor));
        format!("/admin/notifications{}", query_string(&query))
    });
    page(
        &session,
        "admin/notifications.html",
        context! {
            deliveries => value_of(&list.items),
            filter => value_of(&filter),
            statuses => DELIVERY_STATUSES,
            filter_error => error,
            next_page => next_page,
        },
    )
}

async fn retry(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(_): Form<NoFields>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let api = web.api(&session);
    let reply = api
        .post(
            "notifications",
            &format!("/api/v1/notifications/admin/deliveries/{}/retry", segment(&id)),
            &json!({}),
        )
        .await?;
    if reply.is_success() {
        session.flash("success", "Delivery queued again.");
    } else if matches!(reply.status, StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY) {
        session.flash("error", sentence(&reply.problem_detail()));
    } else {
        return Err(api.error_for(&reply));
    }
    Ok(Redirect::to("/admin/notifications").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_previews_are_cut_on_characters() {
        assert_eq!(preview("short", 10), "short");
        assert_eq!(preview("ééééé", 3), "ééé…");
        assert_eq!(preview("", 3), "");
    }
}
