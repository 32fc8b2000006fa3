//! Criterion benches of the diff pipeline, stage by stage: PNG decode, the
//! fast diff kernel against the plain reference kernel, diff-image render
//! and encode, the whole in-process pipeline (`diff_png_bytes`), and what
//! aligning the rows costs on a long page with one inserted band.
//!
//! Inputs are the screenshot pairs of `benches/make_pairs.sh` (in
//! `benches/target-data/pairs`, or `DPXDT_PAIRS_DIR`) when they are there;
//! otherwise synthetic page-like images, so the benches always build and run.
//! `DPXDT_BENCH_PAIRS=article,dashboard` picks pairs (default: all found).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use dpxdt_core::diff::{
    DiffOptions, Image, decode_png, diff_aligned, diff_images, diff_png_bytes, encode_diff_png,
    reference_diff, render_diff_image,
};

/// One benchmark input: a reference and two candidates, as PNG bytes and
/// decoded.
struct Pair {
    name: String,
    ref_png: Vec<u8>,
    changed_png: Vec<u8>,
    reference: Image,
    changed: Image,
    same: Image,
}

impl Pair {
    fn pixels(&self) -> u64 {
        u64::from(self.reference.width()) * u64::from(self.reference.height())
    }

    fn is_large(&self) -> bool {
        self.pixels() > 20_000_000
    }
}

fn decode(bytes: &[u8], what: &str) -> Image {
    decode_png(bytes, what, u64::MAX).unwrap_or_else(|e| panic!("bench input {what}: {e}"))
}

/// The rendered pairs, if `make_pairs.sh` has been run.
fn screenshot_pairs() -> Vec<Pair> {
    let dir = std::env::var_os("DPXDT_PAIRS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target-data/pairs"),
        PathBuf::from,
    );
    let wanted = std::env::var("DPXDT_BENCH_PAIRS").ok();
    let mut pairs = Vec::new();
    for name in ["dashboard", "article", "long"] {
        if wanted
            .as_deref()
            .is_some_and(|w| !w.split(',').any(|n| n.trim() == name))
        {
            continue;
        }
        let read = |v: &str| std::fs::read(dir.join(name).join(format!("{v}.png"))).ok();
        let (Some(ref_png), Some(changed_png), Some(same_png)) =
            (read("ref"), read("changed"), read("same"))
        else {
            continue;
        };
        pairs.push(Pair {
            name: name.to_owned(),
            reference: decode(&ref_png, "ref.png"),
            changed: decode(&changed_png, "changed.png"),
            same: decode(&same_png, "same.png"),
            ref_png,
            changed_png,
        });
    }
    pairs
}

/// A page-like synthetic image: white background, rows of dark "text"
/// strokes and a few coloured blocks, deterministic.
fn synthetic_page(width: u32, height: u32) -> Image {
    let mut data = vec![255u8; width as usize * height as usize * 4];
    let mut seed = 12345u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        seed >> 8
    };
    for y in 0..height {
        let line = y % 24;
        let row = &mut data[(y * width * 4) as usize..((y + 1) * width * 4) as usize];
        if (4..16).contains(&line) {
            for px in row.chunks_exact_mut(4) {
                if next() % 5 == 0 {
                    let v = (next() % 120) as u8;
                    px[..3].copy_from_slice(&[v, v, v.saturating_add(20)]);
                }
            }
        }
        if (y / 400) % 3 == 1 && line < 2 {
            for px in row.chunks_exact_mut(4).take(width as usize / 2) {
                px[..3].copy_from_slice(&[69, 123, 157]);
            }
        }
    }
    Image::from_rgba(width, height, data).expect("sized above")
}

fn encode_rgba_png(image: &Image) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width(), image.height());
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("in-memory png header");
    writer
        .write_image_data(image.as_rgba())
        .expect("in-memory png data");
    writer.finish().expect("in-memory png end");
    out
}

/// A stand-in for the screenshot pairs: a 1280x5000 page with one small
/// block changed.
fn synthetic_pairs() -> Vec<Pair> {
    let reference = synthetic_page(1280, 5000);
    let mut changed = reference.clone();
    for y in 2400..2418 {
        for x in 300..380 {
            changed.set_pixel(x, y, [200, 30, 30, 255]);
        }
    }
    vec![Pair {
        name: "synthetic".to_owned(),
        ref_png: encode_rgba_png(&reference),
        changed_png: encode_rgba_png(&changed),
        same: reference.clone(),
        reference,
        changed,
    }]
}

