//! Content-addressed artifact bytes on disk, and their rows in the database.
//!
//! Bytes live at `<data>/artifacts/ab/cdef…` (the SHA-1 split after two hex
//! digits). A new artifact is written to `<data>/tmp/`, fsynced, renamed into
//! place and its directory fsynced; only then is its row inserted. So a row
//! always points at complete bytes: a crash at any moment leaves at worst an
//! orphan file without a row (never served) or a temp file (removed at start).
//! Identical bytes land on the same path, which deduplicates for free.
//!
//! Everything here is the server's alone: directories are made 0700 and
//! files 0600 ([`private_dir_all`], [`private_file`]), so the unprivileged
//! user the capture browser runs as cannot read another build's artifacts.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::storage::db::{Db, OptionalExtension, Params, Value, params};
use dpxdt_core::{ArtifactId, BuildId};
use rand::RngCore;

use super::{StoreError, now_ms, write_tx};

/// Makes `dir` and any missing parents readable by this user only (0700).
pub(crate) fn private_dir_all(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates (or truncates) the file `path`, readable by this user only (0600).
pub(crate) fn private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Takes group and other permissions off `path` if it has any (a data
/// directory made by an older version, or by hand).
pub(crate) fn make_private(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode();
    if current & 0o077 != 0 {
        tracing::info!(path = %path.display(), "taking group and other permissions off");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// The artifact directory of a data dir.
#[derive(Debug, Clone)]
pub struct ArtifactDir {
    root: PathBuf,
    tmp: PathBuf,
}

/// What the database knows about an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactInfo {
    /// The content type recorded at upload.
    pub content_type: String,
    /// Size in bytes.
    pub size: i64,
}

impl ArtifactDir {
    /// Creates the directories and, with `clean`, removes temp files left by
    /// a crash (only the process that owns the data directory may).
    pub fn open(data_dir: &Path, clean: bool) -> std::io::Result<ArtifactDir> {
        Self::open_at(&data_dir.join("artifacts"), &data_dir.join("tmp"), clean)
    }

    /// The artifact directory `root`, receiving uploads in `tmp` (on the
    /// same file system, so that a finished upload is renamed into place).
    pub fn open_at(root: &Path, tmp: &Path, clean: bool) -> std::io::Result<ArtifactDir> {
        private_dir_all(root)?;
        Self::clean_tmp(tmp, clean)?;
        Ok(ArtifactDir {
            root: root.to_path_buf(),
            tmp: tmp.to_path_buf(),
        })
    }

    /// Makes the temp directory `tmp`; with `clean`, empties it first.
    pub(crate) fn clean_tmp(tmp: &Path, clean: bool) -> std::io::Result<()> {
        if clean && tmp.exists() {
            std::fs::remove_dir_all(tmp)?;
        }
        private_dir_all(tmp)
    }

    /// The artifact directory of `data_dir` as it is: refused, not
    /// created, when a part is missing (for checks that change nothing).
    pub fn existing(data_dir: &Path) -> Result<ArtifactDir, String> {
        Self::existing_at(&data_dir.join("artifacts"), &data_dir.join("tmp"))
    }

    /// [`existing`](ArtifactDir::existing) for the directory `root` with
    /// uploads received in `tmp`.
    pub fn existing_at(root: &Path, tmp: &Path) -> Result<ArtifactDir, String> {
        for dir in [root, tmp] {
            if !dir.exists() {
                return Err(format!("no directory {}", dir.display()));
            }
        }
        Ok(ArtifactDir {
            root: root.to_path_buf(),
            tmp: tmp.to_path_buf(),
        })
    }

    /// The directory the artifacts are filed under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the bytes of `id` live.
    pub fn path(&self, id: &ArtifactId) -> PathBuf {
        let hex = id.as_str();
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    /// A fresh path in the temp directory for an upload being received.
    pub fn temp_path(&self) -> PathBuf {
        fresh_temp_path(&self.tmp)
    }

    /// Moves a complete, fsynced temp file into place as `id`. If the
    /// artifact exists already the temp file is simply removed.
    pub fn commit_temp(&self, temp: &Path, id: &ArtifactId) -> std::io::Result<()> {
        let dest = self.path(id);
        if dest.exists() {
            std::fs::remove_file(temp)?;
            return Ok(());
        }
        let dir = dest.parent().unwrap_or(&self.root);
        if !dir.exists() {
            private_dir_all(dir)?;
            // A new shard directory must itself survive a crash: fsync
            // the directory that holds it.
            File::open(dir.parent().unwrap_or(&self.root))?.sync_all()?;
        }
        std::fs::rename(temp, &dest)?;
        // Make the rename itself durable before a row refers to it.
        File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// Stores `bytes` (written, fsynced, renamed) and returns their id.
    pub fn write_bytes(&self, bytes: &[u8]) -> std::io::Result<ArtifactId> {
        let id = ArtifactId::of_bytes(bytes);
        if self.path(&id).exists() {
            return Ok(id);
        }
        let temp = self.temp_path();
        let result = (|| {
            let mut f = private_file(&temp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            self.commit_temp(&temp, &id)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map(|()| id)
    }
}

/// A fresh path in the temp directory `tmp`.
pub(crate) fn fresh_temp_path(tmp: &Path) -> PathBuf {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    tmp.join(format!("upload-{}", hex::encode(bytes)))
}

/// Fsyncs directory `dir`, so an entry just made in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Records that `build` owns artifact `id` (whose bytes are already in place).
pub fn record_artifact(
    conn: &Db,
    build: BuildId,
    id: &ArtifactId,
    content_type: &str,
    size: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO artifact (id, content_type, size, created) VALUES (?1, ?2, ?3, ?4)",
        params![id.as_str(), content_type, size, now_ms()],
    )?;
    let claimed = conn.query_rows(
        "INSERT INTO artifact_owner (build_id, artifact_id, seen) VALUES (?1, ?2, ?3)
         ON CONFLICT (build_id, artifact_id) DO NOTHING RETURNING seen",
        params![build.0, id.as_str(), now_ms()],
    )?;
    if claimed.is_empty() {
        touch_artifact(conn, build, id.as_str())?;
    } else {
        // A new claim: the build's byte count grows by the artifact's size
        // (as first recorded, whoever recorded it).
        conn.execute(
            "UPDATE build SET artifact_bytes = artifact_bytes
                 + (SELECT size FROM artifact WHERE id = ?2) WHERE id = ?1",
            params![build.0, id.as_str()],
        )?;
    }
    Ok(())
}

/// Notes that `build` uses artifact `id` now (a run refers to it), so the
/// garbage collector, which only takes what nobody used since it looked,
/// keeps it. Returns whether the build owns it.
pub fn touch_artifact(conn: &Db, build: BuildId, id: &str) -> Result<bool, StoreError> {
    Ok(!conn
        .query_rows(TOUCH_ARTIFACT, touch_values(build, id).as_slice())?
        .is_empty())
}

/// [`touch_artifact`]'s statement (a row back when the build owns it), and
/// its values, for callers that send it with others ([`Db::query_many`]).
pub(crate) const TOUCH_ARTIFACT: &str =
    "UPDATE artifact_owner SET seen = ?3 WHERE build_id = ?1 AND artifact_id = ?2 RETURNING seen";

pub(crate) fn touch_values(build: BuildId, id: &str) -> Vec<Value> {
    params![build.0, id, now_ms()].values()
}

/// The artifact `id` if `build` owns it; `None` for unknown and not-owned alike.
pub fn artifact_owned(
    conn: &Db,
    build: BuildId,
    id: &ArtifactId,
) -> Result<Option<ArtifactInfo>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT a.content_type, a.size FROM artifact_owner o JOIN artifact a ON a.id = o.artifact_id
             WHERE o.build_id = ?1 AND o.artifact_id = ?2",
            params![build.0, id.as_str()],
            |r| {
                Ok(ArtifactInfo {
                    content_type: r.get(0)?,
                    size: r.get(1)?,
                })
            },
        )
        .optional()?)
}

/// The artifact holding the thumbnail cached under `key`, if any.
pub fn find_thumbnail(conn: &Db, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT thumb_id FROM thumbnail WHERE source_key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()?)
}

/// Stores `png` as the thumbnail cached under `key`: its bytes (unless
/// there) and its rows, both under the write lock, so the garbage collector
/// never deletes the bytes of a row written in between. Returns its id.
pub fn save_thumbnail(
    conn: &mut Db,
    blobs: &super::Blobs,
    key: &str,
    png: &[u8],
) -> Result<ArtifactId, StoreError> {
    let tx = write_tx(conn)?;
    let thumb = blobs.write_bytes(png)?;
    let size = png.len() as i64;
    tx.execute(
        "INSERT OR IGNORE INTO artifact (id, content_type, size, created) VALUES (?1, 'image/png', ?2, ?3)",
        params![thumb.as_str(), size, now_ms()],
    )?;
    tx.execute(
        "INSERT INTO thumbnail (source_key, thumb_id) VALUES (?1, ?2)
         ON CONFLICT (source_key) DO UPDATE SET thumb_id = excluded.thumb_id",
        params![key, thumb.as_str()],
    )?;
    tx.commit()?;
    Ok(thumb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_bytes_is_content_addressed_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let a = ArtifactDir::open(dir.path(), true).unwrap();
        let id = a.write_bytes(b"abc").unwrap();
        assert_eq!(id.as_str(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let path = a.path(&id);
        assert!(path.ends_with("a9/993e364706816aba3e25717850c26c9cd0d89d"));
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        assert_eq!(a.write_bytes(b"abc").unwrap(), id);
        // Nothing is left in the temp directory.
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn open_removes_leftover_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = ArtifactDir::open(dir.path(), true).unwrap();
        std::fs::write(a.temp_path(), b"half").unwrap();
        ArtifactDir::open(dir.path(), true).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
