//! `dpxdt stability URL`: flags in, `dpxdt_tools::stability` does the work,
//! the changing regions out (exit 0 stable, 1 something changed, 2 error).
//! A config with modes is checked per mode, each reported as `URL@mode`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use dpxdt_core::CaptureConfig;
use dpxdt_core::capture::{Browser, BrowserOptions, Engine};
use dpxdt_core::config::moded_name;
use dpxdt_tools::stability;

/// Flags of `dpxdt stability`.
#[derive(clap::Args)]
pub struct StabilityArgs {
    /// The page to capture.
    url: String,
    /// How many times to capture it (at least 2).
    #[arg(long, value_name = "N", default_value_t = 5)]
    repeat: usize,
    /// A JSON capture config (the fields of local mode's `config`); with
    /// `modes`, each mode is checked.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write every capture here as `capture-N.png` (`capture-N@MODE.png`
    /// for a config with modes).
    #[arg(long = "output-dir", value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// The engine to capture in: chromium (default), firefox, webkit. A
    /// mode that names its own `browser` keeps it.
    #[arg(long, value_name = "ENGINE", value_parser = Engine::parse)]
    browser: Option<Engine>,
}

pub fn run(args: StabilityArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => dpxdt_tools::report_error(&e),
    }
}

fn run_inner(args: StabilityArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(args.repeat >= 2, "--repeat must be at least 2");
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            CaptureConfig::from_json(&text).with_context(|| path.display().to_string())?
        }
        None => CaptureConfig::default(),
    };
    if let Some(engine) = args.browser {
        config.browser = Some(engine.name().to_string());
        config.validate().context("--browser")?;
    }
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let reports = runtime.block_on(async {
        // Each engine the config asks for starts at its first capture.
        let browser = Browser::launch(BrowserOptions {
            engines: Vec::new(),
            ..BrowserOptions::default()
        })
        .await?;
        let mut write_error = None;
        let reports =
            stability::check_modes(&browser, &args.url, &config, args.repeat, |mode, n, png| {
                let at = mode.map(|m| format!(" @{m}")).unwrap_or_default();
                if n > args.repeat {
                    eprintln!("stability{at}: locating the elements that changed");
                    return;
                }
                eprintln!("stability{at}: capture {n}/{}", args.repeat);
                if let Some(dir) = &args.output_dir {
                    let path =
                        dir.join(format!("{}.png", moded_name(&format!("capture-{n}"), mode)));
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
        Ok::<_, anyhow::Error>(reports?)
    })?;
    let mut code = dpxdt_tools::EXIT_OK;
    for (mode, report) in &reports {
        let name = moded_name(&args.url, mode.as_deref());
        if !print_report(&name, report) {
            code = dpxdt_tools::EXIT_DIFFERENT;
        }
    }
    Ok(code)
}

/// Prints what one check found about the page `name`; whether it is stable.
fn print_report(name: &str, report: &stability::StabilityReport) -> bool {
    let (w, h) = report.size;
    println!("{name}: {} captures, {w}x{h}", report.captures);
    for (n, (w2, h2)) in &report.other_sizes {
        println!("capture {n} came back {w2}x{h2} instead of {w}x{h}");
    }
    if report.is_stable() {
        println!(
            "stable: every capture is pixel-identical to the first (0 of {} differed)",
            report.captures - 1
        );
        return true;
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
    false
}
