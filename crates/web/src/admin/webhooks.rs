//! Outbound webhooks in the console: the endpoints with a form to register one (its secret is
//! shown once, on the page that answers the form), an endpoint's page with its settings, secret
//! rotation, removal and delivery log (replay per message), and one message's attempts. The
//! notifications API checks every field; its refusals are shown next to the fields they name.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::notifications::{
    WebhookEndpointList, WebhookEndpointRequest, WebhookEndpointView, WebhookMessageList, WebhookMessageView,
};
use http::StatusCode;
use minijinja::context;
use platform::http::Path;
use serde::{Deserialize, Serialize};

use super::{segment, sentence};
use crate::api::Api;
use crate::forms::{FieldErrors, Form, NoFields, Refusal};
use crate::render::{page_with_status, value_of};
use crate::{PageError, Session, WebState};

const API: &str = "/api/v1/notifications/webhooks/endpoints";

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/webhooks", get(list_page).post(create))
        .route("/admin/webhooks/{id}", get(endpoint_page).post(update))
        .route("/admin/webhooks/{id}/rotate", post(rotate))
        .route("/admin/webhooks/{id}/delete", post(delete))
        .route("/admin/webhooks/{id}/messages/{message}", get(message_page))
        .route("/admin/webhooks/{id}/messages/{message}/replay", post(replay))
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct EndpointForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: String,
    /// One pattern per line (or comma-separated).
    #[serde(default)]
    event_types: String,
    /// A checkbox: present when ticked (the edit form only).
    #[serde(default)]
    enabled: String,
}

impl EndpointForm {
    fn request(&self, editing: bool) -> WebhookEndpointRequest {
        let types: Vec<String> = self
            .event_types
            .split([',', '\n'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        WebhookEndpointRequest {
            url: Some(self.url.trim().to_owned()),
            description: Some(self.description.trim().to_owned()),
            event_types: Some(types),
            enabled: editing.then_some(!self.enabled.is_empty()),
        }
    }

    fn of(e: &WebhookEndpointView) -> Self {
        Self {
            url: e.url.clone(),
            description: e.description.clone(),
            event_types: e.event_types.join("\n"),
            enabled: if e.enabled { "on".into() } else { String::new() },
        }
    }
}

/// The API's refusal as field errors of the form.
fn refusal(reply: &platform::client::Reply) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for refused in Refusal::of(reply).errors {
        errors.add(&refused.field, sentence(&refused.message));
    }
    if errors.is_empty() {
        errors.add("_form", sentence(&reply.problem_detail()));
    }
    errors
}

async fn render_list(
    web: &WebState,
    session: &Session,
    status: StatusCode,
    form: &EndpointForm,
    errors: FieldErrors,
) -> Result<Response, PageError> {
    let endpoints: WebhookEndpointList = web.api(session).get_json("notifications", API).await?;
    page_with_status(
        status,
        session,
        "admin/webhooks.html",
        context! { endpoints => value_of(&endpoints.items), form => value_of(form), errors => errors },
    )
}

async fn list_page(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_staff()?;
    let form = EndpointForm {
        event_types: "ordering.order.*".into(),
        ..EndpointForm::default()
    };
    render_list(&web, &session, StatusCode::OK, &form, FieldErrors::new()).await
}

async fn create(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<EndpointForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let api = web.api(&session);
    let reply = api.post("notifications", API, &form.request(false)).await?;
    if reply.is_success() {
        let created: WebhookEndpointView = api.decode(reply)?;
        // The secret is shown here, once: it is not kept anywhere the console can show it again.
        return render_endpoint(
            &web,
            &session,
            StatusCode::CREATED,
            &created.id.to_string(),
            None,
            created.secret,
        )
        .await;
    }
    if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
        return Err(api.error_for(&reply));
    }
    render_list(&web, &session, StatusCode::UNPROCESSABLE_ENTITY, &form, refusal(&reply)).await
}

async fn load_endpoint(api: &Api<'_>, id: &str) -> Result<WebhookEndpointView, PageError> {
    api.get_json("notifications", &format!("{API}/{}", segment(id))).await
}

