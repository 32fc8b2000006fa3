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

/// The modules of `dir` (files and folders, not `lib.rs`/`main.rs`/`mod.rs`)
/// and, for each, the sibling modules its non-test code names: through
/// `crate::<prefix>NAME`, `super::NAME`, or an item that `dir/mod.rs`
/// re-exports from NAME and the module imports from `super`/the parent.
fn module_graph(
    dir: &Path,
    prefix: &str,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("module folder").flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if entry.path().is_dir() {
            names.insert(name);
        } else if let Some(stem) = name.strip_suffix(".rs")
            && !["lib", "main", "mod"].contains(&stem)
        {
            names.insert(stem.to_string());
        }
    }
    // Item name -> module, from `pub use module::{a, b}` lines of mod.rs.
    let mut reexported = BTreeMap::new();
    let parent = std::fs::read_to_string(dir.join("mod.rs")).unwrap_or_default();
    for stmt in parent.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        if names.contains(module) {
            for item in items.split(|c: char| !c.is_alphanumeric() && c != '_') {
                if !item.is_empty() {
                    reexported.insert(item.to_string(), module.to_string());
                }
            }
        }
    }
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut graph = BTreeMap::new();
    for name in &names {
        let mut files = Vec::new();
        let file = dir.join(format!("{name}.rs"));
        if file.exists() {
            files.push(file);
        } else {
            rust_files(&dir.join(name), &mut files);
        }
        let mut uses = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("source file");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for other in names.iter().filter(|o| *o != name) {
                let paths = [format!("crate::{prefix}{other}"), format!("super::{other}")];
                let named = paths.iter().any(|p| {
                    code.match_indices(p.as_str())
                        .any(|(i, _)| !code[i + p.len()..].starts_with(word))
                });
                if named {
                    uses.insert(other.clone());
                }
            }
            // `use super::{a, b}` / `use crate::storage::{a, b}` of re-exported items.
            for stmt in code.split(';') {
                let stmt = stmt.trim();
                let from_parent = stmt.starts_with("use super::")
                    || (!prefix.is_empty() && stmt.starts_with(&format!("use crate::{prefix}")));
                if from_parent {
                    for item in stmt.split(|c: char| !word(c)) {
                        if let Some(m) = reexported.get(item)
                            && m != name
                        {
                            uses.insert(m.clone());
                        }
                    }
                }
            }
        }
        graph.insert(name.clone(), uses);
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn find_cycle(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_module_graph_has_no_cycles() {
    let root = workspace_root();
    let folders = [
        ("dpxdt-core/src", ""),
        ("dpxdt-client/src", ""),
        ("dpxdt-server/src", ""),
        ("dpxdt-server/src/storage", "storage::"),
        ("dpxdt-tools/src", ""),
    ];
    for (folder, prefix) in folders {
        let graph = module_graph(&root.join(folder), prefix);
        assert!(graph.len() > 3, "{folder}: found only {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{folder}: modules depend on each other in a circle: {cycle:?}");
        }
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let edges = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")];
    let mut graph = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for (from, to) in edges {
        graph.entry(from.into()).or_default().insert(to.into());
    }
    assert_eq!(find_cycle(&graph).expect("a cycle").len(), 4);
    graph.get_mut("c").expect("c").clear();
    assert_eq!(find_cycle(&graph), None);
}
