//! Validated units. Each type can only hold an in-range value; its error names the range.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnitError {
    #[error("rate_hz must be a number in {min}..={max} with at most 3 decimals, got {got}")]
    Rate { got: f64, min: f64, max: f64 },
    #[error("{field} must be in {min}..={max}, got {got}")]
    Size {
        field: &'static str,
        got: u32,
        min: u32,
        max: u32,
    },
}

/// An inference/capture rate in Hz, 0.1..=30, held exactly in millihertz so that fractional
/// rates (0.5 Hz, 1.5 Hz) become exact fractions (1/2, 3/2) for GStreamer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct RateHz {
    millihertz: u32,
}

impl RateHz {
    pub const MIN: f64 = 0.1;
    pub const MAX: f64 = 30.0;

    pub fn new(hz: f64) -> Result<Self, UnitError> {
        let err = UnitError::Rate {
            got: hz,
            min: Self::MIN,
            max: Self::MAX,
        };
        if !hz.is_finite() || !(Self::MIN..=Self::MAX).contains(&hz) {
            return Err(err);
        }
        let milli = (hz * 1000.0).round();
        if (milli / 1000.0 - hz).abs() > 1e-9 {
            return Err(err);
        }
        // In 100..=30_000 after the range check.
        Ok(Self {
            millihertz: milli as u32,
        })
    }

    pub fn hz(self) -> f64 {
        f64::from(self.millihertz) / 1000.0
    }

    /// The rate as a reduced fraction `(numerator, denominator)` of frames per second.
    pub fn as_fraction(self) -> (i32, i32) {
        let g = gcd(self.millihertz, 1000);
        // Both parts are ≤ 30_000, well inside i32.
        ((self.millihertz / g) as i32, (1000 / g) as i32)
    }

    /// Time between two frames.
    pub fn interval(self) -> std::time::Duration {
        std::time::Duration::from_micros(1_000_000_000 / u64::from(self.millihertz))
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl TryFrom<f64> for RateHz {
    type Error = UnitError;
    fn try_from(hz: f64) -> Result<Self, UnitError> {
        Self::new(hz)
    }
}

impl From<RateHz> for f64 {
    fn from(rate: RateHz) -> f64 {
        rate.hz()
    }
}

impl fmt::Display for RateHz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz", self.hz())
    }
}

/// Width and height of the frames Orion works on, each 16..=7680 / 16..=4320.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawFrameSize", into = "RawFrameSize")]
pub struct FrameSize {
    width: u32,
    height: u32,
}

#[derive(Serialize, Deserialize)]
struct RawFrameSize {
    width: u32,
    height: u32,
}

impl FrameSize {
    pub const MIN: u32 = 16;
    pub const MAX_WIDTH: u32 = 7680;
    pub const MAX_HEIGHT: u32 = 4320;

    pub fn new(width: u32, height: u32) -> Result<Self, UnitError> {
        let check = |field, got, max| {
            if (Self::MIN..=max).contains(&got) {
                Ok(())
            } else {
                Err(UnitError::Size {
                    field,
                    got,
                    min: Self::MIN,
                    max,
                })
            }
        };
        check("width", width, Self::MAX_WIDTH)?;
        check("height", height, Self::MAX_HEIGHT)?;
        Ok(Self { width, height })
    }

    pub fn width(self) -> u32 {
        self.width
    }

    pub fn height(self) -> u32 {
        self.height
    }
}

impl TryFrom<RawFrameSize> for FrameSize {
    type Error = UnitError;
    fn try_from(raw: RawFrameSize) -> Result<Self, UnitError> {
        Self::new(raw.width, raw.height)
    }
}

impl From<FrameSize> for RawFrameSize {
    fn from(size: FrameSize) -> Self {
        RawFrameSize {
            width: size.width,
            height: size.height,
        }
    }
}

impl fmt::Display for FrameSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fractional_rates_are_exact_fractions() {
        assert_eq!(RateHz::new(0.5).unwrap().as_fraction(), (1, 2));
        assert_eq!(RateHz::new(1.5).unwrap().as_fraction(), (3, 2));
        assert_eq!(RateHz::new(15.0).unwrap().as_fraction(), (15, 1));
        assert_eq!(RateHz::new(0.1).unwrap().as_fraction(), (1, 10));
        assert_eq!(RateHz::new(29.97).unwrap().as_fraction(), (2997, 100));
        assert_eq!(
            RateHz::new(0.5).unwrap().interval(),
            std::time::Duration::from_secs(2)
        );
    }

    #[test]
    fn bad_rates_name_the_range() {
        for bad in [0.0, 0.09, 30.01, -1.0, f64::NAN, f64::INFINITY, 1.2345] {
            let err = RateHz::new(bad).unwrap_err().to_string();
            assert!(
                err.contains("rate_hz") && err.contains("0.1..=30"),
                "{bad}: {err}"
            );
        }
        let err = serde_json::from_str::<RateHz>("31")
            .unwrap_err()
            .to_string();
        assert!(err.contains("0.1..=30"), "{err}");
    }

    #[test]
    fn sizes_are_checked_per_field() {
        assert!(FrameSize::new(426, 320).is_ok());
        let err = FrameSize::new(8, 320).unwrap_err().to_string();
        assert!(err.contains("width") && err.contains("16..=7680"), "{err}");
        let err = serde_json::from_str::<FrameSize>(r#"{"width":640,"height":5000}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("height"), "{err}");
    }

    proptest! {
        #[test]
        fn rate_fraction_round_trips(milli in 100u32..=30_000) {
            let hz = f64::from(milli) / 1000.0;
            let rate = RateHz::new(hz).unwrap();
            let (n, d) = rate.as_fraction();
            prop_assert!((f64::from(n) / f64::from(d) - hz).abs() < 1e-12);
            prop_assert_eq!(gcd(n as u32, d as u32), 1);
            let json = serde_json::to_string(&rate).unwrap();
            prop_assert_eq!(serde_json::from_str::<RateHz>(&json).unwrap(), rate);
        }
    }
}
