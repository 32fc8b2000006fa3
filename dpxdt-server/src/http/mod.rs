//! The HTTP API: one warp filter per endpoint under `/api/` ([`routes`]),
//! with every failure answered by [`ApiError`] as
//! `{"success": false, "error": …}`.

mod error;
mod handlers;
pub mod openapi;
pub mod params;
pub mod request_id;
mod upload;

use std::convert::Infallible;
use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use warp::http::{HeaderMap, Method, StatusCode};
use warp::hyper::body::Bytes;
use warp::reply::Response;
use warp::{Buf, Filter, Reply};

pub use error::ApiError;

use crate::AppState;
use crate::error::Doing;

/// The headers every served artifact carries: its content type, `cache`
/// as `Cache-Control`, and what keeps an uploaded file from ever running as
/// a page of this site (`nosniff`, a sandboxing CSP).
pub(crate) fn artifact_headers(resp: &mut Response, content_type: &str, cache: &'static str) {
    use warp::http::HeaderValue;
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert("cache-control", HeaderValue::from_static(cache));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
}

/// The bytes of artifact `id` as a response body streamed as the client
/// takes them, never read whole into memory; with its length.
async fn artifact_response(
    store: &crate::storage::Store,
    id: &dpxdt_core::ArtifactId,
) -> std::io::Result<Response> {
    let (len, chunks) = store.artifacts().stream(id).await?;
    metrics::counter!("dpxdt_artifact_bytes_read_total").increment(len);
    let mut resp = warp::reply::stream(chunks).into_response();
    resp.headers_mut().insert("content-length", len.into());
    Ok(resp)
}

/// Who may cache a served artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// Anyone may read it (a public build): shared caches may keep it.
    Public,
    /// Only its build's readers: only the client's own cache may keep it.
    Private,
}

/// The one way an artifact leaves the server, for the API's `download`
/// and the UI's images alike: `304 Not Modified` when the request's
/// `If-None-Match` names it already (artifacts never change, so the id is
/// the ETag), else its bytes streamed from disk; always with
/// [`artifact_headers`] and the ETag.
pub(crate) async fn serve_artifact(
    store: &crate::storage::Store,
    id: &dpxdt_core::ArtifactId,
    content_type: &str,
    visibility: Visibility,
    request: &HeaderMap,
) -> std::io::Result<Response> {
    let etag = format!("\"{id}\"");
    let cache = match visibility {
        Visibility::Public => "public, max-age=31536000, immutable",
        Visibility::Private => "private, max-age=31536000, immutable",
    };
    let mut resp = if request
        .get("if-none-match")
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        let mut r = Response::new(Default::default());
        *r.status_mut() = warp::http::StatusCode::NOT_MODIFIED;
        r
    } else {
        artifact_response(store, id).await?
    };
    artifact_headers(&mut resp, content_type, cache);
    if let Ok(v) = warp::http::HeaderValue::from_str(&etag) {
        resp.headers_mut().insert("etag", v);
    }
    Ok(resp)
}

