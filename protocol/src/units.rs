//! Validated units. Each type can only hold an in-range value; its error names the range.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnitError {
    #[error("size must be one of n, s, m, l, x, got {0:?}")]
    ModelSize(String),
    #[error("rois must hold 1..={max} rectangles, got {got}")]
    RoiCount { got: usize, max: usize },
    #[error(
        "rectangle {field} must be finite with 0 <= x, 0 <= y, width > 0, height > 0, x + width <= 1, y + height <= 1; got {got}"
    )]
    Rect { field: &'static str, got: String },
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

/// A YOLO model size letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ModelSize {
    N,
    S,
    M,
    L,
    X,
}

impl ModelSize {
    pub const ALL: [ModelSize; 5] = [
        ModelSize::N,
        ModelSize::S,
        ModelSize::M,
        ModelSize::L,
        ModelSize::X,
    ];

    pub fn letter(self) -> char {
        match self {
            ModelSize::N => 'n',
            ModelSize::S => 's',
            ModelSize::M => 'm',
            ModelSize::L => 'l',
            ModelSize::X => 'x',
        }
    }
}

impl std::str::FromStr for ModelSize {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        Self::ALL
            .into_iter()
            .find(|m| s.len() == 1 && s.starts_with(m.letter()))
            .ok_or_else(|| UnitError::ModelSize(s.chars().take(20).collect()))
    }
}

impl TryFrom<String> for ModelSize {
    type Error = UnitError;
    fn try_from(s: String) -> Result<Self, UnitError> {
        s.parse()
    }
}

impl From<ModelSize> for String {
    fn from(m: ModelSize) -> String {
        m.letter().to_string()
    }
}

impl fmt::Display for ModelSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

/// A rectangle normalized to the frame: finite, inside `[0, 1]²`, with positive size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawRect", into = "RawRect")]
pub struct NormRect {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRect {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
}

/// Rounding slack for `x + width <= 1` (coordinates often arrive as decimal fractions).
const RECT_EPS: f64 = 1e-9;

impl NormRect {
    pub const FULL: NormRect = NormRect {
        x: 0.0,
        y: 0.0,
        width: 1.0,
        height: 1.0,
    };

    pub fn new(x: f64, y: f64, width: f64, height: f64) -> Result<Self, UnitError> {
        let ok = [x, y, width, height].iter().all(|v| v.is_finite())
            && x >= 0.0
            && y >= 0.0
            && width > 0.0
            && height > 0.0
            && x + width <= 1.0 + RECT_EPS
            && y + height <= 1.0 + RECT_EPS;
        if !ok {
            return Err(UnitError::Rect {
                field: "roi",
                got: format!("x={x}, y={y}, width={width}, height={height}"),
            });
        }
        Ok(Self {
            x,
            y,
            width: width.min(1.0 - x),
            height: height.min(1.0 - y),
        })
    }

    pub fn x(&self) -> f64 {
        self.x
    }
    pub fn y(&self) -> f64 {
        self.y
    }
    pub fn width(&self) -> f64 {
        self.width
    }
    pub fn height(&self) -> f64 {
        self.height
    }
}

/// The operator's attention regions: 1..=16 rectangles; inference runs on their union's
/// bounding box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<NormRect>", into = "Vec<NormRect>")]
pub struct RoiSet(Vec<NormRect>);

impl RoiSet {
    pub const MAX: usize = 16;

    pub fn new(rois: Vec<NormRect>) -> Result<Self, UnitError> {
        if rois.is_empty() || rois.len() > Self::MAX {
            return Err(UnitError::RoiCount {
                got: rois.len(),
                max: Self::MAX,
            });
        }
        Ok(Self(rois))
    }

    pub fn rois(&self) -> &[NormRect] {
        &self.0
    }

    /// The bounding box of all rectangles.
    pub fn union(&self) -> NormRect {
        let x0 = self.0.iter().map(NormRect::x).fold(f64::INFINITY, f64::min);
        let y0 = self.0.iter().map(NormRect::y).fold(f64::INFINITY, f64::min);
        let x1 = self.0.iter().map(|r| r.x + r.width).fold(0.0, f64::max);
        let y1 = self.0.iter().map(|r| r.y + r.height).fold(0.0, f64::max);
        // Inside [0, 1]² with positive size, because every member is.
        NormRect {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        }
    }
}

impl TryFrom<Vec<NormRect>> for RoiSet {
    type Error = UnitError;
    fn try_from(v: Vec<NormRect>) -> Result<Self, UnitError> {
        Self::new(v)
    }
}

impl From<RoiSet> for Vec<NormRect> {
    fn from(s: RoiSet) -> Self {
        s.0
    }
}

impl TryFrom<RawRect> for NormRect {
    type Error = UnitError;
    fn try_from(r: RawRect) -> Result<Self, UnitError> {
        Self::new(r.x, r.y, r.width, r.height)
    }
}

impl From<NormRect> for RawRect {
    fn from(r: NormRect) -> Self {
        RawRect {
            x: r.x,
            y: r.y,
            width: r.width,
            height: r.height,
        }
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

    #[test]
    fn model_sizes_parse_by_letter_only() {
        assert_eq!("m".parse::<ModelSize>().unwrap(), ModelSize::M);
        for bad in ["", "mm", "q", "M", "medium"] {
            let err = bad.parse::<ModelSize>().unwrap_err().to_string();
            assert!(err.contains("n, s, m, l, x"), "{bad}: {err}");
        }
        assert_eq!(serde_json::to_string(&ModelSize::X).unwrap(), "\"x\"");
    }

    #[test]
    fn rects_must_be_inside_the_frame() {
        assert!(NormRect::new(0.1, 0.2, 0.9, 0.8).is_ok());
        for (x, y, w, h) in [
            (-0.1, 0.0, 0.5, 0.5),
            (0.0, 0.0, 0.0, 0.5),
            (0.6, 0.0, 0.5, 0.5),
            (f64::NAN, 0.0, 0.1, 0.1),
            (0.0, 0.0, f64::INFINITY, 0.1),
        ] {
            let err = NormRect::new(x, y, w, h).unwrap_err().to_string();
            assert!(err.contains("x + width <= 1"), "{err}");
        }
        let err = serde_json::from_str::<NormRect>(r#"{"x":0,"y":0,"width":1,"height":1,"z":1}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn roi_sets_hold_1_to_16_and_union_them() {
        let a = NormRect::new(0.1, 0.2, 0.2, 0.2).unwrap();
        let b = NormRect::new(0.5, 0.1, 0.3, 0.2).unwrap();
        let u = RoiSet::new(vec![a, b]).unwrap().union();
        assert!((u.x() - 0.1).abs() < 1e-12 && (u.y() - 0.1).abs() < 1e-12);
        assert!((u.width() - 0.7).abs() < 1e-12 && (u.height() - 0.3).abs() < 1e-12);
        assert!(
            RoiSet::new(vec![])
                .unwrap_err()
                .to_string()
                .contains("1..=16")
        );
        assert!(RoiSet::new(vec![a; 17]).is_err());
        let json = serde_json::json!([{"x": 0.1, "y": 0.1, "width": 0.2, "height": 0.2}]);
        assert!(serde_json::from_value::<RoiSet>(json).is_ok());
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
