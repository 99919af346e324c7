//! Fault injection (admin only): the flags as they are, and a form that replaces them. The page
//! calls identity's `/api/v1/admin/faults`, which checks the role and audits every change.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::StatusCode;
use minijinja::context;
use platform::faults::{CatalogLatencyInput, FaultFlagsInput, FaultsView};
use serde::Deserialize;

use super::sentence;
use crate::forms::Form;
use crate::render::{page, value_of};
use crate::{PageError, Session, WebState};

const API: &str = "/api/v1/admin/faults";

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/faults", get(faults_page))
        .route("/admin/faults", post(save))
        .route("/admin/faults/clear", post(clear))
}

async fn faults_page(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_staff()?;
    let api = web.api(&session);
    let reply = api.get("identity", API).await?;
    let (flags, disabled) = if reply.is_success() {
        (Some(api.decode::<FaultsView>(reply)?), None)
    } else if reply.status == StatusCode::CONFLICT {
        (None, Some(reply.problem_detail()))
    } else {
        return Err(api.error_for(&reply));
    };
    page(
        &session,
        "admin/faults.html",
        context! { flags => value_of(&flags), disabled => disabled },
    )
}

/// The form as posted: numbers as typed (empty is 0), checkboxes present when ticked.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FaultsForm {
    payment_failure_percent: String,
    payment_latency_ms: String,
    reservation_failure_percent: String,
    catalog_latency_product: String,
    catalog_latency_ms: String,
    cache_outage: Option<String>,
    smtp_failure: Option<String>,
    event_publish_delay_ms: String,
}

/// A whole number typed in the form (empty is 0), or the message naming its field.
fn number(field: &str, label: &str, text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    text.parse::<i64>()
        .map_err(|_| format!("{label} ({field}) must be a whole number"))
}

/// The API body for the form, or the first field that is not a number. The range checks are the
/// API's (its 422 names the field).
fn body_of(form: &FaultsForm) -> Result<FaultFlagsInput, String> {
    let product = form.catalog_latency_product.trim();
    let catalog_ms = number("catalog_latency.ms", "Product delay", &form.catalog_latency_ms)?;
    Ok(FaultFlagsInput {
        payment_failure_percent: number(
            "payment_failure_percent",
            "Payment failure rate",
            &form.payment_failure_percent,
        )?,
        payment_latency_ms: number("payment_latency_ms", "Payment latency", &form.payment_latency_ms)?,
        reservation_failure_percent: number(
            "reservation_failure_percent",
            "Reservation failure rate",
            &form.reservation_failure_percent,
        )?,
        catalog_latency: (!product.is_empty() || catalog_ms != 0).then(|| CatalogLatencyInput {
            product: product.to_owned(),
            ms: catalog_ms,
        }),
        cache_outage: form.cache_outage.is_some(),
        smtp_failure: form.smtp_failure.is_some(),
        event_publish_delay_ms: number(
            "event_publish_delay_ms",
            "Event publish delay",
            &form.event_publish_delay_ms,
        )?,
    })
}

async fn put_flags(web: &WebState, session: &Session, body: &FaultFlagsInput) -> Result<Response, PageError> {
    let api = web.api(session);
    let reply = api.put("identity", API, body).await?;
    if reply.is_success() {
        let now: FaultsView = api.decode(reply)?;
        let active = now.active.len();
        if active == 0 {
            session.flash("success", "Every fault flag is off.");
        } else {
            session.flash(
                "success",
                format!("Fault flags saved: {active} on. Every change is in the audit log."),
            );
        }
    } else if matches!(reply.status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT) {
        session.flash("error", sentence(&reply.problem_detail()));
    } else {
        return Err(api.error_for(&reply));
    }
    Ok(Redirect::to("/admin/faults").into_response())
}

async fn save(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<FaultsForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    match body_of(&form) {
        Ok(body) => put_flags(&web, &session, &body).await,
        Err(message) => {
            session.flash("error", sentence(&message));
            Ok(Redirect::to("/admin/faults").into_response())
        }
    }
}

async fn clear(
    State(web): State<WebState>,
    session: Session,
    Form(_): Form<crate::forms::NoFields>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    // Every flag omitted is off.
    put_flags(&web, &session, &FaultFlagsInput::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_the_api_body() {
        let form = FaultsForm {
            payment_failure_percent: " 50 ".into(),
            catalog_latency_product: "desk-lamp".into(),
            catalog_latency_ms: "800".into(),
            smtp_failure: Some("on".into()),
            ..FaultsForm::default()
        };
        let body = body_of(&form).expect("body");
        assert_eq!(body.payment_failure_percent, 50);
        assert_eq!(body.payment_latency_ms, 0);
        let slow = body.catalog_latency.as_ref().expect("catalog latency");
        assert_eq!((slow.product.as_str(), slow.ms), ("desk-lamp", 800));
        assert!(body.smtp_failure);
        assert!(!body.cache_outage);
        assert!(
            body_of(&FaultsForm::default())
                .expect("empty")
                .catalog_latency
                .is_none()
        );
        // What the API accepts: its own validation passes the body through.
        let flags = platform::faults::validate(&body).expect("valid");
        assert_eq!(
            flags.active(),
            ["payment_failure_percent", "catalog_latency", "smtp_failure"]
        );
    }

    #[test]
    fn a_word_where_a_number_belongs_names_the_field() {
        let form = FaultsForm {
            payment_latency_ms: "slow".into(),
            ..FaultsForm::default()
        };
        let message = body_of(&form).expect_err("not a number");
        assert!(message.contains("payment_latency_ms"), "{message}");
    }
}
