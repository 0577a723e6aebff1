//! Crop and letterbox: the region of the frame is resized with its aspect kept (bilinear),
//! centred on a square of 114-grey, and written as float32 NCHW in 0..1 — the input
//! Ultralytics models expect. [`Letterbox`] also maps tensor pixels back to the frame.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use orion_protocol::NormRect;
use orion_ring::FrameMeta;

/// Grey of the padding, as Ultralytics pads.
pub const PAD: u8 = 114;

/// A rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl PixelRect {
    /// The pixels covering `r` on a `frame_w`×`frame_h` frame (outward rounding, at least
    /// one pixel, never outside the frame).
    pub fn from_norm(r: &NormRect, frame_w: u32, frame_h: u32) -> Self {
        let (fw, fh) = (f64::from(frame_w), f64::from(frame_h));
        let x0 = ((r.x() * fw).floor() as u32).min(frame_w - 1);
        let y0 = ((r.y() * fh).floor() as u32).min(frame_h - 1);
        let x1 = (((r.x() + r.width()) * fw).ceil() as u32).clamp(x0 + 1, frame_w);
        let y1 = (((r.y() + r.height()) * fh).ceil() as u32).clamp(y0 + 1, frame_h);
        Self {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        }
    }

    pub fn full(frame_w: u32, frame_h: u32) -> Self {
        Self {
            x: 0,
            y: 0,
            width: frame_w,
            height: frame_h,
        }
    }

    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Where a crop lands in an `imgsz`² tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub imgsz: u32,
    pub crop: PixelRect,
    pub new_w: u32,
    pub new_h: u32,
    pub left: u32,
    pub top: u32,
}

impl Letterbox {
    pub fn new(crop: PixelRect, imgsz: u32) -> Self {
        let r = (f64::from(imgsz) / f64::from(crop.width))
            .min(f64::from(imgsz) / f64::from(crop.height));
        let new_w = ((f64::from(crop.width) * r).round() as u32).clamp(1, imgsz);
        let new_h = ((f64::from(crop.height) * r).round() as u32).clamp(1, imgsz);
        Self {
            imgsz,
            crop,
            new_w,
            new_h,
            left: (imgsz - new_w) / 2,
            top: (imgsz - new_h) / 2,
        }
    }

    /// A tensor-pixel point in frame pixels (undo padding and scale, add the crop offset).
    pub fn to_frame(&self, tx: f64, ty: f64) -> (f64, f64) {
        let sx = f64::from(self.crop.width) / f64::from(self.new_w);
        let sy = f64::from(self.crop.height) / f64::from(self.new_h);
        (
            (tx - f64::from(self.left)) * sx + f64::from(self.crop.x),
            (ty - f64::from(self.top)) * sy + f64::from(self.crop.y),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("frame format {0:?} is not RGB8")]
    Format(orion_ring::PixelFormat),
    #[error("crop {crop:?} is outside the {width}x{height} frame")]
    Crop {
        crop: PixelRect,
        width: u32,
        height: u32,
    },
    #[error("tensor slot holds {have} floats, a {imgsz} tensor needs {need}")]
    Slot {
        have: usize,
        need: usize,
        imgsz: u32,
    },
    #[error("resize: {0}")]
    Resize(String),
}

/// Reusable buffers and the SIMD resizer.
pub struct Preparer {
    resizer: Resizer,
    resized: Vec<u8>,
    compact: Vec<u8>,
}

impl Default for Preparer {
    fn default() -> Self {
        Self {
            resizer: Resizer::new(),
            resized: Vec::new(),
            compact: Vec::new(),
        }
    }
}

impl Preparer {
    /// Letterboxes `lb.crop` of the frame into `out` (at least 3·imgsz² floats).
    pub fn prepare(
        &mut self,
        frame: &FrameMeta,
        payload: &[u8],
        lb: &Letterbox,
        out: &mut [f32],
    ) -> Result<(), PrepareError> {
        let g = frame.geometry;
        if g.format() != orion_ring::PixelFormat::Rgb8 {
            return Err(PrepareError::Format(g.format()));
        }
        let c = lb.crop;
        if c.width == 0 || c.height == 0 || c.x + c.width > g.width() || c.y + c.height > g.height()
        {
            return Err(PrepareError::Crop {
                crop: c,
                width: g.width(),
                height: g.height(),
            });
        }
        let plane = (lb.imgsz * lb.imgsz) as usize;
        if out.len() < 3 * plane {
            return Err(PrepareError::Slot {
                have: out.len(),
                need: 3 * plane,
                imgsz: lb.imgsz,
            });
        }
        let stride = g.stride() as usize;
        if lb.new_w == c.width && lb.new_h == c.height {
            // Already at model resolution (e.g. a 640x480 stream on the 640 model): no
            // resampling, convert straight from the ring slot.
            let start = c.y as usize * stride + c.x as usize * 3;
            write_chw(&payload[start..], stride, lb, &mut out[..3 * plane]);
        } else {
            self.resize(g.width(), g.height(), stride, payload, lb)?;
            write_chw(
                &self.resized,
                lb.new_w as usize * 3,
                lb,
                &mut out[..3 * plane],
            );
        }
        Ok(())
    }

