use super::*;

const MINIMAL: &str = "[camera]\nsource = \"test://ball\"\n";

fn err(text: &str) -> String {
    Config::parse(text).unwrap_err().to_string()
}

#[test]
fn a_minimal_file_gets_every_default() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(c.instance_id.as_str(), "orion");
    assert_eq!((c.stream.width, c.stream.height), (640, 360));
    assert_eq!(c.stream.rate_hz.hz(), 5.0);
    assert_eq!(c.detector.size, ModelSize::N);
    assert_eq!(c.ring.slots, 4);
    assert!(c.mqtt.enabled && !c.mqtt.embedded);
    assert_eq!(c.ring_label(), "orion-orion-frames");
    assert_eq!(c.socket_path(), Path::new("/run/orion/oriond-orion.sock"));
}

#[test]
fn errors_name_the_key_and_the_range() {
    let e = err(&format!("{MINIMAL}[stream]\nrate_hz = 50\n"));
    assert!(
        e.contains("stream.rate_hz") && e.contains("0.1..=30"),
        "{e}"
    );
    let e = err(&format!("{MINIMAL}[stream]\nfps = 5\n"));
    assert!(
        e.contains("stream") && e.contains("unknown field `fps`"),
        "{e}"
    );
    let e = err(&format!("{MINIMAL}[detector]\nsize = \"q\"\n"));
    assert!(
        e.contains("detector.size") && e.contains("n, s, m, l, x"),
        "{e}"
    );
    let e = err(&format!("{MINIMAL}[detector]\nconfidence = 1.5\n"));
    assert!(
        e.starts_with("detector.confidence: must be in 0..=1"),
        "{e}"
    );
    let e = err(&format!("{MINIMAL}[stream]\nwidth = 8\n"));
    assert!(e.starts_with("stream.width") && e.contains("16..="), "{e}");
    let e = err(&format!("{MINIMAL}[auto_focus]\nalpha = 0\n"));
    assert!(
        e.contains("auto_focus") && e.contains("alpha must be in (0, 1]"),
        "{e}"
    );
    let e = err(&format!("{MINIMAL}[occupancy]\nleave_after_s = 0.1\n"));
    assert!(
        e.starts_with("occupancy.leave_after_s: must be in 0.5..=3600"),
        "{e}"
    );
    let e = err(&format!("{MINIMAL}[homeassistant]\nprefix = \"ha/#\"\n"));
    assert!(e.starts_with("homeassistant.prefix"), "{e}");
    let e = err(&format!("{MINIMAL}[occupancy]\nenter_frames = 0\n"));
    assert!(
        e.starts_with("occupancy.enter_frames: must be in 1..=100"),
        "{e}"
    );
    let e = err(&format!("{MINIMAL}[mqtt.qos]\nstatus = 3\n"));
    assert!(e.starts_with("mqtt.qos.status: must be in 0..=2"), "{e}");
    let e = err(&format!("{MINIMAL}[supervisor]\nstartretries = -1\n"));
    assert!(e.starts_with("supervisor.startretries"), "{e}");
    let e = err(&format!("instance_id = \"Room 1\"\n{MINIMAL}"));
    assert!(
        e.starts_with("instance_id") && e.contains("A-Z, a-z, 0-9, _ and -"),
        "{e}"
    );
    let e = err("[camera]\nsource = \"rtsp://cam/s\"\ntls_ca = \"/etc/orion/ca.pem\"\n");
    assert!(e.starts_with("camera.tls_ca: only an rtsps://"), "{e}");
    let e = err("[camera]\nsource = \"http://x\"\n");
    assert!(e.starts_with("camera.source"), "{e}");
    assert!(err("").contains("camera"), "the camera is required");
    assert!(err("[camera\n").contains("TOML"));
}

#[test]
fn mqtt_may_not_take_the_room_dark_unless_allowed() {
    let c = Config::parse(MINIMAL).unwrap();
    assert!(c.mqtt.allows("set_attention_rois") && c.mqtt.allows("pause_inference"));
    for guarded in [
        "shutdown",
        "restart_process",
        "reload_config",
        "start_process",
    ] {
        assert!(!c.mqtt.allows(guarded), "{guarded}");
    }
    let c = Config::parse(&format!(
        "{MINIMAL}[mqtt]\nallowed_commands = [\"get_status\", \"shutdown\"]\n"
    ))
    .unwrap();
    assert!(c.mqtt.allows("shutdown") && !c.mqtt.allows("pause_inference"));
    for (list, expect) in [
        ("[\"reload_config\"]", "not an MQTT command"),
        ("[\"dance\"]", "not an MQTT command"),
        ("[\"shutdown\", \"shutdown\"]", "lists shutdown twice"),
    ] {
        let e = err(&format!("{MINIMAL}[mqtt]\nallowed_commands = {list}\n"));
        assert!(
            e.starts_with("mqtt.allowed_commands") && e.contains(expect),
            "{list}: {e}"
        );
    }
}

