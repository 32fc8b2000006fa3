//! `POST /api/upload`: a streamed multipart upload with a size limit.
//!
//! The file part is hashed while it is written to a temp file; nothing is
//! stored under its content address until the whole body has arrived, is
//! within the limit, and the key may write to the build. An over-limit or
//! malformed upload leaves nothing behind.

use dpxdt_core::api::UploadResponse;
use dpxdt_core::{ArtifactId, BuildId};
use futures_util::StreamExt;
use sha1::{Digest, Sha1};
use tokio::io::AsyncWriteExt;
use warp::http::HeaderMap;

use super::params::{check_param, multipart_error};
use super::{ApiError, AppState, BodyStream};
use crate::error::Doing;
use crate::storage::ApiKeyScope;
use crate::storage::uploads::{Staged, TempFile, content_type, put_upload};

struct Received {
    temp: TempFile,
    /// The part's file name, as the client gave it.
    name: Option<String>,
    id: ArtifactId,
    size: u64,
    content_type: String,
}

/// Longest text part of an upload (`build_id` and the like), in bytes.
pub const MAX_UPLOAD_FIELD: usize = 1024;

/// Reads a text part of an upload, refusing it as soon as it passes
/// [`MAX_UPLOAD_FIELD`] (nothing more of it is held in memory).
async fn small_field(name: &str, field: &mut multer::Field<'_>) -> Result<String, ApiError> {
    let shown: String = name.chars().take(20).collect();
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > MAX_UPLOAD_FIELD {
            return Err(ApiError::TooLarge(format!(
                "upload field {shown:?} is longer than {MAX_UPLOAD_FIELD} bytes; only the file \
                 part may be large"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::BadRequest(format!("upload field {shown:?} is not UTF-8")))
}

/// Handles an upload.
pub async fn upload(
    state: &AppState,
    scope: ApiKeyScope,
    headers: &HeaderMap,
    body: BodyStream,
) -> Result<UploadResponse, ApiError> {
    let limit = state.config.upload_limit;
    let content_type_header = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type_header).map_err(|_| {
        ApiError::BadRequest("upload must be multipart/form-data with build_id and one file".into())
    })?;
    // Past the limit the rest of the body is read and dropped (so the client
    // sees the 413 rather than a reset connection), up to this much more.
    let drain_cap = limit.saturating_mul(2).saturating_add(64 << 20);
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(drain_cap));
    let mut form = multer::Multipart::with_constraints(body, boundary, constraints);
    let mut build_id: Option<String> = None;
    let mut file: Option<Received> = None;
    let mut too_large = false;
    let mut text_fields = 0;
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        let is_file = field.file_name().is_some() || field.name() == Some("file");
        if !is_file {
            // Only the file may be large: the other parts are counted and
            // bounded like any form's parameters.
            let name = field.name().unwrap_or("").to_string();
            text_fields += 1;
            let checked = match check_param(text_fields - 1, &name) {
                Ok(()) => small_field(&name, &mut field).await,
                Err(e) => Err(e),
            };
            let text = match checked {
                Ok(text) => text,
                Err(e) => {
                    // Read what is left (it is dropped as it comes, up to
                    // the drain cap) so that the client sees our answer
                    // rather than a connection cut while it sends.
                    drop(field);
                    while let Ok(Some(mut rest)) = form.next_field().await {
                        while let Ok(Some(_)) = rest.chunk().await {}
                    }
                    return Err(e);
                }
            };
            if name == "build_id" {
                build_id = Some(text);
            }
            continue;
        }
        if file.is_some() || too_large {
            return Err(ApiError::BadRequest(
                "upload must contain exactly one file".into(),
            ));
        }
        let file_name = field.file_name().map(str::to_string);
        let part_type = field.content_type().map(|m| m.essence_str().to_string());
        let temp = TempFile(Some(state.store.artifacts().temp_path()));
        let path = temp.0.clone().unwrap_or_default();
        // 0600, as every file of the data directory (storage::artifacts).
        let mut out = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await
            .doing_with(|| format!("creating {}", path.display()))?;
        let mut hasher = Sha1::new();
        let mut size = 0u64;
        let mut head = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(multipart_error)?;
            size += chunk.len() as u64;
            if size > limit {
                too_large = true;
                continue; // Keep reading so the client gets our answer.
            }
            if head.len() < 16 {
                head.extend_from_slice(&chunk[..chunk.len().min(16)]);
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .doing_with(|| format!("writing {}", path.display()))?;
        }
        if too_large {
            continue; // `temp` is dropped here: the partial file is removed.
        }
        out.sync_all()
            .await
            .doing_with(|| format!("syncing {}", path.display()))?;
        let id = ArtifactId::parse(&hex::encode(hasher.finalize()))
            .doing("naming an upload by its hash")?;
        file = Some(Received {
            temp,
            id,
            size,
            content_type: content_type(file_name.as_deref(), part_type.as_deref(), &head),
            name: file_name,
        });
    }
    if too_large {
        return Err(ApiError::TooLarge(format!(
            "upload is larger than the limit of {limit} bytes"
        )));
    }
    let build: BuildId = build_id
        .ok_or_else(|| ApiError::BadRequest("invalid parameters: missing field `build_id`".into()))?
        .parse()
        .map_err(|_| ApiError::BadRequest("invalid parameters: build_id is not a number".into()))?;
    super::handlers::check_build_or_lease(state, &scope, build, None).await?;
    let mut received =
        file.ok_or_else(|| ApiError::BadRequest("upload must contain a file".into()))?;
    let temp_path = received.temp.0.clone().unwrap_or_default();
    let what = format!("upload {:?}", received.name.as_deref().unwrap_or("file"));
    let staged = Staged {
        temp: &temp_path,
        id: &received.id,
        size: received.size,
        content_type: &received.content_type,
        what: &what,
    };
    put_upload(&state.store, &state.config.limits, build, staged).await?;
    received.temp.0 = None;
    Ok(UploadResponse {
        success: true,
        build_id: build,
        sha1sum: received.id,
        content_type: received.content_type,
    })
}
