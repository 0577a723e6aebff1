//! Home Assistant MQTT discovery on a real mosquitto: the configs are retained and pass Home
//! Assistant's schema rules, their templates render on the live status and occupancy, their
//! command payloads are Orion's own commands and work, Home Assistant's birth message brings
//! them again, and turning discovery off removes them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orion_tests::homeassistant::{check, render_state};
use orion_tests::mqtt::{Watch, publish};
use orion_tests::oriond::START_TIMEOUT;
use serde_json::Value;

mod common;
use common::{ACK_WAIT, Rig, allow_all};

/// The config whose topic ends with `end`.
fn by_end(configs: &[(String, Value)], end: &str) -> Value {
    configs
        .iter()
        .find(|(t, _)| t.ends_with(end))
        .map(|(_, c)| c.clone())
        .unwrap_or_else(|| panic!("no config ending in {end}"))
}

/// Fills a Home Assistant command template's `{{ value }}`.
fn render(template: &str, value: &str) -> String {
    template.replace("{{ value }}", value)
}

#[test]
fn discovery_configs_work_come_again_for_home_assistant_and_go_when_turned_off() {
    // get_snapshot allowed: the button that takes one is announced too; the zone "bed"
    // gets its own occupancy sensor.
    let mut r = Rig::start_with(&format!(
        "{}\n[homeassistant]\ndiscovery = true\n\
         [[zones]]\nname = \"bed\"\npolygon = [[0.1, 0.5], [0.5, 0.5], [0.5, 0.9]]",
        allow_all()
    ));
    let mut ha = Watch::start(r.broker.port, "homeassistant/#").unwrap();
    ha.wait_count("thirteen configs", Duration::from_secs(10), 0, 13, |s| {
        s.topic.ends_with("/config")
    })
    .unwrap();
    let configs: Vec<(String, Value)> = ha
        .seen
        .iter()
        .filter(|s| s.topic.ends_with("/config"))
        .map(|s| (s.topic.clone(), s.json().expect("a config is JSON")))
        .collect();
    assert!(ha.seen.iter().all(|s| s.retained), "configs are retained");
    let availability = r.topic("availability");
    let control = r.topic("control");
    let mut components = Vec::new();
    for (topic, c) in &configs {
        let component = topic.split('/').nth(1).unwrap();
        components.push(component.to_string());
        let problems = check(topic, c);
        assert!(problems.is_empty(), "{problems:#?}");
        assert_eq!(c["availability_topic"], availability.as_str(), "{topic}");
        assert!(
            c["device"]["identifiers"][0]
                .as_str()
                .unwrap()
                .starts_with("orion-")
        );
        if let Some(t) = c["command_topic"].as_str() {
            assert_eq!(t, control, "commands go to Orion's own topic");
        }
    }
    components.sort();
    assert_eq!(
        components,
        [
            "binary_sensor",
            "binary_sensor",
            "binary_sensor",
            "button",
            "camera",
            "event",
            "number",
            "select",
            "sensor",
            "sensor",
            "sensor",
            "switch",
            "switch"
        ]
    );
    assert_eq!(
        configs
            .iter()
            .find(|(t, _)| t.ends_with("/occupancy/config"))
            .unwrap()
            .1["device_class"],
        "occupancy"
    );

    // Every state template renders on the live payloads of its topic to a state its
    // component takes; the camera streams, so it is no problem.
    let mut live = Watch::start(r.broker.port, "care/#").unwrap();
    for (topic, c) in &configs {
        let Some(state_topic) = c["state_topic"].as_str() else {
            continue;
        };
        if state_topic == r.topic("events") {
            continue; // no event has happened yet; its template is rendered in unit tests
        }
        let payload = live
            .wait_for(&format!("a message on {state_topic}"), ACK_WAIT, |s| {
                s.topic == state_topic && !s.payload.is_empty()
            })
            .unwrap()
            .json()
            .unwrap();
        render_state(topic, c, &payload).unwrap();
    }
    let problem = by_end(&configs, "/camera_problem/config");
    let streaming = live
        .wait_for("a status with the stream running", START_TIMEOUT, |s| {
            s.topic == r.topic("status")
                && s.json().is_some_and(|v| v["stream"]["state"] == "running")
        })
        .unwrap()
        .json()
        .unwrap();
    let state = render_state(
        "homeassistant/binary_sensor/x/camera_problem/config",
        &problem,
        &streaming,
    );
    assert_eq!(state.unwrap(), "OFF");

    let zone = &configs
        .iter()
        .find(|(t, _)| t.contains("/zone_bed/"))
        .expect("the zone's sensor")
        .1;
    assert_eq!(
        zone["state_topic"],
        format!("{}/bed", r.topic("occupancy")).as_str()
    );
    let events = &configs
        .iter()
        .find(|(t, _)| t.contains("/event/"))
        .unwrap()
        .1;
    assert_eq!(events["state_topic"], r.topic("events").as_str());
    assert!(
        events["event_types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "zone_start"),
        "{events}"
    );

    // Their command payloads are Orion's commands: each is applied and acknowledged.
    let by = |part: &str| {
        configs
            .iter()
            .find(|(t, _)| t.contains(part))
            .map(|(_, c)| c.clone())
            .unwrap()
    };
    let switch = by("/detection/");
    let focus = by("/auto_focus/");
    let select = by("/select/");
    let number = by("/number/");
    let button = by("/button/");
    assert_eq!(by("/camera/")["topic"], r.topic("snapshot").as_str());
    let commands = [
        (
            switch["payload_off"].as_str().unwrap().to_string(),
            "pause_inference",
        ),
        (
            switch["payload_on"].as_str().unwrap().to_string(),
            "resume_inference",
        ),
        (
            focus["payload_on"].as_str().unwrap().to_string(),
            "enable_auto_focus",
        ),
        (
            render(select["command_template"].as_str().unwrap(), "s"),
            "set_model_size",
        ),
        (
            render(number["command_template"].as_str().unwrap(), "2.5"),
            "set_inference_rate",
        ),
        (
            button["payload_press"].as_str().unwrap().to_string(),
            "get_snapshot",
        ),
    ];
    let health = r.topic("health");
    for (payload, name) in commands {
        r.watch.clear();
        publish(r.broker.port, &control, &payload, &[]).unwrap();
        let ack = r
            .watch
            .wait_for(&format!("ack of {name}"), ACK_WAIT, |s| {
                s.topic == health && s.json().is_some_and(|v| v["command_ack"] == name)
            })
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(ack["status"], "success", "{payload}: {ack}");
    }
    let desired = r.o.status().unwrap()["desired"].clone();
    assert_eq!(desired["model_size"], "s", "{desired}");
    assert_eq!(desired["rate_hz"], 2.5, "{desired}");
    assert_eq!(desired["paused"], false, "{desired}");
    assert_eq!(desired["auto_focus"], true, "{desired}");

    // Home Assistant restarted: its birth message brings the configs again.
    ha.clear();
    publish(r.broker.port, "homeassistant/status", "online", &[]).unwrap();
    ha.wait_count("configs again", Duration::from_secs(10), 0, 13, |s| {
        s.topic.ends_with("/config") && !s.payload.is_empty()
    })
    .unwrap();

    // Discovery off (the config edited, reloaded): the entities are removed.
    let text = std::fs::read_to_string(&r.o.config).unwrap();
    std::fs::write(
        &r.o.config,
        text.replace("discovery = true", "discovery = false"),
    )
    .unwrap();
    let control_pid = r.o.child_pid("control").unwrap();
    kill(Pid::from_raw(r.o.pid() as i32), Signal::SIGHUP).unwrap();
    r.o.wait_for("a new orion-control", START_TIMEOUT, |s| {
        s["processes"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p["name"] == "control"
                    && p["state"] == "RUNNING"
                    && p["pid"]
                        .as_u64()
                        .is_some_and(|pid| pid != u64::from(control_pid))
            })
        })
    })
    .unwrap();
    let from = ha.seen.len();
    ha.wait_count(
        "thirteen removals",
        Duration::from_secs(20),
        from,
        13,
        |s| s.topic.ends_with("/config") && s.payload.is_empty(),
    )
    .unwrap();
    // A newcomer finds no config retained (retained ones come with the subscription).
    let mut late = Watch::start(r.broker.port, "homeassistant/#").unwrap();
    let left = late.wait_for("a retained config", Duration::from_secs(1), |s| {
        s.topic.ends_with("/config")
    });
    assert!(
        left.is_err(),
        "a discovery config is still retained: {left:?}"
    );
}
