//! The original local-mode YAML format, parsed with YAML anchors and
//! `<<:` merge keys resolved, and errors that name the file, line and key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::Value;

use super::LocalError;
use dpxdt_core::config::{CaptureConfig, ConfigError, Mode, moded_name};
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
/// tests, another page whose capture is the reference. A test with
/// `modes` is one `TestSpec` per mode.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSpec {
    /// Name (`<test>@<mode>` for a mode); the reference image is `<dir>/<name>.png`.
    pub name: String,
    /// The mode's name, for a test with `modes`.
    pub mode: Option<String>,
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
    modes: Option<Value>,
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
    // Lines once, so that finding a key's line costs what lies between it
    // and the last one found (a suite of many tests parses in linear time).
    let src = Source {
        path,
        lines: text.lines().collect(),
    };
    let mut doc: Value = serde_norway::from_str(text).map_err(|e| {
        src.err(
            e.location().map(|l| l.line()),
            "",
            strip_location(&e.to_string()),
        )
    })?;
    doc.apply_merge()
        .map_err(|e| src.err(e.location().map(|l| l.line()), "<<", e.to_string()))?;
    let Value::Mapping(top) = doc else {
        return Err(src.err(
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
            return Err(src.err(
                src.find_key("setup", 0),
                "setup",
                "must be a bash script (a string)".into(),
            ));
        }
    };
    let wait_for = parse_wait_for(&src, get("waitFor"))?;
    let Some(Value::Sequence(raw_tests)) = get("tests") else {
        return Err(src.err(
            src.find_key("tests", 0),
            "tests",
            "missing, or not a list of tests".into(),
        ));
    };
    let mut tests = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor = src.find_key("tests", 0).unwrap_or(0);
    for (i, raw) in raw_tests.iter().enumerate() {
        let name_hint = raw.get("name").and_then(Value::as_str).map(str::to_string);
        let at = name_hint
            .as_deref()
            .and_then(|n| find_value(&src.lines, "name", n, cursor))
            .unwrap_or(cursor);
        cursor = at + 1;
        let where_ = match &name_hint {
            Some(n) => format!("tests[{i}] ({n})"),
            None => format!("tests[{i}]"),
        };
        for test in parse_test(&src, raw, &where_, at)? {
            if !seen.insert(test.name.clone()) {
                return Err(src.err(
                    Some(at),
                    &format!("{where_}.name"),
                    format!("duplicate test name {:?}", test.name),
                ));
            }
            tests.push(test);
        }
    }
    Ok(SuiteFile {
        path: path.to_path_buf(),
        setup,
        wait_for,
        tests,
    })
}

/// The file being parsed, for error messages: its path and lines.
struct Source<'a> {
    path: &'a Path,
    lines: Vec<&'a str>,
}

impl Source<'_> {
    fn err(&self, line: Option<usize>, key: &str, message: String) -> LocalError {
        LocalError::Yaml {
            path: self.path.to_path_buf(),
            line,
            key: key.to_string(),
            message,
        }
    }

    fn find_key(&self, key: &str, from: usize) -> Option<usize> {
        find_key(&self.lines, key, from)
    }
}

/// The `waitFor` stanza: a script, or `{url, timeout_secs}`.
fn parse_wait_for(src: &Source<'_>, value: Option<&Value>) -> Result<Option<WaitFor>, LocalError> {
    let m = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => return Ok(Some(WaitFor::Script(s.clone()))),
        Some(Value::Mapping(m)) => m,
        Some(_) => {
            return Err(src.err(
                src.find_key("waitFor", 0),
                "waitFor",
                "must be a bash script or {url, timeout_secs}".into(),
            ));
        }
    };
    let line = src.find_key("waitFor", 0);
    for k in m.keys() {
        let k = k.as_str().unwrap_or("?");
        if k != "url" && k != "timeout_secs" {
            return Err(src.err(
                src.find_key(k, line.unwrap_or(0)).or(line),
                &format!("waitFor.{k}"),
                "unknown field; known fields: url, timeout_secs".into(),
            ));
        }
    }
    let url = m
        .get(Value::String("url".into()))
        .and_then(Value::as_str)
        .ok_or_else(|| src.err(line, "waitFor.url", "missing or not a string".into()))?;
    let timeout_secs = match m.get(Value::String("timeout_secs".into())) {
        None => 30.0,
        Some(v) => v.as_f64().filter(|t| *t > 0.0).ok_or_else(|| {
            src.err(
                src.find_key("timeout_secs", line.unwrap_or(0)),
                "waitFor.timeout_secs",
                "must be a positive number".into(),
            )
        })?,
    };
    Ok(Some(WaitFor::Url {
        url: url.to_string(),
        timeout_secs,
    }))
}