#[test]
fn groups_take_fewer_commands_than_the_room_itself() {
    let c = Config::parse(&format!(
        "{MINIMAL}[mqtt]\ngroups = [\"floor-2\", \"wing_a\"]\n"
    ))
    .unwrap();
    assert_eq!(c.mqtt.groups.len(), 2);
    assert_eq!(c.mqtt.refuses_for_group("pause_inference"), None);
    let why = c.mqtt.refuses_for_group("set_zones").unwrap();
    assert!(why.contains("group_allowed_commands"), "{why}");
    assert!(c.mqtt.refuses("set_zones").is_none());
    // A group command must be allowed for the room too.
    let c = Config::parse(&format!(
        "{MINIMAL}[mqtt]\nallowed_commands = [\"get_status\"]\ngroup_allowed_commands = [\"get_status\", \"shutdown\"]\n"
    ))
    .unwrap();
    assert!(
        c.mqtt
            .refuses_for_group("shutdown")
            .unwrap()
            .contains("allowed_commands")
    );
    assert_eq!(c.mqtt.refuses_for_group("get_status"), None);
    for (line, key, expect) in [
        ("groups = [\"floor/2\"]", "mqtt.groups", "A-Z, a-z, 0-9"),
        ("groups = [\"+\"]", "mqtt.groups", "A-Z, a-z, 0-9"),
        ("groups = [\"a\", \"a\"]", "mqtt.groups", "lists a twice"),
        (
            "group_allowed_commands = [\"dance\"]",
            "mqtt.group_allowed_commands",
            "not an MQTT command",
        ),
    ] {
        let e = err(&format!("{MINIMAL}[mqtt]\n{line}\n"));
        assert!(e.starts_with(key) && e.contains(expect), "{line}: {e}");
    }
}

#[test]
fn broker_nodes_are_host_port_pairs_tried_in_order() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(
        c.mqtt.brokers(),
        vec![BrokerAddr {
            host: "localhost".into(),
            port: 1883
        }]
    );
    let c = Config::parse(&format!(
        "{MINIMAL}[mqtt]\nhosts = [\"node-a:1883\", \"10.0.0.2:1884\", \"[fd00::1]:1883\"]\n"
    ))
    .unwrap();
    let shown: Vec<String> = c.mqtt.brokers().iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["node-a:1883", "10.0.0.2:1884", "[fd00::1]:1883"]);
    assert!(!c.mqtt.broker_is_local());
    let local = Config::parse(&format!(
        "{MINIMAL}[mqtt]\nusername = \"u\"\nhosts = [\"127.0.0.1:1883\", \"localhost:1884\"]\n"
    ));
    assert!(local.is_ok(), "{local:?}");
    for (list, expect) in [
        ("[\"node-a\"]", "not host:port"),
        ("[\"node-a:0\"]", "not host:port"),
        ("[\"node-a:99999\"]", "not host:port"),
        ("[\"fd00::1:1883\"]", "not host:port"),
        ("[\":1883\"]", "not host:port"),
        ("[\"a:1\", \"a:1\"]", "lists a:1 twice"),
    ] {
        let e = err(&format!("{MINIMAL}[mqtt]\nhosts = {list}\n"));
        assert!(
            e.starts_with("mqtt.hosts") && e.contains(expect),
            "{list}: {e}"
        );
    }
    let e = err(&format!(
        "{MINIMAL}[mqtt]\nhosts = [\"node-a:1883\", \"127.0.0.1:1883\"]\nusername = \"u\"\n"
    ));
    assert!(e.contains("clear text") && e.contains("node-a:1883"), "{e}");
    let e = err(&format!(
        "{MINIMAL}[mqtt]\nembedded = true\nhost = \"127.0.0.1\"\nhosts = [\"127.0.0.1:1\"]\n"
    ));
    assert!(e.starts_with("mqtt.hosts"), "{e}");
}

