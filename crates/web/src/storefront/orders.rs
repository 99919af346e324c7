//! Order history, one order's page (status, lines, totals, timeline, tracking, invoice), and
//! what a customer may do with it — what ordering's view of it allows: cancel before it ships,
//! ask for a refund on its way, send items back once delivered.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::ordering::{
    CancelRequest, NewReturn, OrderAction, OrderSummary, OrderView, RefundRequestBody, ReturnLineRequest, ReturnView,
    TimelineView,
};
use http::{HeaderValue, StatusCode, header};
use minijinja::context;
use platform::http::Path;
use platform::pagination::Page;
use serde::{Deserialize, Serialize};

use super::present;
use crate::forms::{FieldErrors, Form, Refusal};
use crate::render::{page, page_with_status, value_of};
use crate::{PageError, Session, WebState};

const HISTORY_PAGE: u32 = 20;

/// An order (or a row of the history) as a page shows it: ordering's view plus its status in
/// the shopper's words.
#[derive(Debug, Serialize)]
struct Labelled<T> {
    #[serde(flatten)]
    view: T,
    status_label: &'static str,
}

/// A step of the order's timeline with the status it reached in the shopper's words.
#[derive(Debug, Serialize)]
struct ShownEntry<'a> {
    #[serde(flatten)]
    entry: &'a TimelineView,
    to_label: &'static str,
}

/// A line the return form offers, with the units that may still be sent back.
#[derive(Debug, Serialize)]
struct ReturnableLine<'a> {
    sku: &'a str,
    name: &'a str,
    returnable: i64,
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    cursor: String,
}

pub async fn list(
    State(web): State<WebState>,
    session: Session,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let status = present::status_filter(&q.status).map_or("", |s| s.as_str());
    let query = {
        // (The serializer is not `Send`: it must not live across an await.)
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("limit", &HISTORY_PAGE.to_string());
        if !status.is_empty() {
            query.append_pair("status", status);
        }
        if !q.cursor.is_empty() {
            query.append_pair("cursor", &q.cursor);
        }
        query.finish()
    };
    let api = web.api(&session);
    let reply = api.get("ordering", &format!("/api/v1/orders?{query}")).await?;
    let mut errors = FieldErrors::new();
    let page_data: Page<OrderSummary> = if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
        // A stale cursor in a bookmarked link: start from the first page.
        errors.add(
            "_form",
            "That page of your orders is no longer available; showing the newest.",
        );
        api.get_json("ordering", &format!("/api/v1/orders?limit={HISTORY_PAGE}"))
            .await?
    } else {
        api.decode(reply)?
    };
    let orders: Vec<Labelled<OrderSummary>> = page_data
        .items
        .into_iter()
        .map(|o| Labelled {
            status_label: present::status_label(o.status),
            view: o,
        })
        .collect();
    let next_url = page_data.next.map(|next| {
        let mut url = form_urlencoded::Serializer::new(String::new());
        if !status.is_empty() {
            url.append_pair("status", status);
        }
        url.append_pair("cursor", &next);
        format!("/orders?{}", url.finish())
    });
    page(
        &session,
        "shop/orders.html",
        context! {
            orders => value_of(orders),
            status => status,
            statuses => value_of(present::status_options()),
            next_url => next_url,
            paged => !q.cursor.is_empty(),
            errors => errors,
        },
    )
}

