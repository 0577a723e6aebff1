//! Events per second over a sliding window (frames captured, results inferred): the one
//! FPS measure every status report uses.

use std::collections::VecDeque;
use std::time::Duration;

pub struct RateWindow {
    window_ns: u64,
    /// CLOCK_MONOTONIC ns of the events still inside the window.
    times: VecDeque<u64>,
}

impl RateWindow {
    pub fn new(window: Duration) -> Self {
        Self {
            window_ns: window.as_nanos().min(u128::from(u64::MAX)) as u64,
            times: VecDeque::new(),
        }
    }

    /// One event at `now_ns`.
    pub fn record(&mut self, now_ns: u64) {
        self.times.push_back(now_ns);
        self.forget(now_ns);
    }

    /// Events per second at `now_ns`: the events inside the window, spaced as measured;
    /// 0 with fewer than two.
    pub fn rate(&mut self, now_ns: u64) -> f64 {
        self.forget(now_ns);
        match (self.times.front(), self.times.back()) {
            (Some(&first), Some(&last)) if self.times.len() >= 2 && last > first => {
                (self.times.len() - 1) as f64 * 1e9 / (last - first) as f64
            }
            _ => 0.0,
        }
    }

    fn forget(&mut self, now_ns: u64) {
        while self
            .times
            .front()
            .is_some_and(|&t| now_ns.saturating_sub(t) > self.window_ns)
        {
            self.times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_window() {
        let mut w = RateWindow::new(Duration::from_secs(5));
        assert_eq!(w.rate(0), 0.0);
        for i in 0..=10u64 {
            w.record(i * 200_000_000); // 5 per second for 2 s
        }
        assert!((w.rate(2_000_000_000) - 5.0).abs() < 1e-9);
        // 10 s later everything has left the window.
        assert_eq!(w.rate(12_000_000_000), 0.0);
    }
}
