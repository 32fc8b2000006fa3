//! Screenshot checks inside `cargo test`, in the style of `insta`: compare
//! an image (or a fresh screenshot of a URL) with a reference PNG kept in
//! the repository.
//!
//! - The reference of `name` is `<dir>/<name>.png`; `dir` defaults to
//!   `$DPXDT_REFERENCE_DIR`, else `$CARGO_MANIFEST_DIR/tests/screenshots`.
//! - No reference yet: the check fails and writes the image as
//!   `<name>.new.png`, to be looked at and accepted. A reference is only
//!   ever written on purpose.
//! - A difference fails with the distortion and the paths of the triplet:
//!   the reference, `<name>.new.png` and `<name>.diff.png` next to it.
//! - Accepting: `dpxdt accept [DIR]` promotes the `.new.png` files to
//!   references (all of them with `--all`, or the names given), or run the
//!   tests again with `DPXDT_UPDATE=1`, which writes references instead of
//!   failing.
//!
//! ```
//! use dpxdt_core::check::{Checker, CheckOutcome};
//!
//! # fn png(rgb: [u8; 3]) -> Vec<u8> {
//! #     let img = image::RgbImage::from_pixel(8, 8, image::Rgb(rgb));
//! #     let mut out = std::io::Cursor::new(Vec::new());
//! #     img.write_to(&mut out, image::ImageFormat::Png).unwrap();
//! #     out.into_inner()
//! # }
//! let dir = tempfile::tempdir().unwrap();
//! let checker = Checker::new().dir(dir.path()).update(false);
//!
//! // No reference: the check fails and leaves `logo.new.png` to accept.
//! let err = checker.check_image("logo", &png([0, 0, 255])).unwrap_err();
//! assert!(err.to_string().contains("logo.new.png"));
//! // Accepting it (what `DPXDT_UPDATE=1` does) writes the reference.
//! let accept = checker.clone().update(true);
//! assert!(matches!(accept.check_image("logo", &png([0, 0, 255])).unwrap(), CheckOutcome::NewReference { .. }));
//! // Same image: passes.
//! assert!(matches!(checker.check_image("logo", &png([0, 0, 255])).unwrap(), CheckOutcome::Matched { .. }));
//! // A change fails, naming the triplet.
//! let err = checker.check_image("logo", &png([255, 0, 0])).unwrap_err();
//! assert!(err.to_string().contains("logo.diff.png"));
//! ```
//!
//! In a test, the one-liners panic with that message:
//! `dpxdt_core::check::assert_image("logo", &png_bytes)` and
//! `dpxdt_core::check::assert_url("home", "http://127.0.0.1:8000/", &config).await`
//! (the latter starts one shared headless Chromium for the test binary).
//!
//! A config with `modes` is one screenshot per mode, each checked against
//! its own reference `<name>@<mode>.png` ([`Checker::check_url_modes`];
//! `check_url` and `assert_url` check them all too).

use std::path::{Path, PathBuf};

use crate::capture::{Browser, BrowserOptions, CaptureError, Capturer};
use crate::config::{CaptureConfig, ConfigError, MODE_SEPARATOR, moded_name};
use crate::diff::{DiffError, DiffOptions, DiffReport, Region, diff_png_bytes};

/// The extension of the new image a failing check leaves beside the
/// reference (`logo.png` gets `logo.new.png`), which `dpxdt accept` looks for.
pub const NEW_EXTENSION: &str = "new.png";
/// The extension of the diff image of a failing check (`logo.diff.png`).
pub const DIFF_EXTENSION: &str = "diff.png";

