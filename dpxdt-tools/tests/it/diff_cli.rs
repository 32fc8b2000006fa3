//! `dpxdt diff` through the real binary: verdicts and exit codes, JSON,
//! flags, every bad input, and agreement with ImageMagick's RMSE;
//! `dpxdt accept` after failing screenshot checks (with modes too), and
//! `dpxdt devices`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DPXDT: &str = env!("CARGO_BIN_EXE_dpxdt");

/// Writes an RGBA PNG where `paint(x, y)` gives each pixel.
fn write_png(path: &Path, w: u32, h: u32, paint: impl Fn(u32, u32) -> [u8; 4]) {
    let mut data = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&paint(x, y));
        }
    }
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(&data).unwrap();
    writer.finish().unwrap();
}

/// A deterministic, busy picture (gradients and stripes), like a page.
fn page(x: u32, y: u32) -> [u8; 4] {
    let v = ((x * 7 + y * 3) % 256) as u8;
    if (y / 10).is_multiple_of(3) {
        [v, 255 - v, (x % 256) as u8, 255]
    } else {
        [250, 250, 250, 255]
    }
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        write_png(&f.path("ref.png"), 120, 80, page);
        write_png(&f.path("same.png"), 120, 80, page);
        write_png(&f.path("changed.png"), 120, 80, |x, y| {
            if (30..40).contains(&x) && (20..25).contains(&y) {
                [255, 0, 0, 255]
            } else {
                page(x, y)
            }
        });
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(DPXDT)
            .arg("diff")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }
}

