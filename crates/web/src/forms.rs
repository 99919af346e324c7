//! Form posts: the CSRF check every form passes, and the field errors a form re-renders with.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::header::{HOST, ORIGIN};
use platform::client::Reply;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::PageError;
use crate::session::Session;

/// Form bodies above this are refused (no page posts anything close).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// An `application/x-www-form-urlencoded` body whose `_csrf` field matches the session's token.
///
/// Declare fields as `String`/`Option<String>` and validate in the handler, so bad input
/// re-renders the form with messages instead of failing here. Repeated keys (checkbox groups):
/// extract `Form<Vec<(String, String)>>`.
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let session = request
            .extensions()
            .get::<Session>()
            .cloned()
            .ok_or_else(|| PageError::Internal(anyhow::anyhow!("the session layer is not installed")))?;
        if !same_origin(request.headers()) {
            return Err(PageError::Csrf);
        }
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("application/x-www-form-urlencoded") {
            return Err(PageError::BadRequest("expected a form submission".into()));
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|_| PageError::BadRequest("the form could not be read".into()))?;
        if body.len() > MAX_FORM_BYTES {
            return Err(PageError::BadRequest("the form is too large".into()));
        }
        let sent = form_urlencoded::parse(&body)
            .find(|(k, _)| k == "_csrf")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if !tokens_match(&sent, &session.csrf()) {
            metrics::counter!("web_csrf_rejected_total").increment(1);
            return Err(PageError::Csrf);
        }
        serde_urlencoded::from_bytes(&body)
            .map(Form)
            .map_err(|e| PageError::BadRequest(format!("the form is malformed: {e}")))
    }
}

/// Browsers send `Origin` on cross-site posts: when present it must name this host. (The token
/// is the real defence; this refuses forged posts before the body is read.)
fn same_origin(headers: &http::HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split("://").nth(1).unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn tokens_match(sent: &str, expected: &str) -> bool {
    if sent.is_empty() || sent.len() != expected.len() {
        return false;
    }
    sent.bytes()
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// In a template a form's errors are a map where every field is defined: `errors.email` is the
/// message, or none when the field has none. A form without errors is the normal case, not a
/// missing value, so templates test `{% if errors.email %}` even when undefined values fail.
impl From<FieldErrors> for minijinja::Value {
    fn from(errors: FieldErrors) -> Self {
        minijinja::Value::from_object(TemplateErrors(errors.0))
    }
}

#[derive(Debug)]
struct TemplateErrors(BTreeMap<String, String>);

impl minijinja::value::Object for TemplateErrors {
    fn repr(self: &std::sync::Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Map
    }

    fn get_value(self: &std::sync::Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let message = key.as_str().and_then(|field| self.0.get(field));
        Some(message.map_or(minijinja::Value::from(()), minijinja::Value::from))
    }

    fn enumerate(self: &std::sync::Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Values(self.0.keys().map(minijinja::Value::from).collect())
    }
}

/// The body of a form that is only a button (sign out, cancel): the CSRF token and nothing else.
#[derive(Debug, serde::Deserialize)]
pub struct NoFields {}

/// Messages by field name, shown next to the inputs (`field_error(errors, "email")`); the key
/// `_form` holds a message about the whole form.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `message` for `field` (the first message per field wins).
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.to_owned()).or_insert_with(|| message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    /// Takes the API's problem+json answer: each `errors[]` entry under its field (JSON paths
    /// like `address.city` kept as they are; map them in the page if its inputs are named
    /// differently), and the `detail` under `_form` when no field is named.
    pub fn from_problem(reply: &Reply) -> Self {
        let mut errors = Self::new();
        for RefusedField { field, message } in Refusal::of(reply).errors {
            errors.add(&field, message);
        }
        if errors.is_empty() {
            errors.add("_form", reply.problem_detail());
        }
        errors
    }
}

/// What a page reads of an API's refusal (a problem document): its type and the fields it
/// names, in the order the API gave them.
#[derive(Debug, Default, Deserialize)]
pub struct Refusal {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub errors: Vec<RefusedField>,
}

/// A field a refusal names, with the API's words.
#[derive(Debug, Deserialize)]
pub struct RefusedField {
    pub field: String,
    pub message: String,
}

impl Refusal {
    /// The reply's problem; a success, or an answer that is not a problem, reads as a refusal
    /// without details.
    pub fn of(reply: &Reply) -> Self {
        if reply.is_success() {
            return Self::default();
        }
        serde_json::from_slice(&reply.body).unwrap_or_default()
    }

    /// Whether the refusal names `field`.
    pub fn names(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};

    #[test]
    fn csrf_tokens_must_match_exactly() {
        assert!(tokens_match("abc123", "abc123"));
        assert!(!tokens_match("abc124", "abc123"));
        assert!(!tokens_match("abc12", "abc123"));
        assert!(!tokens_match("", ""));
    }

    #[test]
    fn cross_site_origins_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&headers), "no Origin header: the token decides");
        headers.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
    }

    #[test]
    fn problems_become_field_errors() {
        let reply = Reply {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            headers: HeaderMap::new(),
            body: br#"{"title":"Invalid","detail":"2 fields","errors":[{"field":"email","message":"is taken"},{"field":"name","message":"too long"}]}"#.as_slice().into(),
        };
        let errors = FieldErrors::from_problem(&reply);
        assert_eq!(errors.get("email"), Some("is taken"));
        assert_eq!(errors.get("name"), Some("too long"));
        assert_eq!(errors.get("_form"), None);
        let reply = Reply {
            status: StatusCode::CONFLICT,
            headers: HeaderMap::new(),
            body: br#"{"title":"Conflict","detail":"out of stock"}"#.as_slice().into(),
        };
        assert_eq!(FieldErrors::from_problem(&reply).get("_form"), Some("out of stock"));
    }
}
