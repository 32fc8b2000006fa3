//! `dpxdt`: the local command-line tool — image diff, the YAML-driven
//! `update` / `test` modes, `accept` for screenshot checks, `stability`
//! and the `devices` list.

mod accept;
mod devices;
mod diff;
mod local;
mod stability;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dpxdt",
    version,
    about = "Depicted: screenshot diffs for safe deploys"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compare two PNG images and report the difference.
    Diff(diff::DiffArgs),
    /// Capture every test in DIR's YAML files and save the screenshots as references.
    Update(local::LocalArgs),
    /// Capture every test in DIR's YAML files and compare them with the saved references.
    Test(local::LocalArgs),
    /// Make the new images left by failing screenshot checks (`NAME.new.png`) the references.
    Accept(accept::AcceptArgs),
    /// Capture a page several times and show the regions that change between captures.
    Stability(stability::StabilityArgs),
    /// List the device presets a capture config's `device` may name.
    Devices,
}

fn main() -> ExitCode {
    dpxdt_tools::init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(dpxdt_tools::EXIT_ERROR)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Diff(args) => diff::run(args),
        Command::Update(args) => local::run(local::Mode::Update, args),
        Command::Test(args) => local::run(local::Mode::Test, args),
        Command::Stability(args) => stability::run(args),
        Command::Accept(args) => accept::run(args),
        Command::Devices => devices::run(),
    }
}
