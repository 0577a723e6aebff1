//! Status reports: `{"type":"capture_status",...}` to oriond (or a JSON line on stdout when
//! run by hand, see `orion_process::channel`) on every state change and every interval,
//! plus a structured log line on state changes.

use std::time::{Duration, Instant};

use orion_protocol::{CaptureStatus, StreamState};

pub struct Reporter {
    status: CaptureStatus,
    interval: Duration,
    last_report: Option<Instant>,
    /// Say ready after the next report (a capture that writes the ring from its start; a
    /// successor says it when it takes the ring over instead, see `cli::take_over`).
    ready_due: bool,
}

impl Reporter {
    /// `writes`: the process writes the ring from its start (not a successor in standby).
    pub fn new(initial: CaptureStatus, interval: Duration, writes: bool) -> Self {
        Self {
            status: initial,
            interval,
            last_report: None,
            ready_due: writes,
        }
    }

    pub fn status(&self) -> &CaptureStatus {
        &self.status
    }

    /// Applies `update`; reports at once if the state changed, else when the interval is due.
    pub fn update(&mut self, update: impl FnOnce(&mut CaptureStatus)) {
        let before = self.status.state;
        update(&mut self.status);
        let changed = self.status.state != before;
        if changed {
            let s = &self.status;
            // A camera that stops delivering is a warning in the journal; the rest is news.
            let trouble = matches!(s.state, StreamState::Stalled | StreamState::Reconnecting);
            if trouble {
                tracing::warn!(
                    state = ?s.state,
                    from = ?before,
                    frames = s.frames,
                    reconnects = s.reconnects,
                    retry_in_ms = s.retry_in_ms,
                    error = s.last_error.as_deref(),
                    "stream state"
                );
            } else {
                tracing::info!(
                    state = ?s.state,
                    from = ?before,
                    frames = s.frames,
                    reconnects = s.reconnects,
                    "stream state"
                );
            }
        }
        if changed
            || self
                .last_report
                .is_none_or(|t| t.elapsed() >= self.interval)
        {
            self.emit();
        }
    }

    pub fn set_state(&mut self, state: StreamState) {
        self.update(|s| s.state = state);
    }

    fn emit(&mut self) {
        self.last_report = Some(Instant::now());
        orion_process::channel::send(&orion_protocol::Message::CaptureStatus(self.status.clone()));
        if std::mem::take(&mut self.ready_due) {
            orion_process::channel::send(&orion_protocol::Message::Ready);
        }
    }
}
