//! Noticing that another client uses our client id: the broker then gives that client our
//! session and closes our connection, we connect again and take it back, and the two evict
//! each other for ever (two boxes left at the same `instance_id`). MQTT 5 says so in the
//! DISCONNECT (reason 0x8E, session taken over); MQTT 3.1.1 only closes the connection, so
//! there it is inferred from the broker closing established connections again and again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Under 3.1.1: this many closes by the broker within [`WINDOW`] make a takeover likely.
const CLOSES: usize = 3;
const WINDOW: Duration = Duration::from_secs(120);

#[derive(Default)]
pub(super) struct Takeovers {
    closes: VecDeque<Instant>,
}

impl Takeovers {
    /// A connection that was up ended; `Some(why)` when another client has likely taken
    /// the session.
    pub(super) fn ended(
        &mut self,
        taken_over: bool,
        closed_by_broker: bool,
        now: Instant,
    ) -> Option<&'static str> {
        if taken_over {
            return Some("the broker gave this client id's session to another client");
        }
        if !closed_by_broker {
            return None;
        }
        self.closes.push_back(now);
        while self
            .closes
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            self.closes.pop_front();
        }
        if self.closes.len() >= CLOSES {
            self.closes.clear();
            return Some(
                "the broker closed this connection 3 times within 2 minutes, as it does when \
                 another client connects with the same client id",
            );
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt5_says_so_and_311_is_inferred_from_repeated_closes() {
        let mut t = Takeovers::default();
        let t0 = Instant::now();
        assert!(t.ended(true, true, t0).is_some());
        assert!(
            t.ended(false, false, t0).is_none(),
            "a network error is not one"
        );
        assert!(t.ended(false, true, t0).is_none());
        assert!(t.ended(false, true, t0 + Duration::from_secs(10)).is_none());
        assert!(t.ended(false, true, t0 + Duration::from_secs(20)).is_some());
        // Spread out: a flaky broker, not a twin.
        for i in 0..5u64 {
            let at = t0 + Duration::from_secs(200 + i * 100);
            assert!(t.ended(false, true, at).is_none());
        }
    }
}