/// A request body as a stream of chunks.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Every route of the API, as warp filters: each endpoint is a typed path
/// under `/api/`; a request that matches none is answered 404 and one with
/// the wrong method 405, both as the API's JSON error. Requests are logged
/// (the workers' queue polls only at debug level).
pub fn routes(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let s = &state;
    let table: Vec<warp::filters::BoxedFilter<(Response,)>> = vec![
        endpoint(s, "create_release", |c| async move {
            json_ok(handlers::create_release(&c.state, c.scope, &c.headers, &c.params).await)
        }),
        endpoint(s, "find_run", |c| async move {
            json_ok(handlers::find_run(&c.state, c.scope, &c.params).await)
        }),
        endpoint(s, "request_run", |c| async move {
            json_ok(handlers::request_run(&c.state, c.scope, &c.params).await)
        }),
        endpoint(s, "report_run", |c| async move {
            json_ok(handlers::report_run(&c.state, c.scope, &c.params).await)
        }),
        endpoint(s, "runs_done", |c| async move {
            json_ok(handlers::runs_done(&c.state, c.scope, &c.headers, &c.params).await)
        }),
        endpoint(s, "release_status", |c| async move {
            json_ok(handlers::release_status(&c.state, c.scope, &c.headers, &c.params).await)
        }),
        endpoint(s, "download", |c| async move {
            handlers::download(&c.state, c.scope, &c.params, &c.headers).await
        }),
        endpoint(s, "update_release", |c| async move {
            json_ok(handlers::update_release(&c.state, c.scope, &c.params).await)
        }),
        endpoint(s, "review_run", |c| async move {
            json_ok(handlers::review_run(&c.state, c.scope, &c.params).await)
        }),
        endpoint(s, "comment", |c| async move {
            json_ok(handlers::comment(&c.state, c.scope, &c.params).await)
        }),
        endpoint(s, "create_build", |c| async move {
            json_ok(handlers::create_build(&c.state, c.scope, &c.headers, &c.params).await)
        }),
        endpoint(s, "create_api_key", |c| async move {
            json_ok(handlers::create_api_key(&c.state, c.scope, &c.params).await)
        }),
        endpoint(s, "revoke_api_key", |c| async move {
            json_ok(handlers::revoke_api_key(&c.state, c.scope, &c.params).await)
        }),
        upload_route(s),
        work_queue_route(s),
        openapi_route(),
    ];
    let endpoints = table
        .into_iter()
        .reduce(|a, b| a.or(b).unify().boxed())
        .expect("the API has endpoints");
    let unknown = warp::path::tail().map(|tail: warp::path::Tail| {
        ApiError::NotFound(format!("no API endpoint /api/{}", tail.as_str())).into_response()
    });
    warp::path("api")
        .and(endpoints.or(unknown).unify())
        .with(warp::log::custom(|info| {
            let (method, path, status) = (info.method(), info.path(), info.status().as_u16());
            let ms = info.elapsed().as_millis() as u64;
            crate::telemetry::record_request(openapi::route_label(path), status, info.elapsed());
            let polled =
                path.starts_with("/api/work_queue/") || path == "/healthz" || path == "/readyz";
            if polled && status < 400 {
                tracing::debug!(%method, path, status, ms, "request");
            } else {
                tracing::info!(%method, path, status, ms, "request");
            }
        }))
        .map(Reply::into_response)
        .or(warp::any().map(|| ApiError::NotFound("no such page".into()).into_response()))
        .unify()
}

/// `GET /healthz` (the process serves: always 200) and `GET /readyz` (the
/// database answers, its schema is current and artifacts can be written:
/// 200, else 503), for load balancers. Neither needs a key, so the answer
/// names the checks but not what was seen; failures are logged.
pub fn health_routes(state: &AppState) -> warp::filters::BoxedFilter<(Response,)> {
    let live = warp::path("healthz")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| plain(StatusCode::OK, "ok\n".into()));
    let store = state.store.clone();
    let ready = warp::path("readyz")
        .and(warp::path::end())
        .and(warp::get())
        .then(move || {
            let store = store.clone();
            async move {
                let checks = store.health().await;
                let mut body = String::new();
                for check in &checks {
                    let verdict = if check.ok { "ok" } else { "FAILED" };
                    body.push_str(&format!("{}: {verdict}\n", check.name));
                    if !check.ok {
                        tracing::warn!(%check, "not ready");
                    }
                }
                let status = if checks.iter().all(|c| c.ok) {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                plain(status, body)
            }
        });
    live.or(ready).unify().boxed()
}

fn plain(status: StatusCode, body: String) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        warp::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut().insert(
        "cache-control",
        warp::http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// `GET /metrics`: the Prometheus text ([`crate::telemetry`]), for a
/// superuser key; with `open`, for anyone (the `--metrics-listen`
/// address, meant for a private scrape network).
pub fn metrics_route(state: &AppState, open: bool) -> warp::filters::BoxedFilter<(Response,)> {
    let store = state.store.clone();
    warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .then(move |headers: HeaderMap| {
            let store = store.clone();
            async move {
                if !open {
                    match params::authenticate(&store, &headers).await {
                        Ok(scope) if scope.superuser => {}
                        Ok(_) => {
                            return ApiError::Forbidden(
                                "/metrics needs a superuser API key".into(),
                            )
                            .into_response();
                        }
                        Err(e) => return e.into_response(),
                    }
                }
                match crate::telemetry::render(&store).await {
                    Ok(text) => {
                        let mut resp = plain(StatusCode::OK, text);
                        resp.headers_mut().insert(
                            "content-type",
                            warp::http::HeaderValue::from_static(
                                "text/plain; version=0.0.4; charset=utf-8",
                            ),
                        );
                        resp
                    }
                    Err(e) => ApiError::from(e).into_response(),
                }
            }
        })
        .boxed()
}

/// One authenticated API call: the server, who calls, and with what.
struct Call {
    state: AppState,
    scope: crate::storage::ApiKeyScope,
    headers: HeaderMap,
    params: Vec<(String, String)>,
}

/// The request as the endpoint filters take it apart: method, headers,
/// raw query and body.
fn request_parts()
-> impl Filter<Extract = (Method, HeaderMap, String, BodyStream), Error = warp::Rejection> + Clone {
    warp::method()
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::body::stream().map(boxed_body))
}

