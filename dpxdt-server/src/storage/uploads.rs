//! Putting an uploaded artifact in place, for the API's `upload` and the
//! in-process workers alike: the same checks in the same order (the build
//! exists, a PNG is no decompression bomb, the build stays within its byte
//! limit), then the bytes, then the row that points at them.

use std::path::{Path, PathBuf};

use dpxdt_core::{ArtifactId, BuildId};

use super::db::build_write_tx;
use super::{Limits, Store, StoreError, build_exists, quotas, record_artifact};

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
pub fn content_type(file_name: Option<&str>, part_type: Option<&str>, head: &[u8]) -> String {
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

/// A temp file of an upload, removed on drop unless it was put in place
/// (the caller then sets it to `None`).
pub struct TempFile(pub Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A received upload, complete and fsynced in a temp file of the store.
pub struct Staged<'a> {
    /// The temp file (left for the caller to remove if this fails).
    pub temp: &'a Path,
    /// The SHA-1 of its bytes.
    pub id: &'a ArtifactId,
    /// Its length in bytes.
    pub size: u64,
    /// From [`content_type`].
    pub content_type: &'a str,
    /// How to name it in a refusal (`upload "a.png"`).
    pub what: &'a str,
}

/// Puts `upload` in place as an artifact of `build`, which the caller may
/// write to: refused (nothing stored) when the build does not exist, a PNG
/// inflates far beyond any real profile or text, or the build would go
/// over its byte limit.
pub async fn put_upload(
    store: &Store,
    limits: &Limits,
    build: BuildId,
    upload: Staged<'_>,
) -> Result<(), StoreError> {
    if !store.call(move |c| build_exists(c, build)).await? {
        return Err(StoreError::NotFound(format!(
            "build {build} does not exist"
        )));
    }
    if upload.content_type == "image/png" {
        refuse_png_bomb(upload.temp, upload.what).await?;
    }
    // Within the build's byte limit (checked before the bytes are put in
    // place; uploads racing each other may pass it by one upload each).
    let (id, size, limits) = (upload.id.clone(), upload.size, *limits);
    store
        .call(move |c| quotas::check_build_bytes(c, build, &id, size, &limits))
        .await?;
    // Bytes first (fsynced, renamed into place), then the row that points
    // at them, both while holding the store's connection: the garbage
    // collector deletes an artifact's row and file while holding it too, so
    // it can never remove bytes an upload just found in place. A bucket
    // gets the bytes before the hold (the slow part), and within it is only
    // asked whether they are still there (sent again in the rare case that
    // a collection took them in between).
    let artifacts = store.artifacts().clone();
    artifacts
        .stage(upload.temp, upload.id)
        .await
        .map_err(|e| artifacts.store_failed(e))?;
    let (temp, id, ct) = (
        upload.temp.to_path_buf(),
        upload.id.clone(),
        upload.content_type.to_string(),
    );
    let size = i64::try_from(upload.size)
        .map_err(|_| StoreError::OverLimit(format!("{} is too large", upload.what)))?;
    store
        .call(move |c| {
            // Bytes checked (sent again if a collection took them) and row
            // recorded under the build's write lock, which excludes the
            // garbage collector's (storage::gc::delete_artifact holds the
            // database's alone to delete bytes).
            let tx = build_write_tx(c, build.0)?;
            artifacts
                .commit_temp(&temp, &id)
                .map_err(|e| artifacts.store_failed(e))?;
            record_artifact(&tx, build, &id, &ct, size)?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    metrics::counter!("dpxdt_artifact_bytes_written_total").increment(upload.size);
    Ok(())
}

/// Refuses a PNG whose ancillary chunks inflate far beyond any real
/// profile or text (our decoder skips them, but artifacts are handed on to
/// people's browsers and tools).
async fn refuse_png_bomb(temp: &Path, what: &str) -> Result<(), StoreError> {
    let (path, what) = (temp.to_path_buf(), what.to_string());
    let checked = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        Ok::<_, std::io::Error>(dpxdt_core::diff::check_png_chunks(
            std::io::BufReader::new(file),
            &what,
        ))
    })
    .await
    .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
    checked.map_err(|e| StoreError::Invalid(e.to_string()))
}
