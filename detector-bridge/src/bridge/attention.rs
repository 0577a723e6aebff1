//! Where the detector looks: the operator's attention ROIs, else the auto-focus region
//! (when on), else the whole frame (docs/architecture.md#regions-and-auto-focus); and the commands that change it.
//!
//! A region never hides the room for long (docs/architecture.md#full-looks): while one is
//! in use, a frame is looked at whole at least every `full_look` — oriond lets occupancy
//! turn empty only on such a frame — and auto-focus gives way to the whole frame for
//! `full_look` as soon as its region holds fewer people than the last full look found (on
//! the street footage: 55 % of frames below the whole frame's count
//! without this, 6 % with it; `orion-bench detector --only partial`).

use std::time::{Duration, Instant};

use orion_protocol::command::AckError;
use orion_protocol::detector::AutoFocusStatus;
use orion_protocol::{Action, NormRect, RoiSet, RoiSource};
use serde_json::{Value, json};

use crate::autofocus::{AutoFocus, CBox, Params};

pub struct Attention {
    rois: Option<RoiSet>,
    enabled: bool,
    autofocus: AutoFocus,
    /// Longest time a region may be used without a look at the whole frame; `None`: never
    /// forced (the bench's "before").
    full_look: Option<Duration>,
    /// When the last whole frame was sent, and the people its result held (`None`: not
    /// back yet).
    last_full: Option<(Instant, Option<usize>)>,
    /// Auto-focus lost people the full frame still had: frames are whole until then (a
    /// region that lost people once will likely lose them again: give it `full_look`).
    whole_until: Option<Instant>,
}

impl Attention {
    pub fn new(auto_focus: bool, params: Params, full_look: Option<Duration>) -> Self {
        Self {
            rois: None,
            enabled: auto_focus,
            autofocus: AutoFocus::new(params),
            full_look,
            last_full: None,
            whole_until: None,
        }
    }

    /// The region the next frame at `now` is cropped to, and why.
    pub fn region(&self, now: Instant) -> (NormRect, RoiSource) {
        let wanted = match (
            &self.rois,
            self.enabled.then(|| self.autofocus.roi()).flatten(),
        ) {
            (Some(rois), _) => Some((rois.union(), RoiSource::External)),
            (None, Some(roi)) => Some((roi, RoiSource::AutoFocus)),
            (None, None) => None,
        };
        match wanted {
            Some((region, source)) if region != NormRect::FULL && !self.full_look_due(now) => {
                (region, source)
            }
            _ => (NormRect::FULL, RoiSource::Full),
        }
    }

    fn full_look_due(&self, now: Instant) -> bool {
        let Some(every) = self.full_look else {
            return false;
        };
        self.whole_until.is_some_and(|until| now < until)
            || self
                .last_full
                .is_none_or(|(at, _)| now.saturating_duration_since(at) >= every)
    }

    /// A frame cropped to `region` (from `source`) went to the worker at `now`.
    pub fn used(&mut self, region: NormRect, source: RoiSource, now: Instant) {
        match source {
            RoiSource::AutoFocus => self.autofocus.used(),
            _ if region == NormRect::FULL => self.last_full = Some((now, None)),
            _ => {}
        }
    }

    /// People found in a frame inferred on `region` (normalized boxes): auto-focus follows
    /// them when it leads, and gives way to the whole frame when its region holds fewer
    /// than the last full look.
    pub fn observe(&mut self, region: NormRect, source: RoiSource, people: &[CBox], now: Instant) {
        if region == NormRect::FULL {
            if let Some((_, seen)) = self.last_full.as_mut() {
                *seen = Some(people.len());
            }
        } else if source == RoiSource::AutoFocus
            && self.full_look.is_some()
            && self
                .last_full
                .and_then(|(_, seen)| seen)
                .is_some_and(|seen| people.len() < seen)
        {
            self.whole_until = self.full_look.map(|every| now + every);
        }
        if self.enabled && self.rois.is_none() {
            if region == NormRect::FULL && self.outside_focus(people) {
                // Someone the region does not hold: snap to everyone at once rather than
                // smooth towards them over several frames that would miss them.
                self.autofocus.clear_history();
            }
            self.autofocus.update(people);
        }
    }

    /// Some of `people` (seen whole) have their centre outside the auto-focus region.
    fn outside_focus(&self, people: &[CBox]) -> bool {
        self.autofocus.roi().is_some_and(|r| {
            people.iter().any(|p| {
                p.cx < r.x()
                    || p.cx > r.x() + r.width()
                    || p.cy < r.y()
                    || p.cy > r.y() + r.height()
            })
        })
    }

    /// The auto-focus region, if auto-focus is on.
    pub fn suggested(&self) -> Option<NormRect> {
        if self.enabled {
            self.autofocus.roi()
        } else {
            None
        }
    }

    pub fn rois(&self) -> &[NormRect] {
        self.rois.as_ref().map_or(&[][..], RoiSet::rois)
    }

    pub fn status(&self) -> AutoFocusStatus {
        AutoFocusStatus {
            enabled: self.enabled,
            strategy: self.autofocus.params.strategy,
            roi: self.autofocus.roi(),
        }
    }

