//! The desired runtime state: what the operator last set (rate, model size, attention ROIs,
//! auto-focus, pause). oriond keeps it, re-applies it to every child it (re)starts and
//! persists it; the status reports it.

use serde::{Deserialize, Serialize};

use crate::command::Action;
use crate::focus::Params;
use crate::units::{ModelSize, RateHz, RoiSet};
use crate::zone::Zones;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Desired {
    pub rate_hz: RateHz,
    pub model_size: ModelSize,
    pub rois: Option<RoiSet>,
    pub paused: bool,
    pub auto_focus: bool,
    pub auto_focus_params: Params,
    /// The room's zones (`[[zones]]`, then `set_zones`).
    #[serde(default)]
    pub zones: Zones,
}

impl Desired {
    /// Takes every field whose baseline changed from `old` to `new` from `new`.
    pub fn rebase(&mut self, old: &Desired, new: &Desired) {
        if old.rate_hz != new.rate_hz {
            self.rate_hz = new.rate_hz;
        }
        if old.model_size != new.model_size {
            self.model_size = new.model_size;
        }
        if old.auto_focus != new.auto_focus {
            self.auto_focus = new.auto_focus;
        }
        if old.auto_focus_params != new.auto_focus_params {
            self.auto_focus_params = new.auto_focus_params;
        }
        if old.zones != new.zones {
            self.zones = new.zones.clone();
        }
    }

    /// Records a change its owner accepted. Returns whether anything changed.
    pub fn apply(&mut self, action: &Action) -> bool {
        let before = self.clone();
        match action {
            Action::Pause => self.paused = true,
            Action::Resume => self.paused = false,
            Action::SetRate(rate) => self.rate_hz = *rate,
            Action::SetModelSize(size) => self.model_size = *size,
            Action::SetRois(rois) => self.rois = Some(rois.clone()),
            Action::ClearRois => self.rois = None,
            Action::SetAutoFocus(update) => {
                if let Ok(p) = self.auto_focus_params.with(update) {
                    self.auto_focus_params = p;
                }
            }
            Action::EnableAutoFocus => self.auto_focus = true,
            Action::DisableAutoFocus => self.auto_focus = false,
            Action::SetZones(zones) => self.zones = zones.clone(),
            _ => {}
        }
        *self != before
    }

    /// The commands that bring a freshly started detector (started paused, with this model
    /// size as an argument) to this state. Auto-focus is set by command too, not only by
    /// its arguments: a standby detector started before an auto-focus change is still
    /// brought to it (see oriond's `spec::detector_identity`).
    pub fn detector_commands(&self) -> Vec<Action> {
        let mut actions = vec![
            Action::SetAutoFocus(self.auto_focus_params.as_update()),
            match self.auto_focus {
                true => Action::EnableAutoFocus,
                false => Action::DisableAutoFocus,
            },
        ];
        if let Some(rois) = &self.rois {
            actions.push(Action::SetRois(rois.clone()));
        }
        if !self.paused {
            actions.push(Action::Resume);
        }
        actions
    }
}
