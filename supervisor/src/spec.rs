//! What starting each child runs: program, arguments, environment and files, from the
//! config and the desired state. Pure: nothing is started here (see `spawn`).

use std::path::{Path, PathBuf};

use crate::desired::Desired;
use orion_config::Config;
use orion_process::ring_arg::RING_FD;
use orion_protocol::ProcessName;
use orion_ring::Access;

/// What starting a child runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Environment: settings that may hold secrets (the camera URI's password) go here,
    /// not into the arguments every local user can read.
    pub env: Vec<(String, String)>,
    /// The frame ring, handed down at `orion_process::ring_arg::RING_FD` with this access.
    pub ring: Option<Access>,
    /// Files written (mode 0600) just before the start: the embedded broker's config.
    pub files: Vec<(PathBuf, String)>,
}

/// The directory of the child binaries: the config's `bin_dir`, else oriond's own.
pub fn bin_dir(config: &Config) -> PathBuf {
    config.supervisor.bin_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
            .unwrap_or_else(|| PathBuf::from("/usr/bin"))
    })
}

/// What makes one detector differ from another for good: the program and its arguments
/// except those oriond re-applies by command to every detector it starts (auto-focus on or
/// off and its parameters; ROIs and pause are not arguments). A standby detector (ADR
/// 0008) is adopted only if its identity is the one a detector would be started with now.
pub fn detector_identity(
    config: &Config,
    config_path: &Path,
    desired: &Desired,
) -> Result<Vec<String>, String> {
    let neutral = Desired {
        auto_focus: false,
        auto_focus_params: Default::default(),
        ..desired.clone()
    };
    let spec = spec(ProcessName::Detector, config, config_path, &neutral)?;
    let program = spec.program.to_string_lossy().into_owned();
    Ok(std::iter::once(program).chain(spec.args).collect())
}

/// What starting `name` runs. Fails only if the camera's credentials file cannot be read.
pub fn spec(
    name: ProcessName,
    config: &Config,
    config_path: &Path,
    desired: &Desired,
) -> Result<Spec, String> {
    let bin = bin_dir(config);
    let s = |v: &dyn ToString| v.to_string();
    Ok(match name {
        ProcessName::Capture => Spec {
            program: bin.join("orion-capture"),
            args: [
                s(&"--ring-fd"),
                s(&RING_FD),
                s(&"--width"),
                s(&config.stream.width),
                s(&"--height"),
                s(&config.stream.height),
                s(&"--rate-hz"),
                s(&desired.rate_hz.hz()),
                s(&"--stall-timeout-s"),
                s(&config.stream.stall_timeout_s),
                s(&"--rtsp-transport"),
                config.camera.rtsp_transport.clone(),
            ]
            .into_iter()
            .chain(
                config
                    .camera
                    .tls_ca
                    .iter()
                    .flat_map(|ca| [s(&"--tls-ca"), ca.to_string_lossy().into_owned()]),
            )
            .collect(),
            env: vec![
                (
                    "ORION_CAMERA_SOURCE".into(),
                    config.camera_uri().map_err(|e| e.to_string())?,
                ),
                // GIO's proxy lookup would reach for dconf in $HOME, which the sandbox
                // closes (and logs a critical per attempt); settings live in memory.
                ("GSETTINGS_BACKEND".into(), "memory".into()),
            ],
            ring: Some(Access::ReadWrite),
            files: Vec::new(),
        },
        ProcessName::Detector => {
            let d = &config.detector;
            let mut args = vec![
                s(&"--ring-fd"),
                s(&RING_FD),
                s(&"--instance-id"),
                config.instance_id.to_string(),
                s(&"--room-id"),
                config.room_id.clone(),
                s(&"--model-dir"),
                d.model_dir.to_string_lossy().into_owned(),
                s(&"--size"),
                s(&desired.model_size),
                s(&"--python"),
                d.python.to_string_lossy().into_owned(),
                s(&"--threads"),
                s(&d.intra_op_threads),
                s(&"--classes"),
                d.classes.join(","),
                s(&"--confidence"),
                s(&d.confidence),
                s(&"--iou"),
                s(&d.iou),
                s(&"--threshold-320"),
                s(&d.threshold_320),
                s(&"--worker-timeout-s"),
                s(&d.worker_timeout_s),
                s(&"--full-look-s"),
                s(&config.occupancy.full_look_s),
                s(&"--auto-focus-strategy"),
                serde_json::to_value(desired.auto_focus_params.strategy)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_else(|| "smoothing".into()),
            ];
            if let Some(dir) = &d.worker_dir {
                args.extend([s(&"--worker-dir"), dir.to_string_lossy().into_owned()]);
            }
            if desired.auto_focus {
                args.push(s(&"--auto-focus"));
            }
            if d.spare_worker {
                args.push(s(&"--spare-worker"));
            }
            // Nothing is inferred before the desired state is re-applied (then resumed).
            args.push(s(&"--paused"));
            Spec {
                program: bin.join("orion-detector"),
                args,
                env: Vec::new(),
                ring: Some(Access::ReadOnly),
                files: Vec::new(),
            }
        }
        ProcessName::Control => Spec {
            program: bin.join("orion-control"),
            args: vec![s(&"--config"), config_path.to_string_lossy().into_owned()],
            env: Vec::new(),
            ring: None,
            files: Vec::new(),
        },
        ProcessName::Broker => {
            let conf = config
                .instance_id
                .broker_conf_path(&config.supervisor.state_dir);
            Spec {
                program: config.mqtt.broker_program.clone(),
                args: vec![s(&"-c"), conf.to_string_lossy().into_owned()],
                env: Vec::new(),
                ring: None,
                files: vec![(conf, broker_conf(config))],
            }
        }
    })
}

