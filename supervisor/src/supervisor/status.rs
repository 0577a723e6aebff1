//! The status oriond reports (`get_status`, `orionctl status`, and through orion-control the
//! retained MQTT status): processes, the stream and detector reports, the desired state.

use std::collections::BTreeMap;

use orion_protocol::ProcessName;
use orion_protocol::status::{OriondStatus, Status, Versions};

use super::Supervisor;
use crate::child::Report;

impl Supervisor {
    /// The model sizes present in `detector.model_dir` and their input sizes (for an
    /// operator choosing one; read on request, not with every status).
    pub(super) fn models_on_disk(&self) -> BTreeMap<String, Vec<u32>> {
        let dir = &self.config.detector.model_dir;
        let mut sizes = BTreeMap::new();
        for size in orion_protocol::ModelSize::ALL {
            if let Ok(found) = orion_config::models::discover(dir, size) {
                let inputs: Vec<u32> = [Some(640), found.path_320.as_ref().map(|_| 320)]
                    .into_iter()
                    .flatten()
                    .collect();
                sizes.insert(size.to_string(), inputs);
            }
        }
        sizes
    }

    pub(super) fn status(&self) -> Status {
        let processes = self
            .children
            .values()
            .map(|c| c.status(self.registry.serving(c.name)))
            .collect();
        let last = |n| self.children.get(&n).and_then(|c| c.last_status.as_ref());
        Status {
            instance_id: self.config.instance_id.clone(),
            room_id: self.config.room_id.clone(),
            oriond: OriondStatus {
                pid: std::process::id(),
                uptime_s: self.started.elapsed().as_secs_f64(),
                version: env!("CARGO_PKG_VERSION").into(),
                connections: self.registry.connections(),
                authority: self.refusals.report(),
                commands_remembered: self.requests.seen.len(),
                commands_repeated_not_applied: self.requests.repeats_recognized,
            },
            processes,
            stream: last(ProcessName::Capture)
                .and_then(Report::capture)
                .cloned(),
            capture_handover: self.last_handover.clone(),
            occupancy: self.occupancy_now().clone(),
            zones: self.zones.current(),
            snapshots: self.snapshot_status(),
            detector: last(ProcessName::Detector)
                .and_then(Report::detector)
                .cloned(),
            detector_standby: self.standby_status(),
            stand_ins: self.stand_ins.status(),
            desired: self.desired.clone(),
            measured: self.measured.report(),
            versions: Versions {
                orion: env!("CARGO_PKG_VERSION").into(),
            },
            models_on_disk: None,
            mqtt: last(ProcessName::Control)
                .and_then(Report::control)
                .cloned(),
            timestamp: None,
            shutdown: None,
        }
    }
}
