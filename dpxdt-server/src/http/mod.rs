//! The HTTP API: one route table ([`dispatch`]) under `/api/`, with every
//! failure answered by [`ApiError`] as `{"success": false, "error": …}`.

mod error;
mod handlers;
pub mod params;
mod upload;

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Instant;

use futures_util::{Stream, StreamExt};
use warp::http::{HeaderMap, Method};
use warp::hyper::body::Bytes;
use warp::reply::Response;
use warp::{Buf, Filter, Reply};

pub use error::ApiError;

use crate::AppState;

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

/// The file at `path` as a response body streamed in 64 KiB chunks as the
/// client takes them, never read whole into memory; with its length.
async fn file_response(path: &std::path::Path) -> std::io::Result<Response> {
    let file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 64 * 1024];
        let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf).await?;
        if n == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), file)))
    });
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
        file_response(&store.artifacts().path(id)).await?
    };
    artifact_headers(&mut resp, content_type, cache);
    if let Ok(v) = warp::http::HeaderValue::from_str(&etag) {
        resp.headers_mut().insert("etag", v);
    }
    Ok(resp)
}

/// A request body as a stream of chunks.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Every route of the server.
pub fn routes(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::path("api")
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::body::stream().map(boxed_body))
        .then(
            move |tail: warp::path::Tail,
                  method: Method,
                  headers: HeaderMap,
                  query: String,
                  body: BodyStream| {
                let state = state.clone();
                async move {
                    let path = tail.as_str().to_string();
                    let started = Instant::now();
                    let result = dispatch(&state, &method, &path, &headers, &query, body).await;
                    let response = result.unwrap_or_else(ApiError::into_response);
                    let status = response.status().as_u16();
                    let ms = started.elapsed().as_millis() as u64;
                    // Workers poll the queue twice a second: only its
                    // failures belong in the default log.
                    if path.starts_with("work_queue/") && status < 400 {
                        tracing::debug!(%method, path = %format!("/api/{path}"), status, ms, "request");
                    } else {
                        tracing::info!(%method, path = %format!("/api/{path}"), status, ms, "request");
                    }
                    response
                }
            },
        )
        .or(warp::any().map(|| ApiError::NotFound("no such page".into()).into_response()))
        .unify()
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

fn ok(v: serde_json::Value) -> Response {
    warp::reply::json(&v).into_response()
}

/// The route table: method and path under `/api/` to handler.
async fn dispatch(
    state: &AppState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    query: &str,
    body: BodyStream,
) -> Result<Response, ApiError> {
    const POST_ONLY: &[&str] = &[
        "create_release",
        "find_run",
        "request_run",
        "upload",
        "report_run",
        "runs_done",
        "update_release",
        "create_build",
        "create_api_key",
        "revoke_api_key",
    ];
    let path = path.trim_end_matches('/');
    let queue_route = path
        .strip_prefix("work_queue/")
        .and_then(|rest| rest.split_once('/'));
    let known_post = POST_ONLY.contains(&path) || queue_route.is_some();
    let known_get = path == "download" || path == "release_status";
    if !known_post && !known_get {
        return Err(ApiError::NotFound(format!("no API endpoint /api/{path}")));
    }
    let allowed = if known_post {
        method == Method::POST
    } else {
        method == Method::GET || (path == "release_status" && method == Method::POST)
    };
    if !allowed {
        return Err(ApiError::MethodNotAllowed(format!(
            "/api/{path} does not accept {method}"
        )));
    }
    let scope = params::authenticate(&state.store, headers).await?;
    if path == "upload" {
        return Ok(ok(serde_json::to_value(
            upload::upload(state, scope, headers, body).await?,
        )
        .map_err(|e| ApiError::Internal(e.to_string()))?));
    }
    let p = params::read_params(headers, query, body).await?;
    let value = match path {
        "create_release" => handlers::create_release(state, scope, headers, &p).await?,
        "find_run" => handlers::find_run(state, scope, &p).await?,
        "request_run" => handlers::request_run(state, scope, &p).await?,
        "report_run" => handlers::report_run(state, scope, &p).await?,
        "runs_done" => handlers::runs_done(state, scope, headers, &p).await?,
        "release_status" => handlers::release_status(state, scope, headers, &p).await?,
        "download" => return handlers::download(state, scope, &p, headers).await,
        "update_release" => handlers::update_release(state, scope, &p).await?,
        "create_build" => handlers::create_build(state, scope, headers, &p).await?,
        "create_api_key" => handlers::create_api_key(state, scope, &p).await?,
        "revoke_api_key" => handlers::revoke_api_key(state, scope, &p).await?,
        _ => match queue_route {
            Some((queue, action)) => handlers::work_queue(state, scope, queue, action, &p).await?,
            None => return Err(ApiError::NotFound(format!("no API endpoint /api/{path}"))),
        },
    };
    Ok(ok(value))
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
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'a'; 1 << 20]).expect("write");
        let resp = super::file_response(&path).await.expect("response");
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
