//! Reports of a local run: JUnit XML for CI and a static HTML page with
//! reference, new and diff images side by side and a slider overlay.

use std::fmt::Write as _;
use std::path::Path;

use super::{LocalError, Outcome, Summary, TestResult};

/// Escapes text for HTML and XML (element content and quoted attributes).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LocalError + '_ {
    move |e| LocalError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// JUnit XML: one `<testsuite>` per YAML file.
pub fn junit_xml(summary: &Summary) -> String {
    let mut files: Vec<&Path> = Vec::new();
    for r in &summary.results {
        if !files.contains(&r.file.as_path()) {
            files.push(&r.file);
        }
    }
    let total_time: f64 = summary
        .results
        .iter()
        .map(|r| r.duration.as_secs_f64())
        .sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"dpxdt\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{total_time:.3}\">",
        summary.results.len(),
        summary.failed(),
        summary.errors()
    );
    for file in files {
        let results: Vec<&TestResult> = summary.results.iter().filter(|r| r.file == file).collect();
        let suite = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3}\">",
            escape(&suite),
            results.len(),
            count(|o| matches!(o, Outcome::Failed { .. })),
            count(|o| matches!(o, Outcome::Error { .. })),
            results
                .iter()
                .map(|r| r.duration.as_secs_f64())
                .sum::<f64>()
        );
        for r in results {
            let _ = write!(
                x,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                escape(&r.name),
                escape(suite.trim_end_matches(".yaml")),
                r.duration.as_secs_f64()
            );
            match &r.outcome {
                Outcome::Failed { report, triplet } => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\">Ref:  {}\nRun:  {}\nDiff: {}\nurl: {}</failure>\n    </testcase>",
                        escape(&format!(
                            "{:.7} distortion, {} pixels changed",
                            report.distortion, report.changed_pixels
                        )),
                        escape(&triplet.reference.display().to_string()),
                        escape(&triplet.run.display().to_string()),
                        escape(&triplet.diff.display().to_string()),
                        escape(&r.url),
                    );
                }
                Outcome::Error { message } => {
                    let _ = writeln!(
                        x,
                        ">\n      <error message=\"{}\">{}</error>\n    </testcase>",
                        escape(message),
                        escape(&r.log)
                    );
                }
                _ => x.push_str("/>\n"),
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// Writes `junit_xml` to `path`.
pub fn write_junit(summary: &Summary, path: &Path) -> Result<(), LocalError> {
    std::fs::write(path, junit_xml(summary)).map_err(io(path))
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em} .test{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.8em}
.failed{border-color:#c33} .error{border-color:#e90} .passed{border-color:#3a3}
.status{font-weight:bold;text-transform:uppercase;margin-right:.6em}
.failed .status{color:#c33} .passed .status{color:#3a3} .error .status{color:#e90}
.engine{font-size:.8em;border:1px solid #999;border-radius:3px;padding:0 .3em;color:#555}
.row{display:flex;gap:1em;flex-wrap:wrap;margin-top:.6em} figure{margin:0;max-width:32%}
figure img{max-width:100%;border:1px solid #ddd} figcaption{font-size:.9em;color:#555}
.slider{position:relative;display:inline-block;margin-top:.8em;max-width:100%}
.slider img{display:block;max-width:100%} .slider .top{position:absolute;top:0;left:0;overflow:hidden;height:100%;border-right:2px solid #c33}
.slider .top img{max-width:none} input[type=range]{display:block;width:100%;max-width:600px;margin:.4em 0}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}";

const SCRIPT: &str = "document.querySelectorAll('.slider').forEach(function(s){
var top=s.querySelector('.top'),inner=top.querySelector('img'),base=s.querySelector('.base'),r=s.nextElementSibling;
function upd(){inner.style.width=base.clientWidth+'px';top.style.width=r.value+'%';}
r.addEventListener('input',upd);base.addEventListener('load',upd);window.addEventListener('resize',upd);upd();});";

/// Writes `index.html` and the images of every test into `dir`.
pub fn write_html(summary: &Summary, dir: &Path) -> Result<(), LocalError> {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).map_err(io(&images))?;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>dpxdt report</title><style>{STYLE}</style></head><body>\
         <h1>dpxdt report</h1><p>{} test(s): {} failed, {} error(s), {} passed.</p>",
        summary.results.len(),
        summary.failed(),
        summary.errors(),
        summary.results.len() - summary.failed() - summary.errors()
    );
    let mut sorted: Vec<&TestResult> = summary.results.iter().collect();
    // Failures first, then errors, then the rest, each by name.
    sorted.sort_by_key(|r| {
        let rank = match r.outcome {
            Outcome::Failed { .. } => 0,
            Outcome::Error { .. } => 1,
            _ => 2,
        };
        (rank, r.name.clone())
    });
    for (i, r) in sorted.iter().enumerate() {
        let copy = |src: &Path, kind: &str| -> Result<String, LocalError> {
            let name = format!("t{i}-{kind}.png");
            std::fs::copy(src, images.join(&name)).map_err(io(src))?;
            Ok(format!("images/{name}"))
        };
        let (class, detail) = match &r.outcome {
            Outcome::Failed { report, .. } => (
                "failed",
                format!(
                    "{:.7} distortion, {} of {} pixels changed ({:.3}%)",
                    report.distortion,
                    report.changed_pixels,
                    report.total_pixels,
                    report.percentage
                ),
            ),
            Outcome::Passed { report, .. } => (
                "passed",
                format!("no diff ({:.7} distortion)", report.distortion),
            ),
            Outcome::Updated { .. } => ("passed", "reference updated".to_string()),
            Outcome::Error { message } => ("error", message.clone()),
        };
        let _ = write!(
            html,
            "<div class=\"test {class}\"><span class=\"status\">{class}</span><strong>{}</strong> \
             <span class=\"engine\">{}</span> <a href=\"{}\">{}</a><div>{}</div>",
            escape(&r.name),
            r.browser,
            escape(&r.url),
            escape(&r.url),
            escape(&detail)
        );
        let pair = match &r.outcome {
            Outcome::Failed { triplet, .. } => Some((
                copy(&triplet.reference, "ref")?,
                copy(&triplet.run, "run")?,
                Some(copy(&triplet.diff, "diff")?),
            )),
            Outcome::Passed { run, reference, .. } => {
                Some((copy(reference, "ref")?, copy(run, "run")?, None))
            }
            Outcome::Updated { path } => {
                let p = copy(path, "ref")?;
                Some((p.clone(), p, None))
            }
            Outcome::Error { .. } => None,
        };
        if let Some((reference, run, diff)) = pair {
            html.push_str("<div class=\"row\">");
            for (src, caption) in [
                (Some(&reference), "reference"),
                (Some(&run), "new"),
                (diff.as_ref(), "diff"),
            ] {
                if let Some(src) = src {
                    let _ = write!(
                        html,
                        "<figure><a href=\"{0}\"><img src=\"{0}\" alt=\"{1}\"></a><figcaption>{1}</figcaption></figure>",
                        escape(src),
                        caption
                    );
                }
            }
            let _ = write!(
                html,
                "</div><div class=\"slider\"><img class=\"base\" src=\"{}\" alt=\"new\">\
                 <div class=\"top\"><img src=\"{}\" alt=\"reference\"></div></div>\
                 <input type=\"range\" min=\"0\" max=\"100\" value=\"50\" aria-label=\"reference/new slider\">",
                escape(&run),
                escape(&reference)
            );
        }
        if !r.log.is_empty()
            && !matches!(r.outcome, Outcome::Passed { .. } | Outcome::Updated { .. })
        {
            let _ = write!(html, "<pre>{}</pre>", escape(&r.log));
        }
        html.push_str("</div>");
    }
    let _ = writeln!(html, "<script>{SCRIPT}</script></body></html>");
    let index = dir.join("index.html");
    std::fs::write(&index, html).map_err(io(&index))
}

