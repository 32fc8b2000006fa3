//! `dpxdt accept`: promotes the new images that failing screenshot checks
//! left behind (`<name>.new.png`, see `dpxdt_core::check`) to references.
//!
//! A pending image is any `*.new.png` under the references directory; its
//! name is its path relative to that directory without the suffix, as the
//! check named it. Accepting renames it over `<name>.png` (readers see the
//! old reference or the new one, never half) and removes `<name>.diff.png`.
//! A file that is not a decodable PNG is refused, so a stray file never
//! becomes a reference. A name stands for itself and for each of its modes
//! (`home` for `home` and every `home@<mode>`; `home@dark` for that one).

use std::path::{Path, PathBuf};

use dpxdt_core::check::{DIFF_EXTENSION, NEW_EXTENSION};
use dpxdt_core::config::MODE_SEPARATOR;
use dpxdt_core::diff::{DEFAULT_MAX_PIXELS, decode_png};

/// One image waiting to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The check's name (`nested/logo`).
    pub name: String,
    /// The new image (`DIR/nested/logo.new.png`).
    pub new: PathBuf,
    /// The reference it would become (`DIR/nested/logo.png`).
    pub reference: PathBuf,
    /// Whether a reference exists that it would replace.
    pub replaces: bool,
}

/// Why accepting failed.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// A file or directory could not be read, renamed or removed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A name was given that has no pending image.
    #[error("no pending image named {name:?} in {} (pending: {})", dir.display(), if pending.is_empty() { "none".to_string() } else { pending.join(", ") })]
    NotPending {
        /// The name given.
        name: String,
        /// The references directory.
        dir: PathBuf,
        /// What is pending there.
        pending: Vec<String>,
    },
    /// A pending file is not a PNG image.
    #[error("{} is not a PNG image, so it was not accepted: {source}", path.display())]
    NotAnImage {
        /// The file.
        path: PathBuf,
        /// Why it could not be decoded.
        #[source]
        source: dpxdt_core::diff::DiffError,
    },
}

