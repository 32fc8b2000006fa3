//! `POST /api/upload`: a streamed multipart upload with a size limit.
//!
//! The file part is hashed while it is written to a temp file; nothing is
//! stored under its content address until the whole body has arrived, is
//! within the limit, and the key may write to the build. An over-limit or
//! malformed upload leaves nothing behind.

use std::path::{Path, PathBuf};

use dpxdt_core::api::UploadResponse;
use dpxdt_core::{ArtifactId, BuildId};
use futures_util::StreamExt;
use sha1::{Digest, Sha1};
use tokio::io::AsyncWriteExt;
use warp::http::HeaderMap;

use super::params::{check_param, multipart_error};
use super::{ApiError, AppState, BodyStream};
use crate::error::Doing;
use crate::storage::db::build_write_tx;
use crate::storage::{ApiKeyScope, build_exists, record_artifact};

/// Content types an artifact may be served back with. Anything else is
/// served as `application/octet-stream`, so an uploaded HTML page can never
/// run as part of the server's origin.
const SAFE_TYPES: &[(&str, &str)] = &[
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("txt", "text/plain"),
    ("log", "text/plain"),
    ("json", "application/json"),
];

/// The content type of an upload: from the file name, then the part's own
/// type if it is a safe one, then the bytes.
fn content_type(file_name: Option<&str>, part_type: Option<&str>, head: &[u8]) -> String {
    if let Some(ext) = file_name.and_then(|n| Path::new(n).extension()?.to_str()) {
        let ext = ext.to_ascii_lowercase();
        if let Some((_, t)) = SAFE_TYPES.iter().find(|(e, _)| *e == ext) {
            return t.to_string();
        }
    }
    if let Some(t) = part_type.and_then(|p| SAFE_TYPES.iter().find(|(_, t)| *t == p)) {
        return t.1.to_string();
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return "image/png".into();
    }
    "application/octet-stream".into()
}

/// A temp file removed on drop unless it was committed.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

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

/// Refuses a PNG whose ancillary chunks inflate far beyond any real
/// profile or text (our decoder skips them, but artifacts are handed on to
/// people's browsers and tools).
async fn refuse_png_bomb(received: &Received) -> Result<(), ApiError> {
    let path = received.temp.0.clone().unwrap_or_default();
    let what = format!("upload {:?}", received.name.as_deref().unwrap_or("file"));
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        Ok::<_, std::io::Error>(dpxdt_core::diff::check_png_chunks(
            std::io::BufReader::new(file),
            &what,
        ))
    })
    .await
    .doing("checking an upload's PNG chunks")?
    .doing("reading an upload back")?
    .map_err(|e| ApiError::BadRequest(e.to_string()))
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
    if !state.store.call(move |c| build_exists(c, build)).await? {
        return Err(ApiError::NotFound(format!("build {build} does not exist")));
    }
    if received.content_type == "image/png" {
        refuse_png_bomb(&received).await?;
    }
    // Within the build's byte limit (checked before the bytes are put in
    // place; uploads racing each other may pass it by one upload each).
    let (id, size, limits) = (received.id.clone(), received.size, state.config.limits);
    state
        .store
        .call(move |c| crate::storage::quotas::check_build_bytes(c, build, &id, size, &limits))
        .await?;
    // Bytes first (fsynced, renamed into place), then the row that points
    // at them, both while holding the store's connection: the garbage
    // collector deletes an artifact's row and file while holding it too, so
    // it can never remove bytes an upload just found in place. A bucket
    // gets the bytes before the hold (the slow part), and within it is only
    // asked whether they are still there (sent again in the rare case that
    // a collection took them in between).
    let temp_path = received.temp.0.clone().unwrap_or_default();
    let artifacts = state.store.artifacts().clone();
    artifacts
        .stage(&temp_path, &received.id)
        .await
        .map_err(|e| artifacts.store_failed(e))?;
    let (id, size, ct) = (
        received.id.clone(),
        received.size as i64,
        received.content_type.clone(),
    );
    state
        .store
        .call(move |c| {
            // Bytes checked (sent again if a collection took them) and row
            // recorded under the build's write lock, which excludes the
            // garbage collector's (storage::gc::delete_artifact holds the
            // database's alone to delete bytes).
            let tx = build_write_tx(c, build.0)?;
            artifacts
                .commit_temp(&temp_path, &id)
                .map_err(|e| artifacts.store_failed(e))?;
            record_artifact(&tx, build, &id, &ct, size)?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    received.temp.0 = None;
    Ok(UploadResponse {
        success: true,
        build_id: build,
        sha1sum: received.id,
        content_type: received.content_type,
    })
}
