//! A decoded image: 8-bit RGBA pixels, row-major, no padding.

/// A decoded image in 8-bit RGBA, rows top to bottom, no padding between rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Image {
    /// Wraps RGBA bytes; `None` when the length is not `width * height * 4`.
    pub fn from_rgba(width: u32, height: u32, data: Vec<u8>) -> Option<Image> {
        let expected = (width as usize)
            .checked_mul(height as usize)?
            .checked_mul(4)?;
        (data.len() == expected).then_some(Image {
            width,
            height,
            data,
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
            data,
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