/// What a passing check found.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    /// The image matches its reference.
    Matched {
        /// The reference file.
        reference: PathBuf,
        /// The comparison.
        report: DiffReport,
    },
    /// `DPXDT_UPDATE=1` and there was no reference: it was written.
    NewReference {
        /// The file written.
        reference: PathBuf,
    },
    /// `DPXDT_UPDATE=1`: the reference was replaced by the new image.
    Updated {
        /// The file written.
        reference: PathBuf,
        /// The difference that was accepted.
        report: DiffReport,
    },
    /// A config with modes: the outcome of each mode's screenshot, named
    /// `<name>@<mode>`, in the config's order.
    Modes(Vec<(String, CheckOutcome)>),
}

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The image differs from its reference.
    #[error(
        "screenshot `{name}` differs from its reference: {:.7} distortion, {} of {} pixels changed ({:.3}%){}\n  Ref:  {}\n  Run:  {}\n  Diff: {}\nIf the change is intended, accept it with `dpxdt accept {} {name}` or run with DPXDT_UPDATE=1.",
        report.distortion,
        report.changed_pixels,
        report.total_pixels,
        report.percentage,
        if report.size_changed() { format!(", size {}x{} -> {}x{}", report.reference_width, report.reference_height, report.width, report.height) } else { String::new() },
        reference.display(),
        new.display(),
        diff.display(),
        accept_dir(reference, name).display()
    )]
    Different {
        /// The check's name.
        name: String,
        /// The comparison.
        report: Box<DiffReport>,
        /// The reference file.
        reference: PathBuf,
        /// The new image, written next to it.
        new: PathBuf,
        /// The diff image, written next to it.
        diff: PathBuf,
    },
    /// There was no reference to compare with; the image was written next
    /// to where the reference belongs, to be looked at and accepted.
    #[error(
        "screenshot `{name}` has no reference yet ({}).\n  New:  {}\nLook at it, then accept it with `dpxdt accept {} {name}` or run with DPXDT_UPDATE=1.",
        reference.display(),
        new.display(),
        accept_dir(reference, name).display()
    )]
    MissingReference {
        /// The check's name.
        name: String,
        /// Where the reference belongs.
        reference: PathBuf,
        /// The new image, written as `<name>.new.png`.
        new: PathBuf,
    },
    /// A name that is not a safe file name.
    #[error(
        "invalid check name {0:?}: use letters, digits, '-', '_', '.', '@' and '/' between them"
    )]
    BadName(String),
    /// The capture config cannot be used (a mode names the mode and field).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Several screenshots of one config with modes failed; each error
    /// names its `<name>@<mode>`.
    #[error("{} screenshots failed:\n\n{}", .0.len(), join_errors(.0))]
    Several(Vec<CheckError>),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The images could not be compared.
    #[error(transparent)]
    Diff(#[from] DiffError),
    /// The screenshot could not be taken.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// A screenshot of [`Checker::check_url_modes`] could not be taken.
    #[error("screenshot `{name}` could not be taken: {source}")]
    ModeCapture {
        /// The check's name, `<name>@<mode>`.
        name: String,
        /// Why.
        #[source]
        source: CaptureError,
    },
}

