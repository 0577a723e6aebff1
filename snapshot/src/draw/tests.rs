use image::Rgb;
use orion_protocol::snapshot::ImageFormat;
use orion_protocol::{BBox, Detection, ModelSize, RoiSource};

use super::*;
use crate::encode::encode;

/// Debian's DejaVu (fonts-dejavu-core, installed by scripts/install-deps.sh and a
/// dependency of the package).
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn font() -> FontArc {
    let bytes =
        std::fs::read(FONT).unwrap_or_else(|e| panic!("{FONT}: {e} (install fonts-dejavu-core)"));
    FontArc::try_from_vec(bytes).unwrap()
}

fn overlay() -> Overlay {
    Overlay {
        format: ImageFormat::Png,
        quality: 80,
        max_bytes: 1 << 20,
        detections: vec![Detection {
            bbox: BBox {
                x: 100.0,
                y: 150.0,
                width: 80.0,
                height: 120.0,
            },
            confidence: 0.87,
            class: "person".into(),
        }],
        detections_frame_seq: Some(41),
        detections_captured_unix_ns: Some(1_795_000_000_000_000_000 - 100_000_000),
        attention_rois: vec![NormRect::new(0.5, 0.5, 0.25, 0.25).unwrap()],
        focus_region: Some(NormRect::new(0.05, 0.3, 0.9, 0.65).unwrap()),
        zones: Vec::new(),
        model: Some(ModelSize::N),
        roi_source: Some(RoiSource::AutoFocus),
        paused: false,
        room: "Room 1".into(),
    }
}

fn taken() -> Taken {
    Taken {
        frame_seq: 42,
        width: 640,
        height: 360,
        captured_unix_ns: 1_795_000_000_000_000_000,
        captioned: true,
        boxes_drawn: false,
    }
}

fn grey() -> RgbImage {
    RgbImage::from_pixel(640, 360, Rgb([90, 90, 90]))
}

#[test]
fn boxes_regions_and_focus_are_drawn_in_their_colours() {
    let mut img = grey();
    assert!(draw(&mut img, &overlay(), &taken(), Some(&font())));
    // The box's left and right edges at mid-height, two pixels thick; inside untouched.
    for x in [100, 101, 178, 179] {
        assert_eq!(*img.get_pixel(x, 210), Palette::BOX, "x {x}");
    }
    assert_eq!(*img.get_pixel(140, 210), Rgb([90, 90, 90]));
    // The ROI at (320, 180) 160x90; the focus region at (32, 108) 576x234.
    assert_eq!(*img.get_pixel(320, 220), Palette::ROI);
    assert_eq!(*img.get_pixel(479, 220), Palette::ROI);
    assert_eq!(*img.get_pixel(32, 200), Palette::FOCUS);
    // The caption band is dark with light text in it.
    let band: Vec<_> = (0..640).map(|x| *img.get_pixel(x, 10)).collect();
    assert!(band.iter().any(|p| p.0[0] > 200), "caption text");
    assert_eq!(*img.get_pixel(639, 2), Rgb([0, 0, 0]));
    // The label tab sits above the box, in the box's colour.
    assert_eq!(*img.get_pixel(101, 145), Palette::BOX);
}

#[test]
fn zones_are_outlined_in_their_colour() {
    let mut o = overlay();
    // A triangle: (64, 36), (320, 36), (64, 324) in pixels.
    o.zones = vec![
        orion_protocol::Zone::new(
            orion_protocol::ZoneName::new("bed").unwrap(),
            vec![[0.1, 0.1], [0.5, 0.1], [0.1, 0.9]],
        )
        .unwrap(),
    ];
    let mut img = grey();
    draw(&mut img, &o, &taken(), None);
    assert_eq!(*img.get_pixel(200, 36), Palette::ZONE, "top edge");
    assert_eq!(*img.get_pixel(64, 250), Palette::ZONE, "left edge");
    // The hypotenuse at mid-height: x = 64 + (320 - 64) / 2 = 192, y = 180.
    let near: Vec<_> = (188..=196).map(|x| *img.get_pixel(x, 180)).collect();
    assert!(near.contains(&Palette::ZONE), "diagonal edge: {near:?}");
    assert_eq!(
        *img.get_pixel(90, 60),
        Rgb([90, 90, 90]),
        "inside untouched"
    );
}

#[test]
fn without_a_font_the_drawing_is_there_and_no_band() {
    let mut img = grey();
    draw(&mut img, &overlay(), &taken(), None);
    assert_eq!(*img.get_pixel(100, 210), Palette::BOX);
    assert_eq!(*img.get_pixel(639, 2), Rgb([90, 90, 90]));
}

#[test]
fn boxes_outside_or_broken_are_clipped_or_skipped() {
    let mut o = overlay();
    o.detections[0].bbox = BBox {
        x: 600.0,
        y: 300.0,
        width: 500.0,
        height: f32::NAN,
    };
    let mut img = grey();
    draw(&mut img, &o, &taken(), None);
    o.detections[0].bbox = BBox {
        x: 600.0,
        y: 300.0,
        width: 500.0,
        height: 500.0,
    };
    draw(&mut img, &o, &taken(), None);
    // Clipped to the frame: the left edge is there, the rest runs off the image.
    assert_eq!(*img.get_pixel(600, 330), Palette::BOX);
}

#[test]
fn the_caption_says_time_frame_model_region_and_paused() {
    let lines = caption_lines(&overlay(), &taken());
    assert!(lines[0].starts_with("Room 1  2026-"), "{lines:?}");
    assert!(lines[0].ends_with("frame 42"), "{lines:?}");
    assert_eq!(
        lines[1],
        "model n  region auto_focus  1 person(s), boxes of frame 41"
    );
    let mut old = overlay();
    old.detections_captured_unix_ns = Some(taken().captured_unix_ns - STALE_BOXES_NS - 1);
    assert_eq!(
        caption_lines(&old, &taken())[1],
        "model n  last boxes (frame 41) too old to draw"
    );
    let mut img = grey();
    assert!(
        !draw(&mut img, &old, &taken(), None),
        "stale boxes are not drawn"
    );
    assert_eq!(*img.get_pixel(100, 210), Rgb([90, 90, 90]));
    let mut paused = overlay();
    paused.paused = true;
    paused.detections.clear();
    assert_eq!(
        caption_lines(&paused, &taken())[1],
        "detection paused: frame only, no boxes"
    );
}

#[test]
fn png_is_lossless_and_jpeg_decodes_at_the_frame_size() {
    let mut img = grey();
    draw(&mut img, &overlay(), &taken(), Some(&font()));
    let mut o = overlay();
    let png = encode(&img, &o).unwrap();
    let back = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8();
    assert_eq!(back, img);
    o.format = ImageFormat::Jpeg;
    let jpeg = encode(&img, &o).unwrap();
    let back = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((back.width(), back.height()), (640, 360));
    o.quality = 10;
    let small = encode(&img, &o).unwrap();
    assert!(
        small.len() < jpeg.len(),
        "{} vs {}",
        small.len(),
        jpeg.len()
    );
    o.max_bytes = small.len() - 1;
    let e = encode(&img, &o).unwrap_err().to_string();
    assert!(
        e.contains("over the") && e.contains("lower its quality"),
        "{e}"
    );
}
