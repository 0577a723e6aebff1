//! What an operator looks at, observed as an operator's backend observes Orion (an MQTT
//! client subscribed to `care/#` at QoS 1, a stock mosquitto, the RTSP server looping the
//! street footage, the real YOLOv3-tiny model) and as an installer does (`orionctl`):
//!
//! - occupancy: `occupancy_follows_the_room_and_is_unknown_while_nothing_is_detected`,
//!   `a_corner_roi_never_makes_an_occupied_room_read_empty`
//! - zones: `zones_follow_the_people_standing_in_them_and_are_set_over_mqtt`
//! - care events: `care_events_start_and_end_with_ids_across_restarts`
//! - snapshots: `a_snapshot_shows_the_frame_with_its_boxes_over_orionctl_and_mqtt`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use orion_tests::operator::Operator;
use orion_tests::system::{Spec, System};
use serde_json::{Value, json};

const ACK: Duration = Duration::from_secs(60);

fn ok(op: &mut Operator, command: &str, params: Value) -> (Value, Instant) {
    let (rid, _) = op.send(command, params).unwrap();
    let (ack, at) = op.ack(&rid, ACK).unwrap();
    assert_eq!(ack["status"], "success", "{command}: {ack}");
    (ack, at)
}

/// Occupancy as a care backend reads it: retained `care/occupancy/{id}`, true while the
/// footage shows people, unknown (null, with the reason) while paused, false
/// `leave_after_s` after the scene is empty; in get_status too. With
/// `[snapshot] on_occupancy_change`, a JPEG follows each change of occupied.
#[test]
fn occupancy_follows_the_room_and_is_unknown_while_nothing_is_detected() {
    let mut sys = System::start(Spec {
        extra: "[occupancy]\nenter_frames = 2\nleave_after_s = 2\nmin_confidence = 0.3\n\
                [snapshot]\non_occupancy_change = true\n"
            .into(),
        ..Spec::default()
    })
    .unwrap();
    let mut op = sys.operator().unwrap();
    let topic = op.topic("occupancy");
    let occupancy = |op: &Operator, i: usize| op.seen[i].json().unwrap();
    let i = op
        .wait_from("occupied", 0, Duration::from_secs(60), |a| {
            a.topic == topic && a.json().is_some_and(|v| v["occupied"] == true)
        })
        .unwrap();
    let o = occupancy(&op, i);
    assert!(o["count"].as_u64().unwrap() >= 1, "{o}");
    assert!(o["since"].is_string() && o["last_seen"].is_string(), "{o}");
    let snapshot = op.topic("snapshot");
    let j = op
        .wait_from(
            "a snapshot of the change",
            i,
            Duration::from_secs(10),
            |a| a.topic == snapshot,
        )
        .unwrap();
    let jpeg = op.seen[j].raw.clone().expect("a JPEG");
    assert_eq!(
        decode(&jpeg, image::ImageFormat::Jpeg).dimensions(),
        (640, 360)
    );
    assert_eq!(sys.o.status().unwrap()["occupancy"]["occupied"], true);

    // Paused: unknown, never a stale true.
    let mark = op.seen.len();
    ok(&mut op, "pause_inference", json!({}));
    let i = op
        .wait_from("unknown while paused", mark, Duration::from_secs(10), |a| {
            a.topic == topic && a.json().is_some_and(|v| v["occupied"].is_null())
        })
        .unwrap();
    let o = occupancy(&op, i);
    assert!(o["reason"].as_str().unwrap().contains("paused"), "{o}");
    ok(&mut op, "resume_inference", json!({}));

    // An empty scene: false once nobody was seen for leave_after_s.
    sys.camera.kill().unwrap();
    sys.camera.resume_empty_scene().unwrap();
    let mark = op.seen.len();
    let i = op
        .wait_from("empty", mark, Duration::from_secs(60), |a| {
            a.topic == topic && a.json().is_some_and(|v| v["occupied"] == false)
        })
        .unwrap();
    let o = occupancy(&op, i);
    assert_eq!(o["count"], 0, "{o}");
    // Retained: a backend that connects now gets the current answer at once.
    let mut late = sys.operator().unwrap();
    let j = late
        .wait_from("retained occupancy", 0, Duration::from_secs(10), |a| {
            a.topic == topic
        })
        .unwrap();
    assert!(late.seen[j].retained, "retained");
    assert_eq!(late.seen[j].json().unwrap()["occupied"], false);
}

