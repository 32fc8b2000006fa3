//! gtest-style test filters: `pos1:pos2-neg1:neg2`, with `*` and `?` wildcards.
//!
//! A pattern that matches a test's name also matches each of its modes:
//! `home` selects `home` and every `home@<mode>`, `home@dark` that one
//! only, `*@dark` every test's `dark` mode.

use super::TestSpec;
use dpxdt_core::config::moded_name;

/// A parsed `--test-filter`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestFilter {
    positive: Vec<String>,
    negative: Vec<String>,
}

impl TestFilter {
    /// Parses a filter. The empty string matches every test.
    pub fn parse(filter: &str) -> TestFilter {
        let (pos, neg) = match filter.split_once('-') {
            Some((p, n)) => (p, n),
            None => (filter, ""),
        };
        let split = |s: &str| -> Vec<String> {
            s.split(':')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        };
        TestFilter {
            positive: split(pos),
            negative: split(neg),
        }
    }

    /// Whether the test `name` (a test without modes) runs.
    pub fn matches(&self, name: &str) -> bool {
        self.matches_any(&[name])
    }

    /// Whether `test` runs: a pattern matches its name or, for a mode
    /// (`home@dark`), the name of the test it is a mode of (`home`).
    pub fn selects(&self, test: &TestSpec) -> bool {
        let base = test.mode.as_deref().and_then(|mode| {
            let suffix = moded_name("", Some(mode));
            test.name.strip_suffix(&suffix)
        });
        match base {
            Some(base) => self.matches_any(&[&test.name, base]),
            None => self.matches(&test.name),
        }
    }

    /// Whether a positive pattern (if any) matches one of `names`, and no
    /// negative pattern matches any.
    fn matches_any(&self, names: &[&str]) -> bool {
        let hit = |patterns: &[String]| {
            patterns
                .iter()
                .any(|p| names.iter().any(|name| glob(p, name)))
        };
        (self.positive.is_empty() || hit(&self.positive)) && !hit(&self.negative)
    }
}

/// `*` matches any run of characters, `?` one character.
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(!glob("abc", "abcd"));
        assert!(glob("*.b*", "x.by"));
    }

    #[test]
    fn gtest_syntax() {
        let all = TestFilter::parse("");
        assert!(all.matches("anything"));
        let f = TestFilter::parse("home*:about-home-mobile");
        assert!(f.matches("home"));
        assert!(f.matches("about"));
        assert!(!f.matches("home-mobile"));
        assert!(!f.matches("contact"));
        let neg_only = TestFilter::parse("-*slow*");
        assert!(neg_only.matches("fast"));
        assert!(!neg_only.matches("very-slow-page"));
    }

    fn test(name: &str, mode: Option<&str>) -> TestSpec {
        let arm = crate::local::Arm {
            url: "http://x/".into(),
            config: Default::default(),
        };
        TestSpec {
            name: moded_name(name, mode),
            mode: mode.map(str::to_string),
            run: arm.clone(),
            reference: arm,
            threshold: None,
            ignore: Vec::new(),
        }
    }

    #[test]
    fn a_test_name_selects_its_modes_and_a_moded_name_one_mode() {
        let (home, dark, light) = (
            test("home", None),
            test("home", Some("dark")),
            test("home", Some("light")),
        );
        let (about_dark, homepage_dark) =
            (test("about", Some("dark")), test("homepage", Some("dark")));
        let picks = |filter: &str| -> Vec<String> {
            let f = TestFilter::parse(filter);
            [&home, &dark, &light, &about_dark, &homepage_dark]
                .into_iter()
                .filter(|t| f.selects(t))
                .map(|t| t.name.clone())
                .collect()
        };
        assert_eq!(picks("home"), ["home", "home@dark", "home@light"]);
        assert_eq!(picks("home@dark"), ["home@dark"]);
        assert_eq!(
            picks("*@dark"),
            ["home@dark", "about@dark", "homepage@dark"]
        );
        assert_eq!(picks("home-home@dark"), ["home", "home@light"]);
        assert_eq!(picks("-home"), ["about@dark", "homepage@dark"]);
        assert_eq!(picks("about:home@light"), ["home@light", "about@dark"]);
        // A plain test whose own name holds '@' is not a mode of anything.
        let plain = test("mail@host", None);
        assert!(!TestFilter::parse("mail").selects(&plain));
        assert!(TestFilter::parse("mail@host").selects(&plain));
    }
}