/// The filter of one endpoint, `/api/NAME` with one of the methods its
/// description ([`openapi::ENDPOINTS`]) names: the method is checked, then
/// the key (before any of the body is read), then the parameters are read
/// from the query and the form, and `handler` runs.
fn endpoint<F, Fut>(
    state: &AppState,
    name: &'static str,
    handler: F,
) -> warp::filters::BoxedFilter<(Response,)>
where
    F: Fn(Call) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response, ApiError>> + Send,
{
    let state = state.clone();
    let methods = openapi::methods(name);
    warp::path(name)
        .and(warp::path::end())
        .and(request_parts())
        .then(
            move |method: Method, headers: HeaderMap, query: String, body: BodyStream| {
                let (state, handler) = (state.clone(), handler.clone());
                async move {
                    let scope = authorize(&state, name, methods, &method, &headers)
                        .await
                        .map_err(Refusal::unread)?;
                    let params = params::read_params(&headers, &query, body)
                        .await
                        .map_err(Refusal::unread)?;
                    handler(Call {
                        state,
                        scope,
                        headers,
                        params,
                    })
                    .await
                    .map_err(Refusal::after_body)
                }
            },
        )
        .map(respond_closing)
        .boxed()
}

/// `/api/upload`: the body is the multipart upload itself, streamed to disk.
fn upload_route(state: &AppState) -> warp::filters::BoxedFilter<(Response,)> {
    let state = state.clone();
    let methods = openapi::methods("upload");
    warp::path("upload")
        .and(warp::path::end())
        .and(request_parts())
        .then(
            move |method: Method, headers: HeaderMap, _query: String, body: BodyStream| {
                let state = state.clone();
                async move {
                    let scope = authorize(&state, "upload", methods, &method, &headers)
                        .await
                        .map_err(Refusal::unread)?;
                    // The upload may stop reading at any point: closed.
                    let uploaded = upload::upload(&state, scope, &headers, body)
                        .await
                        .map_err(Refusal::unread)?;
                    json_ok(
                        serde_json::to_value(uploaded)
                            .doing("encoding a reply")
                            .map_err(ApiError::from),
                    )
                    .map_err(Refusal::after_body)
                }
            },
        )
        .map(respond_closing)
        .boxed()
}

/// `/api/work_queue/QUEUE/ACTION` (POST).
fn work_queue_route(state: &AppState) -> warp::filters::BoxedFilter<(Response,)> {
    let state = state.clone();
    warp::path!("work_queue" / String / String)
        .and(request_parts())
        .then(
            move |queue: String,
                  action: String,
                  method: Method,
                  headers: HeaderMap,
                  query: String,
                  body: BodyStream| {
                let state = state.clone();
                async move {
                    let described = format!("work_queue/{{queue}}/{action}");
                    let Some(methods) = openapi::described(&described) else {
                        return Err(Refusal::unread(handlers::no_work_queue_action(&action)));
                    };
                    let path = format!("work_queue/{queue}/{action}");
                    let scope = authorize(&state, &path, methods, &method, &headers)
                        .await
                        .map_err(Refusal::unread)?;
                    let p = params::read_params(&headers, &query, body)
                        .await
                        .map_err(Refusal::unread)?;
                    json_ok(handlers::work_queue(&state, scope, &queue, &action, &p).await)
                        .map_err(Refusal::after_body)
                }
            },
        )
        .map(respond_closing)
        .boxed()
}

/// `GET /api/openapi.json`: the API's description, for anyone.
fn openapi_route() -> warp::filters::BoxedFilter<(Response,)> {
    let methods = openapi::methods("openapi.json");
    let body = openapi::document()
        .to_pretty_json()
        .expect("the API's description encodes");
    warp::path("openapi.json")
        .and(warp::path::end())
        .and(warp::method())
        .map(move |method: Method| {
            if let Err(e) = check_method("openapi.json", methods, &method) {
                return e.into_response();
            }
            let mut resp = Response::new(body.clone().into());
            resp.headers_mut().insert(
                "content-type",
                warp::http::HeaderValue::from_static("application/json"),
            );
            resp
        })
        .boxed()
}