/// The attack of issue 25: an ROI over an empty corner while people walk through the
/// rest of the frame. The room stays occupied (the detector looks at the whole frame every
/// `full_look_s` and only such a look may make it empty), the occupancy says its coverage
/// and last full look, and whole-frame detections keep coming between the crops.
/// `full_look_s` > `leave_after_s` on purpose: the crops alone see nobody for longer than
/// it takes to leave, so only the rule "empty only from a whole frame" keeps the room
/// occupied (with the room counting crops as whole frames this test fails).
#[test]
fn a_corner_roi_never_makes_an_occupied_room_read_empty() {
    let sys = System::start(Spec {
        extra: "[occupancy]\nenter_frames = 2\nleave_after_s = 2\nmin_confidence = 0.3\n\
                full_look_s = 3\n"
            .into(),
        ..Spec::default()
    })
    .unwrap();
    let mut op = sys.operator().unwrap();
    let topic = op.topic("occupancy");
    op.wait_from("occupied", 0, Duration::from_secs(60), |a| {
        a.topic == topic && a.json().is_some_and(|v| v["occupied"] == true)
    })
    .unwrap();
    let corner = json!({"x": 0.0, "y": 0.0, "width": 0.08, "height": 0.08});
    let (_, set_at) = ok(&mut op, "set_attention_rois", json!({"rois": [corner]}));
    let mark = op.seen.len();
    // Far longer than leave_after_s (the issue saw "empty" within 40 s without the rule).
    while set_at.elapsed() < Duration::from_secs(30) {
        op.pull(Duration::from_millis(500));
    }
    let after = &op.seen[mark..];
    let empty = after
        .iter()
        .find(|a| a.topic == topic && a.json().is_some_and(|v| v["occupied"] == false));
    assert!(empty.is_none(), "read empty under a corner ROI: {empty:?}");
    let detections: Vec<Value> = after
        .iter()
        .filter(|a| a.topic == op.detection_topic())
        .filter_map(|a| a.json())
        .collect();
    let region = |d: &Value| {
        d["data"]["metadata"]["roi_source"]
            .as_str()
            .map(String::from)
    };
    let crops = detections
        .iter()
        .filter(|d| region(d).as_deref() == Some("external"))
        .count();
    let whole: Vec<&Value> = detections
        .iter()
        .filter(|d| region(d).as_deref() == Some("full"))
        .collect();
    assert!(crops > 10, "the ROI is used: {crops} crops");
    // One full look per 3 s for ~29 s; generous for a busy two-core box.
    assert!(
        whole.len() >= 6,
        "{} full looks in 30 s among {crops} crops",
        whole.len()
    );
    assert!(
        whole.iter().any(|d| d["data"]["count"].as_u64() > Some(0)),
        "the full looks see the people the corner misses"
    );
    let status = sys.o.status().unwrap();
    let o = &status["occupancy"];
    assert_eq!(o["occupied"], true, "{o}");
    assert!(o["last_full_look"].is_string(), "{o}");
    assert!(
        ["full", "region"].contains(&o["coverage"].as_str().unwrap_or("")),
        "{o}"
    );
}

