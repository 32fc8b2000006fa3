//! The `--tests_json_path` files of `diff_my_images` and `diff_my_urls`, in
//! the original's JSON format, read and checked in full before anything is
//! sent, so bad input never leaves a half-made release behind.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use dpxdt_core::CaptureConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// One entry of a `diff_my_images` file: a screenshot taken elsewhere.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageTest {
    /// The run name; the last good run of this name is the reference.
    pub name: String,
    /// True when taking the screenshot failed (no image is needed then).
    #[serde(default)]
    pub run_failed: bool,
    /// The screenshot (PNG).
    #[serde(default)]
    pub image_path: Option<PathBuf>,
    /// A log of how the screenshot was taken.
    #[serde(default)]
    pub log_path: Option<PathBuf>,
    /// The page the screenshot shows.
    #[serde(default)]
    pub url: Option<String>,
}

/// One entry of a `diff_my_urls` file: a page and its baseline, both captured by the server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlTest {
    /// The run name.
    pub name: String,
    /// The new page.
    pub run_url: String,
    /// Its capture config: a JSON object (or a string holding one).
    #[serde(default)]
    pub run_config: Option<serde_json::Value>,
    /// The baseline page; without it the last good run is the reference.
    #[serde(default)]
    pub ref_url: Option<String>,
    /// The baseline's capture config.
    #[serde(default)]
    pub ref_config: Option<serde_json::Value>,
}

impl UrlTest {
    /// The run config as canonical JSON text, checked.
    pub fn run_config_json(&self) -> anyhow::Result<String> {
        config_json(self.run_config.as_ref())
            .with_context(|| format!("test {:?}: run_config", self.name))
    }

    /// The reference config as canonical JSON text, checked.
    pub fn ref_config_json(&self) -> anyhow::Result<String> {
        config_json(self.ref_config.as_ref())
            .with_context(|| format!("test {:?}: ref_config", self.name))
    }
}

fn config_json(value: Option<&serde_json::Value>) -> anyhow::Result<String> {
    let text = match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Ok(CaptureConfig::from_json(&text)?.to_json())
}

fn load<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read tests file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a JSON list of tests in the expected format",
            path.display()
        )
    })
}

fn check_names<'a>(path: &Path, names: impl Iterator<Item = &'a str>) -> anyhow::Result<usize> {
    let mut seen = HashSet::new();
    for (i, name) in names.enumerate() {
        dpxdt_core::model::validate_name("name", name)
            .map_err(|e| anyhow::anyhow!("{}: test {}: {e}", path.display(), i + 1))?;
        if !seen.insert(name) {
            anyhow::bail!(
                "{}: test {} repeats the name {name:?}; run names must be unique",
                path.display(),
                i + 1
            );
        }
    }
    if seen.is_empty() {
        anyhow::bail!("{} lists no tests", path.display());
    }
    Ok(seen.len())
}

/// Reads a `diff_my_images` file and checks every entry: unique names, an
/// existing image unless the run failed, an existing log when one is named.
pub fn load_image_tests(path: &Path) -> anyhow::Result<Vec<ImageTest>> {
    let tests: Vec<ImageTest> = load(path)?;
    check_names(path, tests.iter().map(|t| t.name.as_str()))?;
    for test in &tests {
        let at = || format!("{}: test {:?}", path.display(), test.name);
        match &test.image_path {
            Some(image) => check_file(image).with_context(|| format!("{}: image_path", at()))?,
            None if !test.run_failed => {
                anyhow::bail!("{}: image_path is missing (and run_failed is false)", at())
            }
            None => {}
        }
        if let Some(log) = &test.log_path {
            check_file(log).with_context(|| format!("{}: log_path", at()))?;
        }
    }
    Ok(tests)
}

