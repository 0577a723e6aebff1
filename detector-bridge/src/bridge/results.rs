//! A worker's result turned into the detection message: boxes from tensor pixels back to
//! frame pixels (undo padding and scale, add the crop offset, clip), the metadata and
//! timings of the frame. The publish time and latency are orion-control's to stamp.

use std::time::{Duration, SystemTime};

use orion_protocol::{
    BBox, Detection, DetectionData, DetectionMessage, DetectionMetadata, ModelSize, NormRect,
    Timing,
};

use super::pipeline::Job;
use crate::autofocus::CBox;
use crate::worker::WorkerTiming;

/// Worker boxes (xyxy, tensor pixels) → detections in frame pixels, clipped to the frame.
pub fn map_boxes(job: &Job, boxes: &[f32], scores: &[f32], classes: &[String]) -> Vec<Detection> {
    let (fw, fh) = frame_size(job);
    boxes
        .chunks_exact(4)
        .zip(scores)
        .zip(classes)
        .filter_map(|((b, &score), class)| {
            let (x1, y1) = job.lb.to_frame(f64::from(b[0]), f64::from(b[1]));
            let (x2, y2) = job.lb.to_frame(f64::from(b[2]), f64::from(b[3]));
            let (x1, y1, x2, y2) = (
                x1.clamp(0.0, fw),
                y1.clamp(0.0, fh),
                x2.clamp(0.0, fw),
                y2.clamp(0.0, fh),
            );
            (x2 > x1 && y2 > y1).then(|| Detection {
                bbox: BBox {
                    x: x1 as f32,
                    y: y1 as f32,
                    width: (x2 - x1) as f32,
                    height: (y2 - y1) as f32,
                },
                confidence: score,
                class: class.clone(),
            })
        })
        .collect()
}

/// Detections as boxes normalized to the frame, for auto-focus.
pub fn normalized(job: &Job, detections: &[Detection]) -> Vec<CBox> {
    let (fw, fh) = frame_size(job);
    detections
        .iter()
        .map(|d| {
            let b = d.bbox;
            CBox::from_corners(
                f64::from(b.x) / fw,
                f64::from(b.y) / fh,
                f64::from(b.x + b.width) / fw,
                f64::from(b.y + b.height) / fh,
            )
        })
        .collect()
}

fn frame_size(job: &Job) -> (f64, f64) {
    (
        f64::from(job.meta.geometry.width()),
        f64::from(job.meta.geometry.height()),
    )
}

/// Who the message is about.
pub struct Origin<'a> {
    pub instance_id: &'a str,
    pub room_id: &'a str,
}

/// How the worker inferred a frame.
pub struct Inference<'a> {
    pub imgsz: u32,
    pub model_size: ModelSize,
    pub timing: &'a WorkerTiming,
    /// From the worker starting on the frame to its result arriving here.
    pub worker_ms: f64,
}

