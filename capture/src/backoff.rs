//! Reconnect delays: 0.5 s doubling to 30 s, back to 0.5 s after 30 s of healthy running.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    healthy_reset: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(
            Duration::from_millis(500),
            Duration::from_secs(30),
            Duration::from_secs(30),
        )
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, healthy_reset: Duration) -> Self {
        Self {
            initial,
            max,
            healthy_reset,
            next: initial,
        }
    }

    /// The delay before the next attempt, given how long the last attempt delivered frames.
    pub fn after_run(&mut self, healthy_for: Duration) -> Duration {
        if healthy_for >= self.healthy_reset {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets_after_healthy_running() {
        let mut b = Backoff::default();
        let zero = Duration::ZERO;
        let delays: Vec<u64> = (0..9)
            .map(|_| b.after_run(zero).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        // 29 s of frames is not enough to reset; 30 s is.
        assert_eq!(b.after_run(Duration::from_secs(29)).as_millis(), 30000);
        assert_eq!(b.after_run(Duration::from_secs(30)).as_millis(), 500);
        assert_eq!(b.after_run(zero).as_millis(), 1000);
    }
}
