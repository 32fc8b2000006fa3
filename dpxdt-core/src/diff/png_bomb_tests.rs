//! PNG decompression bombs in ancillary chunks: found at upload without
//! being inflated whole, and skipped by the decoder, whose memory stays
//! within the pixel buffers (measured in a process of its own).

use std::io::Write;

use super::*;

/// `image` as PNG bytes.
fn png_of(image: &Image) -> Vec<u8> {
    let mut out = Vec::new();
    encode_rgba_png(image, &mut out).unwrap();
    out
}

/// A 64x64 grey PNG with a `kind` chunk (`iCCP` or `zTXt`) whose zlib
/// stream inflates to `inflated` zero bytes, made in pieces so that making
/// it costs little memory.
pub(crate) fn bomb(kind: &[u8; 4], inflated: usize) -> Vec<u8> {
    let plain = png_of(&Image::filled(64, 64, [90, 90, 90, 255]));
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    let mut left = inflated;
    while left > 0 {
        let n = left.min(zeros.len());
        zlib.write_all(&zeros[..n]).unwrap();
        left -= n;
    }
    let mut body = b"bomb\0\0".to_vec();
    body.extend(zlib.finish().unwrap());
    let mut chunk = (body.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(&body);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(&body);
    chunk.extend_from_slice(&crc.finalize().to_be_bytes());
    // After the signature (8 bytes) and IHDR (25): before the image data,
    // where these chunks belong.
    let mut out = plain[..33].to_vec();
    out.extend(chunk);
    out.extend_from_slice(&plain[33..]);
    out
}

#[test]
fn a_bomb_in_an_ancillary_chunk_is_found_without_inflating_it_whole() {
    for kind in [b"iCCP", b"zTXt"] {
        let bytes = bomb(kind, 64 << 20);
        let err = check_png_chunks(&bytes[..], "upload \"a.png\"").unwrap_err();
        let text = err.to_string();
        let name = std::str::from_utf8(kind).unwrap();
        assert!(
            text.starts_with("upload \"a.png\"") && text.contains(&format!("its {name} chunk")),
            "{text}"
        );
        // The decoder skips the chunk and reads the pixels.
        let image = decode_png(&bytes, "bomb", DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!((image.width(), image.height()), (64, 64));
    }
    // A real-sized profile passes, and so does every ordinary PNG.
    assert!(check_png_chunks(&bomb(b"iCCP", 3000)[..], "x").is_ok());
    let plain = png_of(&Image::filled(3, 3, [1, 2, 3, 255]));
    assert!(check_png_chunks(&plain[..], "x").is_ok());
    // What is not a PNG, or ends early, is left to the decoder.
    assert!(check_png_chunks(&b"GIF89a"[..], "x").is_ok());
    assert!(check_png_chunks(&plain[..20], "x").is_ok());
}

/// Decodes a bomb of 512 MiB in a child process (this test binary, running
/// only `decode_the_bomb_named_by_the_environment`) and holds its peak
/// memory growth to the pixel buffers plus 64 MiB. Before the decoder
/// skipped ancillary chunks, the profile was inflated whole.
#[test]
fn decoding_a_bomb_costs_no_more_than_its_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.png");
    std::fs::write(&path, bomb(b"iCCP", 512 << 20)).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "diff::png_bomb_tests::decode_the_bomb_named_by_the_environment",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DPXDT_BOMB", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let grown: u64 = stdout
        .lines()
        .find_map(|l| l.split("peak growth KiB: ").nth(1))
        .unwrap_or_else(|| panic!("no measurement in {stdout}"))
        .trim()
        .parse()
        .unwrap();
    let pixels_kib = 64 * 64 * 4 / 1024;
    assert!(
        grown < pixels_kib + 64 * 1024,
        "decoding the bomb grew the process by {grown} KiB"
    );
}

/// The child of [`decoding_a_bomb_costs_no_more_than_its_pixels`].
#[test]
#[ignore = "run in a process of its own by decoding_a_bomb_costs_no_more_than_its_pixels"]
fn decode_the_bomb_named_by_the_environment() {
    let bytes = std::fs::read(std::env::var_os("DPXDT_BOMB").unwrap()).unwrap();
    let before = peak_kib();
    let image = decode_png(&bytes, "bomb", DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(image.width(), 64);
    println!("peak growth KiB: {}", peak_kib() - before);
}

/// This process's peak resident memory so far (`VmHWM`), in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
