//! Browser engines: which one takes a screenshot (`"browser"`), and what
//! each cannot do.

use super::CaptureConfig;

/// A browser engine a capture can run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Engine {
    /// Chromium (Blink), through chromedriver and the DevTools protocol.
    #[default]
    Chromium,
    /// Firefox (Gecko), through geckodriver and WebDriver BiDi.
    Firefox,
    /// WebKitGTK, through WebKitWebDriver.
    Webkit,
}

impl Engine {
    /// Every engine, in the order lists show them.
    pub const ALL: [Engine; 3] = [Engine::Chromium, Engine::Firefox, Engine::Webkit];

    /// The engine's name as configs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Chromium => "chromium",
            Engine::Firefox => "firefox",
            Engine::Webkit => "webkit",
        }
    }

    /// The engine `name` names, or why none does (listing the known ones).
    pub fn parse(name: &str) -> Result<Engine, String> {
        Engine::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| {
                format!(
                    "{name:?} is not a known browser; known: {}",
                    Engine::ALL.map(Engine::name).join(", ")
                )
            })
    }

    /// Parses a comma-separated list (`chromium,firefox`), refusing
    /// unknown and repeated names.
    pub fn parse_list(list: &str) -> Result<Vec<Engine>, String> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let engine = Engine::parse(name)?;
            if out.contains(&engine) {
                return Err(format!("{name:?} is listed twice"));
            }
            out.push(engine);
        }
        if out.is_empty() {
            return Err("no browser is listed".into());
        }
        Ok(out)
    }

    /// The field of `config` (as JSON spells it) that this engine cannot
    /// honour, with why, if any. Each engine's README table lists these.
    pub fn unsupported(self, config: &CaptureConfig) -> Option<(&'static str, &'static str)> {
        match self {
            Engine::Chromium => None,
            Engine::Firefox | Engine::Webkit => {
                let headers = !config.inject_headers.is_empty() || config.http_user_name.is_some();
                let checks: [(bool, &'static str, &'static str); 4] = [
                    (
                        self == Engine::Webkit && !config.resources_to_ignore.is_empty(),
                        "resourcesToIgnore",
                        "blocking requests by URL needs request interception",
                    ),
                    (
                        headers && !config.inject_headers_all_hosts,
                        if config.inject_headers.is_empty() {
                            "httpUserName"
                        } else {
                            "injectHeaders"
                        },
                        "headers only for the hosts they name need Chromium's DevTools \
                         protocol; with \"injectHeadersAllHosts\": true they go with every request",
                    ),
                    (
                        config.is_mobile(),
                        if config.mobile.is_some() {
                            "mobile"
                        } else {
                            "device"
                        },
                        "only Chromium emulates a mobile browser (its viewport tag and touch)",
                    ),
                    (
                        self == Engine::Webkit && config.forced_colors.as_deref() == Some("active"),
                        "forcedColors",
                        "forced colours cannot be switched on in this engine",
                    ),
                ];
                checks
                    .into_iter()
                    .find(|(hit, _, _)| *hit)
                    .map(|(_, field, why)| (field, why))
            }
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_parse_by_name_and_unknown_ones_list_the_known() {
        assert_eq!(Engine::parse("firefox"), Ok(Engine::Firefox));
        let err = Engine::parse("safari").unwrap_err();
        assert!(err.contains("chromium, firefox, webkit"), "{err}");
        assert_eq!(
            Engine::parse_list("chromium, firefox").unwrap(),
            [Engine::Chromium, Engine::Firefox]
        );
        assert!(Engine::parse_list("firefox,firefox").is_err());
        assert!(Engine::parse_list("").is_err());
    }
}