/// Zones from the config: "street" (the lower two thirds, where the footage's people
/// walk) turns occupied with a count; "sky" (the top tenth, where no one's feet are) turns
/// empty. Both retained on `care/occupancy/{id}/{zone}` and in the status. `set_zones` over
/// MQTT removes "sky" (its retained message is cleared) and keeps "street" as it was;
/// `get_zones` and the desired state say so.
#[test]
fn zones_follow_the_people_standing_in_them_and_are_set_over_mqtt() {
    let street = "[[0, 0.33], [1, 0.33], [1, 1], [0, 1]]";
    let sky = "[[0, 0], [1, 0], [1, 0.1], [0, 0.1]]";
    let sys = System::start(Spec {
        extra: format!(
            "[occupancy]\nenter_frames = 2\nleave_after_s = 2\nmin_confidence = 0.3\n\
             [[zones]]\nname = \"street\"\npolygon = {street}\n\
             [[zones]]\nname = \"sky\"\npolygon = {sky}\n"
        ),
        ..Spec::default()
    })
    .unwrap();
    let mut op = sys.operator().unwrap();
    let room = op.topic("occupancy");
    let (street_topic, sky_topic) = (format!("{room}/street"), format!("{room}/sky"));
    let i = op
        .wait_from("the street occupied", 0, Duration::from_secs(60), |a| {
            a.topic == street_topic && a.json().is_some_and(|v| v["occupied"] == true)
        })
        .unwrap();
    let o = op.seen[i].json().unwrap();
    assert_eq!(o["zone"], "street", "{o}");
    assert!(o["count"].as_u64() >= Some(1), "{o}");
    op.wait_from("the sky empty", 0, Duration::from_secs(60), |a| {
        a.topic == sky_topic && a.json().is_some_and(|v| v["occupied"] == false)
    })
    .unwrap();
    let sky_true = op
        .seen
        .iter()
        .any(|a| a.topic == sky_topic && a.json().is_some_and(|v| v["occupied"] == true));
    assert!(!sky_true, "nobody stands in the sky");
    let status = sys.o.status().unwrap();
    let zones: Vec<&str> = status["zones"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|z| z["zone"].as_str())
        .collect();
    assert_eq!(zones, ["street", "sky"], "{}", status["zones"]);

    // Over MQTT: only the street, as it was.
    let mark = op.seen.len();
    let street_zone: Value =
        serde_json::from_str(&format!(r#"{{"name": "street", "polygon": {street}}}"#)).unwrap();
    let (ack, _) = ok(&mut op, "set_zones", json!({"zones": [street_zone]}));
    assert_eq!(ack["data"]["changed"], true, "{ack}");
    op.wait_from("the sky cleared", mark, Duration::from_secs(10), |a| {
        a.topic == sky_topic && a.payload.is_empty() && a.raw.is_none()
    })
    .unwrap();
    let (ack, _) = ok(&mut op, "get_zones", json!({}));
    assert_eq!(
        ack["data"]["zones"].as_array().map(Vec::len),
        Some(1),
        "{ack}"
    );
    let status = sys.o.status().unwrap();
    assert_eq!(status["desired"]["zones"][0]["name"], "street");
    assert_eq!(
        status["zones"][0]["occupied"], true,
        "kept: {}",
        status["zones"]
    );
    // A bad zone is refused and changes nothing.
    let (rid, _) = op
        .send(
            "set_zones",
            json!({"zones": [{"name": "Bad Name", "polygon": [[0, 0], [1, 0], [1, 1]]}]}),
        )
        .unwrap();
    let (ack, _) = op.ack(&rid, ACK).unwrap();
    assert_eq!(ack["error_kind"], "bad_request", "{ack}");
    assert!(ack["error"].as_str().unwrap().contains("a-z"), "{ack}");
    let (ack, _) = ok(&mut op, "get_zones", json!({}));
    assert_eq!(ack["data"]["zones"][0]["name"], "street", "{ack}");
}

/// Care events as a backend reads them on `care/events/{id}` (QoS 1), with the fall model
/// (classes `Normal`/`Fall`): the room, the "street" zone and the configured class
/// `Normal` (the fall model's standing people, present all through the footage) each start
/// one event; orion-control restarted, then oriond (SIGTERM and started again on the same
/// state dir) change nothing (no second start, nothing lost); an empty scene ends each,
/// after its start, with the same id. Ids never repeat. (With the open events not restored
/// after oriond's restart this test fails: they never end.)
#[test]
fn care_events_start_and_end_with_ids_across_restarts() {
    let mut sys = System::start(Spec {
        size: 'm',
        rate_hz: 2.0,
        extra: "[occupancy]\nenter_frames = 2\nleave_after_s = 2\nmin_confidence = 0.3\n\
                [[zones]]\nname = \"street\"\npolygon = [[0, 0.33], [1, 0.33], [1, 1], [0, 1]]\n\
                [[events.classes]]\nclass = \"Normal\"\nmin_confidence = 0.3\nmin_frames = 2\n\
                end_after_s = 2\n"
            .into(),
        ..Spec::default()
    })
    .unwrap();
    let mut op = sys.operator().unwrap();
    let topic = op.topic("events");
    let events = |op: &Operator, from: usize| -> Vec<Value> {
        op.seen[from..]
            .iter()
            .filter(|a| a.topic == topic)
            .filter_map(|a| a.json())
            .collect()
    };
    let started = |e: &[Value], kind: &str| {
        e.iter()
            .filter(|v| v["type"] == kind && v["state"] == "start")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while ["room", "zone", "Normal"]
        .iter()
        .any(|k| started(&events(&op, 0), k) == 0)
    {
        assert!(
            Instant::now() < deadline,
            "not every event started: {:?}",
            events(&op, 0)
        );
        op.pull(Duration::from_millis(500));
    }
    let zone = events(&op, 0)
        .into_iter()
        .find(|v| v["type"] == "zone")
        .unwrap();
    assert_eq!(zone["zone"], "street", "{zone}");
    assert!(
        zone["instance_id"].is_string() && zone["best_frame_seq"].is_u64(),
        "{zone}"
    );

    // From here on, no event may start again.
    let mark = op.seen.len();
    // orion-control restarts, then oriond itself (SIGTERM, started again on the same
    // state dir): the open events are neither started again nor lost.
    let (code, out, err) = sys.o.ctl(&["restart", "control"]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    op.pull(Duration::from_secs(3));
    let stopped = sys.o.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(stopped.success(), "oriond stopped cleanly: {stopped:?}");
    sys.o.spawn().unwrap();
    sys.o.wait_all_running(Duration::from_secs(90)).unwrap();
    // People are still in view: the room is occupied again, under the same event.
    let (mark_up, room) = (op.seen.len(), op.topic("occupancy"));
    op.wait_from("occupied again", mark_up, Duration::from_secs(60), |a| {
        a.topic == room && a.json().is_some_and(|v| v["occupied"] == true)
    })
    .unwrap();

    // The scene empties: each ends.
    sys.camera.kill().unwrap();
    sys.camera.resume_empty_scene().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let ended = |e: &[Value], kind: &str| {
        e.iter()
            .filter(|v| v["type"] == kind && v["state"] == "end")
            .count()
    };
    while ["room", "zone", "Normal"]
        .iter()
        .any(|k| ended(&events(&op, mark), k) == 0)
    {
        assert!(
            Instant::now() < deadline,
            "not every event ended: {:?}",
            events(&op, mark)
        );
        op.pull(Duration::from_millis(500));
    }
    let after = events(&op, mark);
    for kind in ["room", "zone", "Normal"] {
        assert_eq!(started(&after, kind), 0, "{kind} started again: {after:?}");
    }
    // Every end closes an event started before the restart, with the same id, after it.
    let starts: Vec<Value> = events(&op, 0)
        .into_iter()
        .filter(|v| v["state"] == "start")
        .collect();
    for end in after.iter().filter(|v| v["state"] == "end") {
        let id = end["event_id"].as_str().unwrap();
        let start = starts
            .iter()
            .find(|v| v["event_id"] == id)
            .unwrap_or_else(|| panic!("{id} ended but never started: {end}"));
        assert_eq!(start["type"], end["type"], "{start} {end}");
        assert!(end["end"].as_str() >= end["start"].as_str(), "{end}");
    }
    let ids: Vec<&str> = starts
        .iter()
        .filter_map(|v| v["event_id"].as_str())
        .collect();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "ids repeat: {ids:?}");
}

/// The pixels of a PNG or JPEG.
fn decode(bytes: &[u8], format: image::ImageFormat) -> image::RgbImage {
    image::load_from_memory_with_format(bytes, format)
        .expect("the snapshot decodes")
        .to_rgb8()
}

/// `orionctl --json snapshot -o FILE`: the ack's data and the image's pixels.
fn orionctl_snapshot(sys: &System, name: &str) -> (Value, image::RgbImage) {
    let path = sys.o.dir.join(name);
    let (code, out, err) = sys
        .o
        .ctl(&["--json", "snapshot", "-o", path.to_str().unwrap()])
        .unwrap();
    assert_eq!(code, 0, "orionctl snapshot: {out} {err}");
    let data: Value = serde_json::from_str(out.trim()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(data["bytes"].as_u64(), Some(bytes.len() as u64), "{data}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a picture of the room is private");
    (data, decode(&bytes, image::ImageFormat::Png))
}

/// What an installer does: a snapshot with `orionctl` shows the real frame at its size,
/// the boxes where the detections are, the attention ROI in its colour; over MQTT
/// `get_snapshot` (allowed on this device) acks first and then publishes a JPEG that
/// decodes; paused, the snapshot is the frame alone.
#[test]
fn a_snapshot_shows_the_frame_with_its_boxes_over_orionctl_and_mqtt() {
    use orion_snapshot::Palette;
    let sys = System::start(Spec {
        extra: r#"allowed_commands = ["get_status", "get_snapshot", "set_attention_rois", "pause_inference", "resume_inference"]"#.into(),
        ..Spec::default()
    })
    .unwrap();
    let mut op = sys.operator().unwrap();
    let roi = json!({"x": 0.05, "y": 0.1, "width": 0.9, "height": 0.85});
    ok(&mut op, "set_attention_rois", json!({"rois": [roi]}));
    let mark = op.seen.len();
    let topic = op.detection_topic();
    op.wait_from(
        "a detection with people in the ROI",
        mark,
        Duration::from_secs(60),
        |a| {
            a.topic == topic
                && a.json().is_some_and(|d| {
                    d["data"]["count"].as_u64() >= Some(1)
                        && d["data"]["metadata"]["roi_source"] == "external"
                })
        },
    )
    .unwrap();

    let (data, img) = orionctl_snapshot(&sys, "snap.png");
    assert_eq!(img.dimensions(), (640, 360), "{data}");
    assert_eq!(
        (data["width"].as_u64(), data["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(data["captioned"], true, "{data}");
    let boxes = data["detections"].as_array().unwrap();
    assert!(!boxes.is_empty(), "people are in the footage: {data}");
    // Each box's left edge, halfway down, is the box colour (below the caption band).
    let mut checked = 0;
    for b in boxes {
        let bb = &b["bbox"];
        let x = bb["x"].as_f64().unwrap().round().clamp(0.0, 639.0) as u32;
        let y = (bb["y"].as_f64().unwrap() + bb["height"].as_f64().unwrap() / 2.0).round() as u32;
        if (60..360).contains(&y) {
            assert_eq!(*img.get_pixel(x, y), Palette::BOX, "box {b} at ({x}, {y})");
            checked += 1;
        }
    }
    assert!(checked > 0, "no box below the caption band: {data}");
    // The ROI's left edge (x = 32) is the ROI colour except where a box crosses it.
    let blue = (60..340)
        .filter(|&y| *img.get_pixel(32, y) == Palette::ROI)
        .count();
    assert!(blue > 200, "ROI edge: {blue} of 280 pixels");
    // The frame is the camera's picture, not a blank: many distinct colours inside.
    let distinct: std::collections::HashSet<_> = img.pixels().map(|p| p.0).collect();
    assert!(distinct.len() > 1000, "{} colours", distinct.len());

    // Over MQTT: the ack first, then the JPEG on care/snapshot/{id}.
    let mark = op.seen.len();
    let (ack, _) = ok(&mut op, "get_snapshot", json!({"quality": 70}));
    let snapshot_topic = op.topic("snapshot");
    assert_eq!(ack["data"]["topic"], snapshot_topic.as_str(), "{ack}");
    let i = op
        .wait_from("the JPEG", mark, Duration::from_secs(10), |a| {
            a.topic == snapshot_topic
        })
        .unwrap();
    let ack_at = op
        .seen
        .iter()
        .position(|a| a.json().is_some_and(|v| v["command_ack"] == "get_snapshot"))
        .unwrap();
    assert!(ack_at < i, "the ack comes before the image");
    let jpeg = op.seen[i].raw.clone().expect("binary payload");
    assert_eq!(
        Some(jpeg.len() as u64),
        ack["data"]["bytes"].as_u64(),
        "{ack}"
    );
    assert!(
        !op.seen[i].retained,
        "a picture of the room is not retained"
    );
    assert_eq!(
        decode(&jpeg, image::ImageFormat::Jpeg).dimensions(),
        (640, 360)
    );

    // Paused: the frame alone, and the ack says why.
    ok(&mut op, "pause_inference", json!({}));
    let (data, img) = orionctl_snapshot(&sys, "paused.png");
    assert_eq!(data["paused"], true, "{data}");
    assert_eq!(data["detections"], json!([]), "{data}");
    assert_eq!(img.dimensions(), (640, 360));
    let status = sys.o.status().unwrap();
    assert_eq!(status["snapshots"]["taken"], 3, "{}", status["snapshots"]);
}
