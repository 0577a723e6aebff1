//! The memory gate carried out (`crate::memory` decides): every telemetry tick one sample;
//! when the verdict changes, the detector hears it (`Message::StandIns`: it drops or may
//! start its spare worker), the standby detector is dropped (the standby check starts
//! none while shed), and the status says so (`stand_ins`).

use std::time::{Instant, SystemTime};

use orion_protocol::ProcessName;
use orion_protocol::message::Message;
use orion_protocol::status::StandInsStatus;

use super::Supervisor;
use crate::memory::{Gate, Sample, Shortage};

#[derive(Default)]
pub(super) struct StandIns {
    gate: Gate,
    last: Option<Sample>,
    since: Option<SystemTime>,
    sheds: u64,
}

impl StandIns {
    /// Why the stand-ins are shed, as the standby's `last_dropped` says it.
    pub(super) fn shed_note(&self) -> Option<&'static str> {
        self.gate.shed().map(|why| match why {
            Shortage::Memory => "shed: memory",
            Shortage::Pressure => "shed: memory pressure",
        })
    }

    pub(super) fn status(&self) -> StandInsStatus {
        StandInsStatus {
            shed: self.gate.shed().map(|w| w.as_str().to_string()),
            since: self
                .since
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            available_mb: self.last.map(|s| s.available_mb),
            pressure_pct: self.last.and_then(|s| s.pressure_pct),
            sheds: self.sheds,
        }
    }
}

impl Supervisor {
    /// Every telemetry tick: one sample, and the acts when the verdict changed.
    pub(super) fn check_memory(&mut self) {
        let Some(sample) = Sample::read() else {
            return;
        };
        let s = &mut self.stand_ins;
        s.last = Some(sample);
        if !s.gate.judge(&sample, &self.config.memory, Instant::now()) {
            return;
        }
        s.since = Some(SystemTime::now());
        match s.gate.shed() {
            Some(why) => {
                s.sheds += 1;
                tracing::warn!(
                    why = why.as_str(),
                    available_mb = sample.available_mb,
                    pressure_pct = sample.pressure_pct,
                    "stand-ins shed: the box is short of memory"
                );
            }
            None => tracing::info!(
                available_mb = sample.available_mb,
                "memory is plentiful again: the stand-ins may come back"
            ),
        }
        self.tell_detector_stand_ins();
        self.check_standby();
        self.push_status();
    }

    /// The gate's verdict to the detector (on every change; when shed, also when a
    /// detector becomes ready).
    pub(super) fn tell_detector_stand_ins(&mut self) {
        let allowed = self.stand_ins.shed_note().is_none();
        if let Some(conn) = self.registry.conn_of(ProcessName::Detector) {
            self.registry.send(conn, &Message::StandIns { allowed });
        }
    }
}
