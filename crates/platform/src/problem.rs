//! RFC 9457 problem details: the one error shape every Emporium endpoint answers with.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::RequestContext;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the field (`email`, `items[2].qty`), or a header/query parameter name.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem. Build one with the constructors, then return it from a handler.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    #[schema(value_type = u16)]
    #[serde(serialize_with = "status_code")]
    pub status: StatusCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The `x-request-id` of the failed request, to quote in a bug report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    retry_after_secs: Option<u64>,
    /// What went wrong on our side, for the log line of a 5xx (never sent to the client).
    #[serde(skip)]
    cause: Option<String>,
}

/// Response extension carrying a problem's cause, so the platform stack can log every 5xx at
/// ERROR with its cause and request id in one place.
#[derive(Debug, Clone)]
pub struct ProblemCause(pub String);

fn status_code<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

/// Problem type URIs are tag URIs: stable names that do not pretend to be web pages.
fn problem_type(slug: &str) -> String {
    format!("tag:emporium.dev,2026:problem/{slug}")
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: impl Into<String>) -> Self {
        Self {
            kind: if slug.is_empty() {
                "about:blank".to_owned()
            } else {
                problem_type(slug)
            },
            title: title.into(),
            status,
            detail: None,
            instance: None,
            request_id: None,
            errors: Vec::new(),
            retry_after_secs: None,
            cause: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// This problem as the caller of a direct in-process call sees it: the same status, detail
    /// (or title) and field errors a caller over HTTP reads from the problem+json body.
    pub fn for_peer(self, peer: &'static str) -> contracts::api::ClientError {
        contracts::api::ClientError::Status {
            peer,
            status: self.status.as_u16(),
            detail: self.detail.unwrap_or(self.title),
            errors: self
                .errors
                .into_iter()
                .map(|e| contracts::api::FieldError {
                    field: e.field,
                    message: e.message,
                })
                .collect(),
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// Adds `Retry-After` (seconds) to the response.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_secs = Some(seconds.max(1));
        self
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }

    /// Records what went wrong for the log (the client never sees it).
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// 400: the request could not be read at all (malformed JSON, bad header syntax).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-request", "Malformed request").with_detail(detail)
    }

    /// 422 with one entry per invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid input")
            .with_detail(detail)
            .with_errors(errors)
    }

    /// 422 for a single field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication required").with_detail(detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").with_detail(detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found").with_detail(detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict").with_detail(detail)
    }

    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "version-mismatch",
            "Precondition failed",
        )
        .with_detail(detail)
    }

    pub fn too_many_requests(retry_after_secs: u64, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
            .with_detail(detail)
            .with_retry_after(retry_after_secs)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable").with_detail(detail)
    }

    /// 500: the cause is logged with the request id (by the platform stack, which logs every
    /// 5xx); the client only learns that it happened.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal server error")
            .with_detail("the request failed on our side; quote the request id when reporting it")
            .with_cause(format!("{cause:#}"))
    }

    /// An unexpected error: a 500, unless a database error in its chain says the database is
    /// unreachable (503, retry) or refused the input (422). Contexts map their catch-all
    /// `Internal(anyhow::Error)` variants through this.
    pub fn from_error(e: &anyhow::Error) -> Self {
        let chain = format!("{e:#}");
        e.chain()
            .find_map(|cause| cause.downcast_ref::<sqlx::Error>().and_then(database_problem))
            .map(|p| p.with_cause(chain.clone()))
            .unwrap_or_else(|| Self::internal(chain))
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.title)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        if let Some(ctx) = RequestContext::current() {
            self.instance.get_or_insert(ctx.path);
            self.request_id.get_or_insert(ctx.request_id);
        }
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, body).into_response();
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(ProblemCause(cause));
        }
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Database errors that reach a handler: the database being unreachable is a 503 with
/// `Retry-After`, input it cannot store a 422, anything else internal.
impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Self {
        let chain = error_chain(&e);
        match database_problem(&e) {
            Some(problem) => problem.with_cause(chain),
            None => Self::internal(chain),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// The database errors that are not our bug. Connection-level failures (closed or exhausted
/// pool, broken connection, PostgreSQL shutting down or refusing connections, SQLite busy) pass:
/// the client should retry. PostgreSQL refusing a character (U+0000 in `text`) is bad input; the
/// extractors reject control characters first, this is the safety net.
pub fn database_problem(e: &sqlx::Error) -> Option<Problem> {
    let unavailable = |secs: u64| {
        Problem::unavailable("the database is unavailable at the moment; retry shortly").with_retry_after(secs)
    };
    match e {
        sqlx::Error::PoolTimedOut => {
            Some(Problem::unavailable("the database is busy; retry shortly").with_retry_after(1))
        }
        sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => Some(unavailable(2)),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            let code = code.as_ref();
            // PostgreSQL SQLSTATEs have five characters; SQLite's codes are numbers.
            let pg = code.len() == 5;
            if pg && (code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")) {
                Some(unavailable(2))
            } else if pg && matches!(code, "22021" | "22P05") {
                Some(Problem::invalid_field(
                    "body",
                    "contains a character that cannot be stored (such as U+0000)",
                ))
            } else if !pg && matches!(code, "5" | "6" | "261" | "262" | "517") {
                // SQLITE_BUSY / SQLITE_LOCKED and their extended codes.
                Some(unavailable(1))
            } else {
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_caller_reads_the_status_detail_and_fields_an_http_caller_would() {
        let refused = Problem::conflict("not enough TEE-1")
            .with_errors(vec![FieldError::new("items[0].qty", "only 2 available")])
            .for_peer("inventory");
        assert_eq!(
            refused,
            contracts::api::ClientError::Status {
                peer: "inventory",
                status: 409,
                detail: "not enough TEE-1".into(),
                errors: vec![contracts::api::FieldError {
                    field: "items[0].qty".into(),
                    message: "only 2 available".into(),
                }],
            }
        );
        // Without a detail, the title (as `Reply::problem_detail` reads a body).
        let bare = Problem::new(StatusCode::FORBIDDEN, "", "Forbidden").for_peer("payments");
        assert!(
            matches!(bare, contracts::api::ClientError::Status { status: 403, ref detail, .. } if detail == "Forbidden")
        );
    }

    #[test]
    fn validation_problem_names_each_field() {
        let p = Problem::validation(vec![
            FieldError::new("email", "is not an email address"),
            FieldError::new("password", "is too short"),
        ]);
        let json = serde_json::to_value(&p).expect("json");
        assert_eq!(json["status"], 422);
        assert_eq!(json["errors"][0]["field"], "email");
        assert_eq!(json["errors"][1]["field"], "password");
        assert_eq!(json["type"], "tag:emporium.dev,2026:problem/validation");
    }

    #[test]
    fn connection_level_database_errors_are_503_with_retry_after() {
        for e in [
            sqlx::Error::PoolClosed,
            sqlx::Error::PoolTimedOut,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            sqlx::Error::Protocol("unexpected end of stream".into()),
        ] {
            let p = Problem::from(e);
            assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(p.retry_after_secs().is_some());
            assert!(p.cause().is_some(), "the cause is kept for the log");
        }
        let wrapped = anyhow::Error::new(sqlx::Error::PoolClosed).context("placing the order");
        let p = Problem::from_error(&wrapped);
        assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(p.cause().expect("cause").contains("placing the order"));
        let p = Problem::from_error(&anyhow::anyhow!("a bug"));
        assert_eq!(p.status, StatusCode::INTERNAL_SERVER_ERROR);
        let p = Problem::from(sqlx::Error::RowNotFound);
        assert_eq!(p.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn internal_problems_keep_their_cause_out_of_the_body() {
        let r = Problem::internal("disk on fire").into_response();
        assert_eq!(
            r.extensions().get::<ProblemCause>().map(|c| c.0.as_str()),
            Some("disk on fire")
        );
        let body = serde_json::to_string(&Problem::internal("disk on fire")).expect("json");
        assert!(!body.contains("disk on fire"));
    }

    #[test]
    fn response_has_problem_content_type_and_retry_after() {
        let r = Problem::too_many_requests(42, "slow down").into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "42");
    }
}
