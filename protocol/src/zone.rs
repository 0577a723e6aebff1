//! Zones: named places in the room ("bed", "door"), polygons in coordinates normalized to
//! the frame. A person is in a zone when the bottom centre of their box (where they stand
//! or lie) is inside its polygon. Set in the config (`[[zones]]`) and by command
//! (`set_zones`); each has its own retained occupancy on `{prefix}/occupancy/{id}/{zone}`.

use serde::{Deserialize, Serialize};

/// A zone's name: it becomes an MQTT topic level and a Home Assistant id, so 1..=32
/// characters of a-z, 0-9, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ZoneName(String);

impl ZoneName {
    pub const MAX: usize = 32;

    pub fn new(name: &str) -> Result<Self, ZoneError> {
        let ok = (1..=Self::MAX).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(name.to_string()))
        } else {
            Err(ZoneError::Name(name.chars().take(40).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ZoneName {
    type Error = ZoneError;
    fn try_from(s: String) -> Result<Self, ZoneError> {
        Self::new(&s)
    }
}

impl From<ZoneName> for String {
    fn from(n: ZoneName) -> String {
        n.0
    }
}

impl std::fmt::Display for ZoneName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZoneError {
    #[error("zone name must be 1..=32 characters of a-z, 0-9, _ and -, got {0:?}")]
    Name(String),
    #[error("zone {zone}: polygon must have 3..=32 points, got {got}")]
    Points { zone: String, got: usize },
    #[error("zone {zone}: every point must be [x, y] with both in 0..=1, got {got}")]
    Point { zone: String, got: String },
    #[error("zone {zone}: the polygon encloses no area")]
    Flat { zone: String },
    #[error("at most 16 zones, got {0}")]
    Count(usize),
    #[error("zone {0} is named twice")]
    Twice(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    name: ZoneName,
    polygon: Vec<[f64; 2]>,
}

/// A named polygon, validated: 3..=32 points inside `[0, 1]²`, enclosing some area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawZone", into = "RawZone")]
pub struct Zone {
    name: ZoneName,
    polygon: Vec<[f64; 2]>,
}

impl Zone {
    pub const MAX_POINTS: usize = 32;

    pub fn new(name: ZoneName, polygon: Vec<[f64; 2]>) -> Result<Self, ZoneError> {
        let zone = || name.to_string();
        if !(3..=Self::MAX_POINTS).contains(&polygon.len()) {
            return Err(ZoneError::Points {
                zone: zone(),
                got: polygon.len(),
            });
        }
        if let Some(p) = polygon
            .iter()
            .find(|p| !p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)))
        {
            return Err(ZoneError::Point {
                zone: zone(),
                got: format!("[{}, {}]", p[0], p[1]),
            });
        }
        if area(&polygon) < 1e-6 {
            return Err(ZoneError::Flat { zone: zone() });
        }
        Ok(Self { name, polygon })
    }

    pub fn name(&self) -> &ZoneName {
        &self.name
    }

    pub fn polygon(&self) -> &[[f64; 2]] {
        &self.polygon
    }

    /// Whether the point `(x, y)` (normalized) is inside (even-odd rule; a point on an
    /// edge may fall either way).
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let mut inside = false;
        let n = self.polygon.len();
        for i in 0..n {
            let [xi, yi] = self.polygon[i];
            let [xj, yj] = self.polygon[(i + n - 1) % n];
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
        }
        inside
    }
}

/// The shoelace area, unsigned.
fn area(p: &[[f64; 2]]) -> f64 {
    let n = p.len();
    let twice: f64 = (0..n)
        .map(|i| {
            let ([x0, y0], [x1, y1]) = (p[i], p[(i + 1) % n]);
            x0 * y1 - x1 * y0
        })
        .sum();
    twice.abs() / 2.0
}

impl TryFrom<RawZone> for Zone {
    type Error = ZoneError;
    fn try_from(r: RawZone) -> Result<Self, ZoneError> {
        Self::new(r.name, r.polygon)
    }
}

impl From<Zone> for RawZone {
    fn from(z: Zone) -> RawZone {
        RawZone {
            name: z.name,
            polygon: z.polygon,
        }
    }
}

/// The room's zones: 0..=16, names unique.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<Zone>", into = "Vec<Zone>")]
pub struct Zones(Vec<Zone>);

impl Zones {
    pub const MAX: usize = 16;

    pub fn new(zones: Vec<Zone>) -> Result<Self, ZoneError> {
        if zones.len() > Self::MAX {
            return Err(ZoneError::Count(zones.len()));
        }
        for (i, z) in zones.iter().enumerate() {
            if zones[..i].iter().any(|o| o.name == z.name) {
                return Err(ZoneError::Twice(z.name.to_string()));
            }
        }
        Ok(Self(zones))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl TryFrom<Vec<Zone>> for Zones {
    type Error = ZoneError;
    fn try_from(v: Vec<Zone>) -> Result<Self, ZoneError> {
        Self::new(v)
    }
}

impl From<Zones> for Vec<Zone> {
    fn from(z: Zones) -> Vec<Zone> {
        z.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn zone(json: &str) -> Result<Zone, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn zones_are_checked_and_name_what_is_wrong() {
        let bed =
            zone(r#"{"name":"bed","polygon":[[0.1,0.5],[0.5,0.5],[0.5,0.9],[0.1,0.9]]}"#).unwrap();
        assert!(bed.contains(0.3, 0.7));
        assert!(!bed.contains(0.6, 0.7) && !bed.contains(0.3, 0.4));
        for (json, says) in [
            (
                r#"{"name":"Bed","polygon":[[0,0],[1,0],[1,1]]}"#,
                "a-z, 0-9",
            ),
            (
                r#"{"name":"bed","polygon":[[0,0],[1,0]]}"#,
                "3..=32 points, got 2",
            ),
            (
                r#"{"name":"bed","polygon":[[0,0],[1.5,0],[1,1]]}"#,
                "[1.5, 0]",
            ),
            (
                r#"{"name":"bed","polygon":[[0,0],[0.5,0.5],[1,1]]}"#,
                "no area",
            ),
            (
                r#"{"name":"bed","polygon":[[0,0],[1,0],[1,1]],"x":1}"#,
                "unknown field",
            ),
        ] {
            let e = zone(json).unwrap_err();
            assert!(e.contains(says), "{json}: {e}");
        }
        let twice = Zones::new(vec![bed.clone(), bed]).unwrap_err();
        assert_eq!(twice.to_string(), "zone bed is named twice");
    }

    #[test]
    fn a_concave_polygon_holds_only_its_inside() {
        // An L: the notch at the top right is outside.
        let l = zone(r#"{"name":"l","polygon":[[0,0],[0.4,0],[0.4,0.6],[1,0.6],[1,1],[0,1]]}"#)
            .unwrap();
        assert!(l.contains(0.2, 0.2) && l.contains(0.8, 0.8));
        assert!(!l.contains(0.8, 0.3));
    }

    proptest! {
        /// Inside a rectangle zone exactly when inside the rectangle (away from its edges).
        #[test]
        fn a_rectangle_zone_is_the_rectangle(
            x in 0.0f64..0.8, y in 0.0f64..0.8, w in 0.05f64..0.2, h in 0.05f64..0.2,
            px in 0.0f64..1.0, py in 0.0f64..1.0,
        ) {
            let z = Zone::new(
                ZoneName::new("r").unwrap(),
                vec![[x, y], [x + w, y], [x + w, y + h], [x, y + h]],
            ).unwrap();
            let margin = 1e-9;
            let inside = px > x + margin && px < x + w - margin && py > y + margin && py < y + h - margin;
            let outside = px < x - margin || px > x + w + margin || py < y - margin || py > y + h + margin;
            if inside { prop_assert!(z.contains(px, py)); }
            if outside { prop_assert!(!z.contains(px, py)); }
        }
    }
}
