//! Auto-focus: follow the people in view with a region of interest (docs/architecture.md#regions-and-auto-focus).
//!
//! Each frame, `T` is the union of the person boxes (normalized to the frame), grown by
//! `margin` of its size (half on each side), clipped to the frame and at least `min_size`
//! of each side. On `(cx, cy, w, h)`:
//! - `simple`: `R = T`;
//! - `smoothing`: `R = α·T + (1 − α)·R_prev`;
//! - `velocity`: `v = |c(T) − c(T_prev)|` (Euclidean, normalized units per frame); `R` is the
//!   smoothing result, and if `v > velocity_threshold` its `w` and `h` grow by the factor
//!   `1 + e` with `e = min(max_expansion, velocity_factor·v)`, then `R` is clipped to the
//!   frame.
//!
//! Without a person for `lost_frames` consecutive frames, `R` is the full frame (no ROI);
//! until then the last `R` is kept. Everything here is pure: the bridge feeds detections
//! in and asks for the region to use next.

use orion_protocol::NormRect;
pub use orion_protocol::focus::{Params, ParamsUpdate, Strategy};
use serde::Serialize;

/// A box as centre and size, normalized to the frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CBox {
    pub cx: f64,
    pub cy: f64,
    pub w: f64,
    pub h: f64,
}

impl CBox {
    pub fn from_corners(x1: f64, y1: f64, x2: f64, y2: f64) -> Self {
        Self {
            cx: (x1 + x2) / 2.0,
            cy: (y1 + y2) / 2.0,
            w: x2 - x1,
            h: y2 - y1,
        }
    }

    /// Inside `[0, 1]²`: size at most 1, centre shifted so the box fits.
    fn clipped(self) -> Self {
        let (w, h) = (self.w.clamp(1e-6, 1.0), self.h.clamp(1e-6, 1.0));
        Self {
            cx: self.cx.clamp(w / 2.0, 1.0 - w / 2.0),
            cy: self.cy.clamp(h / 2.0, 1.0 - h / 2.0),
            w,
            h,
        }
    }

    fn blend(self, prev: Self, alpha: f64) -> Self {
        let mix = |a: f64, b: f64| alpha * a + (1.0 - alpha) * b;
        Self {
            cx: mix(self.cx, prev.cx),
            cy: mix(self.cy, prev.cy),
            w: mix(self.w, prev.w),
            h: mix(self.h, prev.h),
        }
    }

    pub fn to_rect(self) -> Option<NormRect> {
        let c = self.clipped();
        NormRect::new(
            (c.cx - c.w / 2.0).max(0.0),
            (c.cy - c.h / 2.0).max(0.0),
            c.w,
            c.h,
        )
        .ok()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Frames inferred on the auto-focus ROI.
    pub frames_with_auto_focus: u64,
    /// Updates that found a previous target (smoothing / velocity had history).
    pub history_hits: u64,
    /// Updates without one (first sighting, or after a clear or a loss).
    pub history_misses: u64,
    pub simple: u64,
    pub smoothing: u64,
    pub velocity: u64,
    pub current_roi: Option<NormRect>,
    pub current_expansion: f64,
    pub consecutive_misses: u32,
}

#[derive(Debug, Clone, Default)]
pub struct AutoFocus {
    pub params: Params,
    target_prev: Option<CBox>,
    roi: Option<CBox>,
    misses: u32,
    stats: Stats,
}

impl AutoFocus {
    pub fn new(params: Params) -> Self {
        Self {
            params,
            ..Self::default()
        }
    }

    /// The region for the next frame; `None` means the full frame.
    pub fn roi(&self) -> Option<NormRect> {
        self.roi.and_then(CBox::to_rect)
    }

    /// Counts a frame inferred on the auto-focus ROI.
    pub fn used(&mut self) {
        self.stats.frames_with_auto_focus += 1;
    }

    /// Forgets `T_prev` and `R_prev`: the next frame starts from the full frame.
    pub fn clear_history(&mut self) {
        self.target_prev = None;
        self.roi = None;
        self.misses = 0;
        self.stats.current_expansion = 0.0;
    }

    pub fn stats(&self) -> Stats {
        Stats {
            current_roi: self.roi(),
            consecutive_misses: self.misses,
            ..self.stats.clone()
        }
    }

