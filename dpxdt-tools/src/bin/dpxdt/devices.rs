//! `dpxdt devices`: the device presets a capture config's `device` may
//! name, as a table (exit 0).

use std::process::ExitCode;

use dpxdt_core::config::{DEVICES, Device};

/// Prints the table.
pub fn run() -> ExitCode {
    print!("{}", table(DEVICES));
    ExitCode::SUCCESS
}

/// One line per device, columns aligned: name, viewport (CSS pixels),
/// scale (device pixels per CSS pixel) and whether it is a mobile browser
/// with touch.
fn table(devices: &[Device]) -> String {
    let header = ["DEVICE", "VIEWPORT", "SCALE", "MOBILE"].map(String::from);
    let rows: Vec<[String; 4]> = devices
        .iter()
        .map(|d| {
            [
                d.name.to_string(),
                format!("{}x{}", d.width, d.height),
                d.scale.to_string(),
                if d.mobile { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    let all = || std::iter::once(&header).chain(&rows);
    let widths: Vec<usize> = (0..4)
        .map(|i| all().map(|row| row[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in all() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_one_row_with_aligned_columns() {
        let out = table(DEVICES);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), DEVICES.len() + 1, "{out}");
        let at = |name: &str| lines[0].find(name).unwrap();
        let (viewport, scale, mobile) = (at("VIEWPORT"), at("SCALE"), at("MOBILE"));
        for (line, d) in lines[1..].iter().zip(DEVICES) {
            assert!(line.starts_with(d.name), "{out}");
            let viewport_cell = format!("{}x{} ", d.width, d.height);
            assert!(line[viewport..].starts_with(&viewport_cell), "{out}");
            assert!(line[scale..].starts_with(&d.scale.to_string()), "{out}");
            assert_eq!(
                &line[mobile..],
                if d.mobile { "yes" } else { "no" },
                "{out}"
            );
        }
        assert!(out.contains("Pixel 7") && out.contains("2.625"), "{out}");
    }
}
