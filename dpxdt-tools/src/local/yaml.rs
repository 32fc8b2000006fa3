//! The original local-mode YAML format, parsed with YAML anchors and
//! `<<:` merge keys resolved, and errors that name the file, line and key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::Value;

use super::LocalError;
use dpxdt_core::config::CaptureConfig;
use dpxdt_core::diff::Region;

/// One YAML file of tests.
#[derive(Debug, Clone)]
pub struct SuiteFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Bash script started before the tests and killed after them.
    pub setup: Option<String>,
    /// How to know the setup is ready.
    pub wait_for: Option<WaitFor>,
    /// The tests, in file order.
    pub tests: Vec<TestSpec>,
}

/// The `waitFor` stanza.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    /// Poll this URL until it answers HTTP 200.
    Url {
        /// The URL.
        url: String,
        /// Give up after this many seconds (default 30).
        timeout_secs: f64,
    },
    /// Run this bash script; it must exit 0.
    Script(String),
}

/// One test: a page to capture (the `run` arm) and, for `ref`/`run`
/// tests, another page whose capture is the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSpec {
    /// Name; the reference image is `<dir>/<name>.png`.
    pub name: String,
    /// What `dpxdt test` captures.
    pub run: Arm,
    /// What `dpxdt update` captures (the same as `run` unless the test has
    /// `ref` and `run` arms).
    pub reference: Arm,
    /// *New.* Colour-distance threshold for this test (0..1).
    pub threshold: Option<f64>,
    /// *New.* Regions never compared, `x1:y1-x2:y2`.
    pub ignore: Vec<Region>,
}

/// A URL and how to capture it.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    /// The page.
    pub url: String,
    /// The capture config.
    pub config: CaptureConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    url: Option<String>,
    config: Option<Value>,
    #[serde(rename = "ref")]
    reference: Option<RawArm>,
    run: Option<RawArm>,
    threshold: Option<f64>,
    #[serde(default)]
    ignore: Vec<Region>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArm {
    url: String,
    config: Option<Value>,
}

