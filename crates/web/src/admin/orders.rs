//! Orders: the filtered list, and one order with its timeline and the ship, deliver, refund and
//! cancel actions that ordering's view of it allows.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::identity::UserView;
use contracts::api::money::MoneyInput;
use contracts::api::ordering::{CancelRequest, OrderAction, OrderSummary, OrderView, RefundBody, ShipRequest};
use http::StatusCode;
use minijinja::context;
use platform::http::Path;
use platform::pagination::Page;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

use super::{new_idempotency_key, problem_errors, query_string, segment};
use crate::forms::{FieldErrors, Form, NoFields};
use crate::render::{page_with_status, parse_money, value_of};
use crate::storefront::present;
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

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct OrderFilter {
    status: String,
    /// `YYYY-MM-DD` from a date input: orders placed on or after that day (UTC).
    from: String,
    /// `YYYY-MM-DD`: orders placed on or before that day (UTC).
    until: String,
    /// The customer's e-mail address (exact, any case).
    email: String,
    /// The customer's id (older links; the e-mail is what staff type).
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

/// Who placed an order, as identity knows them.
#[derive(Debug, Clone, Serialize)]
struct Customer {
    name: String,
    email: String,
    /// The e-mail address as a query value (`?email=` links to this customer's orders).
    email_param: String,
}

/// A row of the order list: ordering's summary, its status in words and, when identity named
/// them, its customer.
#[derive(Debug, Serialize)]
struct OrderRow<'a> {
    #[serde(flatten)]
    order: &'a OrderSummary,
    status_label: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer: Option<&'a Customer>,
}

/// The account with exactly this e-mail address (identity matches parts; staff typed all of it).
async fn customer_id_by_email(web: &WebState, session: &Session, email: &str) -> Result<Option<String>, PageError> {
    let path = format!("/api/v1/users{}", query_string(&[("email", email), ("limit", "200")]));
    let users: Page<UserView> = web.api(session).get_json("identity", &path).await?;
    Ok(users
        .items
        .into_iter()
        .find(|u| u.email.eq_ignore_ascii_case(email))
        .map(|u| u.id.to_string()))
}

/// Names and e-mail addresses of the customers of `orders`, in one call to identity. Without an
/// answer the list still shows (with ids): the orders matter more than the names.
async fn customers_of(web: &WebState, session: &Session, orders: &[OrderSummary]) -> HashMap<String, Customer> {
    let mut ids: Vec<String> = orders.iter().map(|o| o.user_id.to_string()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return HashMap::new();
    }
    let path = format!(
        "/api/v1/users{}",
        query_string(&[("ids", &ids.join(",")), ("limit", "200")])
    );
    match web.api(session).get_json::<Page<UserView>>("identity", &path).await {
        Ok(users) => users
            .items
            .into_iter()
            .map(|u| {
                let customer = Customer {
                    name: u.name,
                    email_param: form_urlencoded::byte_serialize(u.email.as_bytes()).collect(),
                    email: u.email,
                };
                (u.id.to_string(), customer)
            })
            .collect(),
        // Identity names accounts to administrators only; other staff see ids.
        Err(PageError::Forbidden) => HashMap::new(),
        Err(e) => {
            tracing::warn!(error = %e, "naming the customers of the order list failed; showing their ids");
            HashMap::new()
        }
    }
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
    let email = filter.email.trim();
    if !email.is_empty() && !email.contains('@') {
        errors.add(
            "email",
            "Type the customer's whole e-mail address, e.g. ada@example.com.",
        );
    }
    let mut customer = filter.customer.trim().to_owned();
    if !customer.is_empty() && uuid::Uuid::try_parse(&customer).is_err() {
        errors.add("customer", "Paste a customer id (a UUID, shown on the users page).");
    }
    let status = present::status_filter(&filter.status).map_or("", |s| s.as_str());
    // An address no account has: no orders, said as such (not every order, unfiltered).
    let mut unknown_email = false;
    if errors.is_empty() && !email.is_empty() {
        match customer_id_by_email(&web, &session, email).await {
            Ok(Some(id)) => customer = id,
            Ok(None) => unknown_email = true,
            // Identity lists accounts to administrators only.
            Err(PageError::Forbidden) => {
                errors.add("email", "Only administrators can look customers up by e-mail.");
            }
            Err(e) => return Err(e),
        }
    }
    let list: Page<OrderSummary> = if errors.is_empty() && !unknown_email {
        let path = format!(
            "/api/v1/orders/admin/orders{}",
            query_string(&[
                ("status", status),
                ("since", &since),
                ("until", &until),
                ("user_id", &customer),
                ("limit", "50"),
                ("cursor", &filter.cursor),
            ])
        );
        web.api(&session).get_json("ordering", &path).await?
    } else {
        Page {
            items: Vec::new(),
            next: None,
        }
    };
    let customers = customers_of(&web, &session, &list.items).await;
    let rows: Vec<OrderRow> = list
        .items
        .iter()
        .map(|order| OrderRow {
            customer: customers.get(&order.user_id.to_string()),
            status_label: present::status_label(order.status),
            order,
        })
        .collect();
    let next_page = list.next.as_deref().map(|cursor| {
        format!(
            "/admin/orders{}",
            query_string(&[
                ("status", status),
                ("from", &filter.from),
                ("until", &filter.until),
                ("email", email),
                ("customer", if email.is_empty() { &customer } else { "" }),
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
            orders => value_of(&rows),
            filter => value_of(&filter),
            statuses => value_of(present::status_options()),
            errors => errors,
            unknown_email => unknown_email,
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
    let order: OrderView = web
        .api(session)
        .get_json("ordering", &format!("/api/v1/orders/{}", segment(id)))
        .await?;
    let refundable = order.totals.total.amount - order.refunded.amount;
    let allowed = &order.allowed_actions;
    let mut form = form;
    form.idempotency_key = new_idempotency_key();
    page_with_status(
        status,
        session,
        "admin/order.html",
        context! {
            order => value_of(&order),
            status_label => present::status_label(order.status),
            refundable => refundable,
            can_ship => allowed.contains(&OrderAction::Ship),
            can_deliver => allowed.contains(&OrderAction::Deliver),
            can_refund => allowed.contains(&OrderAction::Refund),
            can_cancel => allowed.contains(&OrderAction::Cancel),
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
    let body = ShipRequest {
        carrier: form.carrier.trim().to_owned(),
        tracking_number: form.tracking_number.trim().to_owned(),
    };
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
fn refund_body(form: &ActionForm) -> Result<RefundBody, FieldErrors> {
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
        // Minor units, as the form always meant the shop's currency.
        Ok(RefundBody {
            amount: amount.map(MoneyInput::Minor),
            reason: form.reason.trim().to_owned(),
        })
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
    let body = CancelRequest {
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
    };
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
        let body = refund_body(&form("5.5", "damaged")).expect("valid");
        assert_eq!(
            serde_json::to_value(&body).expect("serialise"),
            json!({ "amount": 550, "reason": "damaged" })
        );
        assert_eq!(refund_body(&form(" ", "all of it")).expect("valid").amount, None);
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
