//! `dpxdt update DIR` / `dpxdt test DIR` (owned by the local-mode work).

use std::process::ExitCode;

/// Which local mode runs.
pub enum Mode {
    /// Write references.
    Update,
    /// Compare with references.
    Test,
}

/// Flags of `dpxdt update` and `dpxdt test`.
#[derive(clap::Args)]
pub struct LocalArgs {}

pub fn run(_mode: Mode, _args: LocalArgs) -> ExitCode {
    ExitCode::from(dpxdt_tools::EXIT_ERROR)
}
