//! What a call to another context can fail with, whatever carries it (HTTP between processes, or
//! a direct call inside one).

/// One invalid input field of a problem answer (`errors[]` of RFC 9457 problem+json).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// JSON path of the field (`email`, `items[2].qty`), or a header/query parameter name.
    pub field: String,
    #[serde(default)]
    pub message: String,
}

/// Why a call to another context produced no answer of the published shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No answer at all: unreachable, timed out, no service credentials. Worth retrying.
    #[error("{peer} is unavailable: {detail}")]
    Unreachable { peer: &'static str, detail: String },
    /// The callee answered with an error status and its problem: a refusal (4xx) or a failure on
    /// its side (5xx, worth retrying).
    #[error("{peer} answered {status}: {detail}")]
    Status {
        peer: &'static str,
        status: u16,
        /// The problem's `detail` (or `title`, or the status when there is no problem body).
        detail: String,
        /// The problem's `errors[]`: which input fields were refused.
        errors: Vec<FieldError>,
    },
    /// A success status whose body is not the published shape (a build of the callee that does
    /// not speak this version of the language).
    #[error("{peer} answered {status}: {detail}")]
    Malformed {
        peer: &'static str,
        status: u16,
        detail: String,
    },
}

impl ClientError {
    /// The context that was called.
    pub fn peer(&self) -> &'static str {
        match self {
            Self::Unreachable { peer, .. } | Self::Status { peer, .. } | Self::Malformed { peer, .. } => peer,
        }
    }

    /// The error status the callee answered with, if it answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the same call may succeed later: no answer, or a failure on the callee's side.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Status { status, .. } => *status >= 500,
            Self::Malformed { .. } => false,
        }
    }
}
