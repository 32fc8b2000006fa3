//! gtest-style test filters: `pos1:pos2-neg1:neg2`, with `*` and `?` wildcards.

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

    /// Whether the test `name` runs.
    pub fn matches(&self, name: &str) -> bool {
        let pos_ok = self.positive.is_empty() || self.positive.iter().any(|p| glob(p, name));
        pos_ok && !self.negative.iter().any(|p| glob(p, name))
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
}