/// Every pending image under `dir`, sorted by name. Hidden directories
/// (`.git`, ...) are skipped.
pub fn pending(dir: &Path) -> Result<Vec<Pending>, AcceptError> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let io = |source| AcceptError::Io {
            path: at.clone(),
            source,
        };
        for entry in std::fs::read_dir(&at).map_err(io)? {
            let entry = entry.map_err(io)?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if file_name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let kind = entry.file_type().map_err(io)?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            let Some(stem) = file_name
                .strip_suffix(NEW_EXTENSION)
                .and_then(|s| s.strip_suffix('.'))
            else {
                continue;
            };
            if stem.is_empty() || !kind.is_file() {
                continue;
            }
            let reference = at.join(format!("{stem}.png"));
            let relative = reference
                .strip_prefix(dir)
                .unwrap_or(&reference)
                .with_extension("");
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            found.push(Pending {
                name,
                replaces: reference.exists(),
                new: path,
                reference,
            });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The pending images named (every one when `names` is empty; a name
/// also stands for its modes, `<name>@<mode>`), checked before any is
/// accepted: a name that matches nothing refuses the whole request.
pub fn select(dir: &Path, names: &[String]) -> Result<Vec<Pending>, AcceptError> {
    let all = pending(dir)?;
    if names.is_empty() {
        return Ok(all);
    }
    let mut chosen: Vec<Pending> = Vec::new();
    for name in names {
        let wanted = name
            .trim_end_matches(&format!(".{NEW_EXTENSION}"))
            .trim_end_matches(".png");
        let matching: Vec<&Pending> = all.iter().filter(|p| names_it(wanted, &p.name)).collect();
        if matching.is_empty() {
            return Err(AcceptError::NotPending {
                name: name.clone(),
                dir: dir.to_path_buf(),
                pending: all.iter().map(|p| p.name.clone()).collect(),
            });
        }
        for p in matching {
            if !chosen.contains(p) {
                chosen.push(p.clone());
            }
        }
    }
    Ok(chosen)
}

/// Whether the name `wanted` stands for the pending image `name`: the
/// same name, or `wanted@<mode>`.
fn names_it(wanted: &str, name: &str) -> bool {
    name == wanted
        || name
            .strip_prefix(wanted)
            .and_then(|rest| rest.strip_prefix(MODE_SEPARATOR))
            .is_some_and(|mode| !mode.is_empty() && !mode.contains(['/', MODE_SEPARATOR]))
}

/// Makes one pending image the reference and removes its diff image.
pub fn accept(pending: &Pending) -> Result<(), AcceptError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AcceptError::Io { path, source }
    };
    let bytes = std::fs::read(&pending.new).map_err(io(&pending.new))?;
    decode_png(&bytes, "new image", DEFAULT_MAX_PIXELS).map_err(|source| {
        AcceptError::NotAnImage {
            path: pending.new.clone(),
            source,
        }
    })?;
    std::fs::rename(&pending.new, &pending.reference).map_err(io(&pending.reference))?;
    dpxdt_core::atomic::sync_parent(&pending.reference).map_err(io(&pending.reference))?;
    let diff = pending.reference.with_extension(DIFF_EXTENSION);
    match std::fs::remove_file(&diff) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&diff)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(rgb: [u8; 3]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, 2, 2);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&rgb.repeat(4)).unwrap();
        writer.finish().unwrap();
        out
    }

    fn put(dir: &Path, name: &str, bytes: &[u8]) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn pending_images_are_found_by_name_in_nested_directories() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "home.png", &png([0, 0, 0]));
        put(dir.path(), "home.new.png", &png([1, 1, 1]));
        put(dir.path(), "home.diff.png", &png([2, 2, 2]));
        put(dir.path(), "ui/card.new.png", &png([3, 3, 3]));
        put(dir.path(), ".git/x.new.png", &png([3, 3, 3]));
        put(dir.path(), "notes.txt", b"x");
        let found = pending(dir.path()).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| (p.name.as_str(), p.replaces))
            .collect();
        assert_eq!(names, [("home", true), ("ui/card", false)]);
        assert_eq!(found[1].reference, dir.path().join("ui/card.png"));
    }

    #[test]
    fn accepting_replaces_the_reference_and_removes_the_diff() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "home.png", &png([0, 0, 0]));
        put(dir.path(), "home.new.png", &png([1, 1, 1]));
        put(dir.path(), "home.diff.png", &png([2, 2, 2]));
        let chosen = select(dir.path(), &["home".to_string()]).unwrap();
        accept(&chosen[0]).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("home.png")).unwrap(),
            png([1, 1, 1])
        );
        assert!(!dir.path().join("home.new.png").exists());
        assert!(!dir.path().join("home.diff.png").exists());
        assert!(pending(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn a_name_stands_for_itself_and_its_modes() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "home.new.png",
            "home@dark.new.png",
            "home@v1.2.new.png",
            "homepage@dark.new.png",
            "about@dark.new.png",
        ] {
            put(dir.path(), name, &png([1, 1, 1]));
        }
        let names = |wanted: &[&str]| -> Vec<String> {
            let wanted: Vec<String> = wanted.iter().map(|w| w.to_string()).collect();
            select(dir.path(), &wanted)
                .unwrap()
                .into_iter()
                .map(|p| p.name)
                .collect()
        };
        assert_eq!(names(&["home"]), ["home", "home@dark", "home@v1.2"]);
        assert_eq!(names(&["home@dark", "about"]), ["home@dark", "about@dark"]);
        assert_eq!(names(&["home@v1.2.new.png"]), ["home@v1.2"]);
        let chosen = select(dir.path(), &["home@dark".into()]).unwrap();
        assert_eq!(chosen[0].reference, dir.path().join("home@dark.png"));
        accept(&chosen[0]).unwrap();
        assert!(dir.path().join("home@dark.png").exists());
        assert!(select(dir.path(), &["home@light".into()]).is_err());
    }

    #[test]
    fn an_unknown_name_refuses_the_whole_request() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "a.new.png", &png([1, 1, 1]));
        let err = select(dir.path(), &["a".into(), "b".into()]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"b\"") && msg.contains("pending: a"), "{msg}");
        assert!(dir.path().join("a.new.png").exists());
    }

    #[test]
    fn a_file_that_is_not_a_png_never_becomes_a_reference() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "a.png", &png([0, 0, 0]));
        put(dir.path(), "a.new.png", b"not a png");
        let chosen = select(dir.path(), &[]).unwrap();
        let err = accept(&chosen[0]).unwrap_err();
        assert!(matches!(err, AcceptError::NotAnImage { .. }), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join("a.png")).unwrap(),
            png([0, 0, 0])
        );
    }
}
