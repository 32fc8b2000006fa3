//! Diff goldens computed by hand, the size rule, ignore regions, regions,
//! bad input, and the fast kernel held to the reference kernel.

use super::*;

const BLACK: [u8; 4] = [0, 0, 0, 255];
const WHITE: [u8; 4] = [255, 255, 255, 255];

fn exact() -> DiffOptions {
    DiffOptions {
        threshold: 0.0,
        ..DiffOptions::default()
    }
}

fn both(reference: &Image, new: &Image, opts: &DiffOptions) -> DiffReport {
    let fast = diff_images(reference, new, opts);
    let slow = reference_diff(reference, new, opts);
    assert_eq!(fast.changed_pixels, slow.changed_pixels);
    assert_eq!(fast.regions, slow.regions);
    assert!((fast.distortion - slow.distortion).abs() < 1e-12);
    fast
}

fn encode(img: &Image) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, img.width(), img.height());
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(img.as_rgba()).unwrap();
    w.finish().unwrap();
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn one_white_pixel_in_four_black_is_half_distortion() {
    // Squared error: 3 channels × 1² = 3, over 3 channels × 4 pixels: 3/12 = 0.25; √ = 0.5.
    let reference = Image::filled(2, 2, BLACK);
    let mut new = reference.clone();
    new.set_pixel(1, 0, WHITE);
    let r = both(&reference, &new, &DiffOptions::default());
    assert!(close(r.distortion, 0.5), "{}", r.distortion);
    assert_eq!(r.changed_pixels, 1);
    assert_eq!(r.total_pixels, 4);
    assert!(close(r.percentage, 25.0));
    assert_eq!(
        r.regions,
        vec![Region {
            x1: 1,
            y1: 0,
            x2: 1,
            y2: 0
        }]
    );
    assert!(r.is_different());
}

#[test]
fn identical_images_have_no_distortion() {
    let a = Image::filled(33, 17, [12, 34, 56, 255]);
    let r = both(&a, &a.clone(), &exact());
    assert_eq!(r.distortion, 0.0);
    assert_eq!(r.changed_pixels, 0);
    assert!(r.regions.is_empty());
    assert!(!r.is_different());
}

#[test]
fn small_colour_change_counts_only_under_a_tight_threshold() {
    // (10,20,30) → (13,24,30): squared error 9 + 16 = 25 units of 1/255²,
    // over 3 channels: √(25 / 3) / 255 = 0.011320...
    // YIQ delta ≈ 5.87, below 35215 × 0.1² = 352 but above 35215 × 0.01² = 3.5.
    let reference = Image::filled(1, 1, [10, 20, 30, 255]);
    let new = Image::filled(1, 1, [13, 24, 30, 255]);
    let default = both(&reference, &new, &DiffOptions::default());
    assert!(close(default.distortion, (25.0f64 / 3.0).sqrt() / 255.0));
    assert_eq!(default.changed_pixels, 0);
    assert!(!default.is_different());
    let tight = DiffOptions {
        threshold: 0.01,
        ..DiffOptions::default()
    };
    assert_eq!(both(&reference, &new, &tight).changed_pixels, 1);
    assert_eq!(both(&reference, &new, &exact()).changed_pixels, 1);
}

#[test]
fn smaller_reference_is_padded_with_white() {
    // The padded row is white against black: 2 pixels × 3 over 3 × 4 = 0.5; √ = 0.7071.
    let reference = Image::filled(2, 1, BLACK);
    let new = Image::filled(2, 2, BLACK);
    let r = both(&reference, &new, &DiffOptions::default());
    assert!(close(r.distortion, 0.5f64.sqrt()));
    assert_eq!(r.changed_pixels, 2);
    assert_eq!((r.reference_width, r.reference_height), (2, 1));
    assert_eq!((r.width, r.height), (2, 2));
    assert!(r.size_changed());
}

#[test]
fn larger_reference_is_cropped_and_still_different() {
    let mut reference = Image::filled(3, 3, BLACK);
    reference.set_pixel(2, 2, WHITE); // outside the new canvas: cropped away
    let new = Image::filled(2, 2, BLACK);
    let r = both(&reference, &new, &exact());
    assert_eq!(r.distortion, 0.0);
    assert_eq!(r.changed_pixels, 0);
    assert!(r.size_changed());
    assert!(r.is_different(), "a size change is always a difference");
}

