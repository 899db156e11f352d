//! The one place API errors become HTTP responses: RFC 9457 problem+json
//! with a stable `type`, a safe `detail`, and the cause logged server-side
//! for 5xx (never sent to the peer).

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use ward_identity::ca::CaError;

use crate::store::StoreError;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No verified client certificate where one is required.
    #[error("this endpoint requires a client certificate (an admin or agent SVID)")]
    Unauthenticated,
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Enrollment or renewal refused (bad token, wrong identity, revoked...).
    #[error("{0}")]
    Refused(String),
    /// Malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Well-formed but unacceptable content (an invalid policy bundle, failing
    /// tests): 422 with every problem listed.
    #[error("{0}")]
    Invalid(String),
    /// A request body over the endpoint's limit: 413.
    #[error("{0}")]
    TooLarge(String),
    /// Temporarily unable (a busy or stopping subsystem); retry.
    #[error("{0}")]
    Unavailable(String),
    /// Our fault; the cause is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Refused(_) => (StatusCode::FORBIDDEN, "refused"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug) = self.status();
        if let Self::Internal(cause) = &self {
            tracing::error!(%cause, "API request failed");
        }
        let body = json!({
            "type": format!("urn:ward:problem:{slug}"),
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": self.to_string(),
        });
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            Json(body),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AgentExists(_)
            | StoreError::InvalidTransition { .. }
            | StoreError::Authority(_) => Self::Conflict(e.to_string()),
            StoreError::AgentNotFound(_) | StoreError::PolicyNotFound(_) => {
                Self::NotFound(e.to_string())
            }
            StoreError::AgentNotActive { .. } | StoreError::InvalidToken => {
                Self::Refused(e.to_string())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<CaError> for ApiError {
    fn from(e: CaError) -> Self {
        match e {
            CaError::Csr(_) | CaError::Refused(_) => Self::Refused(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// Fallback for unknown routes.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".to_owned())
}

impl From<crate::authority::AuthorityError> for ApiError {
    fn from(e: crate::authority::AuthorityError) -> Self {
        use crate::authority::AuthorityError;
        match e {
            AuthorityError::Ca(e) => e.into(),
            AuthorityError::Store(e) => e.into(),
            AuthorityError::Unavailable(m) => Self::Conflict(m),
            other @ AuthorityError::Corrupt { .. } => Self::Internal(other.to_string()),
        }
    }
}
