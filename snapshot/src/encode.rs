//! The drawn frame as PNG or JPEG, bounded by [`MAX_IMAGE`].

use anyhow::{Context, Result, bail};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use orion_protocol::snapshot::{ImageFormat, MAX_IMAGE, Overlay};

/// `img` in the overlay's format and quality, at most its `max_bytes` (and [`MAX_IMAGE`]).
pub fn encode(img: &RgbImage, overlay: &Overlay) -> Result<Vec<u8>> {
    let (format, quality) = (overlay.format, overlay.quality);
    let max = overlay.max_bytes.min(MAX_IMAGE);
    let mut out = Vec::new();
    let (w, h) = img.dimensions();
    match format {
        ImageFormat::Png => PngEncoder::new(&mut out)
            .write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8)
            .context("PNG encoding")?,
        ImageFormat::Jpeg => JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
            .write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8)
            .context("JPEG encoding")?,
    }
    if out.len() > max {
        bail!(
            "the {} snapshot is {} bytes, over the {max}-byte limit (take a JPEG, or lower its quality)",
            format.as_str(),
            out.len()
        );
    }
    Ok(out)
}
