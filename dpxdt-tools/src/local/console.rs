//! The console face of local mode: the original's messages on stdout, a
//! progress bar on stderr when it is a terminal, and the final verdict.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Event, Mode, Outcome, Reporter, SuiteFile, Summary, TestFilter};

/// Prints events as the original `dpxdt` did, with a progress bar.
pub struct Console {
    bar: ProgressBar,
    lock: Mutex<()>,
}

impl Console {
    /// A console for `total` tests.
    pub fn new(total: usize) -> Console {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} tests {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Console {
            bar,
            lock: Mutex::new(()),
        }
    }

    fn out(&self, text: &str) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.bar.suspend(|| println!("{text}"));
    }

    fn err(&self, text: &str) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.bar.suspend(|| eprintln!("{text}"));
    }

    /// Removes the bar and prints the verdict (test mode) to stderr.
    pub fn finish(&self, mode: Mode, summary: &Summary) {
        self.bar.finish_and_clear();
        if mode == Mode::Test {
            let bad = summary.failed() + summary.errors();
            if bad == 0 {
                eprintln!("All tests passed!");
            } else {
                eprintln!("{bad} test(s) failed.");
            }
        } else if summary.errors() > 0 {
            eprintln!("{} test(s) could not be updated.", summary.errors());
        }
    }
}

impl Reporter for Console {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::File { .. } => {}
            Event::WaitForOk { url } => {
                self.out(&format!(
                    "Request for {url} succeeded, continuing with tests..."
                ));
            }
            Event::Capturing { name } => {
                self.out(&format!("{name}: Running webpage capture process"));
            }
            Event::Diffing { name } => {
                self.out(&format!("{name}: Running perceptual diff process"));
            }
            Event::Done(r) => {
                self.bar.inc(1);
                match &r.outcome {
                    Outcome::Updated { path } => {
                        self.out(&format!("{}: Updated {}", r.name, path.display()));
                    }
                    Outcome::Passed { .. } => self.out(&format!("{} passed (no diff)", r.name)),
                    Outcome::Failed { report, triplet } => {
                        let dir = triplet
                            .run
                            .parent()
                            .map(|d| d.display().to_string())
                            .unwrap_or_default();
                        let base = |p: &std::path::Path| {
                            p.file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        };
                        self.out(&format!(
                            "{} failed\n  {:.7} distortion\n  Ref:  {}\n  Run:  {}\n  Diff: {}\n (all): {}/{{{},{},{}}}",
                            r.name,
                            report.distortion,
                            triplet.reference.display(),
                            triplet.run.display(),
                            triplet.diff.display(),
                            dir,
                            base(&triplet.reference),
                            base(&triplet.run),
                            base(&triplet.diff),
                        ));
                    }
                    Outcome::Error { message } => {
                        self.err(&format!("{} error: {message}", r.name));
                    }
                }
            }
        }
    }
}

/// The `--list-tests` output: each file, then its selected tests indented.
pub fn list_tests(files: &[SuiteFile], filter: &TestFilter) -> String {
    let mut out = String::new();
    for f in files {
        out.push_str(&format!("{}:\n", f.path.display()));
        for t in f.tests.iter().filter(|t| filter.selects(t)) {
            out.push_str(&format!("  {}\n", t.name));
        }
    }
    out
}
