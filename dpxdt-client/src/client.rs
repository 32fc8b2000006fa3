//! The [`Client`], its [`ClientBuilder`], and the one place where requests are
//! sent: authentication, timeout, retries with jittered exponential backoff
//! (only of requests that are safe to repeat, see [`Repeat`]), and the
//! mapping of error answers to [`ClientError`].

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use dpxdt_core::api::ErrorBody;
use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::ClientError;

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of retries after the first attempt.
pub const DEFAULT_RETRIES: u32 = 4;
/// Default wait before the first retry; it doubles on each further retry.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// How much of a non-JSON error body is kept in the message.
const MAX_MESSAGE_LEN: usize = 300;

/// Whether a request may be sent again when an attempt failed in a way
/// that leaves its effect unknown (a timeout, a lost connection, a 5xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Repeating it changes nothing more: reads, content-addressed uploads,
    /// `report_run`, `request_run` with the same data, verdicts,
    /// heartbeats. A repeated lease only leaves a task leased until its
    /// lease runs out, when it is handed out again.
    Safe,
    /// It would create a second thing, so it carries an `Idempotency-Key`
    /// (the same for every attempt) that the server answers from memory.
    WithKey,
    /// It would create a second thing and cannot carry a key: sent once.
    /// `create_api_key` (the server does not keep the new secret to replay
    /// it) and adding a queue task.
    Never,
}

impl Repeat {
    /// The rule for an endpoint (its path under the API root).
    pub fn of(endpoint: &str) -> Repeat {
        match endpoint {
            "create_release" | "create_build" => Repeat::WithKey,
            "create_api_key" => Repeat::Never,
            e if e.starts_with("work_queue/") && e.ends_with("/add") => Repeat::Never,
            _ => Repeat::Safe,
        }
    }
}

/// A fresh key, unique across processes and calls (not a secret).
fn new_idempotency_key() -> String {
    use sha1::{Digest, Sha1};
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let random = RandomState::new().hash_one(now);
    let seed = format!(
        "{now}-{}-{}-{random}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    hex::encode(Sha1::digest(seed.as_bytes()))
}

/// Builds a [`Client`].
///
/// ```
/// use std::time::Duration;
/// use dpxdt_client::ClientBuilder;
///
/// let client = ClientBuilder::new("http://127.0.0.1:5000/api")
///     .api_key("key-id", "key-secret")
///     .timeout(Duration::from_secs(30))
///     .retries(3)
///     .build()
///     .unwrap();
/// assert_eq!(client.base_url().as_str(), "http://127.0.0.1:5000/api/");
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<Credentials>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    user_agent: String,
    /// Extra trusted CA certificates (PEM), besides the system's.
    ca_pem: Vec<Vec<u8>>,
}

