//! The client's error type: one variant per way a call can fail, carrying
//! the server's own message when there is one.

use std::path::PathBuf;
use std::time::Duration;

/// Why a call to the server failed.
///
/// [`ClientError::Api`] carries the HTTP status and the `error` message of the
/// server's JSON body, so a tool can print exactly what the server said.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL given to the builder cannot be used.
    #[error("invalid server url {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument cannot be sent (e.g. a queue name that is not a plain word).
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The server answered with an error status (after any retries for 5xx).
    #[error(
        "{endpoint}: server said {status}: {message}{}",
        request_id.as_deref().map(|id| format!(" (request {id})")).unwrap_or_default()
    )]
    Api {
        /// The endpoint, e.g. `create_release`.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The server's `error` message (or the start of the body when it sent no JSON).
        message: String,
        /// The id the server gave the request (`X-Request-Id`), which its
        /// log lines about it carry: the thing to quote to its operator.
        request_id: Option<String>,
    },
    /// The server could not be reached (after the retries).
    #[error("{endpoint}: cannot reach the server at {url}: {detail}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// The URL that was called.
        url: String,
        /// What the connection attempt reported.
        detail: String,
    },
    /// No answer within the request timeout (after the retries).
    #[error("{endpoint}: no answer from {url} within {timeout:?}")]
    Timeout {
        /// The endpoint.
        endpoint: String,
        /// The URL that was called.
        url: String,
        /// The per-request timeout.
        timeout: Duration,
    },
    /// The server answered 2xx with a body that is not what the API promises.
    #[error("{endpoint}: unexpected answer from the server: {reason}")]
    InvalidResponse {
        /// The endpoint.
        endpoint: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// A local file to upload or write cannot be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Any other transport failure reported by the HTTP library.
    #[error("{endpoint}: {source}")]
    Http {
        /// The endpoint.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
}

impl ClientError {
    /// The HTTP status the server answered with, for [`ClientError::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's own message, for [`ClientError::Api`].
    pub fn server_message(&self) -> Option<&str> {
        match self {
            ClientError::Api { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The id the server gave the failed request, for [`ClientError::Api`]
    /// (when the server sent one, as this project's does).
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ClientError::Api { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// True when the server refused the API key (401 or 403).
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    /// True when the server said the thing asked for does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}
