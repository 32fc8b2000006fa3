//! PNG in and out: decoding any PNG to RGBA with a pixel limit checked
//! before allocation, and a fast encoder for diff images.

use std::io::{Cursor, Read, Write};
use std::path::Path;

use png::{BitDepth, ColorType, Compression, Decoder, Filter, Limits, Transformations};

use super::kernel::DiffImage;
use super::{DiffError, Image};

const PNG_SIGNATURE: [u8; 8] = [137, 80, 78, 71, 13, 10, 26, 10];

/// Reads and decodes a PNG file; errors name the file.
pub fn load_png(path: &Path, max_pixels: u64) -> Result<Image, DiffError> {
    let bytes = std::fs::read(path).map_err(|source| DiffError::Read {
        path: path.to_owned(),
        source,
    })?;
    decode_png(&bytes, &path.display().to_string(), max_pixels)
}

/// Decodes PNG bytes to RGBA. `what` names the input in errors. The header
/// is checked against `max_pixels` before pixel memory is allocated, so a
/// small file claiming a huge image (a decompression bomb) costs nothing.
pub fn decode_png(bytes: &[u8], what: &str, max_pixels: u64) -> Result<Image, DiffError> {
    if !bytes.starts_with(&PNG_SIGNATURE) {
        return Err(DiffError::NotPng { what: what.into() });
    }
    let corrupt = |e: png::DecodingError| DiffError::Corrupt {
        what: what.into(),
        detail: match e {
            png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                "unexpected end of file".into()
            }
            other => other.to_string(),
        },
    };
    // Ancillary chunks we have no use for are skipped, not inflated: an ICC
    // profile or a compressed text of a few bytes may claim gigabytes.
    let mut decoder = Decoder::new(Cursor::new(bytes));
    decoder.set_ignore_iccp_chunk(true);
    decoder.set_ignore_text_chunk(true);
    decoder.set_transformations(Transformations::normalize_to_color8());
    let header = decoder.read_header_info().map_err(|e| {
        // The decoder refuses a zero dimension as a format error; say it plainly.
        let (w, h) = ihdr_size(bytes);
        if w == 0 || h == 0 {
            DiffError::Empty {
                what: what.into(),
                width: w,
                height: h,
            }
        } else {
            corrupt(e)
        }
    })?;
    let (width, height) = (header.width, header.height);
    if width == 0 || height == 0 {
        return Err(DiffError::Empty {
            what: what.into(),
            width,
            height,
        });
    }
    let pixels = width as u64 * height as u64;
    if pixels > max_pixels {
        return Err(DiffError::TooLarge {
            what: what.into(),
            width,
            height,
            pixels,
            limit: max_pixels,
        });
    }
    let interlaced = header.interlaced;
    // What the decoder may allocate beyond our pixel buffer: a frame in its
    // native layout (at most 8 bytes a pixel) and a few rows.
    let row_bytes = (u64::from(width) * 8 + 1) as usize;
    decoder.set_limits(Limits {
        bytes: (pixels as usize)
            .saturating_mul(8)
            .saturating_add(row_bytes.saturating_mul(4))
            .saturating_add(1 << 20),
    });
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let (color, depth) = reader.output_color_type();
    debug_assert_eq!(depth, BitDepth::Eight);
    let mut image = Image::zeroed(width, height).ok_or_else(|| DiffError::TooLarge {
        what: what.into(),
        width,
        height,
        pixels,
        limit: max_pixels,
    })?;
    let rgba = image.as_rgba_mut();
    if color == ColorType::Rgba {
        reader.next_frame(rgba).map_err(corrupt)?;
    } else if interlaced {
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| DiffError::TooLarge {
                what: what.into(),
                width,
                height,
                pixels,
                limit: max_pixels,
            })?;
        let mut native = vec![0u8; size];
        reader.next_frame(&mut native).map_err(corrupt)?;
        let line = native.len() / height as usize;
        for (src, dst) in native
            .chunks_exact(line)
            .zip(rgba.chunks_exact_mut(width as usize * 4))
        {
            expand_row(color, src, dst);
        }
    } else {
        for dst in rgba.chunks_exact_mut(width as usize * 4) {
            let row = reader
                .next_row()
                .map_err(corrupt)?
                .ok_or_else(|| DiffError::Corrupt {
                    what: what.into(),
                    detail: "image data ends early".into(),
                })?;
            expand_row(color, row.data(), dst);
        }
    }
    Ok(image)
}

