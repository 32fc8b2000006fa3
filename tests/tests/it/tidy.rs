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
    // Default features: what every crate that names dpxdt-core gets.
    let deps = dependencies("dpxdt-core", &[]);
    assert!(deps.iter().any(|d| d == "png"), "sanity: {deps:?}");
    for forbidden in [
        "tokio",
        "thirtyfour",
        "reqwest",
        "warp",
        "rusqlite",
        "hyper",
        "image",
        "indicatif",
        "serde_norway",
    ] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "dpxdt-core with default features must not depend on {forbidden}"
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

/// SECURITY.md names, for each finding, the files and tests that show the
/// defence works; a renamed or deleted test must not leave it pointing at
/// nothing. In each table row, a backticked `*.rs` path names a file and
/// every backticked snake_case name after it a test in that file.
#[test]
fn every_test_security_md_names_exists() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("SECURITY.md")).expect("SECURITY.md");
    let mut checked = 0;
    let mut missing = Vec::new();
    let findings = text
        .split_once("## One test per finding")
        .expect("SECURITY.md has the section \"One test per finding\"")
        .1;
    for row in findings.lines().filter(|l| l.starts_with("| ")) {
        let mut file: Option<(String, String)> = None;
        for (i, token) in row.split('`').enumerate() {
            if i % 2 == 0 {
                continue;
            }
            if token.ends_with(".rs") {
                match std::fs::read_to_string(root.join(token)) {
                    Ok(source) => file = Some((token.to_string(), source)),
                    Err(_) => missing.push(format!("file {token}")),
                }
            } else if token.contains('_')
                && token
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                let Some((path, source)) = &file else {
                    missing.push(format!("{token} names no file before it"));
                    continue;
                };
                checked += 1;
                if !source.contains(&format!("fn {token}(")) {
                    missing.push(format!("{path}: fn {token}"));
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} tests named in SECURITY.md");
    assert!(
        missing.is_empty(),
        "SECURITY.md names what is not there: {missing:#?}"
    );
}

/// ARCHITECTURE.md is the map a newcomer reads first: short, and every
/// path it names (in backticks, from the repository root) is there.
#[test]
fn architecture_md_is_short_and_every_path_it_names_exists() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let words = text.split_whitespace().count();
    assert!(
        words <= 2000,
        "ARCHITECTURE.md has {words} words; keep it to 2,000"
    );
    let mut checked = 0;
    let mut missing = Vec::new();
    for (i, token) in text.split('`').enumerate() {
        let is_path = i % 2 == 1
            && token.contains('/')
            && !token.contains(char::is_whitespace)
            && token.starts_with(|c: char| c.is_ascii_alphanumeric())
            && !token.contains("://");
        if !is_path {
            continue;
        }
        checked += 1;
        if !root.join(token.trim_end_matches('/')).exists() {
            missing.push(token.to_string());
        }
    }
    assert!(
        checked >= 40,
        "only {checked} paths found in ARCHITECTURE.md"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:#?}"
    );
}
