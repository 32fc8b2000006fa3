//! Request parsing: HTTP Basic API keys, and parameters from a query string,
//! a url-encoded form or a multipart form, decoded into the wire types.

use futures_util::StreamExt;
use headers::HeaderMapExt as _;
use headers::authorization::{Authorization, Basic};
use serde::de::DeserializeOwned;
use warp::http::HeaderMap;
use warp::http::header::AUTHORIZATION;

use super::{ApiError, BodyStream};
use crate::storage::{ApiKeyScope, Store, check_api_key};

/// Most bytes of a non-upload request body.
pub const MAX_FORM_BYTES: usize = 4 << 20;
/// Most parameters of one request: the largest API request has about a
/// dozen, so this only refuses abuse.
pub const MAX_PARAMS: usize = 100;
/// Longest parameter name, in bytes.
pub const MAX_PARAM_NAME: usize = 64;

/// The scope of the API key in the `Authorization` header.
pub async fn authenticate(store: &Store, headers: &HeaderMap) -> Result<ApiKeyScope, ApiError> {
    let missing = || {
        ApiError::Unauthorized(
            "an API key is required: HTTP Basic auth with the key id and secret".into(),
        )
    };
    if !headers.contains_key(AUTHORIZATION) {
        return Err(missing());
    }
    let basic = headers
        .typed_get::<Authorization<Basic>>()
        .ok_or_else(|| ApiError::Unauthorized("malformed HTTP Basic credentials".into()))?;
    let (id, secret) = (basic.username().to_string(), basic.password().to_string());
    store
        .call(move |c| check_api_key(c, &id, &secret))
        .await?
        .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API key, or wrong secret".into()))
}

/// Reads a whole (small) body, refusing more than [`MAX_FORM_BYTES`].
pub async fn read_body(mut body: BodyStream) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        if out.len() + chunk.len() > MAX_FORM_BYTES {
            return Err(ApiError::TooLarge(format!(
                "request body is larger than {MAX_FORM_BYTES} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The parameters of a request: the query string, then the body as a
/// url-encoded or multipart form.
pub async fn read_params(
    headers: &HeaderMap,
    query: &str,
    body: BodyStream,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        check_param(pairs.len(), &name)?;
        pairs.push((name.into_owned(), value.into_owned()));
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("multipart/form-data") {
        let boundary = multer::parse_boundary(content_type)
            .map_err(|e| ApiError::BadRequest(format!("bad multipart content type: {e}")))?;
        let constraints = multer::Constraints::new()
            .size_limit(multer::SizeLimit::new().whole_stream(MAX_FORM_BYTES as u64));
        let mut form = multer::Multipart::with_constraints(body, boundary, constraints);
        while let Some(field) = form.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or("").to_string();
            check_param(pairs.len(), &name)?;
            let value = field.text().await.map_err(multipart_error)?;
            pairs.push((name, value));
        }
    } else {
        let bytes = read_body(body).await?;
        for (name, value) in url::form_urlencoded::parse(&bytes) {
            check_param(pairs.len(), &name)?;
            pairs.push((name.into_owned(), value.into_owned()));
        }
    }
    Ok(pairs)
}

/// Refuses the parameter after `count` others when there are too many, or
/// when its name is too long: checked as each one is read, so an abusive
/// body costs no more than reading it.
pub(crate) fn check_param(count: usize, name: &str) -> Result<(), ApiError> {
    if count >= MAX_PARAMS {
        return Err(ApiError::BadRequest(format!(
            "more than {MAX_PARAMS} parameters"
        )));
    }
    if name.len() > MAX_PARAM_NAME {
        let shown: String = name.chars().take(20).collect();
        return Err(ApiError::BadRequest(format!(
            "parameter name {shown:?}... is longer than {MAX_PARAM_NAME} bytes"
        )));
    }
    Ok(())
}

/// Maps a multipart parse failure to 413 (over a limit) or 400.
pub fn multipart_error(e: multer::Error) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::TooLarge(format!("request body too large: {e}"))
        }
        e => ApiError::BadRequest(format!("malformed multipart body: {e}")),
    }
}