async fn render_endpoint(
    web: &WebState,
    session: &Session,
    status: StatusCode,
    id: &str,
    edit: Option<(EndpointForm, FieldErrors)>,
    secret: Option<String>,
) -> Result<Response, PageError> {
    let api = web.api(session);
    let endpoint = load_endpoint(&api, id).await?;
    let log: WebhookMessageList = api
        .get_json("notifications", &format!("{API}/{}/messages?limit=50", segment(id)))
        .await?;
    let (form, errors) = edit.unwrap_or_else(|| (EndpointForm::of(&endpoint), FieldErrors::new()));
    page_with_status(
        status,
        session,
        "admin/webhook.html",
        context! {
            endpoint => value_of(&endpoint),
            messages => value_of(&log.items),
            form => value_of(&form),
            errors => errors,
            secret => secret,
        },
    )
}

async fn endpoint_page(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    render_endpoint(&web, &session, StatusCode::OK, &id, None, None).await
}

async fn update(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<EndpointForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let api = web.api(&session);
    let reply = api
        .patch("notifications", &format!("{API}/{}", segment(&id)), &form.request(true))
        .await?;
    if reply.is_success() {
        session.flash("success", "The endpoint is saved.");
        return Ok(Redirect::to(&format!("/admin/webhooks/{}", segment(&id))).into_response());
    }
    if reply.status != StatusCode::UNPROCESSABLE_ENTITY {
        return Err(api.error_for(&reply));
    }
    let errors = refusal(&reply);
    render_endpoint(
        &web,
        &session,
        StatusCode::UNPROCESSABLE_ENTITY,
        &id,
        Some((form, errors)),
        None,
    )
    .await
}

async fn rotate(
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
            &format!("{API}/{}/rotate-secret", segment(&id)),
            &serde_json::json!({}),
        )
        .await?;
    if !reply.is_success() {
        return Err(api.error_for(&reply));
    }
    let rotated: WebhookEndpointView = api.decode(reply)?;
    render_endpoint(&web, &session, StatusCode::OK, &id, None, rotated.secret).await
}

async fn delete(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(_): Form<NoFields>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let api = web.api(&session);
    let reply = api.delete("notifications", &format!("{API}/{}", segment(&id))).await?;
    match reply.status {
        s if s.is_success() => session.flash("success", "The endpoint and its delivery log are removed."),
        StatusCode::NOT_FOUND => session.flash("info", "That endpoint was already removed."),
        _ => return Err(api.error_for(&reply)),
    }
    Ok(Redirect::to("/admin/webhooks").into_response())
}

async fn message_page(
    State(web): State<WebState>,
    session: Session,
    Path((id, message)): Path<(String, String)>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let api = web.api(&session);
    let endpoint = load_endpoint(&api, &id).await?;
    let message: WebhookMessageView = api
        .get_json(
            "notifications",
            &format!("{API}/{}/messages/{}", segment(&id), segment(&message)),
        )
        .await?;
    let payload = message
        .payload
        .as_ref()
        .and_then(|p| serde_json::to_string_pretty(p).ok())
        .unwrap_or_default();
    page_with_status(
        StatusCode::OK,
        &session,
        "admin/webhook_message.html",
        context! { endpoint => value_of(&endpoint), message => value_of(&message), payload => payload },
    )
}

async fn replay(
    State(web): State<WebState>,
    session: Session,
    Path((id, message)): Path<(String, String)>,
    Form(_): Form<NoFields>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let api = web.api(&session);
    let reply = api
        .post(
            "notifications",
            &format!("{API}/{}/messages/{}/replay", segment(&id), segment(&message)),
            &serde_json::json!({}),
        )
        .await?;
    match reply.status {
        s if s.is_success() => session.flash("success", "The message is queued to be sent again."),
        StatusCode::CONFLICT => session.flash("error", sentence(&reply.problem_detail())),
        _ => return Err(api.error_for(&reply)),
    }
    Ok(Redirect::to(&format!("/admin/webhooks/{}", segment(&id))).into_response())
}