#[test]
fn credentials_cross_the_network_only_under_tls() {
    let remote = format!("{MINIMAL}[mqtt]\nhost = \"broker.example\"\nusername = \"orion\"\n");
    let e = err(&remote);
    assert!(
        e.starts_with("mqtt.tls") && e.contains("clear text") && e.contains("broker.example"),
        "{e}"
    );
    assert!(Config::parse(&format!("{remote}allow_insecure = true\n")).is_ok());
    assert!(Config::parse(&format!("{remote}[mqtt.tls]\nca = \"/etc/ssl/ca.pem\"\n")).is_ok());
    for local in ["localhost", "127.0.0.1", "::1", "127.0.0.2"] {
        let text = format!("{MINIMAL}[mqtt]\nhost = \"{local}\"\nusername = \"orion\"\n");
        assert!(Config::parse(&text).is_ok(), "{local}");
    }
    // Without credentials there is nothing to protect.
    assert!(Config::parse(&format!("{MINIMAL}[mqtt]\nhost = \"broker.example\"\n")).is_ok());
}

#[test]
fn the_shipped_configs_are_valid() {
    for file in ["../packaging/orion.toml", "../packaging/demo.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        if let Err(e) = Config::load(&path) {
            panic!("{file}: {e}");
        }
    }
}