/// One entry of `tests` (`where_` names it, `at` is its line): one
/// [`TestSpec`], or one per mode.
fn parse_test(
    src: &Source<'_>,
    raw: &Value,
    where_: &str,
    at: usize,
) -> Result<Vec<TestSpec>, LocalError> {
    let raw: RawTest = serde_norway::from_value(raw.clone()).map_err(|e| {
        let msg = e.to_string();
        let key = unknown_field(&msg).unwrap_or_default();
        src.err(
            (!key.is_empty())
                .then(|| src.find_key(&key, at))
                .flatten()
                .or(Some(at)),
            &if key.is_empty() {
                where_.to_string()
            } else {
                format!("{where_}.{key}")
            },
            msg,
        )
    })?;
    check_name(&raw.name).map_err(|m| src.err(Some(at), &format!("{where_}.name"), m))?;
    let config =
        |v: &Option<Value>, key: &str| parse_config(src, v, &format!("{where_}.{key}"), at);
    let (mut run, mut reference) = match (&raw.reference, &raw.run, &raw.url) {
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
            return Err(src.err(
                Some(at),
                where_,
                "a test needs either `url` (and optional `config`) or both `ref` and `run` arms"
                    .into(),
            ));
        }
    };
    if let Some(t) = raw.threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(src.err(
            src.find_key("threshold", at),
            &format!("{where_}.threshold"),
            format!("must be between 0 and 1, got {t}"),
        ));
    }
    let modes = take_modes(
        src,
        raw.modes.as_ref(),
        (&mut run, &mut reference),
        where_,
        at,
    )?;
    let test = TestSpec {
        name: raw.name,
        mode: None,
        run,
        reference,
        threshold: raw.threshold,
        ignore: raw.ignore,
    };
    expand_modes(src, test, &modes, where_, at)
}

/// A `config` (`key` names it in messages), checked; its `modes` are
/// left for [`expand_modes`] to check, so their errors name the mode.
fn parse_config(
    src: &Source<'_>,
    value: &Option<Value>,
    key: &str,
    at: usize,
) -> Result<CaptureConfig, LocalError> {
    let Some(v) = value.as_ref().filter(|v| !v.is_null()) else {
        return Ok(CaptureConfig::default());
    };
    let mut c: CaptureConfig = serde_norway::from_value(v.clone()).map_err(|e| {
        let msg = e.to_string();
        let field = unknown_field(&msg);
        let line = field
            .as_deref()
            .and_then(|f| src.find_key(f, at))
            .or_else(|| src.find_key("config", at));
        src.err(
            line,
            &format!(
                "{key}{}",
                field.map(|f| format!(".{f}")).unwrap_or_default()
            ),
            msg,
        )
    })?;
    let modes = std::mem::take(&mut c.modes);
    c.validate()
        .map_err(|e| src.err(src.find_key("config", at), key, e.to_string()))?;
    c.modes = modes;
    Ok(c)
}

/// The test's modes, from its `modes` key or its `config`'s (not both),
/// taken out of the arms' configs. A `ref`/`run` test's modes go on the
/// test and apply to both arms (two arms that differ cannot have modes
/// of their own).
fn take_modes(
    src: &Source<'_>,
    raw: Option<&Value>,
    (run, reference): (&mut Arm, &mut Arm),
    where_: &str,
    at: usize,
) -> Result<Vec<Mode>, LocalError> {
    let line = src.find_key("modes", at);
    let same_arms = run == reference;
    let in_config = std::mem::take(&mut run.config.modes);
    let in_ref = std::mem::take(&mut reference.config.modes);
    let arm_modes = !(in_config.is_empty() && in_ref.is_empty());
    if arm_modes && !same_arms {
        return Err(src.err(
            line,
            &format!("{where_}.modes"),
            "modes of a test with `ref` and `run` go on the test; they apply to both arms".into(),
        ));
    }
    let Some(raw) = raw.filter(|v| !v.is_null()) else {
        return Ok(in_config);
    };
    if !in_config.is_empty() {
        return Err(src.err(
            line,
            &format!("{where_}.modes"),
            "modes are given both on the test and in its config; keep one".into(),
        ));
    }
    serde_norway::from_value(raw.clone()).map_err(|e| {
        src.err(
            line,
            &format!("{where_}.modes"),
            format!(
                "{} (modes are a list like [{{name: dark, colorScheme: dark}}])",
                strip_location(&e.to_string())
            ),
        )
    })
}

