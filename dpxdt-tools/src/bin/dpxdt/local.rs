//! `dpxdt update DIR` / `dpxdt test DIR`: flags in, `dpxdt_tools::local` does
//! the work, exit code out (0 passed, 1 some test failed, 2 error).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use dpxdt_tools::local::{self, Console, RunOptions, TestFilter};

pub use dpxdt_tools::local::Mode;

/// Flags of `dpxdt update` and `dpxdt test`.
#[derive(clap::Args)]
pub struct LocalArgs {
    /// Directory with the `*.yaml` test files; references are `DIR/<name>.png`.
    dir: PathBuf,
    /// Run a subset of tests, gtest style: `pos1:pos2-neg1:neg2` with `*`
    /// and `?`; `home` also runs every `home@<mode>`, `home@dark` one mode.
    #[arg(
        long = "test-filter",
        alias = "test_filter",
        value_name = "FILTER",
        default_value = ""
    )]
    test_filter: String,
    /// List the tests (after the filter) instead of running them.
    #[arg(long = "list-tests", alias = "list_tests")]
    list_tests: bool,
    /// Captures at once (default: number of cores).
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Attempts per capture when it fails in a way that may pass on retry.
    #[arg(long, value_name = "N", default_value_t = 2)]
    attempts: u32,
    /// Where screenshots, logs and failure triplets go (default: a new temp dir).
    #[arg(long = "output-dir", value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Write JUnit XML results here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a static HTML report (with the images) into this directory.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Pass a test whose only differences are bands of the page inserted
    /// or removed (moved content); by default any difference fails.
    #[arg(long = "pass-on-shift")]
    pass_on_shift: bool,
}

pub fn run(mode: Mode, args: LocalArgs) -> ExitCode {
    match run_inner(mode, args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => dpxdt_tools::report_error(&e),
    }
}

fn run_inner(mode: Mode, args: LocalArgs) -> anyhow::Result<u8> {
    if !args.dir.is_dir() {
        anyhow::bail!("expected a directory, got {}", args.dir.display());
    }
    let files = local::load_dir(&args.dir)?;
    let filter = TestFilter::parse(&args.test_filter);
    if args.list_tests {
        print!("{}", local::list_tests(&files, &filter));
        return Ok(dpxdt_tools::EXIT_OK);
    }
    let mut options = RunOptions {
        filter,
        output_dir: args.output_dir.clone(),
        pass_on_shift: args.pass_on_shift,
        ..RunOptions::default()
    };
    if let Some(j) = args.jobs {
        anyhow::ensure!(j >= 1, "--jobs must be at least 1");
        options.jobs = j;
    }
    options.browser.attempts = args.attempts.max(1);
    let total = files
        .iter()
        .flat_map(|f| &f.tests)
        .filter(|t| options.filter.selects(t))
        .count();
    let console = Arc::new(Console::new(total));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(async {
        tokio::select! {
            s = local::run(mode, &args.dir, &files, &options, console.clone()) => s.map_err(anyhow::Error::from),
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // Dropping the runtime ends every task: the browser and setup scripts
    // are killed by their guards.
    drop(runtime);
    let summary = summary?;
    console.finish(mode, &summary);
    if let Some(path) = &args.junit {
        local::report::write_junit(&summary, path)?;
    }
    if let Some(dir) = &args.report {
        local::report::write_html(&summary, dir)?;
        eprintln!("Report: {}", dir.join("index.html").display());
    }
    if total == 0 {
        eprintln!("No test matches the filter {:?}.", args.test_filter);
    }
    Ok(summary.exit_code() as u8)
}