#[test]
fn relative_paths_follow_the_file() {
    let dir = std::env::temp_dir().join(format!("orion-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("o.toml");
    std::fs::write(
        &file,
        format!("{MINIMAL}[detector]\nmodel_dir = \"models\"\npython = \"python3\"\n[supervisor]\nstate_dir = \"state\"\n"),
    )
    .unwrap();
    let c = Config::load(&file).unwrap();
    let base = dir.canonicalize().unwrap();
    assert_eq!(c.detector.model_dir, base.join("models"));
    assert_eq!(c.detector.python, Path::new("python3"));
    assert_eq!(c.supervisor.state_dir, base.join("state"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn camera_secrets_live_in_their_own_file() {
    let e = err("[camera]\nsource = \"rtsp://admin:hunter2@cam/s\"\n");
    assert!(
        e.starts_with("camera.source: holds a password") && !e.contains("hunter2"),
        "{e}"
    );
    let e = err("[camera]\nsource = \"test://\"\ncredentials_file = \"/x\"\n");
    assert!(e.starts_with("camera.credentials_file"), "{e}");

    let dir = std::env::temp_dir().join(format!("orion-config-cred-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("o.toml");
    std::fs::write(
        &file,
        "[camera]\nsource = \"rtsp://cam:8554/s\"\ncredentials_file = \"camera-credentials\"\n",
    )
    .unwrap();
    let cred = dir.join("camera-credentials");
    std::fs::write(&cred, "viewer:pa:ss\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = Config::load(&file).unwrap();
    assert_eq!(c.camera_uri().unwrap(), "rtsp://viewer:pa%3Ass@cam:8554/s");
    assert!(c.check_secrets().is_ok());
    // Readable by everyone: refused before anything starts, without showing the secret.
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = c.check_secrets().unwrap_err().to_string();
    assert!(
        e.starts_with("camera.credentials_file") && !e.contains("pa:ss"),
        "{e}"
    );
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&cred, "no-colon\n").unwrap();
    assert!(
        c.camera_uri()
            .unwrap_err()
            .to_string()
            .contains("user:password")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_mqtt_tls_key_is_private_like_every_secret_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("orion-config-tlskey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("o.toml");
    std::fs::write(
        &file,
        "[camera]\nsource = \"test://\"\n[mqtt]\nhost = \"broker\"\n[mqtt.tls]\nca = \"ca.pem\"\ncert = \"client.pem\"\nkey = \"client.key\"\n",
    )
    .unwrap();
    let key = dir.join("client.key");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nsecret\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = Config::load(&file).unwrap();
    let e = c.check_secrets().unwrap_err().to_string();
    assert!(e.starts_with("mqtt.tls.key") && e.contains("0644"), "{e}");
    assert!(!e.contains("secret\n"), "{e}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(c.check_secrets().is_ok());
    assert!(c.mqtt_tls_key().unwrap().unwrap().contains("PRIVATE KEY"));
    std::fs::remove_dir_all(&dir).unwrap();
}

mod fuzz {
    //! Arbitrary and near-valid config files: parsed into a valid config or refused with an
    //! error naming the key (or the TOML syntax); never a panic. `ORION_FUZZ_CASES` sets the
    //! inputs per property (default 2000).
    use super::{Config, MINIMAL};
    use crate::validate;
    use proptest::prelude::*;

    fn cases() -> u32 {
        std::env::var("ORION_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| format!("{v:?}")),
            any::<bool>().prop_map(|v| v.to_string()),
            "[a-z0-9/:._ -]{0,20}".prop_map(|s| format!("{s:?}")),
            Just("\"rtsp://cam/s\"".to_string()),
            Just("[\"person\"]".to_string()),
            Just("5".to_string()),
            Just("0.1".to_string()),
            Just("nan".to_string()),
            Just("inf".to_string()),
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        let section = prop::sample::select(vec![
            "[camera]",
            "[stream]",
            "[detector]",
            "[auto_focus]",
            "[occupancy]",
            "[homeassistant]",
            "[mqtt]",
            "[mqtt.qos]",
            "[mqtt.tls]",
            "[supervisor]",
            "[ring]",
            "[bogus]",
        ])
        .prop_map(String::from);
        let key = prop::sample::select(vec![
            "source",
            "width",
            "height",
            "rate_hz",
            "stall_timeout_s",
            "size",
            "confidence",
            "iou",
            "classes",
            "threshold_320",
            "enabled",
            "strategy",
            "alpha",
            "enter_frames",
            "leave_after_s",
            "min_confidence",
            "full_look_s",
            "discovery",
            "embedded",
            "host",
            "hosts",
            "groups",
            "port",
            "version",
            "prefix",
            "keepalive_s",
            "slots",
            "startsecs",
            "startretries",
            "instance_id",
            "room_id",
            "detections",
            "credentials_file",
            "command_max_age_s",
            "nonsense",
        ]);
        prop_oneof![
            section,
            (key, value()).prop_map(|(k, v)| format!("{k} = {v}")),
            ".{0,30}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn config_files_are_valid_or_refused_by_key(lines in prop::collection::vec(line(), 0..24)) {
            let text = format!("{MINIMAL}{}\n", lines.join("\n"));
            match Config::parse(&text) {
                Ok(c) => {
                    // What is accepted passes its own checks again and is in range.
                    prop_assert!(validate::check(&c).is_ok());
                    prop_assert!((2..=64).contains(&c.ring.slots));
                }
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(!msg.is_empty());
                    prop_assert!(e.key().is_some() || msg.contains("TOML"), "{msg}");
                }
            }
        }
    }
}

#[test]
fn a_metrics_textfile_is_an_absolute_prom_path() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(
        (c.metrics.textfile.as_ref(), c.metrics.interval_s),
        (None, 15)
    );
    let ok = format!(
        "{MINIMAL}[metrics]\ntextfile = \"/var/lib/prometheus/node-exporter/orion.prom\"\n"
    );
    assert!(Config::parse(&ok).is_ok());
    for bad in ["relative.prom", "/var/lib/x/orion.txt"] {
        let e = err(&format!("{MINIMAL}[metrics]\ntextfile = \"{bad}\"\n"));
        assert!(e.contains("metrics.textfile") && e.contains(".prom"), "{e}");
    }
    let e = err(&format!("{MINIMAL}[metrics]\ninterval_s = 0\n"));
    assert!(e.contains("metrics.interval_s"), "{e}");
}

#[test]
fn memory_limits_are_checked() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(c.memory, Memory::default());
    assert_eq!(c.memory.stand_ins_min_available_mb, 400);
    let ok = format!(
        "{MINIMAL}[memory]\nstand_ins_min_available_mb = 1024\nstand_ins_max_pressure_pct = 25.5\nstand_ins_return_after_s = 5\n"
    );
    assert!(Config::parse(&ok).is_ok());
    for (key, bad) in [
        ("stand_ins_min_available_mb", "10"),
        ("stand_ins_max_pressure_pct", "0.5"),
        ("stand_ins_max_pressure_pct", "nan"),
        ("stand_ins_return_after_s", "0"),
    ] {
        let e = err(&format!("{MINIMAL}[memory]\n{key} = {bad}\n"));
        assert!(e.contains(&format!("memory.{key}")), "{e}");
    }
    let e = err(&format!("{MINIMAL}[memory]\nspare = 1\n"));
    assert!(e.contains("unknown field"), "{e}");
}
