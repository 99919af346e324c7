//! Exchange rates for display currencies: the list with each rate's date, a form to set one
//! (or replace it), and Remove. Catalog checks every field; `emporium rates import` loads the
//! ECB's file instead of typing.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::catalog::{RateInput, RatesView};
use http::StatusCode;
use minijinja::context;
use platform::http::Path;
use serde::{Deserialize, Serialize};

use super::{segment, sentence};
use crate::forms::{FieldErrors, Form, NoFields, Refusal};
use crate::render::{page_with_status, value_of};
use crate::{PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/rates", get(rates_page).post(set_rate))
        .route("/admin/rates/{currency}/remove", post(remove_rate))
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct RateForm {
    #[serde(default)]
    currency: String,
    #[serde(default)]
    rate: String,
    #[serde(default)]
    as_of: String,
}

async fn render(
    web: &WebState,
    session: &Session,
    status: StatusCode,
    form: &RateForm,
    errors: FieldErrors,
) -> Result<Response, PageError> {
    let rates: RatesView = web.api(session).get_json("catalog", "/api/v1/catalog/rates").await?;
    page_with_status(
        status,
        session,
        "admin/rates.html",
        context! { rates => value_of(&rates), form => value_of(form), errors => errors },
    )
}

async fn rates_page(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_staff()?;
    let today = platform::clock::now().date();
    let form = RateForm {
        as_of: today.to_string(),
        ..RateForm::default()
    };
    render(&web, &session, StatusCode::OK, &form, FieldErrors::new()).await
}

async fn set_rate(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<RateForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let code = form.currency.trim().to_ascii_uppercase();
    let mut errors = FieldErrors::new();
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.add("currency", "Enter a three-letter ISO 4217 code, e.g. USD.");
        return render(&web, &session, StatusCode::UNPROCESSABLE_ENTITY, &form, errors).await;
    }
    let api = web.api(&session);
    let input = RateInput {
        rate: Some(form.rate.trim().to_owned()),
        as_of: Some(form.as_of.trim().to_owned()),
    };
    let reply = api
        .put("catalog", &format!("/api/v1/catalog/rates/{}", segment(&code)), &input)
        .await?;
    if reply.is_success() {
        session.flash("success", format!("The {code} rate is saved."));
        return Ok(Redirect::to("/admin/rates").into_response());
    }
    if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
        return Err(api.error_for(&reply));
    }
    for refused in Refusal::of(&reply).errors {
        errors.add(&refused.field, sentence(&refused.message));
    }
    if errors.is_empty() {
        errors.add("_form", sentence(&reply.problem_detail()));
    }
    render(&web, &session, StatusCode::UNPROCESSABLE_ENTITY, &form, errors).await
}

async fn remove_rate(
    State(web): State<WebState>,
    session: Session,
    Path(currency): Path<String>,
    Form(_): Form<NoFields>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let api = web.api(&session);
    let reply = api
        .delete("catalog", &format!("/api/v1/catalog/rates/{}", segment(&currency)))
        .await?;
    match reply.status {
        s if s.is_success() => session.flash("success", format!("The {currency} rate is removed.")),
        StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY => {
            session.flash("info", format!("There was no {currency} rate to remove."));
        }
        _ => return Err(api.error_for(&reply)),
    }
    Ok(Redirect::to("/admin/rates").into_response())
}