    /// Feeds one frame's person boxes (normalized to the frame).
    pub fn update(&mut self, persons: &[CBox]) {
        let Some(target) = self.target(persons) else {
            self.misses = self.misses.saturating_add(1);
            if self.misses >= self.params.lost_frames {
                self.clear_history();
            }
            return;
        };
        self.misses = 0;
        let p = self.params;
        match self.target_prev {
            Some(_) => self.stats.history_hits += 1,
            None => self.stats.history_misses += 1,
        }
        let smoothed = self.roi.map_or(target, |prev| target.blend(prev, p.alpha));
        let (roi, expansion) = match p.strategy {
            Strategy::Simple => {
                self.stats.simple += 1;
                (target, 0.0)
            }
            Strategy::Smoothing => {
                self.stats.smoothing += 1;
                (smoothed, 0.0)
            }
            Strategy::Velocity => {
                self.stats.velocity += 1;
                let v = self
                    .target_prev
                    .map_or(0.0, |t| (target.cx - t.cx).hypot(target.cy - t.cy));
                if v > p.velocity_threshold {
                    let e = (p.velocity_factor * v).min(p.max_expansion);
                    (
                        CBox {
                            w: smoothed.w * (1.0 + e),
                            h: smoothed.h * (1.0 + e),
                            ..smoothed
                        },
                        e,
                    )
                } else {
                    (smoothed, 0.0)
                }
            }
        };
        self.stats.current_expansion = expansion;
        self.target_prev = Some(target);
        self.roi = Some(roi.clipped());
    }