/// `test` once per mode, named `<name>@<mode>`, each arm's config with
/// the mode's fields over it; `test` itself without modes. A mode that
/// cannot be used is an error naming the test, the mode and the field.
fn expand_modes(
    src: &Source<'_>,
    test: TestSpec,
    modes: &[Mode],
    where_: &str,
    at: usize,
) -> Result<Vec<TestSpec>, LocalError> {
    if modes.is_empty() {
        return Ok(vec![test]);
    }
    let modes_line = src.find_key("modes", at).unwrap_or(at);
    let in_mode = |mode: &str| {
        let index = modes.iter().position(|m| m.name == mode).unwrap_or(0);
        let line = find_mode_line(&src.lines, mode, modes_line).unwrap_or(modes_line);
        (Some(line), format!("{where_}.modes[{index}] ({mode})"))
    };
    let variants = |config: &CaptureConfig| {
        let with_modes = CaptureConfig {
            modes: modes.to_vec(),
            ..config.clone()
        };
        with_modes
            .validate()
            .and_then(|()| with_modes.variants())
            .map_err(|e| match &e {
                ConfigError::Mode { mode, .. } => {
                    let (line, key) = in_mode(mode);
                    src.err(line, &key, e.to_string())
                }
                _ => src.err(Some(modes_line), &format!("{where_}.modes"), e.to_string()),
            })
    };
    let runs = variants(&test.run.config)?;
    let references = variants(&test.reference.config)?;
    let mut out = Vec::with_capacity(runs.len());
    for ((mode, run), (_, reference)) in runs.into_iter().zip(references) {
        let name = moded_name(&test.name, mode.as_deref());
        if let Err(m) = check_name(&name) {
            let (line, key) = in_mode(mode.as_deref().unwrap_or(""));
            return Err(src.err(line, &key, m));
        }
        out.push(TestSpec {
            name,
            mode,
            run: Arm {
                url: test.run.url.clone(),
                config: run,
            },
            reference: Arm {
                url: test.reference.url.clone(),
                config: reference,
            },
            threshold: test.threshold,
            ignore: test.ignore.clone(),
        });
    }
    Ok(out)
}