/// Reads and checks one YAML file.
pub fn parse_file(path: &Path) -> Result<SuiteFile, LocalError> {
    let text = std::fs::read_to_string(path).map_err(|e| LocalError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    parse_str(path, &text)
}

/// Parses YAML text; `path` is only used in messages.
pub fn parse_str(path: &Path, text: &str) -> Result<SuiteFile, LocalError> {
    let err = |line: Option<usize>, key: &str, message: String| LocalError::Yaml {
        path: path.to_path_buf(),
        line,
        key: key.to_string(),
        message,
    };
    let mut doc: Value = serde_norway::from_str(text).map_err(|e| {
        err(
            e.location().map(|l| l.line()),
            "",
            strip_location(&e.to_string()),
        )
    })?;
    doc.apply_merge()
        .map_err(|e| err(e.location().map(|l| l.line()), "<<", e.to_string()))?;
    // Lines once, so that finding a key's line costs what lies between it
    // and the last one found (a suite of many tests parses in linear time).
    let lines: Vec<&str> = text.lines().collect();
    let Value::Mapping(top) = doc else {
        return Err(err(
            Some(1),
            "",
            "the file must be a mapping with a `tests` list".into(),
        ));
    };
    let get = |k: &str| top.get(Value::String(k.into()));

    let setup = match get("setup") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(err(
                find_key(&lines, "setup", 0),
                "setup",
                "must be a bash script (a string)".into(),
            ));
        }
    };
    let wait_for = match get("waitFor") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(WaitFor::Script(s.clone())),
        Some(Value::Mapping(m)) => {
            let line = find_key(&lines, "waitFor", 0);
            for k in m.keys() {
                let k = k.as_str().unwrap_or("?");
                if k != "url" && k != "timeout_secs" {
                    return Err(err(
                        find_key(&lines, k, line.unwrap_or(0)).or(line),
                        &format!("waitFor.{k}"),
                        "unknown field; known fields: url, timeout_secs".into(),
                    ));
                }
            }
            let url = m
                .get(Value::String("url".into()))
                .and_then(Value::as_str)
                .ok_or_else(|| err(line, "waitFor.url", "missing or not a string".into()))?;
            let timeout_secs = match m.get(Value::String("timeout_secs".into())) {
                None => 30.0,
                Some(v) => v.as_f64().filter(|t| *t > 0.0).ok_or_else(|| {
                    err(
                        find_key(&lines, "timeout_secs", line.unwrap_or(0)),
                        "waitFor.timeout_secs",
                        "must be a positive number".into(),
                    )
                })?,
            };
            Some(WaitFor::Url {
                url: url.to_string(),
                timeout_secs,
            })
        }
        Some(_) => {
            return Err(err(
                find_key(&lines, "waitFor", 0),
                "waitFor",
                "must be a bash script or {url, timeout_secs}".into(),
            ));
        }
    };
    let Some(Value::Sequence(raw_tests)) = get("tests") else {
        return Err(err(
            find_key(&lines, "tests", 0),
            "tests",
            "missing, or not a list of tests".into(),
        ));
    };
    let tests_line = find_key(&lines, "tests", 0).unwrap_or(0);

    let mut tests = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor = tests_line;
    for (i, raw) in raw_tests.iter().enumerate() {
        let name_hint = raw.get("name").and_then(Value::as_str).map(str::to_string);
        let at = name_hint
            .as_deref()
            .and_then(|n| find_value(&lines, "name", n, cursor))
            .unwrap_or(cursor);
        cursor = at + 1;
        let where_ = match &name_hint {
            Some(n) => format!("tests[{i}] ({n})"),
            None => format!("tests[{i}]"),
        };
        let raw: RawTest = serde_norway::from_value(raw.clone()).map_err(|e| {
            let msg = e.to_string();
            let key = unknown_field(&msg).unwrap_or_default();
            err(
                (!key.is_empty())
                    .then(|| find_key(&lines, &key, at))
                    .flatten()
                    .or(Some(at)),
                &if key.is_empty() {
                    where_.clone()
                } else {
                    format!("{where_}.{key}")
                },
                msg,
            )
        })?;
        check_name(&raw.name).map_err(|m| err(Some(at), &format!("{where_}.name"), m))?;
        if !seen.insert(raw.name.clone()) {
            return Err(err(
                Some(at),
                &format!("{where_}.name"),
                format!("duplicate test name {:?}", raw.name),
            ));
        }
        let config = |v: &Option<Value>, key: &str| -> Result<CaptureConfig, LocalError> {
            let Some(v) = v else {
                return Ok(CaptureConfig::default());
            };
            if v.is_null() {
                return Ok(CaptureConfig::default());
            }
            let c: CaptureConfig = serde_norway::from_value(v.clone()).map_err(|e| {
                let msg = e.to_string();
                let field = unknown_field(&msg);
                let line = field
                    .as_deref()
                    .and_then(|f| find_key(&lines, f, at))
                    .or_else(|| find_key(&lines, "config", at));
                err(
                    line,
                    &format!(
                        "{where_}.{key}{}",
                        field.map(|f| format!(".{f}")).unwrap_or_default()
                    ),
                    msg,
                )
            })?;
            c.validate().map_err(|e| {
                err(
                    find_key(&lines, "config", at),
                    &format!("{where_}.{key}"),
                    e.to_string(),
                )
            })?;
            Ok(c)
        };
        let (run, reference) = match (&raw.reference, &raw.run, &raw.url) {
            (Some(r), Some(n), None) => (
                Arm {
                    url: n.url.clone(),
                    config: config(&n.config, "run.config")?,
                },
                Arm {
                    url: r.url.clone(),
                    config: config(&r.config, "ref.config")?,
                },
            ),
            (None, None, Some(url)) => {
                let arm = Arm {
                    url: url.clone(),
                    config: config(&raw.config, "config")?,
                };
                (arm.clone(), arm)
            }
            _ => {
                return Err(err(
                    Some(at),
                    &where_,
                    "a test needs either `url` (and optional `config`) or both `ref` and `run` arms"
                        .into(),
                ));
            }
        };
        if let Some(t) = raw.threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(err(
                find_key(&lines, "threshold", at),
                &format!("{where_}.threshold"),
                format!("must be between 0 and 1, got {t}"),
            ));
        }
        tests.push(TestSpec {
            name: raw.name,
            run,
            reference,
            threshold: raw.threshold,
            ignore: raw.ignore,
        });
    }
    Ok(SuiteFile {
        path: path.to_path_buf(),
        setup,
        wait_for,
        tests,
    })
}

/// A test name becomes a file name: keep it to one safe path component.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 200 {
        return Err("a test name must be 1 to 200 characters".into());
    }
    if name.starts_with('.') || name.contains(['/', '\\', '\0']) {
        return Err(format!(
            "test name {name:?} cannot start with '.' or contain '/', '\\\\' or NUL"
        ));
    }
    Ok(())
}

/// The field name in serde's "unknown field `x`" or "missing field `x`".
fn unknown_field(msg: &str) -> Option<String> {
    for marker in [
        "unknown field `",
        "missing field `",
        "invalid type: ",
        "for key `",
    ] {
        if let Some(i) = msg.find(marker) {
            if marker.starts_with("invalid") {
                continue;
            }
            let rest = &msg[i + marker.len()..];
            return rest.split('`').next().map(str::to_string);
        }
    }
    None
}

/// serde_norway appends " at line L column C" to some messages; the line
/// is reported separately.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The 1-based line of the first `key:` at or after line `from` (1-based).
fn find_key(lines: &[&str], key: &str, from: usize) -> Option<usize> {
    lines
        .iter()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find_map(|(i, l)| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            let t = t.trim_start_matches(['"', '\'']);
            (t.starts_with(key)
                && t[key.len()..]
                    .trim_start_matches(['"', '\''])
                    .starts_with(':'))
            .then_some(i + 1)
        })
}