impl ClientBuilder {
    /// Starts a builder for the server whose API lives at `base_url`
    /// (the original's `--release_server_prefix`, e.g.
    /// `https://dpxdt.example.com/api`). A bare origin such as
    /// `http://127.0.0.1:5000` means its `/api`.
    pub fn new(base_url: &str) -> Self {
        ClientBuilder {
            base_url: base_url.to_string(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            backoff: DEFAULT_BACKOFF,
            user_agent: concat!("dpxdt-client/", env!("CARGO_PKG_VERSION")).to_string(),
            ca_pem: Vec::new(),
        }
    }

    /// Authenticates every request with this API key (HTTP Basic: id and secret).
    pub fn api_key(&mut self, id: &str, secret: &str) -> &mut Self {
        self.api_key = Some(Credentials {
            id: id.to_string(),
            secret: secret.to_string(),
        });
        self
    }

    /// Gives up on one attempt of a request after this long (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// Retries a request this many times after connection errors, timeouts
    /// and 5xx answers (default [`DEFAULT_RETRIES`]). 4xx answers are never
    /// retried, and neither is a request that is not safe to repeat
    /// (`create_api_key`, adding a queue task): a lost answer could
    /// otherwise create a second one. `create_release` and `create_build`
    /// carry an `Idempotency-Key` the server honours, so they are retried.
    pub fn retries(&mut self, retries: u32) -> &mut Self {
        self.retries = retries;
        self
    }

    /// Waits about this long before the first retry, doubling each time up
    /// to 8 s (default [`DEFAULT_BACKOFF`]); each wait gets a random extra of
    /// up to itself, so clients that failed together do not retry together.
    pub fn backoff(&mut self, initial: Duration) -> &mut Self {
        self.backoff = initial;
        self
    }

    /// Sets the `User-Agent` header.
    pub fn user_agent(&mut self, user_agent: &str) -> &mut Self {
        self.user_agent = user_agent.to_string();
        self
    }

    /// Also trusts the CA certificates in this PEM bundle for `https://`
    /// servers (e.g. a company CA), besides the system's trusted roots
    /// (which `SSL_CERT_FILE` replaces). Checked by [`ClientBuilder::build`].
    pub fn ca_certificates_pem(&mut self, pem: &[u8]) -> &mut Self {
        self.ca_pem.push(pem.to_vec());
        self
    }

    /// Builds the client.
    pub fn build(&self) -> Result<Client, ClientError> {
        let base_url = parse_base_url(&self.base_url)?;
        let mut extra_roots = Vec::new();
        for pem in &self.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| ClientError::InvalidArgument {
                    what: "CA certificates",
                    reason: "not a PEM bundle of X.509 certificates".into(),
                })?;
            extra_roots.extend(certs);
        }
        let http = reqwest::Client::builder()
            .user_agent(self.user_agent.clone())
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .tls_certs_merge(extra_roots)
            .build()
            .map_err(|e| ClientError::InvalidBaseUrl {
                url: self.base_url.clone(),
                reason: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(Client {
            http,
            base_url,
            api_key: self.api_key.clone(),
            timeout: self.timeout,
            retries: self.retries,
            backoff: self.backoff,
        })
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ClientError> {
    let invalid = |reason: String| ClientError::InvalidBaseUrl {
        url: raw.to_string(),
        reason,
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https".into()));
    }
    if url.host_str().is_none() {
        return Err(invalid("it has no host".into()));
    }
    url.set_query(None);
    url.set_fragment(None);
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/api/");
    } else if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// An API key; its `Debug` leaves the secret out, so a logged client or
/// builder never shows it.
#[derive(Clone)]
struct Credentials {
    id: String,
    secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An async client for one Depicted server.
///
/// Cheap to clone (clones share one connection pool). Every method is one
/// API call; see the crate docs for an end-to-end example.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: Url,
    api_key: Option<Credentials>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
}

impl Client {
    /// A builder for the server whose API lives at `base_url`.
    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder::new(base_url)
    }

    /// The API root every endpoint is joined to (always ends with `/`).
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The absolute URL of an endpoint given as path segments under the API root.
    pub(crate) fn endpoint_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("an http(s) URL has path segments");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// A request builder with the API key attached.
    pub(crate) fn request(&self, method: reqwest::Method, url: Url) -> RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.api_key {
            Some(Credentials { id, secret }) => builder.basic_auth(id, Some(secret)),
            None => builder,
        }
    }

    /// Sends a request built by `make` (called again for each attempt) and
    /// decodes the JSON answer.
    pub(crate) async fn call_json<T, F, Fut>(
        &self,
        endpoint: &str,
        url: &Url,
        make: F,
    ) -> Result<T, ClientError>
    where
        T: DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<RequestBuilder, ClientError>>,
    {
        let (_, body) = self.call_raw(endpoint, url, make).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::InvalidResponse {
            endpoint: endpoint.to_string(),
            reason: format!("{e} in {}", snippet(&body)),
        })
    }