#[test]
fn ignore_regions_are_left_out_of_everything() {
    // Two changes, one ignored: 3 / (3 × 16) = 1/16; √ = 0.25.
    let reference = Image::filled(4, 4, WHITE);
    let mut new = reference.clone();
    new.set_pixel(1, 1, BLACK);
    new.set_pixel(3, 3, BLACK);
    let opts = DiffOptions {
        ignore: vec!["1:1-1:1".parse().unwrap()],
        ..DiffOptions::default()
    };
    let r = both(&reference, &new, &opts);
    assert_eq!(r.changed_pixels, 1);
    assert!(close(r.distortion, 0.25));
    assert_eq!(r.regions, vec!["3:3-3:3".parse().unwrap()]);
}

#[test]
fn nearby_changes_share_a_region_and_far_ones_do_not() {
    let reference = Image::filled(64, 64, WHITE);
    let mut new = reference.clone();
    for (x, y) in [(2, 2), (5, 6), (15, 20), (16, 20), (50, 60)] {
        new.set_pixel(x, y, BLACK);
    }
    let r = both(&reference, &new, &DiffOptions::default());
    let expected: Vec<Region> = ["2:2-16:20", "50:60-50:60"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(r.regions, expected);
}

#[test]
fn transparent_pixels_compare_by_what_shows() {
    // Both fully transparent: nothing shows, nothing differs.
    let a = Image::filled(1, 1, [255, 0, 0, 0]);
    let b = Image::filled(1, 1, [0, 0, 255, 0]);
    let r = both(&a, &b, &exact());
    assert_eq!((r.distortion, r.changed_pixels), (0.0, 0));
    // Half-transparent white against opaque white: premultiplied channels
    // differ by (255 - 128) / 255 each, so the RMSE is 127/255.
    let a = Image::filled(1, 1, [255, 255, 255, 128]);
    let b = Image::filled(1, 1, WHITE);
    let r = both(&a, &b, &exact());
    assert!(close(r.distortion, 127.0 / 255.0), "{}", r.distortion);
}

#[test]
fn antialiased_edge_pixels_are_not_counted_when_asked() {
    // A black square on white; the new image softens one edge pixel to grey,
    // as a different anti-aliasing of the same edge would.
    let mut reference = Image::filled(12, 12, WHITE);
    for y in 3..9 {
        for x in 3..9 {
            reference.set_pixel(x, y, BLACK);
        }
    }
    let mut new = reference.clone();
    new.set_pixel(8, 5, [128, 128, 128, 255]);
    let plain = both(&reference, &new, &DiffOptions::default());
    assert_eq!(plain.changed_pixels, 1);
    let aa = DiffOptions {
        antialiasing: true,
        ..DiffOptions::default()
    };
    let r = both(&reference, &new, &aa);
    assert_eq!(r.changed_pixels, 0);
    assert!(
        r.distortion > 0.0,
        "distortion still reports the raw change"
    );
    // A grey pixel in the middle of the white area is no edge: it counts.
    new.set_pixel(1, 10, [128, 128, 128, 255]);
    assert_eq!(both(&reference, &new, &aa).changed_pixels, 1);
}

/// xorshift64*: deterministic noise without a dependency.
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn noisy(noise: &mut Noise, w: u32, h: u32) -> Image {
    let mut img = Image::filled(w, h, WHITE);
    for y in 0..h {
        for x in 0..w {
            let v = (noise.below(4) * 85) as u8;
            let a = if noise.below(10) == 0 { 128 } else { 255 };
            img.set_pixel(x, y, [v, 255 - v, v / 2, a]);
        }
    }
    img
}

#[test]
fn fast_kernel_matches_reference_kernel_on_random_images() {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    for round in 0..24 {
        let (w, h) = (1 + noise.below(70) as u32, 1 + noise.below(70) as u32);
        let reference = noisy(&mut noise, w, h);
        let mut new = if round % 3 == 0 {
            // Another size: exercises padding and cropping.
            let (w2, h2) = (1 + noise.below(70) as u32, 1 + noise.below(70) as u32);
            noisy(&mut noise, w2, h2)
        } else {
            reference.clone()
        };
        let changes = noise.below(200);
        for _ in 0..changes {
            let (x, y) = (
                noise.below(new.width() as u64) as u32,
                noise.below(new.height() as u64) as u32,
            );
            let v = noise.below(256) as u8;
            new.set_pixel(x, y, [v, v, 255 - v, 255]);
        }
        let opts = DiffOptions {
            threshold: [0.0, 0.05, 0.1, 0.3][round % 4],
            antialiasing: round % 2 == 0,
            ignore: if round % 5 == 0 {
                vec!["3:3-20:9".parse().unwrap()]
            } else {
                vec![]
            },
            ..DiffOptions::default()
        };
        both(&reference, &new, &opts);
    }
}

#[test]
fn region_syntax_round_trips_and_refuses_nonsense() {
    let r: Region = "10:20-30:40".parse().unwrap();
    assert_eq!(
        r,
        Region {
            x1: 10,
            y1: 20,
            x2: 30,
            y2: 40
        }
    );
    assert_eq!(r.to_string(), "10:20-30:40");
    for bad in ["", "1:2", "1:2-3", "a:b-c:d", "5:5-1:1", "1:2-3:4-5:6"] {
        let err = bad.parse::<Region>().unwrap_err().to_string();
        assert!(err.contains("bad region"), "{bad}: {err}");
    }
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        "\"10:20-30:40\"".to_string()
    );
}

