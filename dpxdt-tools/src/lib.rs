//! Shared glue for the Depicted command-line tools: logging set-up and the
//! exit-code convention (0 success / no difference, 1 difference or test
//! failure, 2 error). The tools themselves live in `src/bin/`.
#![deny(missing_docs)]

pub mod accept;
pub mod crawl;
pub mod local;
pub mod release;
pub mod stability;
pub mod tests_json;
pub mod tool_args;

use std::process::ExitCode;

/// Exit code for success: identical images, all tests passed.
pub const EXIT_OK: u8 = 0;
/// Exit code for a difference found or a test failed.
pub const EXIT_DIFFERENT: u8 = 1;
/// Exit code for an error (bad input, unreachable server, ...).
pub const EXIT_ERROR: u8 = 2;

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default `warn`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints an error chain to stderr as one line and returns [`EXIT_ERROR`].
pub fn report_error(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {err:#}");
    ExitCode::from(EXIT_ERROR)
}