    /// Sends a request built by `make` (called again for each attempt) and
    /// returns the content type and body of a 2xx answer.
    ///
    /// Connection errors, timeouts, broken bodies and 5xx answers are retried
    /// with jittered exponential backoff if the endpoint is safe to repeat
    /// ([`Repeat::of`]); 4xx answers are returned at once.
    pub(crate) async fn call_raw<F, Fut>(
        &self,
        endpoint: &str,
        url: &Url,
        mut make: F,
    ) -> Result<(Option<String>, Vec<u8>), ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<RequestBuilder, ClientError>>,
    {
        let repeat = Repeat::of(endpoint);
        // One key for every attempt: that is what lets the server tell a
        // repeat from a new request.
        let idempotency_key = (repeat == Repeat::WithKey).then(new_idempotency_key);
        let mut waits = self.backoff_schedule(repeat);
        loop {
            let mut request = make().await?;
            if let Some(key) = &idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            match self.attempt(endpoint, url, request).await {
                Ok(ok) => return Ok(ok),
                Err(Attempt::Final(err)) => return Err(err),
                Err(Attempt::Transient(err)) => {
                    let Some(wait) = waits.next() else {
                        return Err(err);
                    };
                    tracing::info!(endpoint, ?wait, "retrying: {err}");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The waits before each retry of a request: none for a request that
    /// must not be repeated.
    fn backoff_schedule(&self, repeat: Repeat) -> impl Iterator<Item = Duration> + use<> {
        let times = if repeat == Repeat::Never {
            0
        } else {
            self.retries as usize
        };
        ExponentialBuilder::new()
            .with_min_delay(self.backoff)
            .with_max_delay(MAX_BACKOFF)
            .with_factor(2.0)
            .with_max_times(times)
            .with_jitter()
            .build()
    }

    async fn attempt(
        &self,
        endpoint: &str,
        url: &Url,
        request: RequestBuilder,
    ) -> Result<(Option<String>, Vec<u8>), Attempt> {
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(endpoint, url, e))?;
        let status = response.status();
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|id| id.len() <= 64)
            .map(str::to_string);
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(endpoint, url, e))?
            .to_vec();
        if status.is_success() {
            return Ok((content_type, body));
        }
        let err = ClientError::Api {
            endpoint: endpoint.to_string(),
            status: status.as_u16(),
            message: error_message(status, &body),
            request_id,
        };
        if status.is_server_error() {
            Err(Attempt::Transient(err))
        } else {
            Err(Attempt::Final(err))
        }
    }

    fn transport_error(&self, endpoint: &str, url: &Url, err: reqwest::Error) -> Attempt {
        let endpoint = endpoint.to_string();
        let url = url.to_string();
        // TLS fails the same way every time: say why at once, no retries.
        if let Some(tls) = tls_error(&err) {
            let advice = match tls {
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                    "trust the server's CA with --ca-cert FILE (tools), \
                     ClientBuilder::ca_certificates_pem, or SSL_CERT_FILE"
                }
                _ => "does the server speak https on this port?",
            };
            return Attempt::Final(ClientError::Unreachable {
                endpoint,
                url,
                detail: format!("TLS: {tls} ({advice})"),
            });
        }
        if err.is_timeout() {
            Attempt::Transient(ClientError::Timeout {
                endpoint,
                url,
                timeout: self.timeout,
            })
        } else if err.is_connect() {
            let detail = root_cause(&err);
            Attempt::Transient(ClientError::Unreachable {
                endpoint,
                url,
                detail,
            })
        } else if err.is_builder() || err.is_redirect() {
            Attempt::Final(ClientError::Http {
                endpoint,
                source: err,
            })
        } else {
            // The request or its answer broke off mid-way: worth another try.
            Attempt::Transient(ClientError::Http {
                endpoint,
                source: err,
            })
        }
    }
}

/// The outcome of one failed attempt.
enum Attempt {
    /// Worth another attempt (connection error, timeout, 5xx).
    Transient(ClientError),
    /// Final (4xx, bad request).
    Final(ClientError),
}

/// The rustls error behind a failed request, if it failed in TLS. rustls
/// reports through `io::Error`s (nested, here), whose `source` skips the
/// error they wrap, so those are opened with `get_ref`.
fn tls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The innermost message of an error chain ("Connection refused (os error 111)").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// The server's `error` message, or the start of the body, or the status text.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        return parsed.error;
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(message) = value.get("error").and_then(|v| v.as_str())
    {
        return message.to_string();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no message")
            .to_lowercase()
    } else {
        truncate(text)
    }
}