    /// Carries out an attention command; `None` if `action` is not one.
    pub fn command(&mut self, action: &Action) -> Option<Result<Value, AckError>> {
        Some(match action {
            Action::SetRois(rois) => {
                self.rois = Some(rois.clone());
                Ok(json!({"rois": rois, "region": rois.union()}))
            }
            Action::ClearRois => {
                self.rois = None;
                Ok(json!({"rois": []}))
            }
            Action::GetRois => Ok(json!({"rois": self.rois()})),
            Action::SetAutoFocus(update) => self
                .autofocus
                .params
                .with(update)
                .map(|p| {
                    // Takes effect on the next frame; history is kept, no frame is lost.
                    self.autofocus.params = p;
                    json!(p)
                })
                .map_err(AckError::bad_request),
            Action::GetAutoFocus => {
                Ok(json!({"enabled": self.enabled, "params": self.autofocus.params}))
            }
            Action::EnableAutoFocus => {
                self.enabled = true;
                Ok(json!({"enabled": true}))
            }
            Action::DisableAutoFocus => {
                self.enabled = false;
                self.autofocus.clear_history();
                Ok(json!({"enabled": false}))
            }
            Action::ClearAutoFocusHistory => {
                self.autofocus.clear_history();
                Ok(json!({"cleared": true}))
            }
            Action::GetAutoFocusStats => Ok(json!(self.autofocus.stats())),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(5);

    #[test]
    fn external_rois_win_over_auto_focus_over_the_full_frame() {
        let t = Instant::now();
        let mut a = Attention::new(false, Params::default(), None);
        assert_eq!(a.region(t), (NormRect::FULL, RoiSource::Full));
        let roi = NormRect::new(0.1, 0.1, 0.5, 0.5).unwrap();
        let rois = RoiSet::new(vec![roi]).unwrap();
        assert!(a.command(&Action::SetRois(rois)).unwrap().is_ok());
        assert_eq!(a.region(t), (roi, RoiSource::External));
        assert!(a.command(&Action::EnableAutoFocus).unwrap().is_ok());
        // People seen while external ROIs lead do not move the auto-focus region.
        let person = [CBox::from_corners(0.4, 0.4, 0.6, 0.9)];
        a.observe(roi, RoiSource::External, &person, t);
        assert_eq!(a.region(t).1, RoiSource::External);
        assert!(a.command(&Action::ClearRois).unwrap().is_ok());
        a.observe(roi, RoiSource::External, &person, t);
        assert_eq!(a.region(t).1, RoiSource::AutoFocus);
        assert!(a.suggested().is_some());
        assert!(a.command(&Action::DisableAutoFocus).unwrap().is_ok());
        assert_eq!(a.region(t), (NormRect::FULL, RoiSource::Full));
        assert!(
            a.command(&Action::Pause).is_none(),
            "not an attention command"
        );
    }

    #[test]
    fn a_region_gives_way_to_a_full_look_at_least_every_full_look() {
        let t0 = Instant::now();
        let mut a = Attention::new(false, Params::default(), Some(EVERY));
        let corner = NormRect::new(0.0, 0.0, 0.08, 0.08).unwrap();
        let rois = RoiSet::new(vec![corner]).unwrap();
        assert!(a.command(&Action::SetRois(rois)).unwrap().is_ok());
        // No full look yet: the first frame is whole.
        assert_eq!(a.region(t0), (NormRect::FULL, RoiSource::Full));
        a.used(NormRect::FULL, RoiSource::Full, t0);
        // Then the corner, until `EVERY` has passed.
        for s in [1, 2, 4] {
            let (region, source) = a.region(t0 + Duration::from_secs(s));
            assert_eq!((region, source), (corner, RoiSource::External));
            a.used(region, source, t0 + Duration::from_secs(s));
        }
        let t5 = t0 + EVERY;
        assert_eq!(a.region(t5), (NormRect::FULL, RoiSource::Full));
        a.used(NormRect::FULL, RoiSource::Full, t5);
        assert_eq!(a.region(t5 + Duration::from_secs(1)).1, RoiSource::External);
        // ROIs that cover the frame are the full frame.
        let all = RoiSet::new(vec![NormRect::FULL]).unwrap();
        assert!(a.command(&Action::SetRois(all)).unwrap().is_ok());
        assert_eq!(a.region(t5).1, RoiSource::Full);
    }

    #[test]
    fn auto_focus_falls_back_when_its_region_loses_people_the_full_frame_has() {
        let t = Instant::now();
        let mut a = Attention::new(true, Params::default(), Some(EVERY));
        let left = CBox::from_corners(0.05, 0.3, 0.2, 0.9);
        let right = CBox::from_corners(0.7, 0.3, 0.85, 0.9);
        // A full look finds one person: auto-focus follows them.
        a.used(NormRect::FULL, RoiSource::Full, t);
        a.observe(NormRect::FULL, RoiSource::Full, &[left], t);
        let (region, source) = a.region(t);
        assert_eq!(source, RoiSource::AutoFocus);
        // The region still holds them: it stays.
        a.used(region, source, t);
        a.observe(region, source, &[left], t);
        assert_eq!(a.region(t).1, RoiSource::AutoFocus);
        // A second full look finds two; the region, one: the next frame is whole.
        a.used(NormRect::FULL, RoiSource::Full, t);
        a.observe(NormRect::FULL, RoiSource::Full, &[left, right], t);
        let (region, source) = a.region(t);
        assert_eq!(source, RoiSource::AutoFocus, "the region now spans both");
        a.used(region, source, t);
        a.observe(region, source, &[left], t);
        assert_eq!(a.region(t), (NormRect::FULL, RoiSource::Full));
        // Without forced full looks (the "before"), a region that lost someone stays.
        let mut b = Attention::new(true, Params::default(), None);
        b.observe(NormRect::FULL, RoiSource::Full, &[left, right], t);
        b.observe(NormRect::FULL, RoiSource::Full, &[left], t);
        let (region, source) = b.region(t);
        assert_eq!(source, RoiSource::AutoFocus);
        b.observe(region, source, &[], t);
        assert_eq!(b.region(t).1, RoiSource::AutoFocus);
    }
}
