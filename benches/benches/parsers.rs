//! Criterion benches of every parser of untrusted input, each at four input
//! sizes a factor of four apart. Every group reports throughput: a parser
//! that is linear in its input keeps about the same bytes (or pixels) per
//! second at every size, and a quadratic one would lose a factor of four
//! per step. `benches/README.md` has the table.
//!
//! - API forms, url-encoded and multipart, decoded into `report_run`'s
//!   request, with a field that fails to parse (the case that used to be
//!   quadratic), and bodies of far more pairs than allowed (refused after
//!   the hundredth, whatever the size);
//! - capture configs (JSON), local-mode YAML suites, PNGs (header and
//!   pixels), crawled HTML (links) and sitemaps.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dpxdt_core::api::ReportRunRequest;
use dpxdt_server::http::params::{decode, read_params};
use warp::http::{HeaderMap, HeaderValue};
use warp::hyper::body::Bytes;

/// Input sizes in bytes: 16 KiB to 1 MiB.
const SIZES: [usize; 4] = [16 << 10, 64 << 10, 256 << 10, 1 << 20];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn body(bytes: Vec<u8>) -> dpxdt_server::http::BodyStream {
    Box::pin(futures_util::stream::iter([Ok::<_, std::io::Error>(
        Bytes::from(bytes),
    )]))
}

/// `report_run` fields plus padding fields, `size` bytes in all, with an
/// unparsable `distortion` last: decoding reads everything, then refuses.
fn form_pairs(size: usize) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = [
        ("build_id", "1"),
        ("release_name", "r"),
        ("release_number", "1"),
        ("run_name", "/"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let fields = 90;
    for i in 0..fields {
        pairs.push((format!("pad{i}"), "x".repeat(size / fields)));
    }
    pairs.push(("distortion".into(), "lots".into()));
    pairs
}

fn api_forms(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("api_form");
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    for size in SIZES {
        let pairs = form_pairs(size);
        let urlencoded = serde_urlencoded::to_string(&pairs).expect("form");
        let mut multipart = Vec::new();
        for (k, v) in &pairs {
            multipart.extend_from_slice(
                format!(
                    "--BOUNDARY\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                )
                .as_bytes(),
            );
        }
        multipart.extend_from_slice(b"--BOUNDARY--\r\n");
        // Ten times the pairs allowed: refused at the 101st.
        let flood = "a=1&".repeat(size / 4);
        let cases = [
            (
                "urlencoded",
                "application/x-www-form-urlencoded",
                urlencoded.into_bytes(),
            ),
            (
                "multipart",
                "multipart/form-data; boundary=BOUNDARY",
                multipart,
            ),
            (
                "flood",
                "application/x-www-form-urlencoded",
                flood.into_bytes(),
            ),
        ];
        for (name, content_type, bytes) in cases {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_static(content_type));
            group.throughput(Throughput::Bytes(bytes.len() as u64));
            group.bench_with_input(BenchmarkId::new(name, size), &bytes, |b, bytes| {
                b.iter(|| {
                    rt.block_on(async {
                        let decoded = match read_params(&headers, "", body(bytes.clone())).await {
                            Ok(pairs) => decode::<ReportRunRequest>(&pairs).is_ok(),
                            Err(_) => false,
                        };
                        assert!(!decoded, "every case is refused");
                        black_box(decoded)
                    })
                });
            });
        }
    }
    group.finish();
}

fn configs_and_suites(c: &mut Criterion) {
    let mut group = c.benchmark_group("config");
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    for size in SIZES {
        let selectors: Vec<String> = (0..size / 64).map(|i| format!(".ad-{i:058}")).collect();
        let json = serde_json::json!({
            "viewportSize": {"width": 1280, "height": 800},
            "injectCss": "x".repeat(size / 2),
            "hideSelectors": selectors,
        })
        .to_string();
        if let Err(e) = dpxdt_core::CaptureConfig::from_json(&json) {
            panic!("bench config: {e}");
        }
        group.throughput(Throughput::Bytes(json.len() as u64));
        group.bench_with_input(BenchmarkId::new("json", size), &json, |b, json| {
            b.iter(|| black_box(dpxdt_core::CaptureConfig::from_json(json).is_ok()));
        });
        let mut yaml = String::from("setup: echo ready\ntests:\n");
        let mut i = 0;
        while yaml.len() < size {
            yaml.push_str(&format!(
                "  - name: page-{i}\n    url: http://localhost:8000/page/{i}\n    config:\n      viewportSize: {{width: 800, height: 600}}\n"
            ));
            i += 1;
        }
        if let Err(e) = dpxdt_tools::local::parse_str(std::path::Path::new("bench.yaml"), &yaml) {
            panic!("bench suite: {e}");
        }
        group.throughput(Throughput::Bytes(yaml.len() as u64));
        group.bench_with_input(BenchmarkId::new("yaml", size), &yaml, |b, yaml| {
            b.iter(|| {
                black_box(
                    dpxdt_tools::local::parse_str(std::path::Path::new("bench.yaml"), yaml).is_ok(),
                )
            });
        });
    }
    group.finish();
}

fn pngs(c: &mut Criterion) {
    let mut group = c.benchmark_group("png");
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    for size in SIZES {
        // About `size` pixels, 256 wide, noisy rows so the file is not tiny.
        let (w, h) = (256u32, (size / 256) as u32);
        let data: Vec<u8> = (0..w * h * 4)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, w, h);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()
                .and_then(|mut wr| wr.write_image_data(&data))
                .expect("encode");
        }
        group.throughput(Throughput::Elements(u64::from(w * h)));
        group.bench_with_input(BenchmarkId::new("decode", size), &bytes, |b, bytes| {
            b.iter(|| black_box(dpxdt_core::diff::decode_png(bytes, "bench", u64::MAX).is_ok()));
        });
        // A damaged file: the same bytes with the data cut in half.
        let cut = &bytes[..bytes.len() / 2];
        group.throughput(Throughput::Bytes(cut.len() as u64));
        group.bench_with_input(BenchmarkId::new("truncated", size), &cut, |b, cut| {
            b.iter(|| black_box(dpxdt_core::diff::decode_png(cut, "bench", u64::MAX).is_err()));
        });
    }
    group.finish();
}

