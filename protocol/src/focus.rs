//! Auto-focus parameters (docs/architecture.md#regions-and-auto-focus), validated: shared by the detector that
//! applies them and the supervisor that keeps them as desired state.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Simple,
    Smoothing,
    Velocity,
}

/// Validated auto-focus parameters. Deserializing validates (absent fields take defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ParamsUpdate")]
pub struct Params {
    pub strategy: Strategy,
    pub alpha: f64,
    pub velocity_threshold: f64,
    pub velocity_factor: f64,
    pub max_expansion: f64,
    pub margin: f64,
    pub min_size: f64,
    pub lost_frames: u32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            strategy: Strategy::Smoothing,
            alpha: 0.3,
            velocity_threshold: 0.05,
            velocity_factor: 0.3,
            max_expansion: 1.5,
            margin: 0.15,
            min_size: 0.2,
            lost_frames: 30,
        }
    }
}

/// A change to the parameters; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub velocity_threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub velocity_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_expansion: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_size: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_frames: Option<u32>,
}

impl Params {
    /// Every field as an update, to re-apply these parameters to a restarted detector.
    pub fn as_update(&self) -> ParamsUpdate {
        ParamsUpdate {
            strategy: Some(self.strategy),
            alpha: Some(self.alpha),
            velocity_threshold: Some(self.velocity_threshold),
            velocity_factor: Some(self.velocity_factor),
            max_expansion: Some(self.max_expansion),
            margin: Some(self.margin),
            min_size: Some(self.min_size),
            lost_frames: Some(self.lost_frames),
        }
    }

    /// `self` with `update` applied, or an error naming the first bad field and its range.
    pub fn with(&self, update: &ParamsUpdate) -> Result<Self, String> {
        let p = Self {
            strategy: update.strategy.unwrap_or(self.strategy),
            alpha: update.alpha.unwrap_or(self.alpha),
            velocity_threshold: update.velocity_threshold.unwrap_or(self.velocity_threshold),
            velocity_factor: update.velocity_factor.unwrap_or(self.velocity_factor),
            max_expansion: update.max_expansion.unwrap_or(self.max_expansion),
            margin: update.margin.unwrap_or(self.margin),
            min_size: update.min_size.unwrap_or(self.min_size),
            lost_frames: update.lost_frames.unwrap_or(self.lost_frames),
        };
        let check = |name: &str, v: f64, ok: bool, range: &str| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(format!("{name} must be in {range}, got {v}"))
            }
        };
        check("alpha", p.alpha, p.alpha > 0.0 && p.alpha <= 1.0, "(0, 1]")?;
        check(
            "velocity_threshold",
            p.velocity_threshold,
            p.velocity_threshold >= 0.0,
            "[0, inf)",
        )?;
        check(
            "velocity_factor",
            p.velocity_factor,
            p.velocity_factor >= 0.0,
            "[0, inf)",
        )?;
        check(
            "max_expansion",
            p.max_expansion,
            (0.0..=1.5).contains(&p.max_expansion),
            "[0, 1.5]",
        )?;
        check(
            "margin",
            p.margin,
            (0.0..=1.0).contains(&p.margin),
            "[0, 1]",
        )?;
        check(
            "min_size",
            p.min_size,
            p.min_size > 0.0 && p.min_size <= 1.0,
            "(0, 1]",
        )?;
        if !(1..=10_000).contains(&p.lost_frames) {
            return Err(format!(
                "lost_frames must be in 1..=10000, got {}",
                p.lost_frames
            ));
        }
        Ok(p)
    }
}

impl TryFrom<ParamsUpdate> for Params {
    type Error = String;
    fn try_from(update: ParamsUpdate) -> Result<Self, String> {
        Params::default().with(&update)
    }
}
