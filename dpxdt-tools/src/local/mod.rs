//! Local mode: `dpxdt update DIR` / `dpxdt test DIR`.
//!
//! Every `*.yaml` file in DIR (sorted by name) is processed in turn: its
//! `setup` script starts in its own process group, `waitFor` is awaited,
//! the tests selected by the filter are captured (up to `jobs` at once),
//! and the setup is killed — also on error or Ctrl-C. `update` writes each
//! test's screenshot to `DIR/<name>.png`; `test` compares a new screenshot
//! with it and keeps the reference/run/diff triplet of each failure. A test
//! with `modes` is one test per mode, named `<name>@<mode>` (its reference
//! `DIR/<name>@<mode>.png`) from the YAML on.
//!
//! The runner reports progress through [`Reporter`] events; the
//! command-line tool turns them into the original console messages.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dpxdt_tools::local::LocalError> {
//! use dpxdt_tools::local::{self, Mode, RunOptions};
//! let dir = std::path::Path::new("tests/screenshots");
//! let files = local::load_dir(dir)?;
//! let summary = local::run(Mode::Test, dir, &files, &RunOptions::default(), local::quiet()).await?;
//! std::process::exit(summary.exit_code());
//! # }
//! ```

mod console;
mod filter;
pub mod report;
mod setup;
mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use console::{Console, list_tests};
pub use filter::TestFilter;
pub use yaml::{Arm, SuiteFile, TestSpec, WaitFor, parse_file, parse_str};

use dpxdt_core::capture::{Browser, BrowserOptions, Capture, CaptureError, Capturer};
use dpxdt_core::diff::{DiffOptions, DiffReport, diff_png_bytes};

/// Which local mode runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Capture and write references.
    Update,
    /// Capture and compare with the references.
    Test,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Captures at once (browser sessions); default: number of cores.
    pub jobs: usize,
    /// Which tests run.
    pub filter: TestFilter,
    /// Where screenshots, logs and failure triplets go in test mode;
    /// default: a new directory under the system temp dir.
    pub output_dir: Option<PathBuf>,
    /// Browser settings (`sessions` is replaced by `jobs`).
    pub browser: BrowserOptions,
    /// A test whose only differences are bands inserted or removed (moved
    /// content) passes; by default any difference fails.
    pub pass_on_shift: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            filter: TestFilter::default(),
            output_dir: None,
            browser: BrowserOptions::default(),
            pass_on_shift: false,
        }
    }
}

/// Why local mode could not run.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// DIR has no YAML file.
    #[error("no *.yaml files found in {}", .0.display())]
    NoFiles(PathBuf),
    /// A YAML file is malformed.
    #[error("{}:{}: {}{}", path.display(), line.map(|l| l.to_string()).unwrap_or_else(|| "?".into()), if key.is_empty() { String::new() } else { format!("{key}: ") }, message)]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// The key at fault (`tests[2] (home).config.viewportsize`), may be empty.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The setup script could not be started.
    #[error("setup: {0}")]
    Setup(String),
    /// `waitFor` failed.
    #[error("waitFor: {0}")]
    WaitFor(String),
    /// The browser could not be started.
    #[error(transparent)]
    Browser(#[from] CaptureError),
}

/// Something that happened, for the console.
#[derive(Debug)]
pub enum Event<'a> {
    /// A file's processing starts.
    File {
        /// The YAML file.
        path: &'a Path,
        /// Tests selected in it.
        tests: usize,
    },
    /// `waitFor` URL answered 200.
    WaitForOk {
        /// The URL.
        url: &'a str,
    },
    /// A test's capture starts.
    Capturing {
        /// Test name.
        name: &'a str,
    },
    /// A test's screenshot is being compared.
    Diffing {
        /// Test name.
        name: &'a str,
    },
    /// A test finished.
    Done(&'a TestResult),
}