fn pairs() -> Vec<Pair> {
    let found = screenshot_pairs();
    if found.is_empty() {
        eprintln!(
            "benches: no pairs in benches/target-data/pairs (run benches/make_pairs.sh); using synthetic images"
        );
        synthetic_pairs()
    } else {
        found
    }
}

/// Fewer, shorter samples for the 80-megapixel pair so a full run stays in
/// minutes on two cores.
fn tune(group: &mut BenchmarkGroup<'_, WallTime>, pair: &Pair) {
    group.throughput(Throughput::Elements(pair.pixels()));
    if pair.is_large() {
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(8));
    } else {
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(4));
    }
    group.warm_up_time(Duration::from_secs(1));
}

fn benches(c: &mut Criterion) {
    let pairs = pairs();
    let opts = DiffOptions::default();

    for pair in &pairs {
        let mut group = c.benchmark_group(format!("decode/{}", pair.name));
        tune(&mut group, pair);
        group.bench_function("ref.png", |b| {
            b.iter(|| decode_png(black_box(&pair.ref_png), "ref", u64::MAX))
        });
        group.finish();

        let mut group = c.benchmark_group(format!("kernel/{}", pair.name));
        tune(&mut group, pair);
        for (variant, new) in [("changed", &pair.changed), ("same", &pair.same)] {
            group.bench_with_input(BenchmarkId::new("fast", variant), new, |b, new| {
                b.iter(|| diff_images(black_box(&pair.reference), black_box(new), &opts))
            });
            group.bench_with_input(BenchmarkId::new("reference", variant), new, |b, new| {
                b.iter(|| reference_diff(black_box(&pair.reference), black_box(new), &opts))
            });
        }
        let aa = DiffOptions {
            antialiasing: true,
            ..DiffOptions::default()
        };
        group.bench_function("fast-antialiasing/changed", |b| {
            b.iter(|| diff_images(black_box(&pair.reference), black_box(&pair.changed), &aa))
        });
        group.finish();

        let mut group = c.benchmark_group(format!("diff-image/{}", pair.name));
        tune(&mut group, pair);
        group.bench_function("render", |b| {
            b.iter(|| {
                render_diff_image(black_box(&pair.reference), black_box(&pair.changed), &opts)
            })
        });
        let image = render_diff_image(&pair.reference, &pair.changed, &opts);
        let mut out = Vec::with_capacity(1 << 20);
        group.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                encode_diff_png(black_box(&image), &mut out).expect("encode to memory");
                out.len()
            })
        });
        group.finish();

        let mut group = c.benchmark_group(format!("pipeline/{}", pair.name));
        tune(&mut group, pair);
        group.bench_function("diff_png_bytes/changed", |b| {
            b.iter(|| {
                diff_png_bytes(
                    black_box(&pair.ref_png),
                    black_box(&pair.changed_png),
                    &opts,
                )
            })
        });
        group.finish();
    }
}

/// A 1280x20000 page and the same page with a 40-row banner at y=520: the
/// report with alignment (one shift, nothing else changed) and without it
/// (everything below the banner changed), and an unchanged pair, where
/// alignment never runs.
fn align_benches(c: &mut Criterion) {
    let reference = synthetic_page(1280, 20_000);
    let stride = 1280 * 4;
    let mut data = reference.as_rgba()[..520 * stride].to_vec();
    data.extend(std::iter::repeat_n([20u8, 90, 200, 255], 1280 * 40).flatten());
    data.extend_from_slice(&reference.as_rgba()[520 * stride..]);
    let banner = Image::from_rgba(1280, 20_040, data).expect("sized above");
    let aligned = DiffOptions::default();
    let plain = DiffOptions {
        align: false,
        ..DiffOptions::default()
    };
    let report = diff_aligned(&reference, &banner, &aligned);
    assert_eq!(report.shifts.len(), 1, "{report:?}");
    assert_eq!(report.changed_pixels, 0, "{report:?}");

    let mut group = c.benchmark_group("align/1280x20000");
    group.throughput(Throughput::Elements(1280 * 20_040));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    group.warm_up_time(Duration::from_secs(1));
    group.bench_function("inserted-band/aligned", |b| {
        b.iter(|| diff_aligned(black_box(&reference), black_box(&banner), &aligned))
    });
    group.bench_function("inserted-band/not-aligned", |b| {
        b.iter(|| diff_aligned(black_box(&reference), black_box(&banner), &plain))
    });
    let same = reference.clone();
    group.bench_function("same/aligned", |b| {
        b.iter(|| diff_aligned(black_box(&reference), black_box(&same), &aligned))
    });
    group.finish();
}

criterion_group!(diff, benches, align_benches);
criterion_main!(diff);
