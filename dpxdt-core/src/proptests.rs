//! Property tests of the core's parsers of untrusted input: capture configs
//! (JSON), PNG files, network policy rules and address
//! classes. Each must answer any input with a value or a clean error, never
//! a panic. `PROPTEST_CASES=100000 cargo test -p dpxdt-core proptests` is
//! the long run (see benches/README.md); CI runs proptest's default 256.

use std::net::{IpAddr, Ipv6Addr};

use proptest::prelude::*;

use crate::CaptureConfig;
use crate::diff::{DEFAULT_MAX_PIXELS, decode_png};
use crate::netpolicy::{Rule, classify};

/// Any JSON value, nested a few levels, with the config's field names
/// among its keys so that parsing goes deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    let key = prop_oneof![
        Just("viewportSize".to_string()),
        Just("width".to_string()),
        Just("height".to_string()),
        Just("cookies".to_string()),
        Just("name".to_string()),
        Just("value".to_string()),
        Just("clock".to_string()),
        Just("randomSeed".to_string()),
        Just("injectHeaders".to_string()),
        Just("clipRect".to_string()),
        Just("timeoutMs".to_string()),
        "[a-zA-Z]{1,12}",
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn small_png() -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, 3, 2);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&[7u8; 3 * 2 * 4]).unwrap();
    writer.finish().unwrap();
    out
}

proptest! {
    #[test]
    fn configs_parse_or_are_refused(value in json_value()) {
        if let Ok(config) = CaptureConfig::from_json(&value.to_string()) {
            // What parses is valid, and its canonical JSON parses to itself.
            prop_assert!(config.validate().is_ok());
            prop_assert_eq!(CaptureConfig::from_json(&config.to_json()).unwrap(), config);
        }
    }

    #[test]
    fn config_text_never_panics(text in ".{0,300}") {
        let _ = CaptureConfig::from_json(&text);
    }

    #[test]
    fn damaged_pngs_decode_or_are_refused(
        cut in 0usize..200,
        flips in prop::collection::vec((0usize..200, any::<u8>()), 0..8),
    ) {
        let mut bytes = small_png();
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        bytes.truncate(cut.max(1));
        if let Ok(image) = decode_png(&bytes, "fuzz", DEFAULT_MAX_PIXELS) {
            prop_assert_eq!(image.as_rgba().len(), image.width() as usize * image.height() as usize * 4);
        }
    }

    #[test]
    fn any_bytes_as_png_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut with_signature = vec![137, 80, 78, 71, 13, 10, 26, 10];
        with_signature.extend_from_slice(&bytes);
        let _ = decode_png(&with_signature, "fuzz", 1_000_000);
        let _ = decode_png(&bytes, "fuzz", 1_000_000);
    }

    #[test]
    fn policy_rules_parse_or_are_refused(text in ".{0,60}") {
        let _ = text.parse::<Rule>();
    }

    #[test]
    fn ipv4_inside_ipv6_is_classed_as_the_ipv4(octets in any::<[u8; 4]>()) {
        let v4 = std::net::Ipv4Addr::from(octets);
        let class = classify(IpAddr::V4(v4));
        prop_assert_eq!(classify(IpAddr::V6(v4.to_ipv6_mapped())), class);
        let [a, b, c, d] = octets;
        let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
        prop_assert_eq!(classify(IpAddr::V6(nat64)), class);
    }
}
