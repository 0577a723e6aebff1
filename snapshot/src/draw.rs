//! The overlay drawn over a frame: detection boxes with their confidence, the attention
//! ROIs, the auto-focus region and the zones (with their names) each in their own colour,
//! and a caption band on top
//! (time, frame, model, region; paused says so).

use ab_glyph::{FontArc, PxScale};
use image::{Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_rect_mut, draw_hollow_rect_mut, draw_line_segment_mut, draw_text_mut, text_size,
};
use imageproc::rect::Rect;
use orion_protocol::NormRect;
use orion_protocol::snapshot::{Overlay, STALE_BOXES_NS, Taken};

/// The colours, fixed so that a test (and an operator's eye) can tell them apart.
pub struct Palette;

impl Palette {
    /// A detected person.
    pub const BOX: Rgb<u8> = Rgb([0, 255, 0]);
    /// The operator's attention ROIs.
    pub const ROI: Rgb<u8> = Rgb([0, 128, 255]);
    /// The auto-focus region.
    pub const FOCUS: Rgb<u8> = Rgb([255, 160, 0]);
    /// A zone.
    pub const ZONE: Rgb<u8> = Rgb([255, 0, 255]);
    const CAPTION_BG: Rgb<u8> = Rgb([0, 0, 0]);
    const CAPTION: Rgb<u8> = Rgb([255, 255, 255]);
    const LABEL: Rgb<u8> = Rgb([0, 0, 0]);
}

/// Line thickness in pixels.
const THICK: u32 = 2;

/// Draws `overlay` over `img`; the caption only with a font. Regions first, boxes over
/// them, the caption last so it stays legible. True if the boxes were drawn (they are
/// not when they are [too old](boxes_fresh) for the frame).
pub fn draw(img: &mut RgbImage, overlay: &Overlay, taken: &Taken, font: Option<&FontArc>) -> bool {
    let (w, h) = img.dimensions();
    for roi in &overlay.attention_rois {
        outline(img, to_pixels(roi, w, h), Palette::ROI);
    }
    if let Some(focus) = &overlay.focus_region {
        outline(img, to_pixels(focus, w, h), Palette::FOCUS);
    }
    let scale = PxScale::from((h as f32 / 24.0).clamp(11.0, 40.0));
    for zone in &overlay.zones {
        polygon(img, zone.polygon(), w, h);
        if let (Some(font), Some([x, y])) = (font, zone.polygon().first()) {
            let (px, py) = ((x * f64::from(w)) as i32, (y * f64::from(h)) as i32);
            draw_text_mut(
                img,
                Palette::ZONE,
                px + 3,
                py + 2,
                scale,
                font,
                zone.name().as_str(),
            );
        }
    }
    let fresh = boxes_fresh(overlay, taken);
    for d in overlay.detections.iter().filter(|_| fresh) {
        let b = &d.bbox;
        let Some(rect) = clipped(b.x, b.y, b.width, b.height, w, h) else {
            continue;
        };
        outline(img, Some(rect), Palette::BOX);
        if let Some(font) = font {
            let label = format!("{} {:.0}%", d.class, d.confidence * 100.0);
            label_above(img, rect, &label, font, scale);
        }
    }
    if let Some(font) = font {
        caption(img, &caption_lines(overlay, taken), font, scale);
    }
    fresh && !overlay.detections.is_empty()
}

/// Whether the boxes belong with this frame: found at most [`STALE_BOXES_NS`] before it.
pub fn boxes_fresh(overlay: &Overlay, taken: &Taken) -> bool {
    overlay
        .detections_captured_unix_ns
        .is_some_and(|ns| taken.captured_unix_ns.saturating_sub(ns) <= STALE_BOXES_NS)
}

/// What the caption says, one line each.
pub fn caption_lines(overlay: &Overlay, taken: &Taken) -> Vec<String> {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(taken.captured_unix_ns);
    let mut first = format!(
        "{}  frame {}",
        humantime::format_rfc3339_seconds(time),
        taken.frame_seq
    );
    if !overlay.room.is_empty() {
        first = format!("{}  {first}", overlay.room);
    }
    let second = if overlay.paused {
        "detection paused: frame only, no boxes".to_string()
    } else {
        let model = overlay.model.map_or("-".into(), |m| m.to_string());
        let source = overlay
            .roi_source
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| "-".into());
        let persons = overlay.detections.len();
        match overlay.detections_frame_seq {
            None => format!("model {model}  no detection yet"),
            Some(seq) if !boxes_fresh(overlay, taken) => {
                format!("model {model}  last boxes (frame {seq}) too old to draw")
            }
            Some(seq) if seq != taken.frame_seq => {
                format!("model {model}  region {source}  {persons} person(s), boxes of frame {seq}")
            }
            Some(_) => format!("model {model}  region {source}  {persons} person(s)"),
        }
    };
    vec![first, second]
}

