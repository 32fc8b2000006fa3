//! Tidy checks over the source tree: rules of ARCHITECTURE.md that a
//! compiler does not enforce.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') && name != "node_modules" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc_line() {
    let root = workspace_root();
    let mut files = Vec::new();
    for krate in [
        "dpxdt-core",
        "dpxdt-client",
        "dpxdt-server",
        "dpxdt-tools",
        "benches",
        "tests",
    ] {
        rust_files(&root.join(krate), &mut files);
    }
    assert!(files.len() > 10, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not start with a `//!` line saying what they are for: {missing:#?}"
    );
}

/// The crates a package depends on (normal edges only), by name.
fn dependencies(package: &str, features: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root()).args([
        "tree",
        "--offline",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
        "-p",
        package,
    ]);
    cmd.args(features);
    let out = cmd.output().expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn the_pure_core_has_no_async_browser_or_http_dependencies() {
    let deps = dependencies("dpxdt-core", &["--no-default-features"]);
    assert!(deps.iter().any(|d| d == "image"), "sanity: {deps:?}");
    for forbidden in [
        "tokio",
        "thirtyfour",
        "reqwest",
        "warp",
        "rusqlite",
        "hyper",
    ] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "dpxdt-core without `capture` must not depend on {forbidden}"
        );
    }
}

#[test]
fn the_client_depends_on_the_pure_core_only() {
    let deps = dependencies("dpxdt-client", &[]);
    assert!(deps.iter().any(|d| d == "reqwest"), "sanity: {deps:?}");
    for forbidden in [
        "dpxdt-server",
        "warp",
        "rusqlite",
        "thirtyfour",
        "handlebars",
    ] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "dpxdt-client must not depend on {forbidden}"
        );
    }
}