/// The 1-based line of `key: value` at or after line `from`.
fn find_value(lines: &[&str], key: &str, value: &str, from: usize) -> Option<usize> {
    let mut line = from;
    while let Some(l) = find_key(lines, key, line) {
        let content = lines.get(l - 1).copied().unwrap_or("");
        if content.contains(value) {
            return Some(l);
        }
        line = l + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SuiteFile, LocalError> {
        parse_str(Path::new("t.yaml"), text)
    }

    proptest::proptest! {
        /// Any text made of the format's keywords and YAML punctuation
        /// parses or is refused with an error; it never panics.
        #[test]
        fn yaml_suites_parse_or_are_refused(text in "(tests:|  - name: |    url: |    config: |[a-z{}:\\[\\],&*<>\\- \n]){0,40}") {
            let _ = parse(&text);
        }
    }

    const README_EXAMPLE: &str = r#"
setup: |
    python -m SimpleHTTPServer

waitFor:
    url: http://localhost:8000/demo.html
    timeout_secs: 5

standard-config: &stdconfig
    viewportSize:
        width: 800
        height: 600
    injectCss: >
        body {
          background-color: white;
        }

tests:
  - name: demo
    url: http://localhost:8000/demo.html
    config: *stdconfig

  - name: demo-with-click
    url: http://localhost:8000/demo.html
    config:
        <<: *stdconfig
        viewportSize:
            width: 400
            height: 300
        injectJs: |
            $('button').click();
    threshold: 0
    ignore: ["0:0-9:9"]

  - name: arms
    ref:
        url: http://localhost:8000/old.html
    run:
        url: http://localhost:8000/new.html
        config: {userAgent: x}
"#;

    #[test]
    fn the_readme_example_with_anchors_merges_and_arms() {
        let f = parse(README_EXAMPLE).unwrap();
        assert!(f.setup.as_deref().unwrap().contains("SimpleHTTPServer"));
        assert_eq!(
            f.wait_for,
            Some(WaitFor::Url {
                url: "http://localhost:8000/demo.html".into(),
                timeout_secs: 5.0
            })
        );
        assert_eq!(f.tests.len(), 3);
        let demo = &f.tests[0];
        assert_eq!(demo.run.config.viewport().width, 800);
        assert!(
            demo.run
                .config
                .inject_css
                .as_deref()
                .unwrap()
                .contains("white")
        );
        let click = &f.tests[1];
        // The merge keeps injectCss, the override wins for viewportSize.
        assert_eq!(click.run.config.viewport().width, 400);
        assert!(click.run.config.inject_css.is_some());
        assert!(click.run.config.inject_js.is_some());
        assert_eq!(click.threshold, Some(0.0));
        assert_eq!(click.ignore.len(), 1);
        let arms = &f.tests[2];
        assert_eq!(arms.reference.url, "http://localhost:8000/old.html");
        assert_eq!(arms.run.url, "http://localhost:8000/new.html");
        assert_eq!(arms.run.config.user_agent.as_deref(), Some("x"));
    }

    #[test]
    fn wait_for_may_be_a_script() {
        let f = parse("waitFor: |\n  curl -f http://x\ntests: []\n").unwrap();
        assert_eq!(
            f.wait_for,
            Some(WaitFor::Script("curl -f http://x\n".into()))
        );
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_config_field_names_file_line_key_and_known_fields() {
        let e = error(
            "tests:\n  - name: a\n    url: http://x/\n    config:\n      viewportsize: {width: 1, height: 1}\n",
        );
        assert!(e.starts_with("t.yaml:5:"), "{e}");
        assert!(e.contains("tests[0] (a).config.viewportsize"), "{e}");
        assert!(e.contains("viewportSize"), "lists the known fields: {e}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = error("tests:\n  - name: a\n    url: http://x/\n    colour: red\n");
        assert!(e.starts_with("t.yaml:4:"), "{e}");
        assert!(e.contains("colour"), "{e}");
        let e = error("tests:\n  - name: [unclosed\n");
        assert!(e.starts_with("t.yaml:"), "{e}");
        let e = error("setup: x\n");
        assert!(e.contains("tests"), "{e}");
        let e = error("tests:\n  - name: a\n    url: http://x/\n  - name: a\n    url: http://y/\n");
        assert!(e.contains("duplicate"), "{e}");
        assert!(e.starts_with("t.yaml:4:"), "{e}");
        let e = error("tests:\n  - name: ../evil\n    url: http://x/\n");
        assert!(e.contains("cannot start"), "{e}");
        let e = error("tests:\n  - name: a\n");
        assert!(e.contains("ref"), "{e}");
        let e = error("tests:\n  - name: a\n    url: http://x/\n    threshold: 2\n");
        assert!(e.starts_with("t.yaml:4:") && e.contains("threshold"), "{e}");
        let e = error("waitFor:\n  url: http://x/\n  timeout: 3\ntests: []\n");
        assert!(
            e.starts_with("t.yaml:3:") && e.contains("timeout_secs"),
            "{e}"
        );
        let e = error(
            "tests:\n  - name: a\n    url: http://x/\n    config:\n      viewportSize: {width: 0, height: 1}\n",
        );
        assert!(e.contains("viewportSize"), "{e}");
    }
}