fn join_errors(errors: &[CheckError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The references directory, from a reference path and its name
/// (`dir/nested/logo.png` and `nested/logo` give `dir`).
fn accept_dir(reference: &Path, name: &str) -> PathBuf {
    let mut dir = reference.to_path_buf();
    for _ in name.split('/') {
        dir.pop();
    }
    dir
}

/// Where references live and how strictly they are compared.
#[derive(Debug, Clone)]
pub struct Checker {
    dir: PathBuf,
    update: bool,
    options: DiffOptions,
    pass_on_shift: bool,
    browser: Option<crate::config::Engine>,
}

impl Default for Checker {
    fn default() -> Self {
        Checker::new()
    }
}

impl Checker {
    /// Settings from the environment (see the module docs).
    pub fn new() -> Checker {
        let dir = match std::env::var_os("DPXDT_REFERENCE_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => std::env::var_os("CARGO_MANIFEST_DIR")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join("tests")
                .join("screenshots"),
        };
        let flag = |v: &str| {
            std::env::var(v)
                .map(|s| !s.is_empty() && s != "0" && s != "false")
                .unwrap_or(false)
        };
        Checker {
            dir,
            update: flag("DPXDT_UPDATE"),
            options: DiffOptions::default(),
            pass_on_shift: false,
            browser: None,
        }
    }

    /// The directory of the references.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Checker {
        self.dir = dir.into();
        self
    }

    /// Write references instead of failing: a missing one is created and a
    /// different one replaced (what `DPXDT_UPDATE=1` sets).
    pub fn update(mut self, update: bool) -> Checker {
        self.update = update;
        self
    }

    /// Colour-distance threshold (0..1); default 0.1.
    pub fn threshold(mut self, threshold: f64) -> Checker {
        self.options.threshold = threshold;
        self
    }

    /// A region never compared.
    pub fn ignore(mut self, region: Region) -> Checker {
        self.options.ignore.push(region);
        self
    }

    /// Let a screenshot whose only differences are bands inserted or
    /// removed (moved content, see [`crate::diff::DiffReport::shifts`])
    /// match; by default any difference fails.
    pub fn pass_on_shift(mut self, pass: bool) -> Checker {
        self.pass_on_shift = pass;
        self
    }

    /// Capture in `engine` wherever a config (or its mode) names no
    /// `browser`; default Chromium.
    pub fn browser(mut self, engine: crate::config::Engine) -> Checker {
        self.browser = Some(engine);
        self
    }

    /// `config` with the checker's engine where it names none.
    fn in_browser(&self, config: &CaptureConfig) -> Result<CaptureConfig, CheckError> {
        let mut config = config.clone();
        if let Some(engine) = self.browser
            && config.browser.is_none()
        {
            config.browser = Some(engine.name().to_string());
            config.validate()?;
        }
        Ok(config)
    }

    /// The reference file of `name`.
    pub fn reference_path(&self, name: &str) -> Result<PathBuf, CheckError> {
        let ok = !name.is_empty()
            && name.split('/').all(|part| {
                !part.is_empty()
                    && !part.starts_with('.')
                    && part.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | MODE_SEPARATOR)
                    })
            });
        if !ok {
            return Err(CheckError::BadName(name.to_string()));
        }
        Ok(self.dir.join(format!("{name}.png")))
    }

    /// Compares PNG bytes with the reference of `name`.
    pub fn check_image(&self, name: &str, png: &[u8]) -> Result<CheckOutcome, CheckError> {
        let reference = self.reference_path(name)?;
        let new = reference.with_extension(NEW_EXTENSION);
        let diff = reference.with_extension(DIFF_EXTENSION);
        let write = |path: &Path, bytes: &[u8]| -> Result<(), CheckError> {
            let io = |source| CheckError::Io {
                path: path.to_path_buf(),
                source,
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            crate::atomic::write(path, bytes).map_err(io)
        };
        let clean = || {
            let _ = std::fs::remove_file(&new);
            let _ = std::fs::remove_file(&diff);
        };
        let old = match std::fs::read(&reference) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Refuse bytes that are not an image before storing them.
                crate::diff::decode_png(png, "new image", self.options.max_pixels)?;
                if !self.update {
                    let _ = std::fs::remove_file(&diff);
                    write(&new, png)?;
                    return Err(CheckError::MissingReference {
                        name: name.to_string(),
                        reference,
                        new,
                    });
                }
                write(&reference, png)?;
                clean();
                eprintln!("dpxdt: new reference {}", reference.display());
                return Ok(CheckOutcome::NewReference { reference });
            }
            Err(source) => {
                return Err(CheckError::Io {
                    path: reference,
                    source,
                });
            }
        };
        let outcome = diff_png_bytes(&old, png, &self.options)?;
        let only_moved = self.pass_on_shift && !outcome.report.changed_beyond_shifts();
        match outcome.diff_png.filter(|_| !only_moved) {
            None => {
                clean();
                Ok(CheckOutcome::Matched {
                    reference,
                    report: outcome.report,
                })
            }
            Some(_) if self.update => {
                write(&reference, png)?;
                clean();
                eprintln!("dpxdt: updated reference {}", reference.display());
                Ok(CheckOutcome::Updated {
                    reference,
                    report: outcome.report,
                })
            }
            Some(diff_png) => {
                write(&new, png)?;
                write(&diff, &diff_png)?;
                Err(CheckError::Different {
                    name: name.to_string(),
                    report: Box::new(outcome.report),
                    reference,
                    new,
                    diff,
                })
            }
        }
    }

    /// Compares a PNG file with the reference of `name`.
    pub fn check_png_file(&self, name: &str, path: &Path) -> Result<CheckOutcome, CheckError> {
        let bytes = std::fs::read(path).map_err(|source| CheckError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.check_image(name, &bytes)
    }

    /// Screenshots `url` (with the shared browser, see [`shared_browser`])
    /// and compares it with the reference of `name`. A config with modes
    /// is checked as [`Checker::check_url_modes`] does, its outcomes in
    /// [`CheckOutcome::Modes`].
    pub async fn check_url(
        &self,
        name: &str,
        url: &str,
        config: &CaptureConfig,
    ) -> Result<CheckOutcome, CheckError> {
        self.check_url_with(shared_browser().await?, name, url, config)
            .await
    }

    /// [`Checker::check_url`] with any [`Capturer`] instead of the shared
    /// browser (another browser, or a stand-in in tests).
    pub async fn check_url_with(
        &self,
        capturer: &dyn Capturer,
        name: &str,
        url: &str,
        config: &CaptureConfig,
    ) -> Result<CheckOutcome, CheckError> {
        if !config.modes.is_empty() {
            let outcomes = self
                .check_url_modes_with(capturer, name, url, config)
                .await?;
            return Ok(CheckOutcome::Modes(outcomes));
        }
        let config = self.in_browser(config)?;
        self.reference_path(name)?;
        let shot = capturer.capture(url, &config).await?;
        self.check_image(name, &shot.png)
    }

    /// Screenshots `url` once per mode of `config` (once when it has none)
    /// with the shared browser, and compares each screenshot with its own
    /// reference, `<name>@<mode>` (`name` without modes). Every mode is
    /// checked, so each failing one leaves its `.new.png`; the error is the
    /// one failure, or [`CheckError::Several`]. A bad mode or name fails
    /// before anything is captured.
    pub async fn check_url_modes(
        &self,
        name: &str,
        url: &str,
        config: &CaptureConfig,
    ) -> Result<Vec<(String, CheckOutcome)>, CheckError> {
        self.check_url_modes_with(shared_browser().await?, name, url, config)
            .await
    }

    /// [`Checker::check_url_modes`] with any [`Capturer`].
    pub async fn check_url_modes_with(
        &self,
        capturer: &dyn Capturer,
        name: &str,
        url: &str,
        config: &CaptureConfig,
    ) -> Result<Vec<(String, CheckOutcome)>, CheckError> {
        let variants = self.in_browser(config)?.variants()?;
        let mut named = Vec::with_capacity(variants.len());
        for (mode, config) in variants {
            let name = moded_name(name, mode.as_deref());
            self.reference_path(&name)?;
            named.push((name, config));
        }
        // The captures run side by side (as many as the capturer has
        // sessions); the comparisons one after the other.
        let shots = futures_util::future::join_all(
            named
                .iter()
                .map(|(_, config)| capturer.capture(url, config)),
        )
        .await;
        let mut outcomes = Vec::with_capacity(named.len());
        let mut failures = Vec::new();
        for ((name, _), shot) in named.into_iter().zip(shots) {
            let checked = match shot {
                Ok(shot) => self.check_image(&name, &shot.png),
                Err(source) => Err(CheckError::ModeCapture {
                    name: name.clone(),
                    source,
                }),
            };
            match checked {
                Ok(outcome) => outcomes.push((name, outcome)),
                Err(e) => failures.push(e),
            }
        }
        match failures.len() {
            0 => Ok(outcomes),
            1 => Err(failures.remove(0)),
            _ => Err(CheckError::Several(failures)),
        }
    }
}

