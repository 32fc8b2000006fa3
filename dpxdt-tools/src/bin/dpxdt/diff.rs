//! `dpxdt diff REF NEW`: compare two PNG images and report the difference.
//!
//! Exit codes: 0 identical or within the threshold (or, with
//! `--pass-on-shift`, only bands moved), 1 different, 2 error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use dpxdt_core::diff::{self, DiffOptions, DiffReport, Region};
use dpxdt_tools::{EXIT_DIFFERENT, EXIT_ERROR, EXIT_OK};

/// Flags of `dpxdt diff`.
#[derive(clap::Args)]
pub struct DiffArgs {
    /// The reference (expected) image.
    reference: PathBuf,
    /// The new (actual) image.
    new: PathBuf,
    /// Write the diff image here when the images differ.
    #[arg(short, long, value_name = "DIFF.png")]
    output: Option<PathBuf>,
    /// Colour distance (0..1) a pixel must pass to count as changed; 0 counts any change.
    #[arg(long, default_value_t = diff::DEFAULT_THRESHOLD, value_name = "T")]
    threshold: f64,
    /// Do not count anti-aliased edge pixels.
    #[arg(long)]
    antialiasing: bool,
    /// Rectangles to leave out, `x1:y1-x2:y2`, comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_name = "x1:y1-x2:y2")]
    ignore: Vec<Region>,
    /// Write the diff image as a transparent mask instead of over the faded reference.
    #[arg(long)]
    mask: bool,
    /// Refuse images with more pixels than this (decompression-bomb guard).
    #[arg(long, default_value_t = diff::DEFAULT_MAX_PIXELS, value_name = "N")]
    max_pixels: u64,
    /// Compare the images as they are, without first aligning their rows
    /// (a band inserted near the top then changes everything below it).
    #[arg(long)]
    no_align: bool,
    /// Pass when the only differences are bands inserted or removed (pure
    /// moves); by default any difference fails, as in the original.
    #[arg(long, conflicts_with = "no_align")]
    pass_on_shift: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The JSON shape of `--json`: the report plus the verdict and the output path.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    different: bool,
    size_changed: bool,
    #[serde(flatten)]
    report: &'a DiffReport,
    diff_image: Option<&'a std::path::Path>,
}

pub fn run(args: DiffArgs) -> ExitCode {
    let opts = DiffOptions {
        threshold: args.threshold,
        antialiasing: args.antialiasing,
        ignore: args.ignore,
        max_pixels: args.max_pixels,
        mask: args.mask,
        align: !args.no_align,
    };
    let report = match diff::diff_files(&args.reference, &args.new, args.output.as_deref(), &opts) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let written = args.output.as_deref().filter(|_| report.is_different());
    let fails = if args.pass_on_shift {
        report.changed_beyond_shifts()
    } else {
        report.is_different()
    };
    let text = if args.json {
        let json = JsonReport {
            different: fails,
            size_changed: report.size_changed(),
            report: &report,
            diff_image: written,
        };
        serde_json::to_string(&json).expect("report serializes") + "\n"
    } else {
        human(&report, fails, written)
    };
    // A closed pipe (`dpxdt diff … | head -1`) is not an error worth a message.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::from(if fails { EXIT_DIFFERENT } else { EXIT_OK })
}

fn human(report: &DiffReport, fails: bool, written: Option<&std::path::Path>) -> String {
    let mut out = String::new();
    let verdict = if fails {
        "different"
    } else if !report.shifts.is_empty() {
        "only moved"
    } else if report.distortion > 0.0 {
        "same within threshold"
    } else {
        "identical"
    };
    out += &format!("result: {verdict}\n");
    out += &format!("distortion: {:.6}\n", report.distortion);
    out += &format!(
        "changed pixels: {} of {} ({:.4}%)\n",
        report.changed_pixels, report.total_pixels, report.percentage
    );
    if report.size_changed() {
        out += &format!(
            "size: {}x{} (reference {}x{})\n",
            report.width, report.height, report.reference_width, report.reference_height
        );
    }
    if !report.shifts.is_empty() {
        out += &format!(
            "shifts: {} (distortion after alignment: {:.6}; changed pixels before: {})\n",
            report.shifts.len(),
            report.aligned_distortion,
            report.unaligned_changed_pixels
        );
        for s in &report.shifts {
            let (what, side) = match s.kind {
                diff::ShiftKind::Inserted => ("inserted", "new"),
                diff::ShiftKind::Removed => ("removed", "reference"),
            };
            out += &format!("  {what} {} rows at y={} ({side})\n", s.height, s.y);
        }
    }
    if !report.regions.is_empty() {
        out += &format!("regions: {}\n", report.regions.len());
        for r in &report.regions {
            out += &format!("  {r} ({}x{})\n", r.width(), r.height());
        }
    }
    if let Some(path) = written {
        out += &format!("diff image: {}\n", path.display());
    }
    out
}