/// The embedded broker's mosquitto config (ADR 0006): localhost only, anonymous local
/// clients, Nagle off so an ack never waits for a client's delayed TCP ACK, sessions kept
/// in memory (persistent sessions survive orion-control restarts, not broker restarts).
fn broker_conf(config: &Config) -> String {
    let m = &config.mqtt;
    // Run as root (the demo), mosquitto would switch to user mosquitto, which clears the
    // parent-death signal that takes it down with oriond; stay root there.
    let user = if nix::unistd::geteuid().is_root() {
        "user root\n"
    } else {
        ""
    };
    format!(
        "# Written by oriond at every start of the embedded broker (mqtt.embedded).\n\
         listener {port} {host}\n\
         allow_anonymous true\n\
         set_tcp_nodelay true\n\
         persistence false\n\
         max_queued_messages 1000\n\
         max_packet_size {max_packet}\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n\
         log_type information\n\
         log_timestamp false\n\
         {user}",
        port = m.port,
        host = m.host,
        max_packet = orion_protocol::limits::MAX_MQTT_PACKET,
    )
}

/// True for the broker's line saying it listens (mosquitto logs it at notice level).
pub fn broker_ready_line(line: &str) -> bool {
    line.starts_with("mosquitto version") && line.trim_end().ends_with(" running")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn capture_args(camera: &str) -> Vec<String> {
        let config = Config::parse(&format!("[camera]\n{camera}")).unwrap();
        let desired = crate::desired::baseline(&config);
        spec(ProcessName::Capture, &config, Path::new("/x"), &desired)
            .unwrap()
            .args
    }

    #[test]
    fn an_rtsps_cameras_ca_reaches_the_capture() {
        let args =
            capture_args("source = \"rtsps://cam:322/s\"\ntls_ca = \"/etc/orion/camera-ca.pem\"\n");
        let at = args.iter().position(|a| a == "--tls-ca").unwrap();
        assert_eq!(args[at + 1], "/etc/orion/camera-ca.pem");
        let args = capture_args("source = \"rtsps://cam:322/s\"\n");
        assert!(!args.iter().any(|a| a == "--tls-ca"), "{args:?}");
    }
}