/// Receives [`Event`]s (from several tasks at once).
pub trait Reporter: Send + Sync {
    /// Called for each event.
    fn event(&self, event: &Event<'_>);
}

struct Quiet;
impl Reporter for Quiet {
    fn event(&self, _: &Event<'_>) {}
}

/// A reporter that prints nothing.
pub fn quiet() -> Arc<dyn Reporter> {
    Arc::new(Quiet)
}

/// Reference, new screenshot and diff image of a failed test.
#[derive(Debug, Clone, PartialEq)]
pub struct Triplet {
    /// Copy of the reference image.
    pub reference: PathBuf,
    /// The new screenshot.
    pub run: PathBuf,
    /// The diff image.
    pub diff: PathBuf,
}

/// How one test ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Update mode: the reference was written.
    Updated {
        /// The reference file.
        path: PathBuf,
    },
    /// Test mode: no difference beyond the threshold.
    Passed {
        /// The comparison.
        report: DiffReport,
        /// The new screenshot (kept in the output dir).
        run: PathBuf,
        /// The reference file.
        reference: PathBuf,
    },
    /// Test mode: a difference.
    Failed {
        /// The comparison.
        report: DiffReport,
        /// The kept images.
        triplet: Triplet,
    },
    /// The test could not run (capture failed, reference missing, ...).
    Error {
        /// What went wrong.
        message: String,
    },
}

/// One test's result.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// The YAML file it came from.
    pub file: PathBuf,
    /// Test name.
    pub name: String,
    /// The URL captured.
    pub url: String,
    /// The engine that captured it.
    pub browser: dpxdt_core::config::Engine,
    /// How it ended.
    pub outcome: Outcome,
    /// Time taken.
    pub duration: Duration,
    /// The capture log, when there was a capture.
    pub log: String,
}

/// Every result of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Results in completion order.
    pub results: Vec<TestResult>,
    /// Where test mode kept screenshots and triplets.
    pub output_dir: Option<PathBuf>,
}

impl Summary {
    /// Tests that failed (a difference).
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
            .count()
    }

    /// Tests that could not run.
    pub fn errors(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Error { .. }))
            .count()
    }

    /// 0 all passed / updated, 1 some test failed, 2 some test could not run.
    pub fn exit_code(&self) -> i32 {
        if self.errors() > 0 {
            2
        } else if self.failed() > 0 {
            1
        } else {
            0
        }
    }
}

/// Reads every `*.yaml` file of `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<SuiteFile>, LocalError> {
    let io = |e| LocalError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(LocalError::NoFiles(dir.to_path_buf()));
    }
    let files = paths
        .iter()
        .map(|p| parse_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::HashMap::new();
    for f in &files {
        for t in &f.tests {
            if let Some(other) = seen.insert(t.name.clone(), f.path.clone()) {
                return Err(LocalError::Yaml {
                    path: f.path.clone(),
                    line: None,
                    key: "name".into(),
                    message: format!(
                        "test {:?} is also in {}; names share {}/<name>.png",
                        t.name,
                        other.display(),
                        dir.display()
                    ),
                });
            }
        }
    }
    Ok(files)
}