#[test]
fn threshold_outside_zero_to_one_is_refused() {
    let opts = DiffOptions {
        threshold: 1.5,
        ..DiffOptions::default()
    };
    let a = encode(&Image::filled(1, 1, WHITE));
    let err = diff_png_bytes(&a, &a, &opts).unwrap_err();
    assert!(err.to_string().contains("threshold"), "{err}");
}

#[test]
fn png_bytes_round_trip_with_diff_image() {
    let reference = Image::filled(5, 3, WHITE);
    let mut new = reference.clone();
    new.set_pixel(4, 2, BLACK);
    let out = diff_png_bytes(&encode(&reference), &encode(&new), &DiffOptions::default()).unwrap();
    assert_eq!(out.report.changed_pixels, 1);
    let diff = decode_png(&out.diff_png.unwrap(), "diff", DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!((diff.width(), diff.height()), (5, 3));
    assert_eq!(diff.pixel(4, 2), [255, 0, 0, 255], "changed pixel is red");
    assert_eq!(diff.pixel(0, 0), WHITE, "white stays white when faded");
    // No diff image when nothing differs.
    let same = diff_png_bytes(
        &encode(&reference),
        &encode(&reference),
        &DiffOptions::default(),
    )
    .unwrap();
    assert!(same.diff_png.is_none());
}

#[test]
fn faded_reference_keeps_dark_areas_visible_but_light() {
    let reference = Image::filled(2, 1, BLACK);
    let mut new = reference.clone();
    new.set_pixel(0, 0, WHITE);
    let image = render_diff_image(&reference, &new, &DiffOptions::default()).to_rgba();
    assert_eq!(image.pixel(0, 0), [255, 0, 0, 255]);
    // Black faded to a quarter of its contrast: 255 - 255/4 (rounded down to the ramp).
    assert_eq!(image.pixel(1, 0), [192, 192, 192, 255]);
    let mask = render_diff_image(
        &reference,
        &new,
        &DiffOptions {
            mask: true,
            ..DiffOptions::default()
        },
    )
    .to_rgba();
    assert_eq!(mask.pixel(0, 0), [255, 0, 0, 255]);
    assert_eq!(mask.pixel(1, 0)[3], 0, "unchanged pixels are transparent");
}

#[test]
fn grey_rgb_and_palette_pngs_decode_to_rgba() {
    for (color, samples) in [
        (png::ColorType::Grayscale, vec![7u8, 200]),
        (png::ColorType::GrayscaleAlpha, vec![7, 255, 200, 0]),
        (png::ColorType::Rgb, vec![1, 2, 3, 4, 5, 6]),
    ] {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, 2, 1);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&samples).unwrap();
        w.finish().unwrap();
        let img = decode_png(&out, "t", 100).unwrap();
        let expected: Vec<u8> = match color {
            png::ColorType::Grayscale => vec![7, 7, 7, 255, 200, 200, 200, 255],
            png::ColorType::GrayscaleAlpha => vec![7, 7, 7, 255, 200, 200, 200, 0],
            _ => vec![1, 2, 3, 255, 4, 5, 6, 255],
        };
        assert_eq!(img.as_rgba(), &expected[..], "{color:?}");
    }
}