/// Checks that `bytes` is a whole PNG without inflating its pixels: the
/// signature, every chunk's length and CRC-32, an IHDR first with a size
/// within `max_pixels`, image data, and an IEND. Returns the
/// size. Two inputs that are the same bytes are the same image; this is
/// what is left to check of them.
pub fn check_png_structure(
    bytes: &[u8],
    what: &str,
    max_pixels: u64,
) -> Result<(u32, u32), DiffError> {
    if !bytes.starts_with(&PNG_SIGNATURE) {
        return Err(DiffError::NotPng { what: what.into() });
    }
    let corrupt = |detail: String| DiffError::Corrupt {
        what: what.into(),
        detail,
    };
    let mut at = PNG_SIGNATURE.len();
    let (mut size, mut image_data, mut ended) = (None, false, false);
    // Anything after IEND is ignored, as the decoder does.
    while at < bytes.len() && !ended {
        let header = bytes
            .get(at..at + 8)
            .ok_or_else(|| corrupt("unexpected end of file in a chunk header".into()))?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        let name = String::from_utf8_lossy(kind).into_owned();
        let body = bytes
            .get(at + 8..at + 8 + len)
            .ok_or_else(|| corrupt(format!("unexpected end of file in chunk {name}")))?;
        let crc = bytes
            .get(at + 8 + len..at + 12 + len)
            .ok_or_else(|| corrupt(format!("unexpected end of file in chunk {name}")))?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(kind);
        hasher.update(body);
        if hasher.finalize().to_be_bytes() != crc {
            return Err(corrupt(format!("CRC error in chunk {name}")));
        }
        match kind {
            b"IHDR" if size.is_none() && len == 13 => {
                let be =
                    |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
                size = Some((be(0), be(4)));
            }
            _ if size.is_none() => return Err(corrupt("the first chunk is not IHDR".into())),
            b"IDAT" => image_data = true,
            b"IEND" => ended = true,
            _ => {}
        }
        at += 12 + len;
    }
    let (width, height) = size.ok_or_else(|| corrupt("no IHDR chunk".into()))?;
    if !image_data || !ended {
        return Err(corrupt(
            if image_data {
                "no IEND chunk"
            } else {
                "no image data"
            }
            .into(),
        ));
    }
    if width == 0 || height == 0 {
        return Err(DiffError::Empty {
            what: what.into(),
            width,
            height,
        });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(DiffError::TooLarge {
            what: what.into(),
            width,
            height,
            pixels,
            limit: max_pixels,
        });
    }
    Ok((width, height))
}

/// The most a compressed ancillary chunk (`iCCP`, `zTXt`, compressed
/// `iTXt`) may inflate to: real ICC profiles and texts are far smaller.
pub const MAX_INFLATED_CHUNK: usize = 4 << 20;

/// Refuses a PNG whose compressed ancillary chunks inflate to more than
/// [`MAX_INFLATED_CHUNK`], reading it as a stream (at most one chunk's
/// compressed bytes held at once). What is not a PNG, or ends early, is
/// left for the decoder to name: this only looks for bombs. For uploads,
/// which are kept and handed to other programs, not only to our decoder
/// (which skips these chunks).
pub fn check_png_chunks(input: impl Read, what: &str) -> Result<(), DiffError> {
    match find_bomb(input) {
        Ok(Some(chunk)) => Err(DiffError::Bomb {
            what: what.into(),
            chunk,
            limit: MAX_INFLATED_CHUNK,
        }),
        // Read errors and anything malformed are the decoder's to name.
        Ok(None) | Err(_) => Ok(()),
    }
}

/// The type of the first compressed ancillary chunk of a PNG stream that
/// inflates beyond [`MAX_INFLATED_CHUNK`].
fn find_bomb(mut input: impl Read) -> std::io::Result<Option<String>> {
    let mut signature = [0u8; 8];
    input.read_exact(&mut signature)?;
    if signature != PNG_SIGNATURE {
        return Ok(None);
    }
    let mut header = [0u8; 8];
    loop {
        input.read_exact(&mut header)?;
        let len = u64::from(u32::from_be_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        let kind = [header[4], header[5], header[6], header[7]];
        match &kind {
            b"IEND" => return Ok(None),
            b"iCCP" | b"zTXt" | b"iTXt" => {
                let mut body = Vec::new();
                (&mut input).take(len).read_to_end(&mut body)?;
                if let Some(compressed) = compressed_part(&kind, &body)
                    && inflates_beyond(compressed, MAX_INFLATED_CHUNK)
                {
                    return Ok(Some(String::from_utf8_lossy(&kind).into_owned()));
                }
                std::io::copy(&mut (&mut input).take(4), &mut std::io::sink())?;
            }
            // Any other chunk, with its CRC, is skipped unread.
            _ => {
                std::io::copy(&mut (&mut input).take(len + 4), &mut std::io::sink())?;
            }
        }
    }
}

/// The zlib stream of a compressed ancillary chunk, if it has one.
fn compressed_part<'a>(kind: &[u8; 4], body: &'a [u8]) -> Option<&'a [u8]> {
    // Every one starts with a keyword (or profile name) ended by a zero.
    let after_name = body.iter().position(|&b| b == 0)? + 1;
    match kind {
        // name, 0, compression method, data
        b"iCCP" | b"zTXt" => body.get(after_name + 1..),
        // keyword, 0, compressed flag, method, language, 0, translated keyword, 0, text
        b"iTXt" if body.get(after_name) == Some(&1) => {
            let rest = body.get(after_name + 2..)?;
            let lang_end = rest.iter().position(|&b| b == 0)? + 1;
            let rest = &rest[lang_end..];
            let kw_end = rest.iter().position(|&b| b == 0)? + 1;
            Some(&rest[kw_end..])
        }
        _ => None,
    }
}

