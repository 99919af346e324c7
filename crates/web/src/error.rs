//! What a page shows when it cannot show itself: a friendly page with the right status, never a
//! stack trace. The details go to the log with the request id.

use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderValue, StatusCode, header};
use minijinja::context;

/// Why a page could not be served.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    /// Not signed in: go to the login page and come back to `next` afterwards.
    #[error("login required")]
    LoginRequired { next: String },
    /// A form without the session's CSRF token (forged, or from an expired session).
    #[error("CSRF token missing or invalid")]
    Csrf,
    /// A context did not answer (down, timing out or failing).
    #[error("{what} is unavailable")]
    Unavailable { what: String },
    #[error("too many requests")]
    RateLimited { retry_after: Option<u64> },
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A request the API refused for a reason the page has no better way to show.
    #[error("{status}: {detail}")]
    Refused { status: StatusCode, detail: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl PageError {
    fn status(&self) -> StatusCode {
        match self {
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::Forbidden => StatusCode::FORBIDDEN,
            PageError::LoginRequired { .. } => StatusCode::SEE_OTHER,
            PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            PageError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Refused { status, .. } => *status,
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Heading and explanation for the visitor.
    fn message(&self) -> (&'static str, String) {
        match self {
            PageError::NotFound => ("Page not found", "We could not find what you were looking for.".into()),
            PageError::Forbidden => ("Access denied", "Your account is not allowed to open this page.".into()),
            PageError::LoginRequired { .. } => ("Please sign in", String::new()),
            PageError::Csrf => (
                "This form has expired",
                "For your security the form could not be accepted. Go back, reload the page and try again.".into(),
            ),
            PageError::Unavailable { what } => (
                "Temporarily unavailable",
                format!("Part of the shop ({what}) is not answering right now. Please try again in a moment."),
            ),
            PageError::RateLimited { .. } => (
                "Slow down a little",
                "Too many requests came from you in a short time. Please wait a moment and try again.".into(),
            ),
            PageError::BadRequest(detail) => ("Something is wrong with this request", detail.clone()),
            PageError::Refused { detail, .. } => ("We could not do that", detail.clone()),
            PageError::Internal(_) => (
                "Something went wrong",
                "An unexpected error occurred on our side. It has been logged; please try again.".into(),
            ),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let PageError::LoginRequired { next } = &self {
            let target = format!("/login?next={}", urlencode(crate::safe_next(next)));
            return Redirect::to(&target).into_response();
        }
        if let PageError::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "page failed");
        }
        let status = self.status();
        let (title, detail) = self.message();
        let ctx = context! { status => status.as_u16(), title => title, detail => detail.clone() };
        // No session here: the layout's globals say so (no user, no flash, no current path); the
        // session layer renders it again with the visitor's own.
        let sessionless = context! { ..ctx.clone(), ..context! { user => (), flash => (), path => "", csrf => "" } };
        let page = crate::render::render_page("error.html", sessionless);
        let mut response = match page {
            Ok(html) => (status, axum::response::Html(html)).into_response(),
            // The error page itself failed to render: say so in plain text.
            Err(_) => (status, format!("{title}. {detail}")).into_response(),
        };
        match &self {
            PageError::Unavailable { .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            PageError::RateLimited {
                retry_after: Some(secs),
            } => {
                if let Ok(value) = HeaderValue::try_from(secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
        // The session layer renders it again with the visitor's header (signed in or not).
        response.extensions_mut().insert(ErrorPage(ctx));
        response
    }
}

/// The context of an error page, for the session layer to render it for the current visitor.
#[derive(Clone)]
pub(crate) struct ErrorPage(pub minijinja::Value);

pub(crate) fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