/// CRC-32 of the PNG chunk type and data, to forge valid headers.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG signature plus an IHDR claiming `w`×`h` RGBA, with a valid CRC, and nothing else.
fn forged_header(w: u32, h: u32) -> Vec<u8> {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut out = PNG_SIGNATURE_FOR_TESTS.to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    out
}

const PNG_SIGNATURE_FOR_TESTS: [u8; 8] = [137, 80, 78, 71, 13, 10, 26, 10];

#[test]
fn bad_inputs_give_one_clear_error_each() {
    let good = encode(&Image::filled(4, 4, WHITE));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"GIF89a not a png".to_vec(), "new image: not a PNG image"),
        (
            good[..good.len() / 2].to_vec(),
            "new image: truncated or corrupt PNG",
        ),
        (forged_header(0, 10), "new image: image is empty (0x10)"),
        (
            forged_header(100_000, 100_000),
            "new image: image is 100000x100000 = 10000000000 pixels, more than the limit of 100000000",
        ),
    ];
    for (bytes, expected) in cases {
        let err = diff_png_bytes(&good, &bytes, &DiffOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(expected), "got `{err}`, want `{expected}`");
    }
    // A corrupted data byte (bad checksum) is caught too.
    let mut flipped = good.clone();
    let idat = flipped.windows(4).position(|w| w == b"IDAT").unwrap();
    flipped[idat + 6] ^= 0xFF;
    let err = decode_png(&flipped, "x.png", DEFAULT_MAX_PIXELS)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("x.png: truncated or corrupt PNG"), "{err}");
}

#[test]
fn files_missing_or_unwritable_are_named_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.png");
    let b = dir.path().join("b.png");
    std::fs::write(&a, encode(&Image::filled(3, 3, WHITE))).unwrap();
    std::fs::write(&b, encode(&Image::filled(3, 3, BLACK))).unwrap();
    let missing = dir.path().join("missing.png");
    let err = diff_files(&a, &missing, None, &DiffOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.png: cannot read"), "{err}");

    let nowhere = dir.path().join("no-such-dir").join("diff.png");
    let err = diff_files(&a, &b, Some(&nowhere), &DiffOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot write diff image"), "{err}");

    let out = dir.path().join("diff.png");
    let report = diff_files(&a, &b, Some(&out), &DiffOptions::default()).unwrap();
    assert_eq!(report.changed_pixels, 9);
    assert!(out.exists());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "no temp file left: {names:?}"
    );
}

// Alignment: bands inserted and removed are shifts, not changes.

/// A page `height` rows tall whose rows are all different and detailed
/// (text-like), except every 7th, which is blank page background.
fn page(width: u32, height: u32, seed: u32) -> Image {
    let mut data = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            let v = if y % 7 == 6 {
                255
            } else {
                let h = (x / 3).wrapping_mul(2_654_435_761) ^ (y + seed).wrapping_mul(40_503);
                (h >> 7) as u8
            };
            data.extend_from_slice(&[v, v / 2, 255 - v, 255]);
        }
    }
    Image::from_rgba(width, height, data).unwrap()
}

/// `image` with `band` inserted as rows at `y`.
fn with_rows(image: &Image, y: u32, band: &Image) -> Image {
    assert_eq!(image.width(), band.width());
    let stride = image.width() as usize * 4;
    let at = y as usize * stride;
    let mut data = image.as_rgba()[..at].to_vec();
    data.extend_from_slice(band.as_rgba());
    data.extend_from_slice(&image.as_rgba()[at..]);
    Image::from_rgba(image.width(), image.height() + band.height(), data).unwrap()
}

