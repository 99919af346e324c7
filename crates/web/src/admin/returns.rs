//! Returns (RMA): the queue of return requests with the approve, reject and receive actions.
//! Receiving asks per line whether the items go back to stock; the refund follows in ordering.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::ordering::{ReceiveLine, ReceiveReturn, ReturnDecision, ReturnView};
use minijinja::context;
use platform::pagination::Page;
use serde::{Deserialize, Serialize};

use super::{query_string, segment, sentence};
use crate::forms::Form;
use crate::render::{page, parse_money, value_of};
use crate::{PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/returns", get(queue))
        .route("/admin/returns/{id}/approve", post(approve))
        .route("/admin/returns/{id}/reject", post(reject))
        .route("/admin/returns/{id}/receive", post(receive))
}

pub(super) const RETURN_STATUSES: [&str; 5] = ["requested", "approved", "rejected", "received", "refunded"];

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct QueueFilter {
    /// Empty: the requests to decide; `all`: every return.
    status: String,
    cursor: String,
}

/// The status the queue shows: requested by default, any when asked for `all`.
fn shown_status(raw: &str) -> &str {
    match raw.trim() {
        "" => "requested",
        "all" => "",
        s if RETURN_STATUSES.contains(&s) => s,
        _ => "requested",
    }
}

async fn queue(
    State(web): State<WebState>,
    session: Session,
    Query(filter): Query<QueueFilter>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let status = shown_status(&filter.status);
    let path = format!(
        "/api/v1/orders/admin/returns{}",
        query_string(&[("status", status), ("limit", "50"), ("cursor", &filter.cursor)])
    );
    let list: Page<ReturnView> = web.api(&session).get_json("ordering", &path).await?;
    let next_page = list.next.as_deref().map(|cursor| {
        format!(
            "/admin/returns{}",
            query_string(&[
                ("status", if status.is_empty() { "all" } else { status }),
                ("cursor", cursor)
            ])
        )
    });
    page(
        &session,
        "admin/returns.html",
        context! {
            returns => value_of(&list.items),
            status => if status.is_empty() { "all" } else { status },
            statuses => RETURN_STATUSES,
            next_page => next_page,
        },
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NoteForm {
    note: String,
    /// The queue filter to go back to.
    back: String,
}

fn back_to(status: &str) -> String {
    let status = shown_status(status);
    format!("/admin/returns{}", query_string(&[("status", status)]))
}

/// Done: back to the queue with a message; refused (state, field): back with the reason.
async fn after(
    web: &WebState,
    session: &Session,
    reply: platform::client::Reply,
    done: &str,
    back: &str,
) -> Result<Response, PageError> {
    if reply.is_success() {
        session.flash("success", done);
    } else if matches!(reply.status.as_u16(), 409 | 422) {
        let detail = super::problem_errors(&reply, |f| f.to_owned());
        let message = detail
            .get("note")
            .map(|m| format!("Note: {m}"))
            .or_else(|| detail.get("refund_amount").map(|m| format!("Refund: {m}")))
            .unwrap_or_else(|| sentence(&reply.problem_detail()));
        session.flash("error", message);
    } else {
        return Err(web.api(session).error_for(&reply));
    }
    Ok(Redirect::to(back).into_response())
}

async fn decide(
    web: &WebState,
    session: &Session,
    id: &str,
    action: &str,
    form: &NoteForm,
    done: &str,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let note = form.note.trim();
    let body = ReturnDecision {
        note: (!note.is_empty()).then(|| note.to_owned()),
    };
    let reply = web
        .api(session)
        .post(
            "ordering",
            &format!("/api/v1/orders/admin/returns/{}/{action}", segment(id)),
            &body,
        )
        .await?;
    after(web, session, reply, done, &back_to(&form.back)).await
}

async fn approve(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<NoteForm>,
) -> Result<Response, PageError> {
    decide(
        &web,
        &session,
        &id,
        "approve",
        &form,
        "Return approved; the customer was e-mailed.",
    )
    .await
}

async fn reject(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<NoteForm>,
) -> Result<Response, PageError> {
    if form.note.trim().is_empty() {
        session.require_staff()?;
        session.flash("error", "Say why the return is declined (the customer reads it).");
        return Ok(Redirect::to(&back_to(&form.back)).into_response());
    }
    decide(
        &web,
        &session,
        &id,
        "reject",
        &form,
        "Return declined; the customer was e-mailed.",
    )
    .await
}

/// The receive form: one `restock:<SKU>` field per line (`yes`/`no`), an optional refund as a
/// decimal amount, a note. Returns the API body, or the message for the first bad field.
fn receive_body(fields: &[(String, String)]) -> Result<ReceiveReturn, String> {
    let mut lines = Vec::new();
    let mut refund = None;
    let mut note = None;
    for (name, value) in fields {
        let value = value.trim();
        if let Some(sku) = name.strip_prefix("restock:") {
            lines.push(ReceiveLine {
                sku: sku.to_owned(),
                restock: value == "yes",
            });
        } else if name == "refund" && !value.is_empty() {
            refund = Some(parse_money(value).map_err(|m| format!("Refund: {}", sentence(m)))?);
        } else if name == "note" && !value.is_empty() {
            note = Some(value.to_owned());
        }
    }
    Ok(ReceiveReturn {
        lines,
        refund_amount: refund,
        note,
    })
}

async fn receive(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let back = back_to(
        fields
            .iter()
            .find(|(k, _)| k == "back")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default(),
    );
    let body = match receive_body(&fields) {
        Ok(body) => body,
        Err(message) => {
            session.flash("error", message);
            return Ok(Redirect::to(&back).into_response());
        }
    };
    let reply = web
        .api(&session)
        .post(
            "ordering",
            &format!("/api/v1/orders/admin/returns/{}/receive", segment(&id)),
            &body,
        )
        .await?;
    after(
        &web,
        &session,
        reply,
        "Return received: the chosen items are back in stock and the refund is issued.",
        &back,
    )
    .await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_queue_shows_requests_unless_asked_otherwise() {
        assert_eq!(shown_status(""), "requested");
        assert_eq!(shown_status("all"), "");
        assert_eq!(shown_status("approved"), "approved");
        assert_eq!(shown_status("bogus"), "requested");
    }

    #[test]
    fn receiving_reads_restock_choices_and_an_optional_refund() {
        let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert_eq!(
            receive_body(&f(&[
                ("_csrf", "t"),
                ("restock:MUG-1", "yes"),
                ("restock:TEE-1", "no"),
                ("refund", "12.5"),
                ("note", " torn "),
            ]))
            .map(|body| serde_json::to_value(body).expect("serialise"))
            .expect("valid"),
            json!({"lines": [{"sku": "MUG-1", "restock": true}, {"sku": "TEE-1", "restock": false}],
                   "refund_amount": 1250, "note": "torn"})
        );
        assert_eq!(receive_body(&f(&[("refund", "")])).expect("valid").refund_amount, None);
        assert!(receive_body(&f(&[("refund", "-3")])).is_err());
    }
}
