//! A decoded image: 8-bit RGBA pixels, row-major, no padding.

use std::ops::{Deref, DerefMut};

/// A decoded image in 8-bit RGBA, rows top to bottom, no padding between rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    width: u32,
    height: u32,
    data: Pixels,
}

/// The memory an image's pixels live in: a `Vec`, or for a large image on
/// Linux an anonymous mapping the kernel is asked to back with huge pages,
/// which spares most of the page faults of touching fresh memory (one per
/// 4 KiB otherwise: 2,000 for a 1920x1080 screenshot, 78,000 for a
/// 4000x20000 one).
enum Pixels {
    Heap(Vec<u8>),
    #[cfg(target_os = "linux")]
    Mapped(memmap2::MmapMut),
}

/// Images at least this large get a huge-page mapping.
const MAPPED_FROM: usize = 4 << 20;

impl Pixels {
    fn zeroed(len: usize) -> Pixels {
        #[cfg(target_os = "linux")]
        if len >= MAPPED_FROM
            && let Ok(map) = memmap2::MmapMut::map_anon(len)
        {
            // Advice only: without transparent huge pages it changes nothing.
            let _ = map.advise(memmap2::Advice::HugePage);
            return Pixels::Mapped(map);
        }
        Pixels::Heap(vec![0; len])
    }
}

impl Deref for Pixels {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Pixels::Heap(v) => v,
            #[cfg(target_os = "linux")]
            Pixels::Mapped(m) => m,
        }
    }
}

impl DerefMut for Pixels {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Pixels::Heap(v) => v,
            #[cfg(target_os = "linux")]
            Pixels::Mapped(m) => m,
        }
    }
}

impl Clone for Pixels {
    fn clone(&self) -> Pixels {
        Pixels::Heap(self.to_vec())
    }
}

impl PartialEq for Pixels {
    fn eq(&self, other: &Pixels) -> bool {
        **self == **other
    }
}

impl Eq for Pixels {}

impl std::fmt::Debug for Pixels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.len())
    }
}

impl Image {
    /// An image of transparent black, `None` when the size overflows memory.
    pub fn zeroed(width: u32, height: u32) -> Option<Image> {
        let len = (width as usize)
            .checked_mul(height as usize)?
            .checked_mul(4)?;
        Some(Image {
            width,
            height,
            data: Pixels::zeroed(len),
        })
    }

    /// The RGBA bytes, to write.
    pub fn as_rgba_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Wraps RGBA bytes; `None` when the length is not `width * height * 4`.
    pub fn from_rgba(width: u32, height: u32, data: Vec<u8>) -> Option<Image> {
        let expected = (width as usize)
            .checked_mul(height as usize)?
            .checked_mul(4)?;
        (data.len() == expected).then_some(Image {
            width,
            height,
            data: Pixels::Heap(data),
        })
    }

    /// An image of one colour.
    pub fn filled(width: u32, height: u32, rgba: [u8; 4]) -> Image {
        let pixels = width as usize * height as usize;
        let mut data = Vec::with_capacity(pixels * 4);
        for _ in 0..pixels {
            data.extend_from_slice(&rgba);
        }
        Image {
            width,
            height,
            data: Pixels::Heap(data),
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The RGBA bytes.
    pub fn as_rgba(&self) -> &[u8] {
        &self.data
    }

    /// The RGBA bytes of row `y`.
    #[inline]
    pub fn row(&self, y: u32) -> &[u8] {
        let stride = self.width as usize * 4;
        &self.data[y as usize * stride..(y as usize + 1) * stride]
    }

    /// The pixel at (x, y).
    #[inline]
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = (y as usize * self.width as usize + x as usize) * 4;
        [
            self.data[i],
            self.data[i + 1],
            self.data[i + 2],
            self.data[i + 3],
        ]
    }

    /// Sets the pixel at (x, y).
    pub fn set_pixel(&mut self, x: u32, y: u32, rgba: [u8; 4]) {
        let i = (y as usize * self.width as usize + x as usize) * 4;
        self.data[i..i + 4].copy_from_slice(&rgba);
    }

    /// This image placed top-left on a `width` × `height` canvas of opaque
    /// white: padded where it is smaller, cropped where it is larger (the
    /// original's size rule; ImageMagick's `-extent` does the same).
    pub fn on_canvas(&self, width: u32, height: u32) -> Image {
        let mut canvas = Image::filled(width, height, [255, 255, 255, 255]);
        let copy_w = self.width.min(width) as usize * 4;
        let dst_stride = width as usize * 4;
        for y in 0..self.height.min(height) {
            let start = y as usize * dst_stride;
            canvas.data[start..start + copy_w].copy_from_slice(&self.row(y)[..copy_w]);
        }
        canvas
    }
}