/// `image` without rows `y..y + height`.
fn without_rows(image: &Image, y: u32, height: u32) -> Image {
    let stride = image.width() as usize * 4;
    let (a, b) = (y as usize * stride, (y + height) as usize * stride);
    let mut data = image.as_rgba()[..a].to_vec();
    data.extend_from_slice(&image.as_rgba()[b..]);
    Image::from_rgba(image.width(), image.height() - height, data).unwrap()
}

fn shift(kind: ShiftKind, y: u32, height: u32) -> Shift {
    Shift { kind, y, height }
}

#[test]
fn an_inserted_band_is_one_shift_and_nothing_else_changed() {
    let reference = page(64, 400, 0);
    let banner = Image::filled(64, 40, [200, 30, 30, 255]);
    let new = with_rows(&reference, 100, &banner);
    let (report, image) = compare_images(&reference, &new, &exact());
    assert_eq!(report.shifts, [shift(ShiftKind::Inserted, 100, 40)]);
    assert_eq!(report.changed_pixels, 0, "{report:?}");
    assert!(report.regions.is_empty());
    assert_eq!(report.aligned_distortion, 0.0);
    assert!(report.unaligned_changed_pixels > 64 * 200, "{report:?}");
    assert!(report.distortion > 0.0);
    // The original rule still fails it; only --pass-on-shift lets it pass.
    assert!(report.is_different());
    assert!(!report.changed_beyond_shifts());
    // The band is green in the diff image, the rest the faded page.
    let rgba = image.expect("a diff image").to_rgba();
    let [r, g, b, _] = rgba.pixel(10, 120);
    assert!(
        g > r + 40 && g > b + 40,
        "the band is green: {:?}",
        [r, g, b]
    );
    let [r, g, b, _] = rgba.pixel(10, 300);
    assert!(
        r == g && g == b,
        "the rest is the faded grey page: {:?}",
        [r, g, b]
    );
    // Without alignment everything below the band is a change.
    let plain = compare_images(
        &reference,
        &new,
        &DiffOptions {
            align: false,
            ..exact()
        },
    )
    .0;
    assert!(plain.shifts.is_empty());
    assert_eq!(plain.changed_pixels, report.unaligned_changed_pixels);
}

#[test]
fn a_removed_band_is_one_shift_with_a_line_where_it_was() {
    let reference = page(64, 400, 1);
    let new = without_rows(&reference, 250, 30);
    let (report, image) = compare_images(&reference, &new, &exact());
    assert_eq!(report.shifts, [shift(ShiftKind::Removed, 250, 30)]);
    assert_eq!(report.changed_pixels, 0, "{report:?}");
    let rgba = image.expect("a diff image").to_rgba();
    assert_eq!(rgba.pixel(0, 250), [150, 40, 200, 255]);
    assert_ne!(rgba.pixel(0, 240), [150, 40, 200, 255]);
    // Above the line, the label "-30": the minus sign's bar, then a 3.
    assert_eq!(rgba.pixel(5, 242), [150, 40, 200, 255]);
    assert_ne!(rgba.pixel(5, 240), [150, 40, 200, 255]);
    assert_eq!(rgba.pixel(12, 238), [150, 40, 200, 255]);
}

#[test]
fn two_shifts_and_a_colour_change_only_the_change_remains() {
    let reference = page(64, 600, 2);
    let notice = page(64, 25, 9000);
    let mut new = with_rows(&reference, 50, &notice);
    new = without_rows(&new, 400, 60);
    // A colour change below both shifts: rows 500..505 of the new image.
    for y in 500..505 {
        for x in 10..20 {
            new.set_pixel(x, y, [0, 255, 0, 255]);
        }
    }
    let (report, _) = compare_images(&reference, &new, &exact());
    assert_eq!(
        report.shifts,
        [
            shift(ShiftKind::Inserted, 50, 25),
            shift(ShiftKind::Removed, 375, 60)
        ],
        "{report:?}"
    );
    assert_eq!(report.changed_pixels, 50, "{report:?}");
    assert_eq!(
        report.regions,
        [Region {
            x1: 10,
            y1: 500,
            x2: 19,
            y2: 504
        }]
    );
    assert!(report.changed_beyond_shifts());
}

