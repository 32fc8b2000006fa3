//! Named device presets (`"device": "Pixel 7"`): a phone's or tablet's
//! viewport, pixel ratio, touch and user agent in one word.
//!
//! The sizes are the CSS viewports and pixel ratios the makers and the
//! browsers' own device lists publish; the user agents are those the
//! devices' default browsers send. Fields set next to `device` win over
//! the preset's (a `viewportSize` with `device: "iPad Air"` keeps the
//! iPad's user agent and touch but not its size).

/// One device preset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Device {
    /// The name a config uses (matched without regard to case).
    pub name: &'static str,
    /// Viewport width in CSS pixels (portrait).
    pub width: u32,
    /// Viewport height in CSS pixels (portrait).
    pub height: u32,
    /// Device pixels per CSS pixel.
    pub scale: f64,
    /// A mobile browser: the viewport meta tag applies, with touch events.
    pub mobile: bool,
    /// The User-Agent header and `navigator.userAgent`.
    pub user_agent: &'static str,
}

const IOS_17: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const IPADOS_17: &str = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

/// Every preset, phones first, then tablets.
pub const DEVICES: &[Device] = &[
    Device {
        name: "iPhone SE",
        width: 375,
        height: 667,
        scale: 2.0,
        mobile: true,
        user_agent: IOS_17,
    },
    Device {
        name: "iPhone 15",
        width: 393,
        height: 852,
        scale: 3.0,
        mobile: true,
        user_agent: IOS_17,
    },
    Device {
        name: "iPhone 15 Pro Max",
        width: 430,
        height: 932,
        scale: 3.0,
        mobile: true,
        user_agent: IOS_17,
    },
    Device {
        name: "Pixel 7",
        width: 412,
        height: 915,
        scale: 2.625,
        mobile: true,
        user_agent: "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    },
    Device {
        name: "Pixel 8 Pro",
        width: 448,
        height: 998,
        scale: 3.0,
        mobile: true,
        user_agent: "Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    },
    Device {
        name: "Galaxy S24",
        width: 360,
        height: 780,
        scale: 3.0,
        mobile: true,
        user_agent: "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    },
    Device {
        name: "iPad Mini",
        width: 744,
        height: 1133,
        scale: 2.0,
        mobile: true,
        user_agent: IPADOS_17,
    },
    Device {
        name: "iPad Air",
        width: 820,
        height: 1180,
        scale: 2.0,
        mobile: true,
        user_agent: IPADOS_17,
    },
    Device {
        name: "iPad Pro 12.9",
        width: 1024,
        height: 1366,
        scale: 2.0,
        mobile: true,
        user_agent: IPADOS_17,
    },
    Device {
        name: "Galaxy Tab S9",
        width: 800,
        height: 1280,
        scale: 2.0,
        mobile: true,
        user_agent: "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    },
];

/// The preset called `name` (case and surrounding spaces ignored).
pub fn find(name: &str) -> Option<&'static Device> {
    let name = name.trim();
    DEVICES.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

/// The presets' names, comma-separated, for error messages.
pub fn names() -> String {
    DEVICES
        .iter()
        .map(|d| d.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_found_by_any_case_and_are_sane() {
        assert_eq!(find(" pixel 7 ").map(|d| d.width), Some(412));
        assert!(find("Nokia 3310").is_none());
        assert!(DEVICES.len() >= 8);
        for d in DEVICES {
            assert!(d.width < d.height, "{} is portrait", d.name);
            assert!((1.0..=4.0).contains(&d.scale), "{}", d.name);
            assert_eq!(find(d.name), Some(d), "names are unique");
        }
        assert!(names().contains("iPad Air"));
    }
}