#[cfg(test)]
mod tests {
    use super::super::Triplet;
    use super::*;
    use dpxdt_core::diff::DiffReport;
    use std::path::PathBuf;
    use std::time::Duration;

    fn result(name: &str, outcome: Outcome) -> TestResult {
        TestResult {
            file: PathBuf::from("/d/site.yaml"),
            name: name.into(),
            url: "http://x/?a=1&b=<2>".into(),
            browser: dpxdt_core::config::Engine::Firefox,
            outcome,
            duration: Duration::from_millis(1500),
            log: "log <b>".into(),
        }
    }

    fn report() -> DiffReport {
        DiffReport {
            width: 2,
            height: 2,
            reference_width: 2,
            reference_height: 2,
            distortion: 0.25,
            changed_pixels: 1,
            total_pixels: 4,
            percentage: 25.0,
            regions: vec![],
            shifts: vec![],
            aligned_distortion: 0.25,
            unaligned_changed_pixels: 1,
        }
    }

    #[test]
    fn junit_counts_and_escapes() {
        let summary = Summary {
            results: vec![
                result(
                    "a<&>\"",
                    Outcome::Failed {
                        report: report(),
                        triplet: Triplet {
                            reference: "/o/r.png".into(),
                            run: "/o/s.png".into(),
                            diff: "/o/d.png".into(),
                        },
                    },
                ),
                result(
                    "b",
                    Outcome::Error {
                        message: "boom <x>".into(),
                    },
                ),
            ],
            output_dir: None,
        };
        let x = junit_xml(&summary);
        assert!(x.contains("tests=\"2\" failures=\"1\" errors=\"1\""), "{x}");
        assert!(x.contains("name=\"a&lt;&amp;&gt;&quot;\""), "{x}");
        assert!(x.contains("message=\"boom &lt;x&gt;\""), "{x}");
        assert!(x.contains("0.2500000 distortion"), "{x}");
        assert!(x.contains("Diff: /o/d.png"), "{x}");
        assert!(!x.contains("<b>"), "{x}");
    }

    #[test]
    fn html_report_escapes_and_copies_images() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("x.png");
        std::fs::write(&png, b"png").unwrap();
        let summary = Summary {
            results: vec![
                result(
                    "<script>alert(1)</script>",
                    Outcome::Failed {
                        report: report(),
                        triplet: Triplet {
                            reference: png.clone(),
                            run: png.clone(),
                            diff: png.clone(),
                        },
                    },
                ),
                result(
                    "err",
                    Outcome::Error {
                        message: "<img onerror=x>".into(),
                    },
                ),
            ],
            output_dir: None,
        };
        let out = dir.path().join("report");
        write_html(&summary, &out).unwrap();
        let html = std::fs::read_to_string(out.join("index.html")).unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;img onerror=x&gt;"));
        assert!(html.contains("images/t0-diff.png"));
        assert!(out.join("images/t0-ref.png").exists());
        assert!(html.contains("type=\"range\""));
        assert!(
            html.contains("<span class=\"engine\">firefox</span>"),
            "each test names its engine"
        );
    }
}
