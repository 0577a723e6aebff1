//! The one backoff of Orion: a delay that doubles from `initial` to `max` with each failure
//! in a row and starts over after a healthy run. Used for the capture's reconnects, the
//! detector's worker restarts, orion-control's broker reconnects and oriond's failed starts.

use std::time::Duration;

/// The delay before attempt `failures + 1` after `failures` failures in a row:
/// `initial * 2^failures`, at most `max`.
pub fn delay(initial: Duration, max: Duration, failures: u32) -> Duration {
    initial
        .checked_mul(1u32.checked_shl(failures).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max)
}

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    healthy_reset: Duration,
    next: Duration,
}

/// The capture's reconnects: 0.5 s doubling to 30 s, back to 0.5 s after 30 s of frames.
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

    /// The delay before the next attempt, given how long the last attempt was healthy.
    pub fn after_run(&mut self, healthy_for: Duration) -> Duration {
        if healthy_for >= self.healthy_reset {
            self.reset();
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// The next delay without counting a failure.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Starts over at `initial` (a healthy attempt).
    pub fn reset(&mut self) {
        self.next = self.initial;
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

    #[test]
    fn the_delay_of_the_nth_failure() {
        let (i, m) = (Duration::from_millis(500), Duration::from_secs(30));
        let d: Vec<u128> = [0, 1, 2, 5, 6, 40]
            .iter()
            .map(|&n| delay(i, m, n).as_millis())
            .collect();
        assert_eq!(d, [500, 1000, 2000, 16000, 30000, 30000]);
    }
}