/// The 1-based line, at or after `from`, of a mode's `name: <mode>`, in
/// block (`- name: dark`) or flow (`- {name: dark, ...}`) style.
fn find_mode_line(lines: &[&str], mode: &str, from: usize) -> Option<usize> {
    let word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let names_it = |line: &str| {
        line.match_indices("name:").any(|(i, _)| {
            let key_starts = !line[..i].ends_with(|c: char| c.is_ascii_alphanumeric());
            let value = line[i + 5..].trim_start().trim_start_matches(['"', '\'']);
            let rest = value.strip_prefix(mode);
            key_starts && rest.is_some_and(|r| !r.starts_with(word))
        })
    };
    lines
        .iter()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find_map(|(i, l)| names_it(l).then_some(i + 1))
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

    const MODES_EXAMPLE: &str = "tests:
  - name: home
    url: http://localhost:8000/
    config: {viewportSize: {width: 800, height: 600}}
    threshold: 0
    modes:
      - {name: light}
      - {name: dark, colorScheme: dark}
      - {name: phone, device: \"Pixel 7\"}
      - name: de
        locale: de-DE
        timezone: Europe/Berlin
  - name: about
    url: http://localhost:8000/about
";

    #[test]
    fn modes_make_one_test_per_mode_named_test_at_mode() {
        let f = parse(MODES_EXAMPLE).unwrap();
        let names: Vec<_> = f.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["home@light", "home@dark", "home@phone", "home@de", "about"]
        );
        let modes: Vec<_> = f.tests.iter().map(|t| t.mode.as_deref()).collect();
        assert_eq!(
            modes,
            [Some("light"), Some("dark"), Some("phone"), Some("de"), None]
        );
        let [light, dark, phone, de, about] = &f.tests[..] else {
            panic!("{:?}", f.tests);
        };
        assert_eq!(light.run.config.color_scheme, None);
        assert_eq!(dark.run.config.color_scheme.as_deref(), Some("dark"));
        assert_eq!(phone.run.config.device.as_deref(), Some("Pixel 7"));
        assert_eq!(
            (de.run.config.locale(), de.run.config.timezone()),
            ("de-DE", "Europe/Berlin")
        );
        // Each mode keeps the test's own config, URL and threshold.
        for t in [light, dark, phone, de] {
            assert_eq!(t.run.config.viewport().width, 800);
            assert!(t.run.config.modes.is_empty());
            assert_eq!(t.run.url, "http://localhost:8000/");
            assert_eq!(t.threshold, Some(0.0));
            assert_eq!(t.reference, t.run);
        }
        assert_eq!(about.run.config, CaptureConfig::default());
    }

    #[test]
    fn modes_may_sit_in_the_config_and_apply_to_both_arms() {
        let f = parse(
            "tests:\n  - name: a\n    url: http://x/\n    config:\n      injectCss: 'p {}'\n      modes: [{name: dark, colorScheme: dark}]\n",
        )
        .unwrap();
        assert_eq!(f.tests.len(), 1);
        assert_eq!(f.tests[0].name, "a@dark");
        assert!(f.tests[0].run.config.inject_css.is_some());
        let f = parse(
            "tests:\n  - name: b\n    modes: [{name: wide, viewportSize: {width: 900, height: 500}}, {name: narrow}]\n    ref:\n      url: http://old/\n    run:\n      url: http://new/\n      config: {userAgent: x}\n",
        )
        .unwrap();
        let [wide, narrow] = &f.tests[..] else {
            panic!("{:?}", f.tests);
        };
        assert_eq!(
            (wide.name.as_str(), narrow.name.as_str()),
            ("b@wide", "b@narrow")
        );
        assert_eq!(wide.reference.url, "http://old/");
        assert_eq!(wide.run.url, "http://new/");
        assert_eq!(wide.reference.config.viewport().width, 900);
        assert_eq!(wide.run.config.viewport().width, 900);
        assert_eq!(wide.run.config.user_agent.as_deref(), Some("x"));
        assert_eq!(wide.reference.config.user_agent, None);
        assert_eq!(narrow.run.config.viewport().width, 1280);
    }

    #[test]
    fn bad_modes_name_file_line_test_mode_and_field() {
        let with_modes = |modes: &str| {
            error(&format!(
                "tests:\n  - name: home\n    url: http://x/\n    modes:\n      - {{name: light}}\n{modes}"
            ))
        };
        for (modes, line, key, says) in [
            (
                "      - {name: dark, colorScheme: blue}\n",
                6,
                "tests[0] (home).modes[1] (dark)",
                "colorScheme",
            ),
            (
                "      - name: dark\n        colour: red\n",
                6,
                "tests[0] (home).modes[1] (dark)",
                "unknown field `colour`",
            ),
            (
                "      - {name: light, colorScheme: dark}\n",
                5,
                "tests[0] (home).modes[0] (light)",
                "two modes",
            ),
            (
                "      - {name: phone, device: Nokia}\n",
                6,
                "tests[0] (home).modes[1] (phone)",
                "Pixel 7",
            ),
            (
                "      - {name: slow, settleTimeMs: -1}\n",
                6,
                "(slow)",
                "settleTimeMs",
            ),
            ("      - {name: a/b}\n", 6, "(a/b)", "letters"),
            (
                "      - {colorScheme: dark}\n",
                4,
                "tests[0] (home).modes",
                "name",
            ),
        ] {
            let e = with_modes(modes);
            assert!(e.starts_with(&format!("t.yaml:{line}: ")), "{modes}: {e}");
            assert!(e.contains(key) && e.contains(says), "{modes}: {e}");
        }
        let e = error("tests:\n  - name: a\n    url: http://x/\n    modes: dark\n");
        assert!(
            e.starts_with("t.yaml:4:") && e.contains("a list like"),
            "{e}"
        );
        let e = error(
            "tests:\n  - name: a\n    url: http://x/\n    modes: [{name: x}]\n    config:\n      modes: [{name: y}]\n",
        );
        assert!(e.contains("both on the test and in its config"), "{e}");
        let e = error(
            "tests:\n  - name: a\n    ref: {url: http://x/}\n    run:\n      url: http://y/\n      config:\n        modes: [{name: y}]\n",
        );
        assert!(
            e.starts_with("t.yaml:7:") && e.contains("apply to both arms"),
            "{e}"
        );
        // A mode's name cannot take the place of another test's.
        let e = error(
            "tests:\n  - name: a@dark\n    url: http://x/\n  - name: a\n    url: http://x/\n    modes: [{name: dark}]\n",
        );
        assert!(
            e.starts_with("t.yaml:4:") && e.contains("duplicate test name \"a@dark\""),
            "{e}"
        );
        let long = "n".repeat(198);
        let e = error(&format!(
            "tests:\n  - name: {long}\n    url: http://x/\n    modes: [{{name: dark}}]\n"
        ));
        assert!(
            e.contains("modes[0] (dark)") && e.contains("200 characters"),
            "{e}"
        );
    }
}
