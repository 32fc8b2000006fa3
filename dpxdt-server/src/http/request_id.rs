//! Every request's id: the client's `X-Request-Id` when it is a sane one,
//! else a new one; returned in the reply's `X-Request-Id` and carried by a
//! `request` span, so that every log line the request causes names it.

use std::convert::Infallible;

use warp::http::HeaderValue;
use warp::reply::Response;
use warp::{Filter, Reply};

/// The header both ways.
pub const HEADER: &str = "x-request-id";

/// The longest id taken from a client.
const MAX_LEN: usize = 64;

/// `app` with every request inside a `request{id=…}` span and every reply
/// carrying the id. Warp's own per-request events under that span are
/// turned off where logging is set up (they repeat the API's request line).
pub fn traced<F>(
    app: F,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let id = warp::header::value(HEADER)
        .map(|given: HeaderValue| accept(&given))
        .or(warp::any().map(|| None))
        .unify()
        .map(|given: Option<String>| {
            let id = given.unwrap_or_else(new_id);
            tracing::Span::current().record("id", id.as_str());
            id
        });
    id.and(app)
        .map(|id: String, mut resp: Response| {
            if let Ok(v) = HeaderValue::from_str(&id) {
                resp.headers_mut().insert(HEADER, v);
            }
            resp
        })
        .with(warp::trace(|_| {
            tracing::info_span!("request", id = tracing::field::Empty)
        }))
        .map(Reply::into_response)
}

/// A client's id if it is 1 to [`MAX_LEN`] letters, digits or `-_.:`
/// (nothing that could forge a log line or a header); `None` otherwise,
/// and the request gets a new one.
fn accept(given: &HeaderValue) -> Option<String> {
    let bytes = given.as_bytes();
    let sane = !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
    sane.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// A new id: 16 hex digits, random.
fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_taken_from_the_client() {
        let take = |s: &str| accept(&HeaderValue::from_str(s).unwrap());
        assert_eq!(take("ci-42.run:7_a").as_deref(), Some("ci-42.run:7_a"));
        assert_eq!(take(&"a".repeat(64)).map(|s| s.len()), Some(64));
        assert_eq!(take(&"a".repeat(65)), None, "too long");
        assert_eq!(take(""), None, "empty");
        assert_eq!(take("a b"), None, "a space");
        assert_eq!(take("a\"}{"), None, "quotes and braces");
        let id = new_id();
        assert_eq!(id.len(), 16);
        assert!(accept(&HeaderValue::from_str(&id).unwrap()).is_some());
    }
}
