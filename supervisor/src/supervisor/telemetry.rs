//! What oriond tells the box around it besides MQTT: systemd's one-line status
//! (`systemctl status oriond@room`: camera, model, rate, inference) and the metrics
//! textfile for node_exporter (`[metrics] textfile`). Both are made from the status.

use std::time::{Duration, Instant};

use orion_protocol::Status;

use super::Supervisor;

/// How often the systemd status line is brought up to date.
pub(super) const TICK: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct Telemetry {
    /// The line systemd last got (sent again only when it changes).
    systemd_status: String,
    metrics_written: Option<Instant>,
    /// The last failure to write the textfile (logged once per distinct error).
    metrics_error: Option<String>,
}

impl Supervisor {
    /// Every [`TICK`]: the status line if it changed, the textfile when due.
    pub(super) fn telemetry_tick(&mut self) {
        self.check_memory();
        let status = self.status();
        let line = summary(&status);
        if line != self.telemetry.systemd_status {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]);
            self.telemetry.systemd_status = line;
        }
        let Some(path) = self.config.metrics.textfile.clone() else {
            return;
        };
        let every = Duration::from_secs(self.config.metrics.interval_s.into());
        if self
            .telemetry
            .metrics_written
            .is_some_and(|t| t.elapsed() < every)
        {
            return;
        }
        self.telemetry.metrics_written = Some(Instant::now());
        let text = crate::metrics::render(&status);
        // Counters, not secrets: node_exporter (another user) must read them.
        match crate::atomic_file::replace(&path, text.as_bytes(), 0o644, false) {
            Ok(()) => self.telemetry.metrics_error = None,
            Err(e) => {
                let e = format!("{e:#}");
                if self.telemetry.metrics_error.as_ref() != Some(&e) {
                    tracing::warn!(path = %path.display(), error = e, "metrics textfile not written");
                    self.telemetry.metrics_error = Some(e);
                }
            }
        }
    }
}

/// One line for `systemctl status`: what an operator checks first.
pub fn summary(s: &Status) -> String {
    let camera = match &s.stream {
        Some(c) => format!("camera {} {:.1} fps", c.state.as_str(), c.fps),
        None => "camera not reporting".to_string(),
    };
    let detector = match &s.detector {
        Some(d) if s.desired.paused => format!("model {} paused", d.model),
        Some(d) => format!("model {} {:.1} inferences/s", d.model, d.inference_fps),
        None => format!("model {} not loaded yet", s.desired.model_size),
    };
    let occupancy = match s.occupancy.occupied {
        Some(true) => format!("occupied ({})", s.occupancy.count),
        Some(false) => "empty".to_string(),
        None => "occupancy unknown".to_string(),
    };
    format!(
        "{camera}; rate {} Hz; {detector}; {occupancy}",
        s.desired.rate_hz.hz()
    )
}