/// Whether the zlib stream `compressed` inflates to more than `limit`
/// bytes (inflated in pieces, never held whole).
fn inflates_beyond(compressed: &[u8], limit: usize) -> bool {
    let mut inflater = flate2::read::ZlibDecoder::new(compressed).take(limit as u64 + 1);
    matches!(std::io::copy(&mut inflater, &mut std::io::sink()), Ok(n) if n > limit as u64)
}

/// Width and height from the IHDR chunk, read directly (0, 0 if absent).
fn ihdr_size(bytes: &[u8]) -> (u32, u32) {
    let be = |at: usize| {
        bytes
            .get(at..at + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    if bytes.get(12..16) == Some(b"IHDR") {
        (be(16), be(20))
    } else {
        (0, 0)
    }
}

/// Converts one row of 8-bit grey, grey+alpha or RGB samples to RGBA.
fn expand_row(color: ColorType, src: &[u8], dst: &mut [u8]) {
    match color {
        ColorType::Rgb => {
            // Each pixel is read as 4 bytes starting at its 3 (the 4th is the
            // next pixel's red, overwritten by the opaque alpha): one load,
            // one or, one store.
            let pixels = dst.len() / 4;
            let (body, last) = dst.split_at_mut((pixels - 1) * 4);
            for (i, d) in body.chunks_exact_mut(4).enumerate() {
                let s = &src[i * 3..i * 3 + 4];
                let v = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) | 0xFF00_0000;
                d.copy_from_slice(&v.to_le_bytes());
            }
            let s = &src[(pixels - 1) * 3..pixels * 3];
            last.copy_from_slice(&[s[0], s[1], s[2], 255]);
        }
        ColorType::Grayscale => {
            for (&g, d) in src.iter().zip(dst.chunks_exact_mut(4)) {
                d.copy_from_slice(&[g, g, g, 255]);
            }
        }
        ColorType::GrayscaleAlpha => {
            for (s, d) in src.chunks_exact(2).zip(dst.chunks_exact_mut(4)) {
                d.copy_from_slice(&[s[0], s[0], s[0], s[1]]);
            }
        }
        // EXPAND turns palettes into RGB(A); RGBA rows are copied as they are.
        ColorType::Rgba | ColorType::Indexed => dst.copy_from_slice(&src[..dst.len()]),
    }
}

/// Encodes a diff image as an 8-bit palette PNG with the fast deflate
/// setting: one byte per pixel to compress, mostly flat.
pub fn encode_diff_png(image: &DiffImage, out: &mut impl Write) -> Result<(), DiffError> {
    let encode = DiffError::Encode;
    let palette = image.palette();
    let mut encoder = png::Encoder::new(out, image.width(), image.height());
    encoder.set_color(ColorType::Indexed);
    encoder.set_depth(BitDepth::Eight);
    encoder.set_palette(
        palette
            .iter()
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect::<Vec<u8>>(),
    );
    if image.is_mask() {
        encoder.set_trns(palette.iter().map(|p| p[3]).collect::<Vec<u8>>());
    }
    // The fast deflate is tuned for filtered rows: unfiltered, it stores the
    // data uncompressed; with adaptive filters it is ~10x smaller and faster.
    encoder.set_compression(Compression::Fast);
    encoder.set_filter(Filter::Adaptive);
    let mut writer = encoder.write_header().map_err(encode)?;
    writer.write_image_data(image.indices()).map_err(encode)?;
    writer.finish().map_err(encode)
}

/// Encodes an RGBA image as an 8-bit RGBA PNG with the fast deflate
/// setting (screenshots stitched from tiles).
pub fn encode_rgba_png(image: &Image, out: &mut impl Write) -> Result<(), DiffError> {
    let encode = DiffError::Encode;
    let mut encoder = png::Encoder::new(out, image.width(), image.height());
    encoder.set_color(ColorType::Rgba);
    encoder.set_depth(BitDepth::Eight);
    encoder.set_compression(Compression::Fast);
    encoder.set_filter(Filter::Adaptive);
    let mut writer = encoder.write_header().map_err(encode)?;
    writer.write_image_data(image.as_rgba()).map_err(encode)?;
    writer.finish().map_err(encode)
}

/// Writes the diff image to `path` atomically ([`crate::atomic`]), so
/// readers never see a partial file; not fsynced: a diff image lost to a
/// power cut is made again by diffing again.
pub(crate) fn write_png_atomically(image: &DiffImage, path: &Path) -> Result<(), DiffError> {
    use crate::atomic::Durability;
    crate::atomic::write_with(path, Durability::Replaceable, |out| {
        encode_diff_png(image, out).map_err(std::io::Error::other)
    })
    .map_err(|source| DiffError::Write {
        path: path.to_owned(),
        source,
    })
}