    /// `T`: the union of the boxes, grown by the margin, clipped, at least `min_size`.
    fn target(&self, persons: &[CBox]) -> Option<CBox> {
        let first = persons.first()?;
        let edges = |b: &CBox| {
            (
                b.cx - b.w / 2.0,
                b.cy - b.h / 2.0,
                b.cx + b.w / 2.0,
                b.cy + b.h / 2.0,
            )
        };
        let (mut x1, mut y1, mut x2, mut y2) = edges(first);
        for b in &persons[1..] {
            let (a, b_, c, d) = edges(b);
            (x1, y1, x2, y2) = (x1.min(a), y1.min(b_), x2.max(c), y2.max(d));
        }
        let u = CBox::from_corners(x1, y1, x2, y2);
        let m = self.params.margin;
        let grown = CBox {
            w: (u.w * (1.0 + m)).max(self.params.min_size),
            h: (u.h * (1.0 + m)).max(self.params.min_size),
            ..u
        };
        Some(grown.clipped())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{Strategy as _, prop, prop_assert, proptest};

    fn cbox() -> impl proptest::strategy::Strategy<Value = CBox> {
        (0.0f64..1.0, 0.0f64..1.0, 0.001f64..0.5, 0.001f64..0.5).prop_map(|(cx, cy, w, h)| CBox {
            cx,
            cy,
            w,
            h,
        })
    }

    fn params(strategy: super::Strategy) -> Params {
        Params {
            strategy,
            ..Params::default()
        }
    }

    fn inside(r: &NormRect) -> bool {
        r.x() >= 0.0
            && r.y() >= 0.0
            && r.x() + r.width() <= 1.0 + 1e-9
            && r.y() + r.height() <= 1.0 + 1e-9
    }

    proptest! {
        #[test]
        fn roi_stays_inside_the_frame(
            frames in prop::collection::vec(prop::collection::vec(cbox(), 0..4), 1..40),
            s in prop::sample::select(vec![Strategy::Simple, Strategy::Smoothing, Strategy::Velocity]),
        ) {
            let mut af = AutoFocus::new(params(s));
            for persons in frames {
                af.update(&persons);
                if let Some(r) = af.roi() {
                    prop_assert!(inside(&r), "{r:?}");
                    prop_assert!(r.width() >= af.params.min_size - 1e-9 && r.height() >= af.params.min_size - 1e-9);
                }
            }
        }

        #[test]
        fn smoothing_converges_to_a_still_target(start in cbox(), target in cbox(), alpha in 0.05f64..=1.0) {
            let mut af = AutoFocus::new(Params { alpha, ..params(Strategy::Smoothing) });
            af.update(&[start]);
            let t = af.target(&[target]).unwrap();
            for _ in 0..400 {
                af.update(&[target]);
            }
            let r = af.roi.unwrap();
            prop_assert!((r.cx - t.cx).abs() < 1e-6 && (r.cy - t.cy).abs() < 1e-6);
            prop_assert!((r.w - t.w).abs() < 1e-6 && (r.h - t.h).abs() < 1e-6);
        }

        #[test]
        fn velocity_grows_by_at_most_max_expansion(a in cbox(), b in cbox(), max_e in 0.0f64..=1.5, factor in 0.0f64..20.0) {
            let p = Params { max_expansion: max_e, velocity_factor: factor, velocity_threshold: 0.0, ..params(Strategy::Velocity) };
            let mut af = AutoFocus::new(p);
            af.update(&[a]);
            let before = af.roi.unwrap();
            af.update(&[b]);
            let smoothed = af.target(&[b]).unwrap().blend(before, p.alpha);
            let r = af.roi.unwrap();
            prop_assert!(af.stats.current_expansion <= max_e + 1e-12);
            prop_assert!(r.w <= smoothed.w * (1.0 + max_e) + 1e-9 && r.h <= smoothed.h * (1.0 + max_e) + 1e-9);
        }

        #[test]
        fn lost_frames_return_to_the_full_frame(seen in cbox(), lost in 1u32..50) {
            let mut af = AutoFocus::new(Params { lost_frames: lost, ..Params::default() });
            af.update(&[seen]);
            for _ in 0..lost - 1 {
                af.update(&[]);
                prop_assert!(af.roi().is_some(), "kept until lost_frames");
            }
            af.update(&[]);
            prop_assert!(af.roi().is_none());
        }
    }

    #[test]
    fn simple_is_the_grown_union() {
        let mut af = AutoFocus::new(params(Strategy::Simple));
        af.update(&[
            CBox::from_corners(0.4, 0.4, 0.5, 0.6),
            CBox::from_corners(0.55, 0.45, 0.6, 0.55),
        ]);
        let r = af.roi().unwrap();
        // union 0.4..0.6 × 0.4..0.6 = 0.2 wide; grown by 15 % → 0.23, centred on 0.5
        assert!(
            (r.x() - 0.385).abs() < 1e-9 && (r.width() - 0.23).abs() < 1e-9,
            "{r:?}"
        );
        // a tiny person still gets min_size
        af.update(&[CBox::from_corners(0.1, 0.1, 0.11, 0.12)]);
        let r = af.roi().unwrap();
        assert!((r.width() - 0.2).abs() < 1e-9 && (r.height() - 0.2).abs() < 1e-9 && r.x() >= 0.0);
    }

    #[test]
    fn bad_parameters_name_the_field_and_range() {
        let base = Params::default();
        for (update, expected) in [
            (
                ParamsUpdate {
                    alpha: Some(0.0),
                    ..Default::default()
                },
                "alpha must be in (0, 1]",
            ),
            (
                ParamsUpdate {
                    alpha: Some(f64::NAN),
                    ..Default::default()
                },
                "alpha must be in (0, 1]",
            ),
            (
                ParamsUpdate {
                    velocity_threshold: Some(-0.1),
                    ..Default::default()
                },
                "velocity_threshold must be in [0, inf)",
            ),
            (
                ParamsUpdate {
                    velocity_factor: Some(f64::INFINITY),
                    ..Default::default()
                },
                "velocity_factor",
            ),
            (
                ParamsUpdate {
                    max_expansion: Some(2.0),
                    ..Default::default()
                },
                "max_expansion must be in [0, 1.5]",
            ),
            (
                ParamsUpdate {
                    min_size: Some(0.0),
                    ..Default::default()
                },
                "min_size must be in (0, 1]",
            ),
            (
                ParamsUpdate {
                    lost_frames: Some(0),
                    ..Default::default()
                },
                "lost_frames must be in 1..=10000",
            ),
        ] {
            let err = base.with(&update).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        let ok = base
            .with(&ParamsUpdate {
                strategy: Some(Strategy::Velocity),
                alpha: Some(1.0),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            (ok.strategy, ok.alpha, ok.lost_frames),
            (Strategy::Velocity, 1.0, 30)
        );
    }
}
