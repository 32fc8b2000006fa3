//! Modes: named variants of one capture (`{name: dark, colorScheme: dark}`).
//!
//! A config with `modes` stands for one capture per mode: the config's own
//! fields, with each mode's fields laid over them. Its screenshots are
//! named `<name>@<mode>` wherever a name appears (reference files, server
//! runs, reports, filters).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{CaptureConfig, ConfigError};

/// What joins a test's or run's name and its mode's name.
pub const MODE_SEPARATOR: char = '@';

/// Most modes one config may list.
pub const MAX_MODES: usize = 32;

/// One named variant: a name and the capture fields it sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mode {
    /// The mode's name: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// Capture fields, as in a config (`colorScheme`, `device`, ...).
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// `name@mode`, or `name` for the capture without modes.
pub fn moded_name(name: &str, mode: Option<&str>) -> String {
    match mode {
        Some(mode) => format!("{name}{MODE_SEPARATOR}{mode}"),
        None => name.to_string(),
    }
}

/// Why `name` cannot name a mode.
fn check_mode_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a mode has no name".into());
    }
    if name.len() > 64 {
        return Err(format!("mode name {name:?} is longer than 64 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || name.starts_with('.')
    {
        return Err(format!(
            "mode name {name:?} may hold only letters, digits, '-', '_' and '.' (not first)"
        ));
    }
    Ok(())
}

impl CaptureConfig {
    /// The captures this config stands for: `(None, itself)` without
    /// modes; otherwise `(Some(mode name), config with the mode's fields
    /// over its own)` for each mode, in order, none of them with modes.
    /// Fails naming the mode and the field when a mode cannot be used.
    pub fn variants(&self) -> Result<Vec<(Option<String>, CaptureConfig)>, ConfigError> {
        if self.modes.is_empty() {
            return Ok(vec![(None, self.clone())]);
        }
        if self.modes.len() > MAX_MODES {
            return Err(ConfigError::Invalid {
                field: "modes",
                reason: format!("{} modes; at most {MAX_MODES}", self.modes.len()),
            });
        }
        let mut base = self.clone();
        base.modes.clear();
        let Value::Object(base_fields) = serde_json::to_value(&base)? else {
            unreachable!("a config serializes to an object")
        };
        let mut out: Vec<(Option<String>, CaptureConfig)> = Vec::with_capacity(self.modes.len());
        for mode in &self.modes {
            let in_mode = |reason: String| ConfigError::Mode {
                mode: mode.name.clone(),
                reason,
            };
            check_mode_name(&mode.name).map_err(in_mode)?;
            if out.iter().any(|(n, _)| n.as_deref() == Some(&mode.name)) {
                return Err(in_mode("two modes have this name".into()));
            }
            if mode.fields.contains_key("modes") {
                return Err(in_mode("a mode cannot have modes of its own".into()));
            }
            let mut fields = base_fields.clone();
            for (key, value) in &mode.fields {
                fields.insert(key.clone(), value.clone());
            }
            let config: CaptureConfig = serde_json::from_value(Value::Object(fields))
                .map_err(|e| in_mode(format!("invalid capture config: {e}")))?;
            config.validate().map_err(|e| in_mode(e.to_string()))?;
            out.push((Some(mode.name.clone()), config));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_lay_their_fields_over_the_config() {
        let c = CaptureConfig::from_json(
            r#"{"viewportSize": {"width": 800, "height": 600}, "colorScheme": "light",
                "modes": [{"name": "light"}, {"name": "dark", "colorScheme": "dark"},
                          {"name": "phone", "device": "Pixel 7"}]}"#,
        )
        .unwrap();
        let v = c.variants().unwrap();
        let names: Vec<_> = v.iter().map(|(n, _)| n.clone().unwrap()).collect();
        assert_eq!(names, ["light", "dark", "phone"]);
        assert_eq!(v[0].1.color_scheme.as_deref(), Some("light"));
        assert_eq!(v[1].1.color_scheme.as_deref(), Some("dark"));
        assert!(v.iter().all(|(_, c)| c.modes.is_empty()));
        assert_eq!(v[1].1.viewport().width, 800);
        // The explicit viewport wins over the device's; its touch stays.
        assert_eq!(v[2].1.viewport().width, 800);
        assert!(v[2].1.is_mobile());
        let plain = CaptureConfig::from_json("{}").unwrap();
        assert_eq!(plain.variants().unwrap(), vec![(None, plain.clone())]);
        assert_eq!(moded_name("home", Some("dark")), "home@dark");
        assert_eq!(moded_name("home", None), "home");
    }

    #[test]
    fn bad_modes_are_refused_naming_the_mode_and_field() {
        for (json, mode, what) in [
            (r#"[{"name": ""}]"#, "", "no name"),
            (r#"[{"colorScheme": "dark"}]"#, "", "name"),
            (r#"[{"name": "a"}, {"name": "a"}]"#, "a", "two modes"),
            (r#"[{"name": "a/b"}]"#, "a/b", "letters"),
            (
                r#"[{"name": "x", "colour": "red"}]"#,
                "x",
                "unknown field `colour`",
            ),
            (
                r#"[{"name": "x", "colorScheme": "blue"}]"#,
                "x",
                "colorScheme",
            ),
            (r#"[{"name": "x", "device": "Nokia"}]"#, "x", "Pixel 7"),
            (r#"[{"name": "x", "modes": []}]"#, "x", "modes of its own"),
            (
                r#"[{"name": "x", "settleTimeMs": -5}]"#,
                "x",
                "settleTimeMs",
            ),
        ] {
            let json = format!(r#"{{"modes": {json}}}"#);
            let err = CaptureConfig::from_json(&json).unwrap_err().to_string();
            assert!(err.contains(what), "{json}: {err}");
            if !mode.is_empty() {
                assert!(err.contains(&format!("mode {mode:?}")), "{json}: {err}");
            }
        }
    }
}