#[test]
fn rows_that_are_all_alike_are_not_aligned_falsely() {
    // A flat page and the same page with a line of text: the text is a
    // change, not a band inserted into blank space.
    let reference = Image::filled(32, 100, WHITE);
    let mut new = reference.clone();
    for x in 0..32 {
        new.set_pixel(x, 50, BLACK);
    }
    let (report, _) = compare_images(&reference, &new, &exact());
    assert!(report.shifts.is_empty(), "{report:?}");
    assert_eq!(report.changed_pixels, 32);
    // Two flat pages of different colours: every pixel changed, no shift.
    let grey = Image::filled(32, 100, [128, 128, 128, 255]);
    let (report, _) = compare_images(&reference, &grey, &exact());
    assert!(report.shifts.is_empty());
    assert_eq!(report.changed_pixels, 3200);
}

#[test]
fn different_widths_are_not_aligned_and_are_reported_as_before() {
    let reference = page(64, 200, 3);
    let new = page(60, 240, 3);
    let (report, _) = compare_images(&reference, &new, &exact());
    let plain = diff_images(&reference, &new, &exact());
    assert!(report.shifts.is_empty());
    assert_eq!(report.changed_pixels, plain.changed_pixels);
    assert_eq!(report.regions, plain.regions);
    assert!(report.size_changed() && report.changed_beyond_shifts());
}

#[test]
fn identical_and_merely_changed_pairs_are_reported_as_without_alignment() {
    let reference = page(64, 300, 4);
    let (same, image) = compare_images(&reference, &reference.clone(), &exact());
    assert!(!same.is_different() && image.is_none());
    assert_eq!(same, diff_images(&reference, &reference, &exact()));
    let mut changed = reference.clone();
    changed.set_pixel(5, 5, BLACK);
    let (report, _) = compare_images(&reference, &changed, &exact());
    assert_eq!(report, diff_images(&reference, &changed, &exact()));
}

#[test]
fn the_aligned_diff_run_by_run_matches_a_diff_against_the_moved_reference() {
    let reference = page(64, 600, 5);
    let mut new = with_rows(&reference, 80, &page(64, 30, 7000));
    new = without_rows(&new, 300, 20);
    for y in 200..230 {
        for x in 0..64 {
            new.set_pixel(x, y, [(x * 4) as u8, 0, 0, 255]);
        }
    }
    let opts = DiffOptions {
        ignore: vec![Region {
            x1: 0,
            y1: 210,
            x2: 31,
            y2: 215,
        }],
        ..exact()
    };
    let (_, common) = kernel::diff_and_common_rows(&reference, &new, &opts, true);
    let alignment = align::align(&reference, &new, common.expect("same width")).expect("aligned");
    let by_runs = alignment.diff(&reference, &new, &opts);
    let whole = diff_images(&alignment.reference_image(&reference, &new), &new, &opts);
    assert_eq!(by_runs.changed_pixels, whole.changed_pixels);
    assert_eq!(by_runs.regions, whole.regions);
    assert!(close(by_runs.distortion, whole.distortion));
    assert!(by_runs.changed_pixels > 0 && by_runs.changed_pixels < 64 * 30);
}

#[test]
fn the_kernel_finds_the_rows_shared_at_the_top_and_bottom() {
    let naive = |old: &Image, new: &Image| {
        let shared = old.height().min(new.height());
        let top = (0..shared)
            .take_while(|&y| old.row(y) == new.row(y))
            .count() as u32;
        let bottom = (0..shared - top)
            .take_while(|&k| old.row(old.height() - 1 - k) == new.row(new.height() - 1 - k))
            .count() as u32;
        kernel::CommonRows { top, bottom }
    };
    let reference = page(48, 300, 6);
    let cases = [
        with_rows(&reference, 40, &page(48, 17, 500)),
        without_rows(&reference, 100, 33),
        without_rows(&reference, 280, 20),
        with_rows(&reference, 0, &page(48, 5, 900)),
        reference.clone(),
        page(48, 300, 7),
    ];
    for new in &cases {
        let (_, found) = kernel::diff_and_common_rows(&reference, new, &exact(), true);
        assert_eq!(found, Some(naive(&reference, new)), "{}", new.height());
    }
}

