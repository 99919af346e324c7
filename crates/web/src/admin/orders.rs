//! Orders: the filtered list, and one order with its timeline and the ship, deliver, refund and
//! cancel actions.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::StatusCode;
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

use super::{new_idempotency_key, problem_errors, query_string, segment};
use crate::forms::{FieldErrors, Form, NoFields};
use crate::render::{page_with_status, parse_money, value_of};
use crate::{PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/orders", get(orders))
        .route("/admin/orders/{id}", get(order_page))
        .route("/admin/orders/{id}/ship", post(ship))
        .route("/admin/orders/{id}/deliver", post(deliver))
        .route("/admin/orders/{id}/refund", post(refund))
        .route("/admin/orders/{id}/cancel", post(cancel))
}

pub(super) const ORDER_STATUSES: [&str; 10] = [
    "pending",
    "awaiting_payment",
    "paid",
    "confirmed",
    "shipped",
    "delivered",
    "cancelled",
    "payment_failed",
    "refunded",
    "partially_refunded",
];

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct OrderFilter {
    status: String,
    /// `YYYY-MM-DD` from a date input: orders placed on or after that day (UTC).
    from: String,
    /// `YYYY-MM-DD`: orders placed on or before that day (UTC).
    until: String,
    customer: String,
    cursor: String,
}

/// A day typed into a date input → the RFC 3339 instant its UTC day starts, shifted by
/// `days_later` (the "until" filter is inclusive, so it ends where the next day starts).
pub(super) fn day_start(day: &str, days_later: i64) -> Result<String, &'static str> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = Date::parse(day.trim(), format).map_err(|_| "Use a date like 2026-11-23.")?;
    let start = OffsetDateTime::new_in_offset(date, Time::MIDNIGHT, UtcOffset::UTC) + Duration::days(days_later);
    start
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|_| "Use a date like 2026-11-23.")
}

async fn orders(
    State(web): State<WebState>,
    session: Session,
    Query(filter): Query<OrderFilter>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let mut errors = FieldErrors::new();
    let since = optional_day(&filter.from, 0, "from", &mut errors);
    let until = optional_day(&filter.until, 1, "until", &mut errors);
    let customer = filter.customer.trim();
    if !customer.is_empty() && uuid::Uuid::try_parse(customer).is_err() {
        errors.add("customer", "Paste a customer id (a UUID, shown on the users page).");
    }
    let status = if ORDER_STATUSES.contains(&filter.status.as_str()) {
        filter.status.as_str()
    } else {
        ""
    };
    let list = if errors.is_empty() {
        let path = format!(
            "/api/v1/orders/admin/orders{}",
            query_string(&[
                ("status", status),
                ("since", &since),
                ("until", &until),
                ("user_id", customer),
                ("limit", "50"),
                ("cursor", &filter.cursor),
            ])
        );
        web.api(&session).get_json::<Value>("ordering", &path).await?
    } else {
        json!({ "items": [] })
    };
    let next_page = list["next"].as_str().map(|cursor| {
        format!(
            "/admin/orders{}",
            query_string(&[
                ("status", status),
                ("from", &filter.from),
                ("until", &filter.until),
                ("customer", customer),
                ("cursor", cursor),
            ])
        )
    });
    let status_code = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page_with_status(
        status_code,
        &session,
        "admin/orders.html",
        context! {
            orders => value_of(&list["items"]),
            filter => value_of(&filter),
            statuses => ORDER_STATUSES,
            errors => errors,
            next_page => next_page,
        },
    )
}

fn optional_day(day: &str, days_later: i64, field: &str, errors: &mut FieldErrors) -> String {
    if day.trim().is_empty() {
        return String::new();
    }
    day_start(day, days_later).unwrap_or_else(|m| {
        errors.add(field, m);
        String::new()
    })
}

/// The forms of the order page, as typed (kept when one is refused).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
struct ActionForm {
    carrier: String,
    tracking_number: String,
    amount: String,
    reason: String,
    idempotency_key: String,
}

async fn render_order(
    web: &WebState,
    session: &Session,
    id: &str,
    status: StatusCode,
    form: ActionForm,
    errors: FieldErrors,
) -> Result<Response, PageError> {
    let order: Value = web
        .api(session)
        .get_json("ordering", &format!("/api/v1/orders/{}", segment(id)))
        .await?;
    let total = order["total"]["amount"].as_i64().unwrap_or_default();
    let refunded = order["refunded"]["amount"].as_i64().unwrap_or_default();
    let mut form = form;
    form.idempotency_key = new_idempotency_key();
    page_with_status(
        status,
        session,
        "admin/order.html",
        context! {
            order => value_of(&order),
            refundable => total - refunded,
            form => value_of(&form),
            errors => errors,
        },
    )
}

async fn order_page(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    render_order(
        &web,
        &session,
        &id,
        StatusCode::OK,
        ActionForm::default(),
        FieldErrors::new(),
    )
    .await
}