fn crawled_pages(c: &mut Criterion) {
    let mut group = c.benchmark_group("crawl");
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    let base = url::Url::parse("http://localhost:8000/dir/page.html").expect("url");
    for size in SIZES {
        let mut html = String::from("<!doctype html><html><body>");
        let mut i = 0;
        while html.len() < size {
            html.push_str(&format!(
                "<p>text <a href=\"../p/{i}?q={i}#frag\">link {i}</a> <img src=\"/i/{i}.png\"></p>"
            ));
            i += 1;
        }
        html.push_str("</body></html>");
        group.throughput(Throughput::Bytes(html.len() as u64));
        group.bench_with_input(BenchmarkId::new("html_links", size), &html, |b, html| {
            b.iter(|| black_box(dpxdt_tools::crawl::extract_links(&base, html).len()));
        });
        let mut xml = String::from(
            r#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">"#,
        );
        let mut i = 0;
        while xml.len() < size {
            xml.push_str(&format!(
                "<url><loc>http://localhost:8000/page/{i}</loc></url>"
            ));
            i += 1;
        }
        xml.push_str("</urlset>");
        assert!(
            dpxdt_tools::crawl::parse_sitemap(&xml).is_ok(),
            "bench sitemap"
        );
        group.throughput(Throughput::Bytes(xml.len() as u64));
        group.bench_with_input(BenchmarkId::new("sitemap", size), &xml, |b, xml| {
            b.iter(|| black_box(dpxdt_tools::crawl::parse_sitemap(xml).is_ok()));
        });
    }
    group.finish();
}

criterion_group!(benches, api_forms, configs_and_suites, pngs, crawled_pages);
criterion_main!(benches);