    fn resize(
        &mut self,
        width: u32,
        height: u32,
        stride: usize,
        payload: &[u8],
        lb: &Letterbox,
    ) -> Result<(), PrepareError> {
        let err = |e: &dyn std::fmt::Display| PrepareError::Resize(e.to_string());
        let c = lb.crop;
        let row = width as usize * 3;
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        self.resized.resize((lb.new_w * lb.new_h * 3) as usize, 0);
        let mut dst = Image::from_slice_u8(lb.new_w, lb.new_h, &mut self.resized, PixelType::U8x3)
            .map_err(|e| err(&e))?;
        if stride == row && payload.len() >= row * height as usize {
            // Rows are packed: resize straight from the ring slot, cropping on the fly.
            let src = ImageRef::new(
                width,
                height,
                &payload[..row * height as usize],
                PixelType::U8x3,
            )
            .map_err(|e| err(&e))?;
            let options = options.crop(
                f64::from(c.x),
                f64::from(c.y),
                f64::from(c.width),
                f64::from(c.height),
            );
            self.resizer
                .resize(&src, &mut dst, &options)
                .map_err(|e| err(&e))
        } else {
            // Padded rows: gather the crop's rows first.
            let crop_row = c.width as usize * 3;
            self.compact.clear();
            for y in c.y..c.y + c.height {
                let start = y as usize * stride + c.x as usize * 3;
                self.compact
                    .extend_from_slice(&payload[start..start + crop_row]);
            }
            let src = ImageRef::new(c.width, c.height, &self.compact, PixelType::U8x3)
                .map_err(|e| err(&e))?;
            self.resizer
                .resize(&src, &mut dst, &options)
                .map_err(|e| err(&e))
        }
    }
}

/// Interleaved RGB (`new_w`×`new_h` pixels, rows `stride` bytes apart) into three padded
/// float planes.
fn write_chw(rgb: &[u8], stride: usize, lb: &Letterbox, out: &mut [f32]) {
    const SCALE: f32 = 1.0 / 255.0;
    let pad = f32::from(PAD) * SCALE;
    let s = lb.imgsz as usize;
    let (left, top, w, h) = (
        lb.left as usize,
        lb.top as usize,
        lb.new_w as usize,
        lb.new_h as usize,
    );
    let (r_plane, rest) = out.split_at_mut(s * s);
    let (g_plane, b_plane) = rest.split_at_mut(s * s);
    for y in 0..s {
        let (r_row, g_row, b_row) = (
            &mut r_plane[y * s..][..s],
            &mut g_plane[y * s..][..s],
            &mut b_plane[y * s..][..s],
        );
        if y < top || y >= top + h {
            r_row.fill(pad);
            g_row.fill(pad);
            b_row.fill(pad);
            continue;
        }
        for row in [&mut *r_row, &mut *g_row, &mut *b_row] {
            row[..left].fill(pad);
            row[left + w..].fill(pad);
        }
        let src = &rgb[(y - top) * stride..][..w * 3];
        for (x, px) in src.chunks_exact(3).enumerate() {
            r_row[left + x] = f32::from(px[0]) * SCALE;
            g_row[left + x] = f32::from(px[1]) * SCALE;
            b_row[left + x] = f32::from(px[2]) * SCALE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orion_ring::{FrameGeometry, PixelFormat};
    use proptest::prelude::*;

    fn meta(w: u32, h: u32, stride: u32) -> FrameMeta {
        FrameMeta {
            seq: 1,
            epoch: 1,
            realtime_ns: 0,
            monotonic_ns: 0,
            geometry: FrameGeometry::new(w, h, stride, PixelFormat::Rgb8).unwrap(),
            payload_len: u64::from(stride) * u64::from(h),
        }
    }

    #[test]
    fn wide_frame_is_padded_top_and_bottom() {
        let lb = Letterbox::new(PixelRect::full(640, 360), 640);
        assert_eq!((lb.new_w, lb.new_h, lb.left, lb.top), (640, 360, 0, 140));
        assert_eq!(lb.to_frame(0.0, 140.0), (0.0, 0.0));
        assert_eq!(lb.to_frame(640.0, 500.0), (640.0, 360.0));
    }

    #[test]
    fn uniform_frame_becomes_uniform_tensor_with_grey_padding() {
        let (w, h, stride) = (426u32, 320u32, 1280u32);
        let mut payload = vec![0u8; (stride * h) as usize];
        for y in 0..h as usize {
            for x in 0..w as usize {
                payload[y * stride as usize + x * 3..][..3].copy_from_slice(&[255, 0, 51]);
            }
            // Padding bytes must never leak into the picture.
            payload[y * stride as usize + 1278..][..2].copy_from_slice(&[7, 7]);
        }
        let lb = Letterbox::new(PixelRect::full(w, h), 320);
        let mut out = vec![0f32; 3 * 320 * 320];
        Preparer::default()
            .prepare(&meta(w, h, stride), &payload, &lb, &mut out)
            .unwrap();
        let at = |c: usize, y: u32, x: u32| out[c * 320 * 320 + (y * 320 + x) as usize];
        assert_eq!((lb.new_w, lb.new_h), (320, 240));
        let inside = lb.top + 10;
        assert!((at(0, inside, 5) - 1.0).abs() < 1e-6 && at(1, inside, 5).abs() < 1e-6);
        assert!((at(2, inside, 319) - 0.2).abs() < 1e-6);
        assert!((at(0, 0, 0) - 114.0 / 255.0).abs() < 1e-6, "top padding");
        assert!(
            (at(1, 319, 319) - 114.0 / 255.0).abs() < 1e-6,
            "bottom padding"
        );
    }

    #[test]
    fn frame_at_model_resolution_is_copied_exactly() {
        let (w, h) = (64u32, 48u32);
        let payload: Vec<u8> = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
        let crop = PixelRect {
            x: 0,
            y: 0,
            width: 32,
            height: 32,
        };
        let lb = Letterbox::new(crop, 32); // no scaling
        let mut out = vec![0f32; 3 * 32 * 32];
        Preparer::default()
            .prepare(&meta(w, h, w * 3), &payload, &lb, &mut out)
            .unwrap();
        for (y, x, c) in [(0usize, 0usize, 0usize), (5, 7, 1), (31, 31, 2)] {
            let expected = f32::from(payload[y * (w as usize) * 3 + x * 3 + c]) / 255.0;
            assert!((out[c * 32 * 32 + y * 32 + x] - expected).abs() < 1e-6);
        }
    }

    #[test]
    fn crop_takes_only_its_region() {
        // Left half red, right half blue; a crop of the right half is all blue.
        let (w, h) = (64u32, 32u32);
        let mut payload = vec![0u8; (w * h * 3) as usize];
        for (i, px) in payload.chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(if (i as u32 % w) < 32 {
                &[255, 0, 0]
            } else {
                &[0, 0, 255]
            });
        }
        let crop = PixelRect {
            x: 32,
            y: 0,
            width: 32,
            height: 32,
        };
        let lb = Letterbox::new(crop, 320);
        let mut out = vec![0f32; 3 * 320 * 320];
        Preparer::default()
            .prepare(&meta(w, h, w * 3), &payload, &lb, &mut out)
            .unwrap();
        // The filter may touch the pixel just outside the crop at its left edge (context,
        // as a crop of a larger picture should); everything else is pure blue.
        let red = &out[..320 * 320];
        assert!(
            red.chunks(320)
                .all(|row| row[16..].iter().all(|&v| v < 0.01)),
            "red inside the crop"
        );
        assert!(
            out[2 * 320 * 320..]
                .chunks(320)
                .all(|row| row[16..].iter().all(|&v| v > 0.99))
        );
    }

    proptest! {
        #[test]
        fn mapping_round_trips_inside_the_crop(
            fw in 32u32..4000, fh in 32u32..3000,
            x in 0.0f64..0.5, y in 0.0f64..0.5, w in 0.05f64..0.5, h in 0.05f64..0.5,
            u in 0.0f64..1.0, v in 0.0f64..1.0, imgsz in prop::sample::select(vec![320u32, 640]),
        ) {
            let crop = PixelRect::from_norm(&NormRect::new(x, y, w, h).unwrap(), fw, fh);
            prop_assert!(crop.x + crop.width <= fw && crop.y + crop.height <= fh && crop.width >= 1);
            let lb = Letterbox::new(crop, imgsz);
            prop_assert!(lb.left + lb.new_w <= imgsz && lb.top + lb.new_h <= imgsz);
            // The letterboxed picture's corners map to the crop's corners.
            let (x0, y0) = lb.to_frame(f64::from(lb.left), f64::from(lb.top));
            let (x1, y1) = lb.to_frame(f64::from(lb.left + lb.new_w), f64::from(lb.top + lb.new_h));
            prop_assert!((x0 - f64::from(crop.x)).abs() < 1e-6 && (y0 - f64::from(crop.y)).abs() < 1e-6);
            prop_assert!((x1 - f64::from(crop.x + crop.width)).abs() < 1e-6);
            prop_assert!((y1 - f64::from(crop.y + crop.height)).abs() < 1e-6);
            // Any point inside the picture maps inside the crop.
            let (px, py) = lb.to_frame(f64::from(lb.left) + u * f64::from(lb.new_w), f64::from(lb.top) + v * f64::from(lb.new_h));
            prop_assert!(px >= f64::from(crop.x) - 1e-6 && px <= f64::from(crop.x + crop.width) + 1e-6);
            prop_assert!(py >= f64::from(crop.y) - 1e-6 && py <= f64::from(crop.y + crop.height) + 1e-6);
        }
    }
}