/// `dpxdt ARGS...` (any subcommand).
fn dpxdt(args: &[&str]) -> Output {
    Command::new(DPXDT).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn identical_images_exit_zero_and_write_nothing() {
    let f = Fixture::new();
    let out = f.run(&["ref.png", "same.png", "-o", "diff.png"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("result: identical"),
        "{}",
        stdout(&out)
    );
    assert!(!f.path("diff.png").exists());
}

#[test]
fn changed_image_exits_one_with_numbers_regions_and_diff_image() {
    let f = Fixture::new();
    let out = f.run(&["ref.png", "changed.png", "-o", "diff.png"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("result: different"), "{text}");
    assert!(
        text.contains("changed pixels: 50 of 9600 (0.5208%)"),
        "{text}"
    );
    assert!(text.contains("30:20-39:24 (10x5)"), "{text}");
    let diff = std::fs::read(f.path("diff.png")).unwrap();
    assert!(diff.starts_with(&[137, 80, 78, 71]), "a PNG was written");
}

#[test]
fn json_is_one_object_with_the_report() {
    let f = Fixture::new();
    let out = f.run(&["ref.png", "changed.png", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["different"], true);
    assert_eq!(v["changed_pixels"], 50);
    assert_eq!(v["total_pixels"], 9600);
    assert_eq!(v["regions"][0], "30:20-39:24");
    assert_eq!(v["size_changed"], false);
    assert!(v["distortion"].as_f64().unwrap() > 0.0);
    assert!(v["diff_image"].is_null());
}

#[test]
fn ignore_and_threshold_flags_can_make_a_pair_pass() {
    let f = Fixture::new();
    let ignored = f.run(&["ref.png", "changed.png", "--ignore", "0:0-1:1,25:15-45:30"]);
    assert_eq!(ignored.status.code(), Some(0), "{}", stdout(&ignored));
    // Red over the page is far past any threshold below 1 ...
    let strict = f.run(&["ref.png", "changed.png", "--threshold", "0.5"]);
    assert_eq!(strict.status.code(), Some(1));
    // ... but a one-step colour change is within the default threshold.
    write_png(&f.path("tint.png"), 120, 80, |x, y| {
        let mut p = page(x, y);
        p[2] = p[2].saturating_sub(1);
        p
    });
    let tint = f.run(&["ref.png", "tint.png"]);
    assert_eq!(tint.status.code(), Some(0), "{}", stdout(&tint));
    assert!(stdout(&tint).contains("same within threshold"));
    let exact = f.run(&["ref.png", "tint.png", "--threshold", "0"]);
    assert_eq!(exact.status.code(), Some(1));
}

#[test]
fn size_change_is_reported_and_different() {
    let f = Fixture::new();
    write_png(&f.path("taller.png"), 120, 90, page);
    let out = f.run(&["ref.png", "taller.png"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("size: 120x90 (reference 120x80)"),
        "{}",
        stdout(&out)
    );
}

/// A 1280x5000 page and the same page with a 40-row banner inserted at
/// y=500: one shift and no other change; it fails by the original rule,
/// passes with `--pass-on-shift`, and without alignment everything below
/// the banner is a change. The diff image shades the banner green.
#[test]
fn an_inserted_banner_is_one_shift_in_json_and_passes_only_on_request() {
    let f = Fixture::new();
    write_png(&f.path("long.png"), 1280, 5000, page);
    let banner = |x: u32, y: u32| {
        if y < 500 {
            page(x, y)
        } else if y < 540 {
            [20, 90, 200, 255]
        } else {
            page(x, y - 40)
        }
    };
    write_png(&f.path("banner.png"), 1280, 5040, banner);
    let out = f.run(&["long.png", "banner.png", "--json", "-o", "diff.png"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        v["shifts"],
        serde_json::json!([{"kind": "inserted", "y": 500, "height": 40}])
    );
    assert_eq!(v["changed_pixels"], 0, "{v}");
    assert_eq!(v["aligned_distortion"], 0.0, "{v}");
    assert!(
        v["unaligned_changed_pixels"].as_u64().unwrap() > 1280 * 1000,
        "{v}"
    );
    let diff = dpxdt_core::diff::load_png(&f.path("diff.png"), 1 << 30).unwrap();
    let [r, g, b, _] = diff.pixel(640, 520);
    assert!(
        g > r + 40 && g > b + 40,
        "the banner is green: {:?}",
        [r, g, b]
    );
    let [r, g, b, _] = diff.pixel(640, 2000);
    assert!(
        r == g && g == b,
        "below it, the faded page: {:?}",
        [r, g, b]
    );

    let pass = f.run(&["long.png", "banner.png", "--pass-on-shift"]);
    assert_eq!(pass.status.code(), Some(0), "{}", stdout(&pass));
    assert!(
        stdout(&pass).contains("result: only moved"),
        "{}",
        stdout(&pass)
    );
    assert!(
        stdout(&pass).contains("inserted 40 rows at y=500 (new)"),
        "{}",
        stdout(&pass)
    );
    let plain = f.run(&["long.png", "banner.png", "--no-align", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&plain)).unwrap();
    assert_eq!(v["shifts"], serde_json::json!([]));
    assert!(v["changed_pixels"].as_u64().unwrap() > 1280 * 1000, "{v}");
}

/// Runs a bad input and checks: exit 2, one line on stderr naming `names`
/// and saying `says`, nothing on stdout, no diff image left behind.
fn refused(f: &Fixture, args: &[&str], names: &str, says: &str) {
    let mut full = args.to_vec();
    full.extend(["-o", "diff.png"]);
    let out = f.run(&full);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(names) && err.contains(says), "{args:?}: {err}");
    assert!(stdout(&out).is_empty());
    assert!(!f.path("diff.png").exists(), "{args:?} left a diff image");
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn missing_file_is_named() {
    let f = Fixture::new();
    refused(&f, &["ref.png", "nope.png"], "nope.png", "cannot read");
    refused(&f, &["nope.png", "ref.png"], "nope.png", "cannot read");
}

#[test]
fn not_an_image_is_named() {
    let f = Fixture::new();
    std::fs::write(f.path("notes.png"), "just some text\n").unwrap();
    refused(
        &f,
        &["ref.png", "notes.png"],
        "notes.png",
        "not a PNG image",
    );
}

#[test]
fn truncated_and_corrupt_pngs_are_named() {
    let f = Fixture::new();
    let good = std::fs::read(f.path("changed.png")).unwrap();
    std::fs::write(f.path("cut.png"), &good[..good.len() / 2]).unwrap();
    refused(
        &f,
        &["ref.png", "cut.png"],
        "cut.png",
        "truncated or corrupt PNG",
    );
    let mut bad = good.clone();
    let idat = bad.windows(4).position(|w| w == b"IDAT").unwrap();
    for b in &mut bad[idat + 8..idat + 40] {
        *b ^= 0x5A;
    }
    std::fs::write(f.path("garbled.png"), &bad).unwrap();
    refused(
        &f,
        &["garbled.png", "ref.png"],
        "garbled.png",
        "truncated or corrupt PNG",
    );
}

/// A PNG signature and an IHDR chunk claiming `w`×`h` (valid CRC), nothing more.
fn forged_header(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & 0u32.wrapping_sub(crc & 1));
            }
        }
        !crc
    }
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut out = vec![137, 80, 78, 71, 13, 10, 26, 10];
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    out
}

#[test]
fn zero_sized_image_is_named() {
    let f = Fixture::new();
    std::fs::write(f.path("empty.png"), forged_header(0, 0)).unwrap();
    refused(&f, &["ref.png", "empty.png"], "empty.png", "image is empty");
}

#[test]
fn decompression_bomb_is_refused_before_decoding() {
    let f = Fixture::new();
    std::fs::write(f.path("bomb.png"), forged_header(50_000, 50_000)).unwrap();
    refused(
        &f,
        &["bomb.png", "ref.png"],
        "bomb.png",
        "more than the limit of 100000000",
    );
    // The limit is configurable.
    refused(
        &f,
        &["ref.png", "changed.png", "--max-pixels", "5000"],
        "ref.png",
        "more than the limit of 5000",
    );
}

#[test]
fn bad_flags_exit_two() {
    let f = Fixture::new();
    let out = f.run(&["ref.png", "changed.png", "--ignore", "1:2-3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad region `1:2-3`"),
        "{}",
        stderr(&out)
    );
    let out = f.run(&["ref.png", "changed.png", "--threshold", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("threshold must be between 0 and 1"));
}

/// The distortion is ImageMagick's `compare -metric RMSE` (the normalized
/// value in parentheses), on opaque, translucent and resized pairs.
#[test]
fn distortion_agrees_with_imagemagick_compare() {
    let f = Fixture::new();
    write_png(&f.path("glass.png"), 120, 80, |x, y| {
        let mut p = page(x, y);
        p[3] = ((x + y) % 256) as u8;
        p
    });
    // The size rule done by hand for ImageMagick: pad the reference with
    // white to the new size, as dpxdt does internally.
    write_png(&f.path("short.png"), 120, 60, page);
    write_png(&f.path("short-padded.png"), 120, 80, |x, y| {
        if y < 60 { page(x, y) } else { [255; 4] }
    });
    let pairs = [
        ("ref.png", "changed.png", "ref.png"),
        ("glass.png", "changed.png", "glass.png"),
        ("ref.png", "glass.png", "ref.png"),
        ("short.png", "changed.png", "short-padded.png"),
    ];
    for (reference, new, for_imagemagick) in pairs {
        let im = Command::new("compare")
            .args(["-metric", "RMSE", for_imagemagick, new, "null:"])
            .current_dir(f.dir.path())
            .output()
            .expect("ImageMagick `compare` (scripts/deps.sh --test installs it)");
        let text = String::from_utf8_lossy(&im.stderr);
        let im_value: f64 = text
            .split(['(', ')'])
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unexpected compare output: {text}"));
        let out = f.run(&[reference, new, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let ours = v["distortion"].as_f64().unwrap();
        assert!(
            (ours - im_value).abs() < 0.001,
            "{reference} vs {new}: dpxdt {ours}, ImageMagick {im_value}"
        );
    }
}

/// A failing screenshot check leaves `NAME.new.png`; `dpxdt accept` lists
/// it, refuses an unknown name without touching anything, and promotes it
/// so the next check passes.
#[test]
fn accept_promotes_what_a_failing_check_left_behind() {
    use dpxdt_core::check::{CheckError, CheckOutcome, Checker};
    let f = Fixture::new();
    let refs = f.path("refs");
    std::fs::create_dir(&refs).unwrap();
    let checker = Checker::new().dir(&refs).update(false);
    let changed = std::fs::read(f.path("changed.png")).unwrap();
    let err = checker.check_image("ui/home", &changed).unwrap_err();
    assert!(matches!(err, CheckError::MissingReference { .. }), "{err}");
    let dir = refs.to_str().unwrap();
    assert!(
        err.to_string()
            .contains(&format!("dpxdt accept {dir} ui/home")),
        "{err}"
    );

    let listed = dpxdt(&["accept", dir]);
    assert_eq!(listed.status.code(), Some(1), "{}", stderr(&listed));
    assert!(
        stdout(&listed).contains("pending ui/home"),
        "{}",
        stdout(&listed)
    );

    let unknown = dpxdt(&["accept", dir, "ui/nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("\"ui/nope\""),
        "{}",
        stderr(&unknown)
    );
    assert!(refs.join("ui/home.new.png").exists());

    let accepted = dpxdt(&["accept", dir, "--all"]);
    assert_eq!(accepted.status.code(), Some(0), "{}", stderr(&accepted));
    assert!(
        stdout(&accepted).contains("accepted ui/home (new reference"),
        "{}",
        stdout(&accepted)
    );
    assert!(matches!(
        checker.check_image("ui/home", &changed).unwrap(),
        CheckOutcome::Matched { .. }
    ));

    // A change now fails against the accepted reference, and accepting by
    // name replaces it and removes the diff image.
    let same = std::fs::read(f.path("same.png")).unwrap();
    assert!(checker.check_image("ui/home", &same).is_err());
    assert!(refs.join("ui/home.diff.png").exists());
    let by_name = dpxdt(&["accept", dir, "ui/home"]);
    assert_eq!(by_name.status.code(), Some(0), "{}", stderr(&by_name));
    assert!(stdout(&by_name).contains("replaced reference"));
    assert!(!refs.join("ui/home.diff.png").exists());
    let nothing = dpxdt(&["accept", dir]);
    assert_eq!(nothing.status.code(), Some(0));
    assert!(stdout(&nothing).contains("nothing to accept"));
}

/// The images a check with modes left (`NAME@MODE.new.png`) are accepted
/// one mode at a time by `NAME@MODE`, or all of a check's modes by `NAME`.
#[test]
fn accept_takes_one_mode_by_its_name_or_every_mode_by_the_check_name() {
    use dpxdt_core::check::Checker;
    let f = Fixture::new();
    let refs = f.path("refs");
    std::fs::create_dir(&refs).unwrap();
    let checker = Checker::new().dir(&refs).update(false);
    let changed = std::fs::read(f.path("changed.png")).unwrap();
    for name in [
        "ui/home@light",
        "ui/home@dark",
        "ui/home@phone",
        "about@dark",
    ] {
        let err = checker.check_image(name, &changed).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("{} {name}", refs.display())),
            "{err}"
        );
    }
    let dir = refs.to_str().unwrap();
    let one = dpxdt(&["accept", dir, "ui/home@dark"]);
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert_eq!(stdout(&one).lines().count(), 1, "{}", stdout(&one));
    assert!(refs.join("ui/home@dark.png").exists());
    assert!(refs.join("ui/home@light.new.png").exists());

    let rest = dpxdt(&["accept", dir, "ui/home"]);
    assert_eq!(rest.status.code(), Some(0), "{}", stderr(&rest));
    let out = stdout(&rest);
    assert!(
        out.contains("accepted ui/home@light") && out.contains("accepted ui/home@phone"),
        "{out}"
    );
    assert!(!out.contains("about"), "{out}");
    let left = dpxdt(&["accept", dir]);
    assert_eq!(
        stdout(&left).trim(),
        format!(
            "pending about@dark ({})",
            refs.join("about@dark.new.png").display()
        )
    );
}

#[test]
fn devices_lists_every_preset_and_exits_zero() {
    let out = dpxdt(&["devices"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().count(),
        dpxdt_core::config::DEVICES.len() + 1,
        "{text}"
    );
    let pixel = text.lines().find(|l| l.starts_with("Pixel 7 ")).unwrap();
    let cells: Vec<&str> = pixel.split_whitespace().collect();
    assert_eq!(cells, ["Pixel", "7", "412x915", "2.625", "yes"], "{text}");
}
