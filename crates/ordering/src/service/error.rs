//! Everything that can go wrong in ordering's use cases, and how each maps to HTTP.

use platform::FieldError;

use crate::peers::PeerError;
use crate::store::{Refusal, StoreError};
use crate::views::QuoteView;

/// Everything that can go wrong in ordering, mapped to HTTP once.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict { detail: String, errors: Vec<FieldError> },
    /// A client price or expected total differs from the current one: 409 with the current quote.
    #[error("prices changed since you last saw them")]
    PriceChanged {
        errors: Vec<FieldError>,
        quote: Box<QuoteView>,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl OrderError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub(crate) fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 4xx answers: the request was refused and (for checkout) nothing was written.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Unavailable(_) | Self::Internal(_))
    }
}

impl From<StoreError> for OrderError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("no such order".into()),
            StoreError::Db(sqlx::Error::PoolTimedOut) => {
                Self::Unavailable("the database is busy; retry shortly".into())
            }
            // The sqlx error itself, so Problem::from_error can tell an outage (503) from a bug.
            StoreError::Db(e) => Self::Internal(e.into()),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<PeerError> for OrderError {
    fn from(e: PeerError) -> Self {
        match e {
            PeerError::Unavailable { .. } => Self::Unavailable(e.to_string()),
            PeerError::Unexpected { .. } => Self::Internal(anyhow::anyhow!(e.to_string())),
        }
    }
}

impl From<Refusal> for OrderError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Conflict(detail) => Self::conflict(detail),
            Refusal::Invalid { field, message } => Self::invalid(field, message),
            Refusal::Stale => Self::conflict("the order changed meanwhile; read it again"),
            Refusal::Fields {
                conflict: Some(detail),
                errors,
            } => Self::Conflict { detail, errors },
            Refusal::Fields { conflict: None, errors } => Self::Validation(errors),
        }
    }
}