/// Runs `files` (from [`load_dir`] of `dir`) in `mode` with a headless
/// Chromium of `options.browser` (one session per job).
pub async fn run(
    mode: Mode,
    dir: &Path,
    files: &[SuiteFile],
    options: &RunOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Summary, LocalError> {
    let jobs = jobs(files, options);
    if jobs == 0 {
        return Ok(Summary::default());
    }
    // Chromium starts up front when a selected test uses it, so a broken
    // install fails the run at once; any other engine starts at its first
    // capture, and one that cannot fails only its own tests.
    let chromium = files
        .iter()
        .flat_map(|f| &f.tests)
        .filter(|t| options.filter.selects(t))
        .any(|t| {
            [&t.run.config, &t.reference.config]
                .iter()
                .any(|c| c.engine() == dpxdt_core::config::Engine::Chromium)
        });
    let browser = Arc::new(
        Browser::launch(BrowserOptions {
            sessions: jobs,
            engines: if chromium {
                vec![dpxdt_core::config::Engine::Chromium]
            } else {
                Vec::new()
            },
            ..options.browser.clone()
        })
        .await?,
    );
    let capturer: Arc<dyn Capturer> = browser.clone();
    let summary = run_with(capturer, mode, dir, files, options, reporter).await;
    if let Ok(browser) = Arc::try_unwrap(browser) {
        browser.shutdown().await;
    }
    summary
}

/// How many tests run at once: `options.jobs`, at most the number selected
/// (0 when none is).
fn jobs(files: &[SuiteFile], options: &RunOptions) -> usize {
    let selected: usize = files
        .iter()
        .map(|f| f.tests.iter().filter(|t| options.filter.selects(t)).count())
        .sum();
    options.jobs.max(1).min(selected)
}

/// The selected tests in groups run as one: each test alone, except that
/// the consecutive modes of one test (`home@light`, `home@dark`) go
/// together.
fn mode_groups(tests: Vec<&TestSpec>) -> Vec<Vec<&TestSpec>> {
    let base = |t: &TestSpec| {
        t.mode.as_ref().and_then(|m| {
            t.name
                .strip_suffix(m.as_str())
                .and_then(|n| n.strip_suffix(dpxdt_core::config::MODE_SEPARATOR))
                .map(str::to_string)
        })
    };
    let mut groups: Vec<Vec<&TestSpec>> = Vec::new();
    for t in tests {
        let joins = match groups.last().and_then(|g| g.last()) {
            Some(prev) => {
                base(t).is_some()
                    && base(prev) == base(t)
                    && prev.run.url == t.run.url
                    && prev.reference.url == t.reference.url
            }
            None => false,
        };
        match groups.last_mut() {
            Some(group) if joins => group.push(t),
            _ => groups.push(vec![t]),
        }
    }
    groups
}

/// [`run`] with any [`Capturer`] (a browser, or a stand-in in tests).
pub async fn run_with(
    capturer: Arc<dyn Capturer>,
    mode: Mode,
    dir: &Path,
    files: &[SuiteFile],
    options: &RunOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<Summary, LocalError> {
    let jobs = jobs(files, options);
    let mut summary = Summary::default();
    if jobs == 0 {
        return Ok(summary);
    }
    let output_dir = match &options.output_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "dpxdt-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        )),
    };
    std::fs::create_dir_all(&output_dir).map_err(|e| LocalError::Io {
        path: output_dir.clone(),
        source: e,
    })?;
    summary.output_dir = Some(output_dir.clone());

    for file in files {
        let tests: Vec<&TestSpec> = file
            .tests
            .iter()
            .filter(|t| options.filter.selects(t))
            .collect();
        if tests.is_empty() {
            continue;
        }
        reporter.event(&Event::File {
            path: &file.path,
            tests: tests.len(),
        });
        let stem = file
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file_dir = output_dir.join(format!("_{stem}"));
        std::fs::create_dir_all(&file_dir).map_err(|e| LocalError::Io {
            path: file_dir.clone(),
            source: e,
        })?;
        // Killed when this scope ends, however it ends.
        let mut setup_proc = match &file.setup {
            Some(script) => Some(setup::Setup::start(script, &file_dir.join("setup.log"))?),
            None => None,
        };
        if let Some(w) = &file.wait_for {
            match setup::wait_for(w, &file_dir).await {
                Ok(Some(url)) => reporter.event(&Event::WaitForOk { url: &url }),
                Ok(None) => {}
                Err(e) => {
                    let mut message = e.to_string();
                    if let Some(s) = setup_proc.as_mut() {
                        if let Some(status) = s.exited() {
                            message.push_str(&format!("; setup exited ({status})"));
                        }
                        message.push_str(&format!("; setup log: {}", s.log.display()));
                    }
                    // The file's tests cannot run; report each as an error.
                    for t in tests {
                        let result = TestResult {
                            file: file.path.clone(),
                            name: t.name.clone(),
                            url: t.run.url.clone(),
                            browser: t.run.config.engine(),
                            outcome: Outcome::Error {
                                message: message.clone(),
                            },
                            duration: Duration::ZERO,
                            log: String::new(),
                        };
                        reporter.event(&Event::Done(&result));
                        summary.results.push(result);
                    }
                    continue;
                }
            }
        }
        let mut set = tokio::task::JoinSet::new();
        // At most `jobs` tests in flight, so a test's time is its own.
        let slots = Arc::new(tokio::sync::Semaphore::new(jobs));
        // The modes of one test run together, in one job: modes that differ
        // only in media features may then share one load of the page.
        for group in mode_groups(tests) {
            let contexts: Vec<TestContext> = group
                .into_iter()
                .map(|t| TestContext {
                    mode,
                    dir: dir.to_path_buf(),
                    out: output_dir.join(&t.name),
                    file: file.path.clone(),
                    test: t.clone(),
                    capturer: Arc::clone(&capturer),
                    reporter: Arc::clone(&reporter),
                    pass_on_shift: options.pass_on_shift,
                })
                .collect();
            let slots = Arc::clone(&slots);
            set.spawn(async move {
                let _slot = slots.acquire_owned().await;
                TestContext::run_modes(contexts).await
            });
        }
        while let Some(done) = set.join_next().await {
            let results =
                done.map_err(|e| LocalError::Setup(format!("a test task failed: {e}")))?;
            for result in results {
                reporter.event(&Event::Done(&result));
                summary.results.push(result);
            }
        }
        drop(setup_proc);
        // Nothing was kept for this file (no setup log): no empty folder.
        let _ = std::fs::remove_dir(&file_dir);
    }
    if options.output_dir.is_none() {
        // A temporary folder that kept nothing (an update) is not left
        // behind; one with screenshots or logs is, for a look.
        let _ = std::fs::remove_dir(&output_dir);
    }
    Ok(summary)
}

struct TestContext {
    mode: Mode,
    dir: PathBuf,
    out: PathBuf,
    file: PathBuf,
    test: TestSpec,
    capturer: Arc<dyn Capturer>,
    reporter: Arc<dyn Reporter>,
    pass_on_shift: bool,
}

impl TestContext {
    /// The arm this run captures.
    fn arm(&self) -> &Arm {
        match self.mode {
            Mode::Update => &self.test.reference,
            Mode::Test => &self.test.run,
        }
    }

    /// Runs the tests of one group from [`mode_groups`]: a test alone, or
    /// the modes of one test captured together (each mode's time is an
    /// equal share of the group's).
    async fn run_modes(contexts: Vec<TestContext>) -> Vec<TestResult> {
        let start = Instant::now();
        // A test without its reference fails before anything is captured.
        let mut results = Vec::with_capacity(contexts.len());
        let mut ready = Vec::with_capacity(contexts.len());
        for ctx in contexts {
            match ctx.read_reference() {
                Ok(reference) => ready.push((ctx, reference)),
                Err(message) => results.push(ctx.result(Outcome::Error { message }, start, "")),
            }
        }
        let Some((first, _)) = ready.first() else {
            return results;
        };
        for (c, _) in &ready {
            c.reporter.event(&Event::Capturing { name: &c.test.name });
        }
        let configs: Vec<_> = ready.iter().map(|(c, _)| c.arm().config.clone()).collect();
        let url = first.arm().url.clone();
        let shots = if ready.len() == 1 {
            vec![first.capturer.capture(&url, &configs[0]).await]
        } else {
            first.capturer.capture_modes(&url, &configs).await
        };
        let share = start.elapsed() / ready.len() as u32;
        for ((ctx, reference), shot) in ready.into_iter().zip(shots) {
            let begun = Instant::now()
                .checked_sub(share)
                .unwrap_or_else(Instant::now);
            let mut log = String::new();
            let outcome = match shot {
                Ok(shot) => ctx.outcome(shot, reference, &mut log).await,
                Err(e) => Err(e.to_string()),
            }
            .unwrap_or_else(|message| Outcome::Error { message });
            results.push(ctx.result(outcome, begun, &log));
        }
        results
    }

    /// This test's result: `outcome`, timed from `start`.
    fn result(&self, outcome: Outcome, start: Instant, log: &str) -> TestResult {
        TestResult {
            file: self.file.clone(),
            name: self.test.name.clone(),
            url: self.arm().url.clone(),
            browser: self.arm().config.engine(),
            outcome,
            duration: start.elapsed(),
            log: log.to_string(),
        }
    }

    /// The reference's bytes when testing (`None` when updating), or why
    /// it cannot be read.
    fn read_reference(&self) -> Result<Option<Vec<u8>>, String> {
        if self.mode == Mode::Update {
            return Ok(None);
        }
        let reference = self.reference_path();
        std::fs::read(&reference).map(Some).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "reference image {} does not exist; run `dpxdt update {}` first",
                    reference.display(),
                    self.dir.display()
                )
            } else {
                format!("cannot read {}: {e}", reference.display())
            }
        })
    }

    fn reference_path(&self) -> PathBuf {
        self.dir.join(format!("{}.png", self.test.name))
    }

    /// What `shot`, this test's capture, makes of it: the new reference
    /// (update), or a pass or a failure against the reference (test).
    async fn outcome(
        &self,
        shot: Capture,
        ref_bytes: Option<Vec<u8>>,
        log: &mut String,
    ) -> Result<Outcome, String> {
        let name = self.test.name.as_str();
        let reference = self.reference_path();
        log.push_str(&shot.log);
        let write = |path: &Path, bytes: &[u8]| -> Result<(), String> {
            dpxdt_core::atomic::write(path, bytes)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        let Some(ref_bytes) = ref_bytes else {
            write(&reference, &shot.png)?;
            return Ok(Outcome::Updated { path: reference });
        };
        std::fs::create_dir_all(&self.out)
            .map_err(|e| format!("cannot create {}: {e}", self.out.display()))?;
        let run_path = self.out.join("screenshot.png");
        write(&run_path, &shot.png)?;
        let _ = std::fs::write(self.out.join("log.txt"), &shot.log);
        self.reporter.event(&Event::Diffing { name });
        let opts = DiffOptions {
            threshold: self
                .test
                .threshold
                .unwrap_or(dpxdt_core::diff::DEFAULT_THRESHOLD),
            ignore: self.test.ignore.clone(),
            ..DiffOptions::default()
        };
        let new_png = shot.png;
        let ref_for_diff = ref_bytes.clone();
        let outcome =
            tokio::task::spawn_blocking(move || diff_png_bytes(&ref_for_diff, &new_png, &opts))
                .await
                .map_err(|e| format!("diff task failed: {e}"))?
                .map_err(|e| e.to_string())?;
        let passes = outcome.diff_png.is_none()
            || (self.pass_on_shift && !outcome.report.changed_beyond_shifts());
        match outcome.diff_png.filter(|_| !passes) {
            None => Ok(Outcome::Passed {
                report: outcome.report,
                run: run_path,
                reference,
            }),
            Some(diff_png) => {
                let triplet = Triplet {
                    reference: self.out.join("ref.png"),
                    run: run_path,
                    diff: self.out.join("diff.png"),
                };
                write(&triplet.reference, &ref_bytes)?;
                write(&triplet.diff, &diff_png)?;
                Ok(Outcome::Failed {
                    report: outcome.report,
                    triplet,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    use dpxdt_core::capture::{Capture, CaptureFuture};
    use dpxdt_core::config::CaptureConfig;

    /// Answers each URL with the picture painted for it: local mode's logic
    /// without a browser.
    #[derive(Default)]
    struct Painter {
        pages: Mutex<HashMap<String, [u8; 3]>>,
    }

    impl Painter {
        fn paint(&self, url: &str, rgb: [u8; 3]) {
            self.pages.lock().unwrap().insert(url.to_string(), rgb);
        }
    }

    impl Capturer for Painter {
        fn capture<'a>(&'a self, url: &'a str, _config: &'a CaptureConfig) -> CaptureFuture<'a> {
            let rgb = self.pages.lock().unwrap().get(url).copied();
            Box::pin(async move {
                let rgb = rgb.ok_or_else(|| CaptureError::Load {
                    url: url.to_string(),
                    reason: "no such page".to_string(),
                })?;
                let mut png = Vec::new();
                let mut encoder = png::Encoder::new(&mut png, 8, 8);
                encoder.set_color(png::ColorType::Rgb);
                encoder.set_depth(png::BitDepth::Eight);
                let mut writer = encoder.write_header().unwrap();
                writer.write_image_data(&rgb.repeat(64)).unwrap();
                writer.finish().unwrap();
                Ok(Capture {
                    png,
                    log: format!("painted {url}\n"),
                    located: Vec::new(),
                    links: Vec::new(),
                })
            })
        }
    }

    #[tokio::test]
    async fn update_then_test_passes_fails_and_errors_without_a_browser() {
        let dir = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let yaml = "tests:\n  - name: home\n    url: http://site/home\n  - name: about\n    url: http://site/about\n";
        let files = vec![parse_str(&dir.path().join("site.yaml"), yaml).unwrap()];
        let options = RunOptions {
            jobs: 2,
            output_dir: Some(out.path().to_path_buf()),
            ..RunOptions::default()
        };
        let painter = Arc::new(Painter::default());
        painter.paint("http://site/home", [0, 0, 255]);
        painter.paint("http://site/about", [0, 128, 0]);
        let capturer: Arc<dyn Capturer> = painter.clone();
        let run = |mode| {
            run_with(
                capturer.clone(),
                mode,
                dir.path(),
                &files,
                &options,
                quiet(),
            )
        };

        let updated = run(Mode::Update).await.unwrap();
        assert_eq!(updated.results.len(), 2);
        assert!(dir.path().join("home.png").exists() && dir.path().join("about.png").exists());
        let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
        assert!(
            left.is_empty(),
            "an update leaves no empty folder: {left:?}"
        );

        let same = run(Mode::Test).await.unwrap();
        assert_eq!(
            (same.failed(), same.exit_code()),
            (0, 0),
            "{:?}",
            same.results
        );

        painter.paint("http://site/home", [255, 0, 0]);
        painter.pages.lock().unwrap().remove("http://site/about");
        let changed = run(Mode::Test).await.unwrap();
        let outcome = |name: &str| {
            &changed
                .results
                .iter()
                .find(|r| r.name == name)
                .unwrap()
                .outcome
        };
        let Outcome::Failed { report, triplet } = outcome("home") else {
            panic!("home should fail: {:?}", outcome("home"));
        };
        assert_eq!(report.changed_pixels, 64);
        assert!(triplet.reference.exists() && triplet.run.exists() && triplet.diff.exists());
        let Outcome::Error { message } = outcome("about") else {
            panic!("about should be an error: {:?}", outcome("about"));
        };
        assert!(message.contains("no such page"), "{message}");
        assert_ne!(changed.exit_code(), 0);
        // The references are untouched by test mode.
        let reference = std::fs::read(dir.path().join("home.png")).unwrap();
        let blue = dpxdt_core::diff::decode_png(&reference, "ref", u64::MAX).unwrap();
        assert_eq!(&blue.as_rgba()[..4], &[0, 0, 255, 255]);
    }

    /// Answers every URL with the PNG it holds now.
    struct Shots(Mutex<Vec<u8>>);

    impl Capturer for Shots {
        fn capture<'a>(&'a self, _url: &'a str, _config: &'a CaptureConfig) -> CaptureFuture<'a> {
            let png = self.0.lock().unwrap().clone();
            Box::pin(async move {
                Ok(Capture {
                    png,
                    log: String::new(),
                    located: Vec::new(),
                    links: Vec::new(),
                })
            })
        }
    }

    /// A 16-pixel-wide page of distinct rows, with `inserted` blue rows at y=5.
    fn page_png(inserted: usize) -> Vec<u8> {
        let mut rows: Vec<Vec<u8>> = (0..20u32)
            .map(|y| {
                (0..16u32)
                    .flat_map(|x| {
                        let v = ((x * 37 + y * 101) % 200) as u8;
                        [v, 255 - v, v / 2, 255]
                    })
                    .collect()
            })
            .collect();
        rows.splice(
            5..5,
            std::iter::repeat_n([0u8, 0, 255, 255].repeat(16), inserted),
        );
        rgba_png(&rows.concat())
    }

    /// A 16-pixel-wide RGBA PNG of `rgba`.
    fn rgba_png(rgba: &[u8]) -> Vec<u8> {
        let mut png = Vec::new();
        let mut encoder = png::Encoder::new(&mut png, 16, (rgba.len() / 64) as u32);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(rgba).unwrap();
        writer.finish().unwrap();
        png
    }

    #[tokio::test]
    async fn moved_content_fails_unless_pass_on_shift_is_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let yaml = "tests:\n  - name: home\n    url: http://site/home\n";
        let files = vec![parse_str(&dir.path().join("site.yaml"), yaml).unwrap()];
        let shots = Arc::new(Shots(Mutex::new(page_png(0))));
        let capturer: Arc<dyn Capturer> = shots.clone();
        let run = |mode, pass_on_shift| {
            let options = RunOptions {
                jobs: 1,
                output_dir: Some(out.path().to_path_buf()),
                pass_on_shift,
                ..RunOptions::default()
            };
            let (capturer, files, dir) =
                (capturer.clone(), files.clone(), dir.path().to_path_buf());
            async move { run_with(capturer, mode, &dir, &files, &options, quiet()).await }
        };
        run(Mode::Update, false).await.unwrap();
        *shots.0.lock().unwrap() = page_png(3);

        let strict = run(Mode::Test, false).await.unwrap();
        let Outcome::Failed { report, .. } = &strict.results[0].outcome else {
            panic!("moved content fails by default: {:?}", strict.results);
        };
        assert_eq!(report.shifts.len(), 1, "{report:?}");
        assert_eq!(report.changed_pixels, 0, "{report:?}");

        let lenient = run(Mode::Test, true).await.unwrap();
        assert!(
            matches!(lenient.results[0].outcome, Outcome::Passed { .. }),
            "{:?}",
            lenient.results
        );
        assert_eq!(lenient.exit_code(), 0);
        // A real change still fails with --pass-on-shift.
        let moved = dpxdt_core::diff::decode_png(&page_png(3), "page", u64::MAX).unwrap();
        let mut rgba = moved.as_rgba().to_vec();
        rgba[..16].fill(0);
        *shots.0.lock().unwrap() = rgba_png(&rgba);
        let still = run(Mode::Test, true).await.unwrap();
        assert!(
            matches!(still.results[0].outcome, Outcome::Failed { .. }),
            "{:?}",
            still.results
        );
    }

    /// Paints each capture by the config: black when `colorScheme` is
    /// dark, white otherwise.
    struct Schemes;

    impl Capturer for Schemes {
        fn capture<'a>(&'a self, _url: &'a str, config: &'a CaptureConfig) -> CaptureFuture<'a> {
            let v = match config.color_scheme.as_deref() {
                Some("dark") => 0,
                _ => 255,
            };
            let png = rgba_png(&[v, v, v, 255].repeat(16 * 4));
            Box::pin(async move {
                Ok(Capture {
                    png,
                    log: String::new(),
                    located: Vec::new(),
                    links: Vec::new(),
                })
            })
        }
    }

    #[tokio::test]
    async fn each_mode_has_its_own_reference_and_the_filter_picks_modes() {
        let dir = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let yaml = "tests:\n  - name: home\n    url: http://site/\n    modes: [{name: light}, {name: dark, colorScheme: dark}]\n  - name: about\n    url: http://site/about\n";
        let files = vec![parse_str(&dir.path().join("site.yaml"), yaml).unwrap()];
        let run = |mode, filter: &str| {
            let options = RunOptions {
                jobs: 2,
                filter: TestFilter::parse(filter),
                output_dir: Some(out.path().to_path_buf()),
                ..RunOptions::default()
            };
            let files = files.clone();
            let dir = dir.path().to_path_buf();
            async move { run_with(Arc::new(Schemes), mode, &dir, &files, &options, quiet()).await }
        };
        let names = |summary: &Summary| {
            let mut names: Vec<String> = summary.results.iter().map(|r| r.name.clone()).collect();
            names.sort();
            names
        };
        let updated = run(Mode::Update, "").await.unwrap();
        assert_eq!(names(&updated), ["about", "home@dark", "home@light"]);
        let pixel = |name: &str| {
            let bytes = std::fs::read(dir.path().join(name)).unwrap();
            dpxdt_core::diff::decode_png(&bytes, name, u64::MAX)
                .unwrap()
                .as_rgba()[0]
        };
        assert_eq!((pixel("home@light.png"), pixel("home@dark.png")), (255, 0));
        assert!(!dir.path().join("home.png").exists());

        let one = run(Mode::Test, "home@dark").await.unwrap();
        assert_eq!(names(&one), ["home@dark"]);
        assert_eq!(one.exit_code(), 0, "{:?}", one.results);
        let Outcome::Passed { reference, .. } = &one.results[0].outcome else {
            panic!("{:?}", one.results);
        };
        assert_eq!(reference, &dir.path().join("home@dark.png"));
        assert!(out.path().join("home@dark").join("screenshot.png").exists());
        let home = run(Mode::Test, "home").await.unwrap();
        assert_eq!(names(&home), ["home@dark", "home@light"]);

        // The light reference made dark: that mode alone fails.
        std::fs::copy(
            dir.path().join("home@dark.png"),
            dir.path().join("home@light.png"),
        )
        .unwrap();
        let changed = run(Mode::Test, "").await.unwrap();
        let failed: Vec<&str> = changed
            .results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(failed, ["home@light"]);
    }

    #[test]
    fn the_modes_of_one_test_are_grouped_and_nothing_else() {
        let yaml = "tests:
  - name: home
    url: http://127.0.0.1:1/
    modes: [{name: light}, {name: dark, colorScheme: dark}]
  - name: about
    url: http://127.0.0.1:1/about
  - name: other
    url: http://127.0.0.1:1/other
    modes: [{name: light}]
";
        let file = parse_str(Path::new("site.yaml"), yaml).unwrap();
        let groups: Vec<Vec<&str>> = mode_groups(file.tests.iter().collect())
            .into_iter()
            .map(|g| g.into_iter().map(|t| t.name.as_str()).collect())
            .collect();
        assert_eq!(
            groups,
            [
                vec!["home@light", "home@dark"],
                vec!["about"],
                vec!["other@light"]
            ]
        );
    }
}
