//! `dpxdt stability URL`: flags in, `dpxdt_tools::stability` does the work,
//! the changing regions out (exit 0 stable, 1 something changed, 2 error).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use dpxdt_core::CaptureConfig;
use dpxdt_core::capture::{Browser, BrowserOptions};
use dpxdt_tools::stability;

/// Flags of `dpxdt stability`.
#[derive(clap::Args)]
pub struct StabilityArgs {
    /// The page to capture.
    url: String,
    /// How many times to capture it (at least 2).
    #[arg(long, value_name = "N", default_value_t = 5)]
    repeat: usize,
    /// A JSON capture config (the fields of local mode's `config`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write every capture here as `capture-N.png`.
    #[arg(long = "output-dir", value_name = "DIR")]
    output_dir: Option<PathBuf>,
}

pub fn run(args: StabilityArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => dpxdt_tools::report_error(&e),
    }
}

fn run_inner(args: StabilityArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(args.repeat >= 2, "--repeat must be at least 2");
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            CaptureConfig::from_json(&text).with_context(|| path.display().to_string())?
        }
        None => CaptureConfig::default(),
    };
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let browser = Browser::launch(BrowserOptions::default()).await?;
        let mut write_error = None;
        let report = stability::check(&browser, &args.url, &config, args.repeat, |n, png| {
            if n > args.repeat {
                eprintln!("stability: locating the elements that changed");
                return;
            }
            eprintln!("stability: capture {n}/{}", args.repeat);
            if let Some(dir) = &args.output_dir {
                let path = dir.join(format!("capture-{n}.png"));
                if let Err(e) = std::fs::write(&path, png) {
                    write_error
                        .get_or_insert(anyhow::anyhow!("cannot write {}: {e}", path.display()));
                }
            }
        })
        .await;
        browser.shutdown().await;
        if let Some(e) = write_error {
            return Err(e);
        }
        Ok::<_, anyhow::Error>(report?)
    })?;
    let (w, h) = report.size;
    println!("{}: {} captures, {w}x{h}", args.url, report.captures);
    for (n, (w2, h2)) in &report.other_sizes {
        println!("capture {n} came back {w2}x{h2} instead of {w}x{h}");
    }
    if report.is_stable() {
        println!(
            "stable: every capture is pixel-identical to the first (0 of {} differed)",
            report.captures - 1
        );
        return Ok(dpxdt_tools::EXIT_OK);
    }
    let others = report.captures - 1;
    println!(
        "unstable: {} of {others} captures differed from the first; {} region(s) changed",
        report.differing,
        report.flakes.len()
    );
    for flake in &report.flakes {
        let r = flake.region;
        println!(
            "  {r} ({}x{}) changed in {} of {others}: {}",
            r.width(),
            r.height(),
            flake.changed_in,
            flake
                .selector
                .as_deref()
                .unwrap_or("(no single element covers it)")
        );
    }
    println!("hide or mask them with hideSelectors / maskSelectors, or fix the page");
    Ok(dpxdt_tools::EXIT_DIFFERENT)
}
