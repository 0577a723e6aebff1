//! Ranges of the detector's and capture's settings, each owned by a type: the config file
//! and every process's command line check against the same constant, so a range cannot
//! drift between them (the stall timeout once did: 1..=300 in the config, 0.5..=3600 on the
//! capture's command line).

use std::fmt;

/// A value outside its range; says the range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("must be in {range}, got {got}")]
pub struct RangeError {
    pub range: &'static str,
    pub got: String,
}

macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident: $t:ty, $min:expr, $max:expr, $range:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
        pub struct $name($t);

        impl $name {
            pub const MIN: $t = $min;
            pub const MAX: $t = $max;
            /// The range as the error messages and the docs spell it.
            pub const RANGE: &'static str = $range;

            pub fn new(v: $t) -> Result<Self, RangeError> {
                let ok: fn($t) -> bool = $check;
                if ok(v) {
                    Ok(Self(v))
                } else {
                    Err(RangeError { range: Self::RANGE, got: v.to_string() })
                }
            }

            pub fn get(self) -> $t {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

bounded!(
    /// Seconds without a frame before the capture rebuilds its stream.
    StallTimeout: f64, 0.5, 300.0, "0.5..=300",
    |v| v.is_finite() && (0.5..=300.0).contains(&v)
);
bounded!(
    /// ONNX Runtime intra-op threads of the worker.
    Threads: u32, 1, 64, "1..=64",
    |v| (1..=64).contains(&v)
);
bounded!(
    /// Least score of a box that counts.
    Confidence: f64, 0.0, 1.0, "0..=1",
    |v| v.is_finite() && (0.0..=1.0).contains(&v)
);
bounded!(
    /// Overlap above which non-maximum suppression drops the weaker box.
    Iou: f64, 0.0, 1.0, "(0, 1]",
    |v| v.is_finite() && v > 0.0 && v <= 1.0
);
bounded!(
    /// Seconds an inference may take before the worker counts as hung.
    WorkerTimeout: f64, 0.5, 600.0, "0.5..=600",
    |v| v.is_finite() && (0.5..=600.0).contains(&v)
);
bounded!(
    /// Region area (pixels) up to which the 320 model is used.
    Threshold320: u64, 0, 7680 * 4320, "0..=33177600",
    |v| v <= 7680 * 4320
);
bounded!(
    /// Seconds a crop (attention ROIs, auto-focus) may hide the rest of the frame before
    /// the detector looks at the whole frame again.
    FullLook: f64, 0.5, 60.0, "0.5..=60",
    |v| v.is_finite() && (0.5..=60.0).contains(&v)
);

bounded!(
    /// JPEG quality of a snapshot (libjpeg's scale: 100 is best, 75 a common default).
    JpegQuality: u8, 1, 100, "1..=100",
    |v| (1..=100).contains(&v)
);

/// Class names that count as a person: 1..=80 names of 1..=64 characters, no commas or
/// line breaks (they travel comma-separated on a command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassNames(Vec<String>);

impl ClassNames {
    pub const MAX: usize = 80;
    pub const RANGE: &'static str = "1..=80 names of 1..=64 characters without commas";

    pub fn new(names: Vec<String>) -> Result<Self, RangeError> {
        let ok = !names.is_empty()
            && names.len() <= Self::MAX
            && names
                .iter()
                .all(|n| !n.is_empty() && n.len() <= 64 && !n.contains([',', '\n', '\r']));
        if ok {
            Ok(Self(names))
        } else {
            Err(RangeError {
                range: Self::RANGE,
                got: format!("{names:?}").chars().take(200).collect(),
            })
        }
    }

    /// From the comma-separated command-line form.
    pub fn parse(list: &str) -> Result<Self, RangeError> {
        Self::new(
            list.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect(),
        )
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    pub fn joined(&self) -> String {
        self.0.join(",")
    }
}

/// Largest MQTT packet Orion reads or sends: orion-control's limit (announced under MQTT
/// 5) and the embedded broker's `max_packet_size`. Far above [`crate::command::MAX_COMMAND`], so an
/// oversize command is read and answered with an error, and room for a snapshot.
pub const MAX_MQTT_PACKET: usize = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_and_errors_say_them() {
        assert!(StallTimeout::new(0.5).is_ok() && StallTimeout::new(300.0).is_ok());
        assert_eq!(
            StallTimeout::new(0.4).unwrap_err().to_string(),
            "must be in 0.5..=300, got 0.4"
        );
        assert!(StallTimeout::new(f64::NAN).is_err());
        assert!(Iou::new(0.0).is_err() && Iou::new(1.0).is_ok());
        assert!(Threads::new(0).is_err() && Threads::new(64).is_ok());
        assert!(Confidence::new(1.01).is_err());
        assert!(WorkerTimeout::new(601.0).is_err());
        assert_eq!(
            ClassNames::parse(" person, Fall ").unwrap().joined(),
            "person,Fall"
        );
        assert!(ClassNames::parse(",,").is_err());
        assert!(ClassNames::new(vec!["a,b".into()]).is_err());
    }
}
