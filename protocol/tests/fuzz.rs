//! Fuzzing of what arrives from outside: MQTT command payloads (parse and validation) and
//! the socket framing. Every input either yields a valid action or a rejection with a
//! message; nothing panics, nothing allocates past the limits.
//!
//! `ORION_FUZZ_CASES` sets the inputs per property (default 2000; the long run uses
//! 1000000: `ORION_FUZZ_CASES=1000000 cargo test --release -p orion-protocol --test fuzz`).

#![allow(clippy::unwrap_used)]

use orion_protocol::command::{self, Action, MAX_COMMAND};
use orion_protocol::wire::{self, MAX_MESSAGE, WireError};
use proptest::prelude::*;
use serde_json::{Value, json};

fn cases() -> u32 {
    std::env::var("ORION_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// The catalog and a name that is none of it.
fn names() -> Vec<&'static str> {
    let mut names = orion_protocol::command::MQTT_COMMANDS.to_vec();
    names.push("dance");
    names
}

/// Arbitrary JSON values, numbers at the edges included.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            any::<f64>(),
            Just(0.0),
            Just(1.0),
            Just(-0.0),
            Just(1e-300),
            Just(30.0),
            Just(30.000001),
            Just(0.1),
            Just(0.0999999)
        ]
        .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "n", "s", "m", "l", "x", "capture", "simple", "velocity"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "x",
                    "y",
                    "width",
                    "height",
                    "rois",
                    "rate_hz",
                    "size",
                    "name",
                    "strategy",
                    "alpha",
                    "velocity_threshold",
                    "velocity_factor",
                    "max_expansion",
                    "margin",
                    "min_size",
                    "lost_frames",
                    "other"
                ])
                .prop_map(String::from),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Commands shaped like real ones: a known (or unknown) name, arbitrary params and ids.
fn command_like() -> impl Strategy<Value = Value> {
    (prop::sample::select(names()), any_json(), any_json(), any_json()).prop_map(
        |(name, params, rid, ts)| json!({"command": name, "params": params, "request_id": rid, "timestamp": ts}),
    )
}

fn check_one(text: &str) {
    let cmd = command::parse(text);
    match cmd.action {
        Ok(action) => {
            // What is accepted is within the catalog and survives the wire unchanged.
            let back = command::parse_value(action.to_request(cmd.request_id.as_deref()));
            assert_eq!(back.action.as_ref().ok(), Some(&action), "{text}");
            if let Action::SetRate(r) = action {
                assert!((0.1..=30.0).contains(&r.hz()));
            }
        }
        Err(why) => assert!(!why.message.is_empty(), "an empty rejection for {text}"),
    }
    assert!(cmd.name.chars().count() <= 64);
    assert!(
        cmd.request_id
            .as_ref()
            .is_none_or(|r| r.len() <= command::MAX_REQUEST_ID)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn command_payloads_never_panic(text in ".{0,256}") {
        check_one(&text);
    }

    #[test]
    fn command_like_payloads_are_accepted_or_rejected_clearly(v in command_like()) {
        check_one(&v.to_string());
    }

    #[test]
    fn byte_streams_on_the_socket_are_framed_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut r = &bytes[..];
        loop {
            match wire::read_message(&mut r) {
                Ok(Some(body)) => prop_assert!(body.len() <= MAX_MESSAGE),
                Ok(None) => break,
                Err(WireError::TooLarge { len, max }) => {
                    prop_assert!(len > MAX_MESSAGE && max == MAX_MESSAGE);
                    break;
                }
                Err(WireError::Io(_)) => break,
            }
        }
    }

    #[test]
    fn framed_commands_round_trip(v in command_like()) {
        let body = v.to_string();
        let mut buf = Vec::new();
        wire::write_message(&mut buf, body.as_bytes()).unwrap();
        let back = wire::read_message(&mut &buf[..]).unwrap().unwrap();
        prop_assert_eq!(back, body.as_bytes());
    }
}

#[test]
fn oversize_payloads_are_refused_without_parsing() {
    let big = format!(
        r#"{{"command":"get_status","params":{{"pad":"{}"}}}}"#,
        "a".repeat(MAX_COMMAND)
    );
    assert!(
        command::parse(&big)
            .action
            .unwrap_err()
            .message
            .contains("longer than")
    );
}