/// A 1-pixel-wide image whose rows hold the given values.
fn column(values: &[u32]) -> Image {
    let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Image::from_rgba(1, values.len() as u32, data).unwrap()
}

#[test]
fn alignment_is_bounded_on_hostile_and_huge_inputs() {
    // Unique rows in a scrambled order (the anchor search's worst kind of
    // input): the work budget keeps it linear, and every row it does
    // match is really equal.
    let n = 20_000u32;
    let old: Vec<u32> = (0..n).map(|i| i | 0xff00_0000).collect();
    let mut new = old.clone();
    let mut seed = 7u64;
    for i in (1..new.len()).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        new.swap(i, (seed >> 33) as usize % (i + 1));
    }
    new.insert(100, 0xff12_3456);
    let (old, new) = (column(&old), column(&new));
    let (_, common) = kernel::diff_and_common_rows(&old, &new, &exact(), true);
    let alignment = align::align(&old, &new, common.unwrap()).expect("aligned");
    for (y, source) in alignment.rows.iter().enumerate() {
        if let align::Source::Same(r) = *source {
            assert_eq!(old.row(r), new.row(y as u32), "row {y}");
        }
    }
    // Taller than the alignment limit: compared as it is.
    let tall = column(&vec![0xff00_00ff; align::MAX_ROWS as usize + 1]);
    let taller = column(&vec![0xff00_00ff; align::MAX_ROWS as usize + 2]);
    let (report, _) = compare_images(&tall, &taller, &exact());
    assert!(report.shifts.is_empty() && report.size_changed());
}

#[test]
fn the_same_bytes_give_the_report_of_a_decoded_comparison_without_decoding() {
    let mut noise = Noise(7);
    let img = noisy(&mut noise, 37, 23);
    let bytes = encode(&img);
    let opts = DiffOptions::default();
    let fast = diff_png_bytes(&bytes, &bytes, &opts).unwrap();
    let decoded = decode_png(&bytes, "x", u64::MAX).unwrap();
    let (slow, image) = compare_images(&decoded, &decoded, &opts);
    assert_eq!(fast.report, slow);
    assert!(fast.diff_png.is_none() && image.is_none());
    // diff_files takes the same path for two files with the same bytes.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
    std::fs::write(&a, &bytes).unwrap();
    std::fs::write(&b, &bytes).unwrap();
    assert_eq!(diff_files(&a, &b, None, &opts).unwrap(), slow);
}

#[test]
fn the_same_bytes_must_still_be_a_whole_png() {
    let bytes = encode(&Image::filled(8, 8, WHITE));
    let opts = DiffOptions::default();
    let err = |b: &[u8]| diff_png_bytes(b, b, &opts).unwrap_err().to_string();
    // A flipped byte inside the image data: its chunk's CRC no longer holds.
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    let mut flipped = bytes.clone();
    flipped[idat + 6] ^= 0x40;
    assert!(
        err(&flipped).contains("CRC error in chunk IDAT"),
        "{}",
        err(&flipped)
    );
    let cut = &bytes[..bytes.len() - 2];
    assert!(
        err(cut).contains("unexpected end of file in chunk IEND"),
        "{}",
        err(cut)
    );
    assert!(
        err(b"GIF89a....").contains("not a PNG"),
        "{}",
        err(b"GIF89a....")
    );
    // Bytes after IEND are ignored, as when the images are decoded.
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"junk");
    assert!(diff_png_bytes(&trailing, &trailing, &opts).is_ok());
    let mut other = trailing.clone();
    other.extend_from_slice(b"!");
    assert!(diff_png_bytes(&trailing, &other, &opts).is_ok());
    let small = DiffOptions {
        max_pixels: 63,
        ..DiffOptions::default()
    };
    let too_large = diff_png_bytes(&bytes, &bytes, &small)
        .unwrap_err()
        .to_string();
    assert!(too_large.contains("8x8"), "{too_large}");
}