fn snippet(body: &[u8]) -> String {
    format!("{:?}", truncate(String::from_utf8_lossy(body).trim()))
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_MESSAGE_LEN {
        return text.to_string();
    }
    let mut end = MAX_MESSAGE_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_gets_api_and_a_trailing_slash() {
        let cases = [
            ("http://h:5000", "http://h:5000/api/"),
            ("http://h:5000/", "http://h:5000/api/"),
            ("http://h/api", "http://h/api/"),
            ("https://h/x/api/", "https://h/x/api/"),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_base_url(raw).unwrap().as_str(), want, "{raw}");
        }
        for bad in ["ftp://h/api", "not a url", "h:5000/api"] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }

    /// Regression: `Debug` of the builder and the client printed the secret.
    #[test]
    fn debug_output_leaves_the_secret_out() {
        let mut builder = ClientBuilder::new("http://h/api");
        builder.api_key("key-id", "very-secret");
        let client = builder.build().unwrap();
        for shown in [format!("{builder:?}"), format!("{client:?}")] {
            assert!(shown.contains("key-id"), "{shown}");
            assert!(!shown.contains("very-secret"), "{shown}");
        }
    }

    #[test]
    fn endpoint_urls_escape_segments() {
        let client = ClientBuilder::new("http://h/api").build().unwrap();
        assert_eq!(
            client.endpoint_url(&["create_release"]).as_str(),
            "http://h/api/create_release"
        );
        assert_eq!(
            client
                .endpoint_url(&["work_queue", "run-pdiff", "lease"])
                .as_str(),
            "http://h/api/work_queue/run-pdiff/lease"
        );
        assert_eq!(
            client.endpoint_url(&["a/b?c"]).as_str(),
            "http://h/api/a%2Fb%3Fc"
        );
    }

    #[test]
    fn error_messages_come_from_the_json_body_or_the_text() {
        let s = StatusCode::BAD_REQUEST;
        assert_eq!(
            error_message(s, br#"{"success":false,"error":"release_name missing"}"#),
            "release_name missing"
        );
        assert_eq!(error_message(s, br#"{"error":"x"}"#), "x");
        assert_eq!(error_message(s, b"  plain text\n"), "plain text");
        assert_eq!(error_message(s, b""), "bad request");
        let long = "y".repeat(1000);
        assert_eq!(error_message(s, long.as_bytes()).len(), MAX_MESSAGE_LEN + 3);
    }

    #[test]
    fn backoff_doubles_up_to_a_cap_with_jitter_of_up_to_itself() {
        let client = ClientBuilder::new("http://h")
            .backoff(Duration::from_millis(100))
            .retries(8)
            .build()
            .unwrap();
        let base = [100u128, 200, 400, 800, 1600, 3200, 6400, 8000];
        let mut jittered = false;
        for _ in 0..20 {
            let waits: Vec<u128> = client
                .backoff_schedule(Repeat::Safe)
                .map(|w| w.as_millis())
                .collect();
            assert_eq!(waits.len(), base.len());
            for (wait, base) in waits.iter().zip(base) {
                assert!((base..=2 * base).contains(wait), "{wait} for {base}");
                jittered |= *wait != base;
            }
        }
        assert!(jittered, "twenty schedules without any jitter");
        assert_eq!(client.backoff_schedule(Repeat::Never).count(), 0);
        assert_eq!(client.backoff_schedule(Repeat::WithKey).count(), 8);
    }

    #[test]
    fn only_requests_safe_to_repeat_are_retried_and_creates_carry_a_key() {
        assert_eq!(Repeat::of("create_release"), Repeat::WithKey);
        assert_eq!(Repeat::of("create_build"), Repeat::WithKey);
        assert_eq!(Repeat::of("create_api_key"), Repeat::Never);
        assert_eq!(Repeat::of("work_queue/capture/add"), Repeat::Never);
        for safe in [
            "upload",
            "report_run",
            "find_run",
            "work_queue/diff/lease",
            "download",
        ] {
            assert_eq!(Repeat::of(safe), Repeat::Safe, "{safe}");
        }
        assert_ne!(new_idempotency_key(), new_idempotency_key());
    }
}