/// Done: back to the order with a message. Refused for a reason the admin can act on (wrong
/// status, bad field): the order page again with the message at the form.
async fn after_action(
    web: &WebState,
    session: &Session,
    id: &str,
    reply: platform::client::Reply,
    done: &str,
    form: ActionForm,
) -> Result<Response, PageError> {
    if reply.is_success() {
        session.flash("success", done);
        return Ok(Redirect::to(&format!("/admin/orders/{}", segment(id))).into_response());
    }
    if matches!(reply.status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT) {
        let errors = problem_errors(&reply, |f| {
            match f {
                "carrier" | "tracking_number" | "amount" | "reason" => f,
                _ => "_form",
            }
            .to_owned()
        });
        return render_order(web, session, id, StatusCode::UNPROCESSABLE_ENTITY, form, errors).await;
    }
    Err(web.api(session).error_for(&reply))
}

async fn ship(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let mut errors = FieldErrors::new();
    if form.carrier.trim().is_empty() {
        errors.add("carrier", "Enter the carrier, e.g. DHL.");
    }
    if form.tracking_number.trim().is_empty() {
        errors.add("tracking_number", "Enter the tracking number.");
    }
    if !errors.is_empty() {
        return render_order(&web, &session, &id, StatusCode::UNPROCESSABLE_ENTITY, form, errors).await;
    }
    let body = json!({ "carrier": form.carrier.trim(), "tracking_number": form.tracking_number.trim() });
    let reply = web
        .api(&session)
        .post("ordering", &format!("/api/v1/orders/{}/ship", segment(&id)), &body)
        .await?;
    after_action(&web, &session, &id, reply, "Order marked shipped.", form).await
}

async fn deliver(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(_): Form<NoFields>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let reply = web
        .api(&session)
        .post(
            "ordering",
            &format!("/api/v1/orders/{}/deliver", segment(&id)),
            &json!({}),
        )
        .await?;
    after_action(
        &web,
        &session,
        &id,
        reply,
        "Order marked delivered.",
        ActionForm::default(),
    )
    .await
}

/// The refund body: the amount typed as a decimal (empty: everything not refunded yet).
fn refund_body(form: &ActionForm) -> Result<Value, FieldErrors> {
    let mut errors = FieldErrors::new();
    let amount = if form.amount.trim().is_empty() {
        None
    } else {
        match parse_money(&form.amount) {
            Ok(0) => {
                errors.add("amount", "Must be more than zero.");
                None
            }
            Ok(minor) => Some(minor),
            Err(m) => {
                errors.add("amount", super::sentence(m));
                None
            }
        }
    };
    if form.reason.trim().is_empty() {
        errors.add("reason", "Say why (the customer sees it).");
    }
    if errors.is_empty() {
        Ok(json!({ "amount": amount, "reason": form.reason.trim() }))
    } else {
        Err(errors)
    }
}

async fn refund(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let body = match refund_body(&form) {
        Ok(body) => body,
        Err(errors) => {
            return render_order(&web, &session, &id, StatusCode::UNPROCESSABLE_ENTITY, form, errors).await;
        }
    };
    let key = match form.idempotency_key.trim() {
        "" => new_idempotency_key(),
        key => key.to_owned(),
    };
    let reply = web
        .api(&session)
        .idempotency_key(key)
        .post("ordering", &format!("/api/v1/orders/{}/refunds", segment(&id)), &body)
        .await?;
    after_action(&web, &session, &id, reply, "Refund issued.", form).await
}

async fn cancel(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let reason = form.reason.trim();
    let body = json!({ "reason": (!reason.is_empty()).then_some(reason) });
    let reply = web
        .api(&session)
        .post("ordering", &format!("/api/v1/orders/{}/cancel", segment(&id)), &body)
        .await?;
    after_action(&web, &session, &id, reply, "Order cancelled.", form).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_utc_instants() {
        assert_eq!(day_start("2026-11-23", 0).as_deref(), Ok("2026-11-23T00:00:00Z"));
        assert_eq!(day_start("2026-12-31", 1).as_deref(), Ok("2027-01-01T00:00:00Z"));
        assert!(day_start("23/11/2026", 0).is_err());
        assert!(day_start("2026-02-30", 0).is_err());
    }

    #[test]
    fn refunds_take_a_decimal_amount_or_everything() {
        let form = |amount: &str, reason: &str| ActionForm {
            amount: amount.into(),
            reason: reason.into(),
            ..ActionForm::default()
        };
        assert_eq!(
            refund_body(&form("5.5", "damaged")).expect("valid"),
            json!({ "amount": 550, "reason": "damaged" })
        );
        assert_eq!(
            refund_body(&form(" ", "all of it")).expect("valid")["amount"],
            Value::Null
        );
        assert!(
            refund_body(&form("-1", "x"))
                .expect_err("negative")
                .get("amount")
                .is_some()
        );
        assert!(refund_body(&form("0", "x")).expect_err("zero").get("amount").is_some());
        assert!(refund_body(&form("1", "")).expect_err("reason").get("reason").is_some());
    }
}