/// A zone's outline (normalized points), `THICK` pixels wide.
fn polygon(img: &mut RgbImage, points: &[[f64; 2]], w: u32, h: u32) {
    let px = |[x, y]: [f64; 2]| {
        (
            (x * f64::from(w)).clamp(0.0, f64::from(w.saturating_sub(1))) as f32,
            (y * f64::from(h)).clamp(0.0, f64::from(h.saturating_sub(1))) as f32,
        )
    };
    for (i, a) in points.iter().enumerate() {
        let (a, b) = (px(*a), px(points[(i + 1) % points.len()]));
        for t in 0..THICK {
            let d = t as f32;
            draw_line_segment_mut(img, (a.0 + d, a.1), (b.0 + d, b.1), Palette::ZONE);
            draw_line_segment_mut(img, (a.0, a.1 + d), (b.0, b.1 + d), Palette::ZONE);
        }
    }
}

/// A normalized region in the frame's pixels.
fn to_pixels(r: &NormRect, w: u32, h: u32) -> Option<Rect> {
    let (fw, fh) = (w as f32, h as f32);
    clipped(
        r.x() as f32 * fw,
        r.y() as f32 * fh,
        r.width() as f32 * fw,
        r.height() as f32 * fh,
        w,
        h,
    )
}

/// A rectangle clipped to the frame; `None` if nothing of it is inside.
fn clipped(x: f32, y: f32, width: f32, height: f32, w: u32, h: u32) -> Option<Rect> {
    if ![x, y, width, height].iter().all(|v| v.is_finite()) {
        return None;
    }
    let x0 = x.round().clamp(0.0, w as f32) as u32;
    let y0 = y.round().clamp(0.0, h as f32) as u32;
    let x1 = (x + width).round().clamp(0.0, w as f32) as u32;
    let y1 = (y + height).round().clamp(0.0, h as f32) as u32;
    (x1 > x0 && y1 > y0).then(|| Rect::at(x0 as i32, y0 as i32).of_size(x1 - x0, y1 - y0))
}

/// A hollow rectangle [`THICK`] pixels wide, inside `rect`.
fn outline(img: &mut RgbImage, rect: Option<Rect>, colour: Rgb<u8>) {
    let Some(r) = rect else { return };
    for i in 0..THICK {
        let (rw, rh) = (
            r.width().saturating_sub(2 * i),
            r.height().saturating_sub(2 * i),
        );
        if rw == 0 || rh == 0 {
            break;
        }
        let inner = Rect::at(r.left() + i as i32, r.top() + i as i32).of_size(rw, rh);
        draw_hollow_rect_mut(img, inner, colour);
    }
}

/// The label on a filled tab above the box (inside it when the box touches the top).
fn label_above(img: &mut RgbImage, rect: Rect, text: &str, font: &FontArc, scale: PxScale) {
    let (tw, th) = text_size(scale, font, text);
    let tab_h = th + 4;
    let top = if rect.top() >= tab_h as i32 {
        rect.top() - tab_h as i32
    } else {
        rect.top()
    };
    draw_filled_rect_mut(
        img,
        Rect::at(rect.left(), top).of_size(tw + 6, tab_h),
        Palette::BOX,
    );
    draw_text_mut(
        img,
        Palette::LABEL,
        rect.left() + 3,
        top + 1,
        scale,
        font,
        text,
    );
}

/// A dark band across the top with the caption's lines.
fn caption(img: &mut RgbImage, lines: &[String], font: &FontArc, scale: PxScale) {
    let line_h = text_size(scale, font, "Ag").1.max(1) + 6;
    let band = (line_h * lines.len() as u32 + 4).min(img.height());
    draw_filled_rect_mut(
        img,
        Rect::at(0, 0).of_size(img.width(), band),
        Palette::CAPTION_BG,
    );
    for (i, line) in lines.iter().enumerate() {
        let y = 3 + (i as u32 * line_h) as i32;
        draw_text_mut(img, Palette::CAPTION, 4, y, scale, font, line);
    }
}

#[cfg(test)]
mod tests;
