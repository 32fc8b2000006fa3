//! `dpxdt accept [DIR] [--all | NAME...]`: flags in, `dpxdt_tools::accept`
//! does the work; each accepted image is listed (exit 0), pending ones are
//! listed when none was chosen (exit 1 if any), errors exit 2.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dpxdt_tools::accept;

/// Flags of `dpxdt accept`.
#[derive(clap::Args)]
pub struct AcceptArgs {
    /// The references directory (default `tests/screenshots`), then the
    /// names to accept. A first argument that is not a directory is a name.
    #[arg(value_name = "DIR|NAME")]
    args: Vec<String>,
    /// Accept every pending image.
    #[arg(long)]
    all: bool,
}

pub fn run(args: AcceptArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => dpxdt_tools::report_error(&e),
    }
}

fn run_inner(args: AcceptArgs) -> anyhow::Result<u8> {
    let (dir, names) = match args.args.split_first() {
        Some((first, rest)) if Path::new(first).is_dir() => (PathBuf::from(first), rest.to_vec()),
        _ => (PathBuf::from("tests/screenshots"), args.args.clone()),
    };
    anyhow::ensure!(
        dir.is_dir(),
        "{} is not a directory (give the references directory first)",
        dir.display()
    );
    anyhow::ensure!(
        !args.all || names.is_empty(),
        "give either --all or names, not both"
    );
    if !args.all && names.is_empty() {
        let pending = accept::pending(&dir)?;
        if pending.is_empty() {
            println!("nothing to accept in {}", dir.display());
            return Ok(dpxdt_tools::EXIT_OK);
        }
        for p in &pending {
            println!("pending {} ({})", p.name, p.new.display());
        }
        eprintln!(
            "{} pending in {}: accept them with --all or by name",
            pending.len(),
            dir.display()
        );
        return Ok(dpxdt_tools::EXIT_DIFFERENT);
    }
    let chosen = accept::select(&dir, &names)?;
    if chosen.is_empty() {
        println!("nothing to accept in {}", dir.display());
    }
    for p in &chosen {
        accept::accept(p)?;
        let what = if p.replaces { "replaced" } else { "new" };
        println!(
            "accepted {} ({what} reference {})",
            p.name,
            p.reference.display()
        );
    }
    Ok(dpxdt_tools::EXIT_OK)
}
