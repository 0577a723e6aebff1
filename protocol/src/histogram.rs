//! A latency histogram with fixed bounds, kept by the detector (capture → result) and shown
//! in its status, so the metrics (`orionctl metrics`, the textfile) can give percentiles
//! over time rather than the last value only.

use serde::{Deserialize, Serialize};

/// Upper bounds of the buckets, ms: around the 2 Hz small-model room (tens of ms) up to a
/// detector that fell behind (seconds). The last bucket (+Inf) is implied.
pub const LATENCY_BOUNDS_MS: [f64; 12] = [
    10.0, 25.0, 50.0, 75.0, 100.0, 150.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// Observations since the detector started: per bucket (not cumulative), then their sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// `counts[i]`: observations ≤ `LATENCY_BOUNDS_MS[i]` and above the bound before; the
    /// last entry: above every bound.
    pub counts: Vec<u64>,
    pub sum_ms: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; LATENCY_BOUNDS_MS.len() + 1],
            sum_ms: 0.0,
        }
    }
}

impl LatencyHistogram {
    pub fn observe(&mut self, ms: f64) {
        let ms = if ms.is_finite() { ms.max(0.0) } else { 0.0 };
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        if let Some(c) = self.counts.get_mut(bucket) {
            *c += 1;
        }
        self.sum_ms += ms;
    }

    /// Every observation counted in [`Self::per_bucket`] (so the `+Inf` bucket and the
    /// count agree, as the exposition formats require).
    pub fn count(&self) -> u64 {
        self.per_bucket().iter().map(|(_, n)| n).sum()
    }

    /// `(upper bound, observations in that bucket)`, the last bound +Inf; a report with
    /// fewer buckets (another version) counts its missing ones as empty.
    pub fn per_bucket(&self) -> Vec<(f64, u64)> {
        LATENCY_BOUNDS_MS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, bound)| (bound, self.counts.get(i).copied().unwrap_or(0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_fall_into_the_first_bucket_that_holds_them() {
        let mut h = LatencyHistogram::default();
        for ms in [5.0, 10.0, 10.1, 61.0, 99_999.0, f64::NAN] {
            h.observe(ms);
        }
        assert_eq!(h.count(), 6);
        let p = h.per_bucket();
        assert_eq!(p.len(), LATENCY_BOUNDS_MS.len() + 1);
        assert_eq!(p[0], (10.0, 3), "5, 10 and NaN (as 0)");
        assert_eq!(p[1], (25.0, 1));
        assert_eq!(p[3], (75.0, 1));
        assert_eq!(p.last().copied(), Some((f64::INFINITY, 1)));
        assert!((h.sum_ms - (5.0 + 10.0 + 10.1 + 61.0 + 99_999.0)).abs() < 1e-6);
    }
}