/// What every endpoint checks first, before any of the body is read: the
/// method ([`check_method`]), then the API key.
async fn authorize(
    state: &AppState,
    name: &str,
    methods: &[Method],
    method: &Method,
    headers: &HeaderMap,
) -> Result<crate::storage::ApiKeyScope, ApiError> {
    check_method(name, methods, method)?;
    params::authenticate(&state.store, headers).await
}

/// 405 unless `/api/NAME` takes `method`.
fn check_method(name: &str, methods: &[Method], method: &Method) -> Result<(), ApiError> {
    if methods.contains(method) {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed(format!(
            "/api/{name} does not accept {method}"
        )))
    }
}

/// An error answer, and whether the request's body may be partly unread
/// (the method, the key or the body itself was refused).
struct Refusal {
    error: ApiError,
    unread: bool,
}

impl Refusal {
    /// Refused before or while the body was read.
    fn unread(error: ApiError) -> Refusal {
        Refusal {
            error,
            unread: true,
        }
    }

    /// Refused once the whole body was read.
    fn after_body(error: ApiError) -> Refusal {
        Refusal {
            error,
            unread: false,
        }
    }
}

/// The answer, or the error's; the connection is closed after a refusal
/// that left the body unread: the server drops such a connection anyway, and `Connection:
/// close` tells the client not to send its next request on it (which it
/// would otherwise find cut off halfway).
fn respond_closing(result: Result<Response, Refusal>) -> Response {
    match result {
        Ok(r) => r,
        Err(Refusal { error, unread }) => {
            let mut r = error.into_response();
            if unread {
                r.headers_mut().insert(
                    warp::http::header::CONNECTION,
                    warp::http::HeaderValue::from_static("close"),
                );
            }
            r
        }
    }
}

fn json_ok(value: Result<serde_json::Value, ApiError>) -> Result<Response, ApiError> {
    Ok(warp::reply::json(&value?).into_response())
}

fn boxed_body<S, B>(body: S) -> BodyStream
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    Box::pin(body.map(|r| {
        r.map(|mut buf| buf.copy_to_bytes(buf.remaining()))
            .map_err(std::io::Error::other)
    }))
}

#[cfg(test)]
mod tests {
    use warp::hyper::body::{Body, Bytes};

    /// The next data chunk of a response body, `None` at its end.
    async fn next_chunk<B>(body: &mut B) -> Option<Bytes>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Debug,
    {
        loop {
            let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx))
                .await?
                .expect("read");
            if let Ok(data) = frame.into_data() {
                return Some(data);
            }
        }
    }

    /// A large artifact leaves the handler as 64 KiB chunks read as the
    /// client takes them: the first chunk arrives while the rest of the file
    /// is still on disk, and changing the file afterwards shows in the body.
    #[tokio::test]
    async fn an_artifact_is_streamed_in_chunks_not_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::storage::Store::open(dir.path()).expect("store");
        let id = store
            .artifacts()
            .write_bytes(&vec![b'a'; 1 << 20])
            .expect("write");
        let crate::storage::Blobs::Dir(files) = store.artifacts() else {
            panic!("a directory store");
        };
        let path = files.path(&id);
        let resp = super::artifact_response(&store, &id)
            .await
            .expect("response");
        assert_eq!(resp.headers()["content-length"], "1048576");
        let mut body = resp.into_body();
        let first = next_chunk(&mut body).await.expect("a chunk");
        assert_eq!(first.len(), 64 * 1024, "the first chunk is 64 KiB");
        // Had the file been read whole, this write could not change the body.
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open");
            f.seek(SeekFrom::Start(1 << 19)).expect("seek");
            f.write_all(&vec![b'b'; 1 << 19]).expect("overwrite");
        }
        let mut rest = Vec::new();
        while let Some(chunk) = next_chunk(&mut body).await {
            rest.extend_from_slice(&chunk);
        }
        assert_eq!(rest.len(), (1 << 20) - 64 * 1024);
        assert_eq!(
            rest.last(),
            Some(&b'b'),
            "the body was read after the write"
        );
    }
}
