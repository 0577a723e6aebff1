//! The status oriond reports (`get_status`, `orionctl status`, and through orion-control the
//! retained MQTT status): processes, the stream and detector reports, the desired state.

use orion_protocol::ProcessName;
use serde_json::{Value, json};

use super::Supervisor;
use crate::child::Child;

impl Supervisor {
    /// The model sizes present in `detector.model_dir` and their input sizes (for an
    /// operator choosing one; read on request, not with every status).
    pub(super) fn models_on_disk(&self) -> Value {
        let dir = &self.config.detector.model_dir;
        let mut sizes = serde_json::Map::new();
        for size in orion_protocol::ModelSize::ALL {
            if let Ok(found) = orion_config::models::discover(dir, size) {
                let inputs: Vec<u32> = [Some(640), found.path_320.as_ref().map(|_| 320)]
                    .into_iter()
                    .flatten()
                    .collect();
                sizes.insert(size.to_string(), json!(inputs));
            }
        }
        Value::Object(sizes)
    }

    pub(super) fn status(&self) -> Value {
        let processes: Vec<Value> = self.children.values().map(Child::status).collect();
        let last = |n| self.children.get(&n).and_then(|c| c.last_status.clone());
        json!({
            "instance_id": self.config.instance_id,
            "room_id": self.config.room_id,
            "oriond": {
                "pid": std::process::id(),
                "uptime_s": self.started.elapsed().as_secs_f64(),
                "version": env!("CARGO_PKG_VERSION"),
                "connections": self.peers.len(),
                "authority": self.refusals.report(),
                "commands_remembered": self.requests.seen.len(),
                "commands_repeated_not_applied": self.requests.repeats_recognized,
            },
            "processes": processes,
            "stream": last(ProcessName::Capture),
            "capture_handover": self.last_handover,
            "occupancy": self.occupancy_now(),
            "snapshots": self.snapshot_status(),
            "detector": last(ProcessName::Detector),
            "detector_standby": self.standby_status(),
            "desired": self.desired,
            "measured": self.measured.report(),
            "versions": {"orion": env!("CARGO_PKG_VERSION")},
        })
    }
}