async fn order_page(
    web: &WebState,
    session: &Session,
    id: &str,
    refund_reason: &str,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<Response, PageError> {
    session.require_user()?;
    let api = web.api(session);
    let order: OrderView = api
        .get_json("ordering", &format!("/api/v1/orders/{}", present::path_segment(id)))
        .await?;
    let allowed = &order.allowed_actions;
    let returns: Vec<ReturnView> = api
        .get_json(
            "ordering",
            &format!("/api/v1/orders/{}/returns", present::path_segment(id)),
        )
        .await?;
    // What the return form offers: each line with the units that may still be sent back.
    let return_lines: Vec<ReturnableLine> = order
        .lines
        .iter()
        .map(|l| ReturnableLine {
            sku: &l.sku,
            name: &l.name,
            returnable: present::returnable(&l.sku, l.quantity, &returns),
        })
        .filter(|l| l.returnable > 0)
        .collect();
    let returns: Vec<Labelled<&ReturnView>> = returns
        .iter()
        .map(|r| Labelled {
            status_label: present::return_status_label(r.status),
            view: r,
        })
        .collect();
    let timeline: Vec<ShownEntry> = order
        .timeline
        .iter()
        .map(|e| ShownEntry {
            to_label: present::status_label(e.to),
            entry: e,
        })
        .collect();
    let can_cancel = allowed.contains(&OrderAction::Cancel);
    let can_request_refund = allowed.contains(&OrderAction::RequestRefund);
    let can_return = allowed.contains(&OrderAction::RequestReturn) && !return_lines.is_empty();
    let has_invoice = allowed.contains(&OrderAction::DownloadInvoice);
    let in_progress = order.in_progress;
    let order = Labelled {
        status_label: present::status_label(order.status),
        view: &order,
    };
    page_with_status(
        status,
        session,
        "shop/order.html",
        context! {
            order => value_of(&order),
            timeline => value_of(&timeline),
            in_progress => in_progress,
            can_cancel => can_cancel,
            can_request_refund => can_request_refund,
            can_return => can_return,
            return_lines => value_of(&return_lines),
            returns => value_of(&returns),
            has_invoice => has_invoice,
            refund_reason => refund_reason,
            errors => errors,
        },
    )
}

pub async fn detail(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    order_page(&web, &session, &id, "", FieldErrors::new(), StatusCode::OK).await
}

/// Streams the invoice PDF from ordering with its own type and file name.
pub async fn invoice(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let api = web.api(&session);
    let order_path = format!("/orders/{}", present::path_segment(&id));
    let reply = api.get("ordering", &format!("/api/v1{order_path}/invoice.pdf")).await?;
    if reply.status == StatusCode::CONFLICT {
        session.flash("info", "The invoice is ready once the order has been paid.");
        return Ok(Redirect::to(&order_path).into_response());
    }
    if !reply.is_success() {
        return Err(api.error_for(&reply));
    }
    let mut response = Response::new(Body::from(reply.body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    let disposition = reply
        .headers
        .get(header::CONTENT_DISPOSITION)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("attachment; filename=\"invoice.pdf\""));
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    // An invoice is personal: the browser may keep it, nothing in between may.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    reason: String,
}

pub async fn cancel(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Response, PageError> {
    let back = format!("/orders/{}", present::path_segment(&id));
    if session.user().is_none() {
        return Err(PageError::LoginRequired { next: back });
    }
    let api = web.api(&session);
    let reason = form.reason.trim();
    let body = CancelRequest {
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
    };
    let reply = api.post("ordering", &format!("/api/v1{back}/cancel"), &body).await?;
    if reply.is_success() {
        session.flash(
            "success",
            "Your order is cancelled. Anything you paid is refunded to your card.",
        );
        return Ok(Redirect::to(&back).into_response());
    }
    match reply.status {
        StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => {
            session.flash(
                "error",
                format!(
                    "The order could not be cancelled: {}.",
                    reply.problem_detail().trim_end_matches('.')
                ),
            );
            Ok(Redirect::to(&back).into_response())
        }
        _ => Err(api.error_for(&reply)),
    }
}

pub async fn refund_request(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Response, PageError> {
    let back = format!("/orders/{}", present::path_segment(&id));
    if session.user().is_none() {
        return Err(PageError::LoginRequired { next: back });
    }
    let mut errors = FieldErrors::new();
    let reason = form.reason.trim();
    if reason.is_empty() {
        errors.add("reason", "Tell us why you would like a refund.");
    } else {
        let api = web.api(&session);
        let reply = api
            .post(
                "ordering",
                &format!("/api/v1{back}/refund-requests"),
                &RefundRequestBody {
                    reason: reason.to_owned(),
                },
            )
            .await?;
        if reply.is_success() {
            session.flash(
                "success",
                "Your refund request was sent. We will let you know by e-mail once it is decided.",
            );
            return Ok(Redirect::to(&back).into_response());
        }
        match reply.status {
            StatusCode::UNPROCESSABLE_ENTITY => errors = FieldErrors::from_problem(&reply),
            StatusCode::CONFLICT => errors.add("_form", reply.problem_detail()),
            _ => return Err(api.error_for(&reply)),
        }
    }
    order_page(
        &web,
        &session,
        &id,
        &form.reason,
        errors,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// A return request from the order page: `reason` and a `qty:<SKU>` field per line.
pub async fn request_return(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let back = format!("/orders/{}", present::path_segment(&id));
    if session.user().is_none() {
        return Err(PageError::LoginRequired { next: back });
    }
    let reason = fields
        .iter()
        .find(|(k, _)| k == "reason")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let mut errors = FieldErrors::new();
    let lines = match present::return_lines(&fields) {
        Ok(lines) if lines.is_empty() => {
            errors.add("_return", "Choose how many of which items you are sending back.");
            Vec::new()
        }
        Ok(lines) => lines,
        Err((_, message)) => {
            errors.add("_return", message);
            Vec::new()
        }
    };
    if reason.is_empty() {
        errors.add("return_reason", "Tell us why you are returning the items.");
    }
    if errors.is_empty() {
        let body = NewReturn {
            reason: reason.clone(),
            lines: lines
                .into_iter()
                .map(|(sku, quantity)| ReturnLineRequest { sku, quantity })
                .collect(),
        };
        let api = web.api(&session);
        let reply = api.post("ordering", &format!("/api/v1{back}/returns"), &body).await?;
        if reply.is_success() {
            session.flash(
                "success",
                "Your return request was sent. We will e-mail you once it is approved, with what to do next.",
            );
            return Ok(Redirect::to(&back).into_response());
        }
        match reply.status {
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT => {
                let problem = FieldErrors::from_problem(&reply);
                if let Some(m) = problem.get("reason") {
                    errors.add("return_reason", m.to_owned());
                }
                // A line's problem names the line (`lines[0].quantity: must be between 1 and 2`).
                let first_line = Refusal::of(&reply).errors.into_iter().find(|e| e.field != "reason");
                match first_line {
                    Some(e) => errors.add(
                        "_return",
                        format!("{} ({})", reply.problem_detail().trim_end_matches('.'), e.message),
                    ),
                    None if problem.get("reason").is_none() => errors.add("_return", reply.problem_detail()),
                    None => {}
                }
            }
            _ => return Err(api.error_for(&reply)),
        }
    }
    order_page(&web, &session, &id, &reason, errors, StatusCode::UNPROCESSABLE_ENTITY).await
}
