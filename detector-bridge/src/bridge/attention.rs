//! Where the detector looks: the operator's attention ROIs, else the auto-focus region
//! (when on), else the whole frame (docs/architecture.md#regions-and-auto-focus); and the commands that change it.

use orion_protocol::command::AckError;
use orion_protocol::detector::AutoFocusStatus;
use orion_protocol::{Action, NormRect, RoiSet, RoiSource};
use serde_json::{Value, json};

use crate::autofocus::{AutoFocus, CBox, Params};

pub struct Attention {
    rois: Option<RoiSet>,
    enabled: bool,
    autofocus: AutoFocus,
}

impl Attention {
    pub fn new(auto_focus: bool, params: Params) -> Self {
        Self {
            rois: None,
            enabled: auto_focus,
            autofocus: AutoFocus::new(params),
        }
    }

    /// The region the next frame is cropped to, and why.
    pub fn region(&self) -> (NormRect, RoiSource) {
        match (
            &self.rois,
            self.enabled.then(|| self.autofocus.roi()).flatten(),
        ) {
            (Some(rois), _) => (rois.union(), RoiSource::External),
            (None, Some(roi)) => (roi, RoiSource::AutoFocus),
            (None, None) => (NormRect::FULL, RoiSource::Full),
        }
    }

    /// A frame cropped to the auto-focus region went to the worker.
    pub fn used(&mut self, source: RoiSource) {
        if source == RoiSource::AutoFocus {
            self.autofocus.used();
        }
    }

    /// People found in a frame (normalized boxes): auto-focus follows them when it leads.
    pub fn observe(&mut self, people: &[CBox]) {
        if self.enabled && self.rois.is_none() {
            self.autofocus.update(people);
        }
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

    #[test]
    fn external_rois_win_over_auto_focus_over_the_full_frame() {
        let mut a = Attention::new(false, Params::default());
        assert_eq!(a.region(), (NormRect::FULL, RoiSource::Full));
        let roi = NormRect::new(0.1, 0.1, 0.5, 0.5).unwrap();
        let rois = RoiSet::new(vec![roi]).unwrap();
        assert!(a.command(&Action::SetRois(rois)).unwrap().is_ok());
        assert_eq!(a.region(), (roi, RoiSource::External));
        assert!(a.command(&Action::EnableAutoFocus).unwrap().is_ok());
        // People seen while external ROIs lead do not move the auto-focus region.
        a.observe(&[CBox::from_corners(0.4, 0.4, 0.6, 0.9)]);
        assert_eq!(a.region().1, RoiSource::External);
        assert!(a.command(&Action::ClearRois).unwrap().is_ok());
        a.observe(&[CBox::from_corners(0.4, 0.4, 0.6, 0.9)]);
        assert_eq!(a.region().1, RoiSource::AutoFocus);
        assert!(a.suggested().is_some());
        assert!(a.command(&Action::DisableAutoFocus).unwrap().is_ok());
        assert_eq!(a.region(), (NormRect::FULL, RoiSource::Full));
        assert!(
            a.command(&Action::Pause).is_none(),
            "not an attention command"
        );
    }
}
