//! The newest frame of the ring as an RGB image.

use anyhow::{Result, bail};
use image::RgbImage;
use orion_protocol::snapshot::Taken;
use orion_ring::{FrameMeta, PixelFormat, Read, RingReader};

/// Reads of a frame the writer overwrote before they ended, tried again this often.
const TORN_RETRIES: usize = 20;

/// The newest frame and what it is.
pub fn newest(reader: &mut RingReader) -> Result<(RgbImage, Taken)> {
    let mut payload = Vec::new();
    for _ in 0..TORN_RETRIES {
        match reader.read_latest_into(&mut payload)? {
            Read::Frame(meta) => return Ok((to_rgb(&meta, &payload)?, taken(&meta))),
            Read::NoFrame => {
                bail!("the ring holds no frame yet (the camera has not delivered one)")
            }
            Read::Torn { .. } => continue,
        }
    }
    bail!("every read of the newest frame was torn by the writer ({TORN_RETRIES} tries)")
}

fn taken(meta: &FrameMeta) -> Taken {
    Taken {
        frame_seq: meta.seq,
        width: meta.geometry.width(),
        height: meta.geometry.height(),
        captured_unix_ns: meta.realtime_ns,
        captioned: false,
        boxes_drawn: false,
    }
}

/// The payload's rows (of `stride` bytes) as packed RGB.
pub fn to_rgb(meta: &FrameMeta, payload: &[u8]) -> Result<RgbImage> {
    let g = meta.geometry;
    let (w, h, stride) = (g.width() as usize, g.height() as usize, g.stride() as usize);
    let bpp = g.format().bytes_per_pixel() as usize;
    if payload.len() < stride * (h - 1) + w * bpp {
        bail!(
            "frame {} has {} bytes, fewer than its {w}x{h} pixels need",
            meta.seq,
            payload.len()
        );
    }
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        let line = &payload[row * stride..row * stride + w * bpp];
        match g.format() {
            PixelFormat::Rgb8 => rgb.extend_from_slice(line),
            PixelFormat::Gray8 => rgb.extend(line.iter().flat_map(|&v| [v, v, v])),
        }
    }
    RgbImage::from_raw(g.width(), g.height(), rgb)
        .ok_or_else(|| anyhow::anyhow!("frame {} does not make an image", meta.seq))
}
