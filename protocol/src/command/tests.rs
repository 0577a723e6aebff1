use super::*;

#[test]
fn commands_are_validated_with_clear_errors() {
    assert_eq!(
        parse(r#"{"command":"pause_inference"}"#).action,
        Ok(Action::Pause)
    );
    let c = parse(r#"{"command":"set_model_size","params":{"size":"m"},"request_id":"r1"}"#);
    assert_eq!(
        (c.action, c.request_id.as_deref()),
        (Ok(Action::SetModelSize(ModelSize::M)), Some("r1"))
    );
    let bad = parse(r#"{"command":"set_model_size","params":{"size":"q"}}"#)
        .action
        .unwrap_err()
        .message;
    assert!(
        bad.contains("params.size") && bad.contains("n, s, m, l, x"),
        "{bad}"
    );
    assert!(
        parse(r#"{"command":"set_model_size","params":{"size":3}}"#)
            .action
            .is_err()
    );
    assert!(
        parse("{nope")
            .action
            .unwrap_err()
            .message
            .starts_with("malformed command")
    );
    assert!(
        parse(r#"{"command":"dance"}"#)
            .action
            .unwrap_err()
            .message
            .contains("unknown command")
    );
    let roi = parse(
        r#"{"command":"set_attention_rois","params":{"rois":[{"x":0.5,"y":0,"width":0.6,"height":1}]}}"#,
    );
    assert!(roi.action.unwrap_err().message.contains("x + width <= 1"));
    let many = format!(
        r#"{{"command":"set_attention_rois","params":{{"rois":[{}]}}}}"#,
        vec![r#"{"x":0,"y":0,"width":1,"height":1}"#; 17].join(",")
    );
    assert!(parse(&many).action.unwrap_err().message.contains("1..=16"));
}

#[test]
fn rates_names_and_ids_are_checked() {
    let rate = |v: &str| {
        parse(&format!(
            r#"{{"command":"set_inference_rate","params":{{"rate_hz":{v}}}}}"#
        ))
        .action
    };
    assert_eq!(rate("2.5"), Ok(Action::SetRate(RateHz::new(2.5).unwrap())));
    for bad in ["0", "-1", "31", "\"5\"", "null", "0.0001"] {
        let e = rate(bad).unwrap_err().message;
        assert!(
            e.contains("rate_hz") && e.contains("0.1..=30"),
            "{bad}: {e}"
        );
    }
    assert_eq!(
        parse(r#"{"command":"restart_process","params":{"name":"capture"}}"#).action,
        Ok(Action::RestartProcess(ProcessName::Capture))
    );
    assert!(
        parse(r#"{"command":"restart_process","params":{"name":"sh"}}"#)
            .action
            .unwrap_err()
            .message
            .contains("broker, control, detector, capture")
    );
    let id = parse(r#"{"command":"get_status","request_id":5}"#);
    assert!(
        id.action
            .unwrap_err()
            .message
            .contains("request_id must be a string")
    );
    assert!(
        parse(r#"{"command":"get_status","params":[1]}"#)
            .action
            .is_err()
    );
    let focus = parse(
        r#"{"command":"set_auto_focus_strategy","params":{"strategy":"velocity","alpha":2}}"#,
    );
    assert!(
        focus
            .action
            .unwrap_err()
            .message
            .contains("alpha must be in (0, 1]")
    );
    let long = format!(r#"{{"command":"{}"}}"#, "a".repeat(MAX_COMMAND));
    assert!(
        parse(&long)
            .action
            .unwrap_err()
            .message
            .contains("longer than")
    );
}

#[test]
fn the_mqtt_catalog_is_every_command_but_the_supervisor_verbs() {
    let every = [
        Action::GetStatus,
        Action::GetSnapshot(SnapshotRequest {
            format: ImageFormat::Png,
            quality: Some(JpegQuality::new(90).unwrap()),
        }),
        Action::Pause,
        Action::Resume,
        Action::SetRate(RateHz::new(1.0).unwrap()),
        Action::SetModelSize("n".parse().unwrap()),
        Action::SetRois(
            serde_json::from_value(json!([{"x":0,"y":0,"width":1,"height":1}])).unwrap(),
        ),
        Action::ClearRois,
        Action::GetRois,
        Action::SetAutoFocus(serde_json::from_value(json!({"strategy": "velocity"})).unwrap()),
        Action::GetAutoFocus,
        Action::EnableAutoFocus,
        Action::DisableAutoFocus,
        Action::ClearAutoFocusHistory,
        Action::GetAutoFocusStats,
        Action::SetZones(
            serde_json::from_value(json!([{"name": "bed", "polygon": [[0,0],[1,0],[1,1]]}]))
                .unwrap(),
        ),
        Action::GetZones,
        Action::RestartProcess(ProcessName::Capture),
        Action::Shutdown,
        Action::ProcessStatus(None),
        Action::StartProcess(ProcessName::Capture),
        Action::StopProcess(ProcessName::Capture),
        Action::TailProcess {
            name: ProcessName::Capture,
            offset: None,
            bytes: 1,
        },
        Action::ReloadConfig,
    ];
    let mqtt: Vec<&str> = every
        .iter()
        .filter(|a| !a.is_local_only())
        .map(Action::name)
        .collect();
    assert_eq!(mqtt, MQTT_COMMANDS);
    for name in MQTT_GUARDED {
        assert!(MQTT_COMMANDS.contains(&name), "{name}");
    }
    // Each round-trips through its request (the catalog names are the wire names).
    for a in every {
        assert_eq!(
            parse_value(a.to_request(None)).action.as_ref(),
            Ok(&a),
            "{a:?}"
        );
    }
}

#[test]
fn supervisor_verbs_are_in_the_catalog_and_local_only() {
    let tail = parse(r#"{"command":"tail_process","params":{"name":"capture","bytes":10}}"#);
    let action = tail.action.unwrap();
    assert_eq!(
        action,
        Action::TailProcess {
            name: ProcessName::Capture,
            offset: None,
            bytes: 10
        }
    );
    assert!(action.is_local_only() && !Action::Pause.is_local_only());
    let e = parse(r#"{"command":"start_process","params":{"name":"sh"}}"#)
        .action
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnknownProcess);
    assert!(e.message.contains("params.name"), "{e}");
    assert_eq!(
        parse(r#"{"command":"dance"}"#).action.unwrap_err().kind,
        ErrorKind::UnknownCommand
    );
    assert_eq!(
        parse(r#"{"command":"process_status"}"#).action,
        Ok(Action::ProcessStatus(None))
    );
}

#[test]
fn requests_round_trip_through_the_wire_shape() {
    let actions = [
        Action::SetRate(RateHz::new(0.5).unwrap()),
        Action::SetModelSize(ModelSize::L),
        Action::RestartProcess(ProcessName::Detector),
        Action::SetAutoFocus(ParamsUpdate {
            strategy: Some(crate::focus::Strategy::Simple),
            alpha: Some(0.5),
            ..Default::default()
        }),
        Action::Shutdown,
        Action::StopProcess(ProcessName::Broker),
        Action::TailProcess {
            name: ProcessName::Detector,
            offset: Some(5),
            bytes: 100,
        },
        Action::ReloadConfig,
    ];
    for a in actions {
        let back = parse_value(a.to_request(Some("id")));
        assert_eq!(back.action, Ok(a));
        assert_eq!(back.request_id.as_deref(), Some("id"));
    }
    let ack = Ack::new("x", Some("r".into()), Err("bad".to_string().into()));
    let text = serde_json::to_string(&ack).unwrap();
    assert!(text.contains(r#""status":"error""#) && text.contains(r#""error_kind":"failed""#));
    assert_eq!(serde_json::from_str::<Ack>(&text).unwrap(), ack);
}

#[test]
fn snapshot_params_default_to_jpeg_and_are_range_checked() {
    let plain = parse(r#"{"command":"get_snapshot"}"#).action.unwrap();
    assert_eq!(
        plain,
        Action::GetSnapshot(SnapshotRequest {
            format: ImageFormat::Jpeg,
            quality: None
        })
    );
    assert!(plain.is_query() && !plain.is_local_only());
    for (params, says) in [
        (r#"{"quality":0}"#, "params.quality must be in 1..=100"),
        (r#"{"quality":101}"#, "params.quality must be in 1..=100"),
        (r#"{"quality":"high"}"#, "params.quality must be in 1..=100"),
        (r#"{"format":"gif"}"#, "params.format must be png or jpeg"),
        (r#"{"format":7}"#, "params.format must be png or jpeg"),
    ] {
        let e = parse(&format!(
            r#"{{"command":"get_snapshot","params":{params}}}"#
        ))
        .action
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest, "{params}");
        assert!(e.message.starts_with(says), "{params}: {e}");
    }
}

#[test]
fn error_kinds_come_from_where_the_error_is_made() {
    let kind = |text: &str| parse(text).action.unwrap_err().kind;
    assert_eq!(kind(r#"{"command": "fly"}"#), ErrorKind::UnknownCommand);
    for verb in [
        "restart_process",
        "stop_process",
        "start_process",
        "tail_process",
    ] {
        let text = format!(r#"{{"command": "{verb}", "params": {{"name": "camera"}}}}"#);
        assert_eq!(kind(&text), ErrorKind::UnknownProcess, "{verb}");
        let text = format!(r#"{{"command": "{verb}", "params": {{"name": 3}}}}"#);
        assert_eq!(kind(&text), ErrorKind::BadRequest, "{verb}");
    }
    // A message that merely reads like another kind stays what it is.
    let text = r#"{"command": "set_model_size", "params": {"size": "unknown command"}}"#;
    assert_eq!(kind(text), ErrorKind::BadRequest);
    assert_eq!(kind("not json"), ErrorKind::BadRequest);
}

#[test]
fn the_mqtt_ack_has_the_documented_shape() {
    use crate::mqtt_ack::MqttAck;
    let ok = MqttAck::new(
        "pause_inference",
        "room-1",
        Some("r1".into()),
        Ok(json!({"paused": true})),
        "2026-12-05T09:17:22.201Z".into(),
    );
    let v = serde_json::to_value(&ok).unwrap();
    assert_eq!(
        v,
        json!({"command_ack": "pause_inference", "status": "success", "instance_id": "room-1",
               "request_id": "r1", "data": {"paused": true}, "error": null, "error_kind": null,
               "timestamp": "2026-12-05T09:17:22.201Z"})
    );
    let mut err = MqttAck::new(
        "unknown",
        "room-1",
        None,
        Err(AckError::new(ErrorKind::Retained, "retained")),
        "2026-12-05T09:17:22.201Z".into(),
    );
    err.redelivered = true;
    let v = serde_json::to_value(&err).unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["data"], Value::Null);
    assert_eq!(v["error_kind"], "retained");
    assert_eq!(v["redelivered"], true);
    assert_eq!(serde_json::from_value::<MqttAck>(v).unwrap(), err);
}
