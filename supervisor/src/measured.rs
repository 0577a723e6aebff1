//! What this box measured of itself, for an operator choosing a model or a rate
//! (`orionctl model` and `orionctl rate` without an argument): each model size's inference
//! time per input size, as the detector reported it for real frames, and the gap in
//! results across the last capture switch (a rate change or a capture restart). Kept in
//! memory: a restart of oriond measures again.

use std::collections::BTreeMap;
use std::time::Instant;

use orion_protocol::ModelSize;
use orion_protocol::detection::DetectionMessage;

/// Weight of a new sample in the moving average: the last ~10 results count.
const ALPHA: f64 = 0.1;

#[derive(Debug, Default)]
pub struct Measured {
    inference: BTreeMap<(ModelSize, u32), Average>,
    /// When the newest result arrived, and its frame's capture epoch.
    last_result: Option<(Instant, u64)>,
    /// The gap between results across the newest capture switch.
    switch_gap_ms: Option<f64>,
    /// The gap between results before that switch (the steady interval then).
    steady_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
struct Average {
    ms: f64,
    samples: u64,
}

/// The report in the status (`measured`).
pub use orion_protocol::status::Measured as Report;

impl Measured {
    /// One result, as it arrived at `now`.
    pub fn observe(&mut self, d: &DetectionMessage, now: Instant) {
        let meta = &d.data.metadata;
        let key = (meta.model_size, meta.imgsz);
        let ms = d.timing.inference_ms;
        if ms.is_finite() && ms >= 0.0 {
            let avg = self
                .inference
                .entry(key)
                .or_insert(Average { ms, samples: 0 });
            avg.ms += ALPHA * (ms - avg.ms);
            avg.samples += 1;
        }
        if let Some((at, epoch)) = self.last_result {
            let gap = now.duration_since(at).as_secs_f64() * 1e3;
            if meta.capture_epoch != epoch && epoch != 0 {
                self.switch_gap_ms = Some(gap);
            } else if meta.capture_epoch == epoch {
                self.steady_ms = Some(gap);
            }
        }
        self.last_result = Some((now, meta.capture_epoch));
    }

    pub fn report(&self) -> Report {
        let mut inference_ms: BTreeMap<String, BTreeMap<u32, f64>> = BTreeMap::new();
        for ((size, imgsz), avg) in &self.inference {
            inference_ms
                .entry(size.to_string())
                .or_default()
                .insert(*imgsz, (avg.ms * 10.0).round() / 10.0);
        }
        Report {
            inference_ms,
            capture_switch_gap_ms: self.switch_gap_ms.map(|g| g.round()),
            steady_interval_ms: self.switch_gap_ms.and(self.steady_ms).map(|g| g.round()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    fn result(size: &str, imgsz: u32, inference_ms: f64, epoch: u64) -> DetectionMessage {
        serde_json::from_value(serde_json::json!({
            "type": "person_detection", "instance_id": "r", "room_id": "r", "frame_seq": 1,
            "capture_ts": "2026-12-05T09:15:26.831Z",
            "data": {"detections": [], "count": 0, "metadata": {
                "frame_width": 640, "frame_height": 360, "model_size": size, "imgsz": imgsz,
                "roi_source": "full", "region": {"x": 0.0, "y": 0.0, "width": 1.0, "height": 1.0},
                "capture_epoch": epoch}},
            "timing": {"preprocess_ms": 1.0, "inference_ms": inference_ms, "postprocess_ms": 1.0, "total_ms": 3.0},
            "suggested_roi": null
        }))
        .unwrap()
    }

    #[test]
    fn inference_times_per_size_and_the_gap_at_a_capture_switch() {
        let mut m = Measured::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        m.observe(&result("n", 640, 50.0, 1), at(0));
        m.observe(&result("n", 640, 60.0, 1), at(200));
        m.observe(&result("n", 320, 12.0, 1), at(400));
        assert_eq!(m.report().capture_switch_gap_ms, None, "no switch yet");
        m.observe(&result("m", 640, 150.0, 2), at(750));
        m.observe(&result("m", 640, 150.0, 2), at(950));
        let r = m.report();
        assert_eq!(r.inference_ms["n"][&640], 51.0);
        assert_eq!(r.inference_ms["n"][&320], 12.0);
        assert_eq!(r.inference_ms["m"][&640], 150.0);
        assert_eq!(r.capture_switch_gap_ms, Some(350.0));
        assert_eq!(r.steady_interval_ms, Some(200.0));
        // A bad sample (NaN) changes no average.
        let mut bad = result("m", 640, 0.0, 2);
        bad.timing.inference_ms = f64::NAN;
        m.observe(&bad, at(1150));
        assert_eq!(m.report().inference_ms["m"][&640], 150.0);
    }
}
