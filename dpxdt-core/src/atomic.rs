//! Writing a file so that readers see the old content or the new, never a
//! half-written file, even if the process dies, and for
//! [`Durability::Durable`] files even if the machine loses power.
//!
//! The bytes go to a hidden temporary sibling (same directory, so the
//! rename cannot cross file systems) and the temporary file is renamed over
//! the target. For [`Durability::Durable`] files it is fsynced first and the
//! directory after, so the rename itself survives a crash. On any error the
//! temporary file is removed and the target is left as it was.
//!
//! Every writer of references and diff images uses this one helper (the
//! server's artifact store has its own). Only diff images, which running
//! again makes again, skip the fsyncs ([`Durability::Replaceable`]): they
//! cost `dpxdt diff -o` about 6% of its median on this project's VM disks.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a written file survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The process dying and the machine losing power: flushed to disk
    /// before and after the rename (references, stored artifacts).
    Durable,
    /// The process dying, and readers never see half a file; after a power
    /// cut the file may be missing or empty. For output that running again
    /// makes again (diff images).
    Replaceable,
}

/// Writes `bytes` to `path` atomically and durably (see the module docs).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, Durability::Durable, |out| out.write_all(bytes))
}

/// Writes whatever `body` produces to `path` atomically. `body` gets a
/// buffered writer on the temporary file; an error from it leaves the
/// target untouched.
pub fn write_with(
    path: &Path,
    durability: Durability,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = temporary_sibling(path)?;
    let durable = durability == Durability::Durable;
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        body(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        if durable {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&tmp, path)?;
        if durable { sync_parent(path) } else { Ok(()) }
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs the directory holding `path`, so a rename or a newly created
/// entry in it is durable.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

/// `.NAME.PID.N.tmp` next to `path`: unique per process and call, so two
/// writers of one target (threads or processes) never share a temp file.
fn temporary_sibling(path: &Path) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(path.with_file_name(format!(
        ".{}.{}.{n}.tmp",
        name.to_string_lossy(),
        std::process::id()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ref.png");
        write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(entries(dir.path()), ["ref.png"]);
    }

    #[test]
    fn a_failing_body_keeps_the_old_content_and_removes_its_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ref.png");
        write(&path, b"old").unwrap();
        for durability in [Durability::Durable, Durability::Replaceable] {
            let err = write_with(&path, durability, |out| {
                out.write_all(b"half")?;
                Err(std::io::Error::other("encoder gave up"))
            })
            .unwrap_err();
            assert_eq!(err.to_string(), "encoder gave up");
            assert_eq!(std::fs::read(&path).unwrap(), b"old");
            assert_eq!(entries(dir.path()), ["ref.png"]);
        }
        write_with(&path, Durability::Replaceable, |out| out.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(entries(dir.path()), ["ref.png"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("ref.png");
        let err = write(&path, b"x").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(entries(dir.path()).is_empty());
    }
}
