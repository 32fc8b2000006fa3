//! The one path from any failure to an HTTP status and a JSON body
//! `{"success": false, "error": …}`.

use dpxdt_core::api::ErrorBody;
use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

use crate::error::Fault;
use crate::storage::StoreError;

/// How long a client is asked to wait after a 503.
const UNAVAILABLE_RETRY_SECS: u64 = 5;

/// A refused or failed API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed parameters (400).
    #[error("{0}")]
    BadRequest(String),
    /// No or wrong credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The key may not act on this (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such thing, or no such endpoint (404).
    #[error("{0}")]
    NotFound(String),
    /// Wrong method for the endpoint (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The upload, or what the build stores, is over a limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The build did this too often lately (429, with `Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        /// What hit which limit.
        message: String,
        /// Seconds until it may be tried again.
        retry_after_secs: u64,
    },
    /// A service the server relies on is down (503, with `Retry-After`).
    #[error("{0}")]
    Unavailable(String),
    /// A fault of the server (500); the details go to the log, not the client.
    #[error("internal error: {0}")]
    Internal(#[from] Fault),
}

impl ApiError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON response for this error.
    pub fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_SECS),
            _ => None,
        };
        let message = match &self {
            ApiError::Internal(fault) => {
                tracing::error!(%fault, "internal error");
                "internal server error (see the server log)".to_string()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            success: false,
            error: message,
        };
        let mut resp = warp::reply::with_status(warp::reply::json(&body), status).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert("retry-after", warp::http::HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                "www-authenticate",
                warp::http::HeaderValue::from_static("Basic realm=\"dpxdt\""),
            );
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            StoreError::Forbidden(m) => ApiError::Forbidden(m),
            StoreError::OverLimit(m) => {
                metrics::counter!("dpxdt_limits_hit_total", "kind" => "size").increment(1);
                ApiError::TooLarge(m)
            }
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::RateLimited {
                message,
                retry_after_secs,
            } => {
                metrics::counter!("dpxdt_limits_hit_total", "kind" => "rate").increment(1);
                ApiError::TooManyRequests {
                    message,
                    retry_after_secs,
                }
            }
            e @ (StoreError::Db(_) | StoreError::Io(_)) => Fault::new("using the store", e).into(),
        }
    }
}