/// Reads a `diff_my_urls` file and checks every entry: unique names,
/// http(s) URLs, valid capture configs.
pub fn load_url_tests(path: &Path) -> anyhow::Result<Vec<UrlTest>> {
    let tests: Vec<UrlTest> = load(path)?;
    check_names(path, tests.iter().map(|t| t.name.as_str()))?;
    for test in &tests {
        let at = || format!("{}: test {:?}", path.display(), test.name);
        check_url(&test.run_url).with_context(|| format!("{}: run_url", at()))?;
        if let Some(ref_url) = &test.ref_url {
            check_url(ref_url).with_context(|| format!("{}: ref_url", at()))?;
        } else if test.ref_config.is_some() {
            anyhow::bail!("{}: ref_config is set but ref_url is not", at());
        }
        test.run_config_json()
            .with_context(|| path.display().to_string())?;
        test.ref_config_json()
            .with_context(|| path.display().to_string())?;
    }
    Ok(tests)
}

fn check_file(path: &Path) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!("{} is not a file", path.display());
    }
    Ok(())
}

fn check_url(raw: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(raw).with_context(|| format!("invalid URL {raw:?}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("invalid URL {raw:?}: only http and https pages can be captured");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn image_tests_in_the_original_format_load() {
        let dir = tempfile::tempdir().unwrap();
        let image = write(dir.path(), "a.png", "png");
        let json = serde_json::json!([
            {"name": "My homepage", "run_failed": false, "image_path": image,
             "log_path": null, "url": "http://example.com/"},
            {"name": "Broken", "run_failed": true}
        ]);
        let path = write(dir.path(), "t.json", &json.to_string());
        let tests = load_image_tests(&path).unwrap();
        assert_eq!(tests.len(), 2);
        assert_eq!(tests[0].image_path.as_deref(), Some(image.as_path()));
        assert!(tests[1].run_failed);
    }

    #[test]
    fn bad_image_tests_are_refused_with_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("[{\"name\": \"a\", ", "is not a JSON list"),
            ("{}", "is not a JSON list"),
            ("[]", "lists no tests"),
            (
                r#"[{"name": "a", "image_path": "/nonexistent/x.png"}]"#,
                "test \"a\": image_path: cannot read /nonexistent/x.png",
            ),
            (r#"[{"name": "a"}]"#, "image_path is missing"),
            (
                r#"[{"name": "a", "run_failed": true}, {"name": "a", "run_failed": true}]"#,
                "repeats the name",
            ),
            (
                r#"[{"name": "a", "run_failed": true, "imagepath": "x"}]"#,
                "is not a JSON list",
            ),
        ];
        for (text, want) in cases {
            let path = write(dir.path(), "t.json", text);
            let err = format!("{:#}", load_image_tests(&path).unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
        }
        let err = format!(
            "{:#}",
            load_image_tests(&dir.path().join("missing.json")).unwrap_err()
        );
        assert!(err.contains("cannot read tests file"), "{err}");
    }

    #[test]
    fn url_tests_take_configs_as_objects_or_strings() {
        let dir = tempfile::tempdir().unwrap();
        let json = r##"[
            {"name": "home", "run_url": "http://h/a",
             "run_config": {"viewportSize": {"width": 1024, "height": 768}, "injectCss": "a{}"},
             "ref_url": "http://h/b", "ref_config": "{\"injectJs\": \"1\"}"},
            {"name": "solo", "run_url": "http://h/c"}
        ]"##;
        let path = write(dir.path(), "u.json", json);
        let tests = load_url_tests(&path).unwrap();
        assert_eq!(
            tests[0].run_config_json().unwrap(),
            r#"{"viewportSize":{"width":1024,"height":768},"injectCss":"a{}"}"#
        );
        assert_eq!(tests[0].ref_config_json().unwrap(), r#"{"injectJs":"1"}"#);
        assert_eq!(tests[1].run_config_json().unwrap(), "{}");
    }

    #[test]
    fn bad_url_tests_are_refused_with_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (r#"[{"name": "a", "run_url": "ftp://h/"}]"#, "run_url"),
            (
                r#"[{"name": "a", "run_url": "http://h/", "run_config": {"viewprtSize": 1}}]"#,
                "test \"a\": run_config: invalid capture config",
            ),
            (
                r#"[{"name": "a", "run_url": "http://h/", "ref_config": {}}]"#,
                "ref_config is set but ref_url is not",
            ),
        ];
        for (text, want) in cases {
            let path = write(dir.path(), "u.json", text);
            let err = format!("{:#}", load_url_tests(&path).unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