/// One headless Chromium for the whole process (started on first use,
/// killed when the process exits). Its work runs on its own thread, so each
/// `#[tokio::test]` may use it from its own runtime.
pub async fn shared_browser() -> Result<&'static Browser, CaptureError> {
    static BROWSER: tokio::sync::OnceCell<Browser> = tokio::sync::OnceCell::const_new();
    BROWSER
        .get_or_try_init(|| async {
            let sessions = std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(1);
            Browser::launch(BrowserOptions {
                sessions,
                ..BrowserOptions::default()
            })
            .await
        })
        .await
}

/// [`Checker::check_image`] with the environment's settings; panics with
/// the failure message (for use in tests).
#[track_caller]
pub fn assert_image(name: &str, png: &[u8]) -> CheckOutcome {
    match Checker::new().check_image(name, png) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

/// [`Checker::check_png_file`] with the environment's settings; panics on failure.
#[track_caller]
pub fn assert_png_file(name: &str, path: &Path) -> CheckOutcome {
    match Checker::new().check_png_file(name, path) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

/// [`Checker::check_url`] with the environment's settings; panics on failure.
pub async fn assert_url(name: &str, url: &str, config: &CaptureConfig) -> CheckOutcome {
    match Checker::new().check_url(name, url, config).await {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn checker(dir: &Path) -> Checker {
        Checker::new().dir(dir).update(false)
    }

    /// Writes the reference of `name` as `DPXDT_UPDATE=1` would.
    fn accept(c: &Checker, name: &str, png: &[u8]) {
        let o = c.clone().update(true).check_image(name, png).unwrap();
        assert!(matches!(o, CheckOutcome::NewReference { .. }), "{o:?}");
    }

    #[test]
    fn a_missing_reference_fails_until_accepted_then_matches_then_fails_with_triplet() {
        let dir = tempfile::tempdir().unwrap();
        let c = checker(dir.path());
        let blue = png(4, 4, [0, 0, 255]);
        let reference = dir.path().join("nested/logo.png");
        let err = c.check_image("nested/logo", &blue).unwrap_err();
        assert!(matches!(err, CheckError::MissingReference { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("logo.new.png") && msg.contains("dpxdt accept"),
            "{msg}"
        );
        assert!(
            !reference.exists(),
            "a failing check never writes a reference"
        );
        assert_eq!(
            std::fs::read(dir.path().join("nested/logo.new.png")).unwrap(),
            blue
        );

        let o = c
            .clone()
            .update(true)
            .check_image("nested/logo", &blue)
            .unwrap();
        assert_eq!(
            o,
            CheckOutcome::NewReference {
                reference: reference.clone()
            }
        );
        assert_eq!(std::fs::read(&reference).unwrap(), blue);
        assert!(!dir.path().join("nested/logo.new.png").exists());
        assert!(matches!(
            c.check_image("nested/logo", &blue).unwrap(),
            CheckOutcome::Matched { .. }
        ));

        let red = png(4, 4, [255, 0, 0]);
        let err = c.check_image("nested/logo", &red).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("16 of 16 pixels changed"), "{msg}");
        assert!(
            msg.contains("logo.new.png") && msg.contains("logo.diff.png"),
            "{msg}"
        );
        assert_eq!(
            std::fs::read(dir.path().join("nested/logo.new.png")).unwrap(),
            red
        );
        assert!(dir.path().join("nested/logo.diff.png").exists());
        // The reference is untouched.
        assert_eq!(std::fs::read(&reference).unwrap(), blue);

        // Accepting replaces it and removes the triplet's extra files.
        let o = c
            .clone()
            .update(true)
            .check_image("nested/logo", &red)
            .unwrap();
        assert!(matches!(o, CheckOutcome::Updated { .. }));
        assert_eq!(std::fs::read(&reference).unwrap(), red);
        assert!(!dir.path().join("nested/logo.new.png").exists());
        assert!(!dir.path().join("nested/logo.diff.png").exists());
    }

    /// 8 rows of distinct colours, with `inserted` white rows at y=3.
    fn rows_png(inserted: u32) -> Vec<u8> {
        let h = 8 + inserted;
        let img = image::RgbImage::from_fn(4, h, |x, y| {
            let y = match y {
                y if y < 3 => y,
                y if y < 3 + inserted => return image::Rgb([255, 255, 255]),
                y => y - inserted,
            };
            image::Rgb([(y * 30) as u8, (x * 50) as u8, 100])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn moved_content_fails_unless_pass_on_shift() {
        let dir = tempfile::tempdir().unwrap();
        let c = checker(dir.path());
        accept(&c, "page", &rows_png(0));
        let err = c.check_image("page", &rows_png(2)).unwrap_err();
        let CheckError::Different { report, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(report.shifts.len(), 1, "{report:?}");
        assert_eq!(report.changed_pixels, 0);
        let o = c
            .clone()
            .pass_on_shift(true)
            .check_image("page", &rows_png(2))
            .unwrap();
        assert!(matches!(o, CheckOutcome::Matched { .. }), "{o:?}");
    }

    #[test]
    fn a_size_change_is_a_difference() {
        let dir = tempfile::tempdir().unwrap();
        let c = checker(dir.path());
        accept(&c, "a", &png(4, 4, [0, 0, 0]));
        let err = c.check_image("a", &png(4, 5, [0, 0, 0])).unwrap_err();
        assert!(err.to_string().contains("size 4x4 -> 4x5"), "{err}");
    }

    /// Answers every URL with the same picture.
    struct Still(Vec<u8>);

    impl Capturer for Still {
        fn capture<'a>(
            &'a self,
            _url: &'a str,
            _config: &'a CaptureConfig,
        ) -> crate::capture::CaptureFuture<'a> {
            let png = self.0.clone();
            Box::pin(async move {
                Ok(crate::capture::Capture {
                    png,
                    log: String::new(),
                    located: Vec::new(),
                    links: Vec::new(),
                })
            })
        }
    }

    #[tokio::test]
    async fn check_url_goes_through_the_capturer_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let c = checker(dir.path());
        let config = CaptureConfig::default();
        let blue = Still(png(4, 4, [0, 0, 255]));
        accept(&c, "page", &blue.0);
        let o = c.check_url_with(&blue, "page", "http://x/", &config).await;
        assert!(matches!(o, Ok(CheckOutcome::Matched { .. })), "{o:?}");
        let red = Still(png(4, 4, [255, 0, 0]));
        let err = c
            .check_url_with(&red, "page", "http://x/", &config)
            .await
            .unwrap_err();
        assert!(matches!(err, CheckError::Different { .. }), "{err}");
        let bad = c.check_url_with(&red, "../up", "http://x/", &config).await;
        assert!(matches!(bad, Err(CheckError::BadName(_))));
    }

    /// Paints each capture by the config's colour scheme (`dark` black,
    /// otherwise white; `dark` red once `dark_changed`), counting captures.
    #[derive(Default)]
    struct Schemes {
        captures: std::sync::atomic::AtomicUsize,
        dark_changed: std::sync::atomic::AtomicBool,
    }

    impl Capturer for Schemes {
        fn capture<'a>(
            &'a self,
            _url: &'a str,
            config: &'a CaptureConfig,
        ) -> crate::capture::CaptureFuture<'a> {
            use std::sync::atomic::Ordering::SeqCst;
            self.captures.fetch_add(1, SeqCst);
            let rgb = match config.color_scheme.as_deref() {
                Some("dark") if self.dark_changed.load(SeqCst) => [255, 0, 0],
                Some("dark") => [0, 0, 0],
                _ => [255, 255, 255],
            };
            Box::pin(async move {
                Ok(crate::capture::Capture {
                    png: png(4, 4, rgb),
                    log: String::new(),
                    located: Vec::new(),
                    links: Vec::new(),
                })
            })
        }
    }

    #[tokio::test]
    async fn each_mode_is_checked_against_its_own_reference() {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = tempfile::tempdir().unwrap();
        let c = checker(dir.path());
        let pages = Schemes::default();
        let config = CaptureConfig::from_json(
            r#"{"modes": [{"name": "light"}, {"name": "dark", "colorScheme": "dark"}]}"#,
        )
        .unwrap();
        let path = |name: &str| dir.path().join(name);

        // No references: both fail, each leaving its own new image.
        let err = c
            .check_url_modes_with(&pages, "home", "http://x/", &config)
            .await
            .unwrap_err();
        let CheckError::Several(failures) = &err else {
            panic!("{err}");
        };
        assert_eq!(failures.len(), 2);
        let msg = err.to_string();
        assert!(
            msg.contains("`home@light`") && msg.contains("`home@dark`"),
            "{msg}"
        );
        let new_dark = std::fs::read(path("home@dark.new.png")).unwrap();
        assert_eq!(new_dark, png(4, 4, [0, 0, 0]));
        assert!(path("home@light.new.png").exists() && !path("home.new.png").exists());

        // Accepting writes one reference per mode; then both match.
        let o = c
            .clone()
            .update(true)
            .check_url_with(&pages, "home", "http://x/", &config)
            .await
            .unwrap();
        let CheckOutcome::Modes(outcomes) = o else {
            panic!("{o:?}");
        };
        let names: Vec<_> = outcomes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["home@light", "home@dark"]);
        assert_eq!(std::fs::read(path("home@dark.png")).unwrap(), new_dark);
        assert_eq!(
            std::fs::read(path("home@light.png")).unwrap(),
            png(4, 4, [255, 255, 255])
        );
        let matched = c
            .check_url_modes_with(&pages, "home", "http://x/", &config)
            .await
            .unwrap();
        assert!(
            matched
                .iter()
                .all(|(_, o)| matches!(o, CheckOutcome::Matched { .. })),
            "{matched:?}"
        );

        // One mode changes: the error is that mode's alone.
        pages.dark_changed.store(true, SeqCst);
        let err = c
            .check_url_with(&pages, "home", "http://x/", &config)
            .await
            .unwrap_err();
        let CheckError::Different { name, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(name, "home@dark");
        assert!(err.to_string().contains("dpxdt accept"), "{err}");
        assert!(path("home@dark.diff.png").exists() && !path("home@light.new.png").exists());

        // A bad mode or name fails before any capture.
        let before = pages.captures.load(SeqCst);
        let mut bad = config.clone();
        bad.modes[1]
            .fields
            .insert("colorScheme".into(), "blue".into());
        let err = c
            .check_url_modes_with(&pages, "home", "http://x/", &bad)
            .await
            .unwrap_err();
        assert!(matches!(err, CheckError::Config(_)), "{err}");
        assert!(
            err.to_string().contains("\"dark\"") && err.to_string().contains("colorScheme"),
            "{err}"
        );
        let err = c
            .check_url_modes_with(&pages, "../home", "http://x/", &config)
            .await
            .unwrap_err();
        assert!(matches!(err, CheckError::BadName(_)), "{err}");
        assert_eq!(pages.captures.load(SeqCst), before);

        // Without modes nothing changes: one check, named as given.
        let plain = c
            .clone()
            .update(true)
            .check_url_modes_with(&pages, "plain", "http://x/", &CaptureConfig::default())
            .await
            .unwrap();
        assert_eq!(plain[0].0, "plain");
        assert!(path("plain.png").exists());
    }

    #[test]
    fn bad_names_and_bad_images_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = checker(dir.path());
        assert!(c.reference_path("ui/home@dark").is_ok());
        for bad in ["", "../x", "a/../b", "/abs", "a b", ".hidden", "a//b"] {
            assert!(
                matches!(c.check_image(bad, b"x"), Err(CheckError::BadName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            c.check_image("junk", b"not a png"),
            Err(CheckError::Diff(_))
        ));
        assert!(!dir.path().join("junk.png").exists());
        assert!(!dir.path().join("junk.new.png").exists());
    }

    #[test]
    fn threshold_and_ignore_regions_apply() {
        let dir = tempfile::tempdir().unwrap();
        let c = checker(dir.path());
        accept(&c, "t", &png(4, 4, [100, 100, 100]));
        // A faint change passes the default threshold, fails at 0.
        assert!(c.check_image("t", &png(4, 4, [101, 100, 100])).is_ok());
        assert!(
            c.clone()
                .threshold(0.0)
                .check_image("t", &png(4, 4, [101, 100, 100]))
                .is_err()
        );
        let everything = Region {
            x1: 0,
            y1: 0,
            x2: 3,
            y2: 3,
        };
        assert!(
            c.ignore(everything)
                .check_image("t", &png(4, 4, [0, 0, 0]))
                .is_ok()
        );
    }
}
