//! `dpxdt diff REF NEW`: compare two images (owned by the diff work).

use std::process::ExitCode;

/// Flags of `dpxdt diff`.
#[derive(clap::Args)]
pub struct DiffArgs {}

pub fn run(_args: DiffArgs) -> ExitCode {
    ExitCode::from(dpxdt_tools::EXIT_ERROR)
}