/// The detection message of `job` (publish time and latency left to orion-control).
pub fn message(
    origin: &Origin<'_>,
    job: &Job,
    detections: Vec<Detection>,
    inference: &Inference<'_>,
    suggested_roi: Option<NormRect>,
) -> DetectionMessage {
    let (t, worker_ms) = (inference.timing, inference.worker_ms);
    let captured = SystemTime::UNIX_EPOCH + Duration::from_nanos(job.meta.realtime_ns);
    DetectionMessage {
        kind: DetectionMessage::KIND.into(),
        instance_id: origin.instance_id.to_string(),
        room_id: origin.room_id.to_string(),
        frame_seq: job.meta.seq,
        capture_ts: humantime::format_rfc3339_millis(captured).to_string(),
        publish_ts: None,
        latency_ms: None,
        data: DetectionData {
            count: detections.len(),
            detections,
            metadata: DetectionMetadata {
                frame_width: job.meta.geometry.width(),
                frame_height: job.meta.geometry.height(),
                model_size: inference.model_size,
                imgsz: inference.imgsz,
                roi_source: job.roi_source,
                region: job.region,
                capture_epoch: job.meta.epoch,
            },
        },
        timing: Timing {
            preprocess_ms: job.prep_ms + t.preprocess_ms,
            inference_ms: t.inference_ms,
            // What the worker's own timings do not cover (the pipe, decoding) is post.
            postprocess_ms: t.postprocess_ms
                + (worker_ms - t.preprocess_ms - t.inference_ms - t.postprocess_ms).max(0.0),
            total_ms: job.started.elapsed().as_secs_f64() * 1e3,
        },
        suggested_roi,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::letterbox::{Letterbox, PixelRect};
    use orion_protocol::RoiSource;
    use orion_ring::{FrameGeometry, FrameMeta, PixelFormat};
    use std::time::Instant;

    /// A job for a 640×360 frame whose `crop` was letterboxed into a 320 tensor.
    fn job(crop: PixelRect) -> Job {
        let geometry = FrameGeometry::new(640, 360, 640 * 3, PixelFormat::Rgb8).unwrap();
        Job {
            id: 1,
            meta: FrameMeta {
                seq: 7,
                epoch: 1,
                realtime_ns: 0,
                monotonic_ns: 0,
                geometry,
                payload_len: 640 * 360 * 3,
            },
            lb: Letterbox::new(crop, 320),
            region: NormRect::FULL,
            roi_source: RoiSource::Full,
            started: Instant::now(),
            prep_ms: 0.0,
            sent: None,
        }
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 0.01
    }

    #[test]
    fn boxes_go_back_to_frame_pixels_through_padding_scale_and_crop() {
        // The whole frame: 640×360 → 320×180, padded 70 rows above and below.
        let full = job(PixelRect {
            x: 0,
            y: 0,
            width: 640,
            height: 360,
        });
        let d = map_boxes(
            &full,
            &[10.0, 80.0, 50.0, 170.0],
            &[0.9],
            &["person".into()],
        );
        assert_eq!(d.len(), 1);
        let b = d[0].bbox;
        assert!(close(b.x, 20.0) && close(b.y, 20.0), "{b:?}");
        assert!(close(b.width, 80.0) && close(b.height, 180.0), "{b:?}");
        assert_eq!(d[0].class, "person");
        assert!(close(d[0].confidence, 0.9));
        // A crop at (100, 50), 160×160 → 320×320 (scale 2, no padding): offset added.
        let crop = job(PixelRect {
            x: 100,
            y: 50,
            width: 160,
            height: 160,
        });
        let d = map_boxes(&crop, &[0.0, 0.0, 320.0, 160.0], &[0.5], &["person".into()]);
        let b = d[0].bbox;
        assert!(close(b.x, 100.0) && close(b.y, 50.0), "{b:?}");
        assert!(close(b.width, 160.0) && close(b.height, 80.0), "{b:?}");
    }

    #[test]
    fn boxes_are_clipped_to_the_frame_and_empty_ones_dropped() {
        let full = job(PixelRect {
            x: 0,
            y: 0,
            width: 640,
            height: 360,
        });
        let boxes = [
            // Reaches past every edge (into the padding and beyond the tensor).
            -20.0, 40.0, 400.0, 300.0, //
            // Only in the padding above the picture: nothing left after clipping.
            10.0, 0.0, 50.0, 60.0, //
            // Inverted.
            50.0, 100.0, 40.0, 120.0,
        ];
        let classes = ["person".to_string(), "person".into(), "person".into()];
        let d = map_boxes(&full, &boxes, &[0.9, 0.8, 0.7], &classes);
        assert_eq!(d.len(), 1, "{d:?}");
        let b = d[0].bbox;
        assert!(close(b.x, 0.0) && close(b.y, 0.0), "{b:?}");
        assert!(
            close(b.x + b.width, 640.0) && close(b.y + b.height, 360.0),
            "{b:?}"
        );
        // Normalized for auto-focus: the whole frame.
        let n = normalized(&full, &d);
        assert_eq!(n.len(), 1);
    }
}
