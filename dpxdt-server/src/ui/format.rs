//! How the UI writes times and counts for people: "3 minutes ago" with the
//! exact time on hover, and digits grouped by thousands.

use std::time::{Duration, UNIX_EPOCH};

use dpxdt_core::api::RunReview;
use serde_json::{Value, json};

/// A moment (milliseconds since the Unix epoch) as a page shows it: `ago`
/// relative to `now`, `iso` exact (UTC), `ms` for the page's script.
pub(super) fn when(ms: i64, now: i64) -> Value {
    let iso = u64::try_from(ms)
        .map(|ms| {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        })
        .unwrap_or_default();
    json!({"ms": ms, "iso": iso, "ago": ago(now.saturating_sub(ms), &iso)})
}

/// `delta` milliseconds ago, in words; past a month, the date of `iso`.
fn ago(delta: i64, iso: &str) -> String {
    let (s, m, h, d) = (1_000, 60_000, 3_600_000, 86_400_000);
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match delta {
        x if x < 45 * s => "just now".to_string(),
        x if x < 90 * s => "a minute ago".to_string(),
        x if x < h => plural((x + m / 2) / m, "minute"),
        x if x < d => plural((x + h / 2) / h, "hour"),
        x if x < 30 * d => plural((x + d / 2) / d, "day"),
        _ => format!("on {}", iso.get(..10).unwrap_or(iso)),
    }
}

/// Who gave a verdict or wrote a comment, as shown to a reader: an API
/// key's id only to the build's owners (key ids are theirs to see).
pub(super) fn who(name: &str, owner: bool) -> &str {
    if !owner && name.starts_with("API key ") {
        "an API key"
    } else {
        name
    }
}

/// A run's verdict as the pages show it (see [`who`] for `by`).
pub(super) fn review_json(v: &RunReview, owner: bool, now: i64) -> Value {
    json!({"verdict": v.verdict.as_str(), "reason": v.reason, "by": who(&v.by, owner),
           "when": when(v.at_ms, now)})
}

/// `n` with its digits grouped by thousands: `1,234,567`.
pub(super) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_say_them() {
        let at = 1_765_000_000_000; // 2025-12-06T05:46:40Z
        let w = |now| when(at, now)["ago"].as_str().unwrap().to_string();
        assert_eq!(w(at + 10_000), "just now");
        assert_eq!(w(at + 70_000), "a minute ago");
        assert_eq!(w(at + 5 * 60_000), "5 minutes ago");
        assert_eq!(w(at + 3_600_000), "1 hour ago");
        assert_eq!(w(at + 50 * 3_600_000), "2 days ago");
        assert_eq!(w(at + 40 * 86_400_000), "on 2025-12-06");
        assert_eq!(when(at, at)["iso"], "2025-12-06T05:46:40Z");
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(480_000), "480,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
