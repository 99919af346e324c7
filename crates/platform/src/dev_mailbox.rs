//! The development mailbox: in embedded mode, messages that would be e-mailed are kept in memory
//! and listed at `GET /api/v1/dev/mailbox`, so a newcomer can complete sign-up without SMTP.
//! Never mounted in production mode.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::http::{Json, Query};

const CAPACITY: usize = 1000;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailMessage {
    pub id: uuid::Uuid,
    pub to: String,
    pub subject: String,
    pub body: String,
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
}

/// Keeps the newest [`CAPACITY`] messages.
#[derive(Debug, Clone, Default)]
pub struct DevMailbox {
    messages: Arc<Mutex<VecDeque<MailMessage>>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MailboxQuery {
    /// Required: the address whose messages to list (case-insensitive).
    pub to: Option<String>,
}

impl DevMailbox {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn deliver(&self, to: &str, subject: &str, body: &str) {
        let message = MailMessage {
            id: uuid::Uuid::now_v7(),
            to: to.to_owned(),
            subject: subject.to_owned(),
            body: body.to_owned(),
            sent_at: crate::clock::now(),
        };
        let mut messages = crate::sync::lock(&self.messages);
        if messages.len() == CAPACITY {
            messages.pop_front();
        }
        messages.push_back(message);
    }

    /// Newest first.
    pub fn list(&self, to: Option<&str>) -> Vec<MailMessage> {
        let messages = crate::sync::lock(&self.messages);
        messages
            .iter()
            .rev()
            .filter(|m| to.is_none_or(|t| m.to.eq_ignore_ascii_case(t.trim())))
            .cloned()
            .collect()
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/api/v1/dev/mailbox", get(list_messages))
            .with_state(self)
    }
}

/// Lists the messages the platform "sent" to one address, newest first (development only: on a
/// loopback listener, see `EMPORIUM_DEV_MAILBOX`). Never lists everyone's mail at once.
#[utoipa::path(get, path = "/api/v1/dev/mailbox", tag = "dev",
    params(MailboxQuery),
    responses((status = 200, description = "Messages, newest first", body = Vec<MailMessage>),
        (status = 422, description = "`to` is missing", body = crate::Problem)))]
pub async fn list_messages(
    State(mailbox): State<DevMailbox>,
    Query(q): Query<MailboxQuery>,
) -> Result<Json<Vec<MailMessage>>, crate::Problem> {
    match q.to.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(to) => Ok(Json(mailbox.list(Some(to)))),
        None => Err(crate::Problem::validation(vec![crate::FieldError::new(
            "to",
            "is required: the mailbox lists the messages of one address",
        )])),
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_messages))]
struct DevDoc;

/// The OpenAPI description of the dev mailbox (embedded mode only).
pub fn openapi() -> utoipa::openapi::OpenApi {
    <DevDoc as utoipa::OpenApi>::openapi()
}