/// Decodes parameters into a wire type. Empty values count as absent (HTML
/// forms and `curl -F x=` send them for optional fields). A value that does
/// not parse is named in the error (serde's own message, "invalid digit
/// found in string", does not say which field it was); one pass, linear in
/// the size of the parameters.
pub fn decode<T: DeserializeOwned>(pairs: &[(String, String)]) -> Result<T, ApiError> {
    let present: Vec<&(String, String)> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    let encoded = serde_urlencoded::to_string(&present)
        .map_err(|e| ApiError::BadRequest(format!("invalid parameters: {e}")))?;
    let deserializer =
        serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(encoded.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let err = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::BadRequest(format!("invalid parameters: {err}"))
        } else {
            ApiError::BadRequest(format!("invalid parameter {path}: {err}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dpxdt_core::api::ReportRunRequest;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn decode_reads_numbers_artifacts_and_skips_empty_values() {
        let r: ReportRunRequest = decode(&pairs(&[
            ("build_id", "3"),
            ("release_name", "r 1"),
            ("release_number", "2"),
            ("run_name", "/a?b=1"),
            ("ref_url", ""),
            ("distortion", "0.25"),
            ("log", "906D3259C103F6FCBA4E8164A4DC3AE0D1A685D9"),
        ]))
        .unwrap();
        assert_eq!(r.build_id.0, 3);
        assert_eq!(r.ref_url, None);
        assert_eq!(r.distortion, Some(0.25));
        assert_eq!(
            r.log.unwrap().as_str(),
            "906d3259c103f6fcba4e8164a4dc3ae0d1a685d9"
        );
    }

    proptest::proptest! {
        /// Any form decodes or is refused with a 400 naming the problem,
        /// never a panic (the long run: `PROPTEST_CASES=100000`).
        #[test]
        fn any_form_decodes_or_is_refused(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            pairs in proptest::collection::vec(
                (
                    proptest::prop_oneof![
                        proptest::strategy::Just("build_id".to_string()),
                        proptest::strategy::Just("release_number".to_string()),
                        proptest::strategy::Just("run_name".to_string()),
                        proptest::strategy::Just("distortion".to_string()),
                        "[a-z_]{1,12}",
                    ],
                    ".{0,12}",
                ),
                0..12,
            ),
        ) {
            let from_body: Vec<(String, String)> =
                url::form_urlencoded::parse(&body).into_owned().collect();
            for form in [from_body, pairs] {
                match decode::<ReportRunRequest>(&form) {
                    Ok(_) => {}
                    Err(ApiError::BadRequest(message)) => {
                        proptest::prop_assert!(message.starts_with("invalid parameter"), "{}", message);
                    }
                    Err(other) => proptest::prop_assert!(false, "{other}"),
                }
            }
        }
    }

    /// Reads `body` as a multipart form with boundary `B` on a fresh runtime.
    fn read_multipart(body: Vec<u8>) -> Result<Vec<(String, String)>, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            warp::http::HeaderValue::from_static("multipart/form-data; boundary=B"),
        );
        let stream: BodyStream = Box::pin(futures_util::stream::iter([Ok::<_, std::io::Error>(
            warp::hyper::body::Bytes::from(body),
        )]));
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(read_params(&headers, "", stream))
    }

    proptest::proptest! {
        /// Any multipart body, random or built from random parts, is read
        /// or refused with a 400 or 413, never a panic; what is read then
        /// decodes or is refused like any form.
        #[test]
        fn any_multipart_body_is_read_or_refused(
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            parts in proptest::collection::vec(("[a-z_]{0,10}", ".{0,20}", proptest::prelude::any::<bool>()), 0..8),
            cut in 0usize..400,
        ) {
            let mut built = Vec::new();
            for (name, value, quoted) in &parts {
                let disposition = if *quoted {
                    format!("form-data; name=\"{name}\"")
                } else {
                    format!("form-data; name={name}")
                };
                built.extend_from_slice(
                    format!("--B\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n").as_bytes(),
                );
            }
            built.extend_from_slice(b"--B--\r\n");
            let truncated = built[..cut.min(built.len())].to_vec();
            for body in [noise, built, truncated] {
                match read_multipart(body) {
                    Ok(pairs) => {
                        proptest::prop_assert!(pairs.len() <= MAX_PARAMS);
                        let _ = decode::<ReportRunRequest>(&pairs);
                    }
                    Err(ApiError::BadRequest(_) | ApiError::TooLarge(_)) => {}
                    Err(other) => proptest::prop_assert!(false, "{other}"),
                }
            }
        }
    }

    #[test]
    fn a_multipart_form_reads_its_fields_and_a_cut_one_is_refused() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"build_id\"\r\n\r\n7\r\n\
--B\r\nContent-Disposition: form-data; name=\"run_name\"\r\n\r\n/a b\r\n--B--\r\n";
        let pairs = read_multipart(body.to_vec()).unwrap();
        assert_eq!(
            pairs,
            [
                ("build_id".to_string(), "7".to_string()),
                ("run_name".to_string(), "/a b".to_string())
            ]
        );
        let err = read_multipart(body[..60].to_vec()).unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(_)), "{err}");
    }

    #[test]
    fn too_many_or_too_long_parameters_are_refused() {
        assert!(check_param(MAX_PARAMS - 1, "build_id").is_ok());
        let err = check_param(MAX_PARAMS, "x").unwrap_err().to_string();
        assert!(err.contains("more than 100 parameters"), "{err}");
        let err = check_param(0, &"k".repeat(65)).unwrap_err().to_string();
        assert!(err.contains("longer than 64 bytes"), "{err}");
    }

    #[test]
    fn decode_names_the_bad_parameter() {
        let err = decode::<ReportRunRequest>(&pairs(&[("build_id", "x")])).unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(_)));
        assert!(err.to_string().contains("build_id"), "{err}");
        let err = decode::<ReportRunRequest>(&pairs(&[
            ("build_id", "1"),
            ("release_name", "r"),
            ("release_number", "one"),
            ("run_name", "/"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("release_number"), "{err}");
        // An optional field that does not parse is named too.
        let err = decode::<ReportRunRequest>(&pairs(&[
            ("build_id", "1"),
            ("release_name", "r"),
            ("release_number", "1"),
            ("run_name", "/"),
            ("distortion", "lots"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("distortion"), "{err}");
        let err = decode::<ReportRunRequest>(&pairs(&[
            ("build_id", "1"),
            ("release_name", "r"),
            ("release_number", "1"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("run_name"), "{err}");
    }
}
