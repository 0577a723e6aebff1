//! The config file re-read (SIGHUP, `orionctl reload`): the children whose settings changed
//! restart, the others keep running; settings that shape the ring, the socket or the set of
//! children need an oriond restart and make the reload fail, changing nothing.
//!
//! [`plan`] decides (pure: the running config and desired state, the new config in; what
//! changes out), [`restart`] says how each child is restarted by its state, and
//! `Supervisor::reload_inner` carries the plan out.

use std::path::Path;

use orion_config::Config;
use orion_protocol::ProcessName;

use super::Supervisor;
use super::act::Act;
use crate::desired::Desired;
use crate::lifecycle::State;

/// What a reload changes.
#[derive(Debug)]
pub(super) struct Plan {
    pub config: Config,
    /// The desired state rebased on the new config's defaults.
    pub desired: Desired,
    /// The children whose launch or settings changed, in start order.
    pub restart: Vec<ProcessName>,
    /// The `[occupancy]` settings changed: the tracker starts over with them.
    pub occupancy_changed: bool,
}

/// What changes when `new` replaces `old` for `children`; why not, if it cannot.
pub(super) fn plan(
    old: &Config,
    new: Config,
    config_path: &Path,
    desired: &Desired,
    children: impl IntoIterator<Item = ProcessName>,
) -> Result<Plan, String> {
    let fixed = [
        ("instance_id", old.instance_id != new.instance_id),
        ("stream.width", old.stream.width != new.stream.width),
        ("stream.height", old.stream.height != new.stream.height),
        ("ring.slots", old.ring.slots != new.ring.slots),
        (
            "supervisor.socket_dir",
            old.supervisor.socket_dir != new.supervisor.socket_dir,
        ),
        (
            "supervisor.state_dir",
            old.supervisor.state_dir != new.supervisor.state_dir,
        ),
        ("mqtt.enabled", old.mqtt.enabled != new.mqtt.enabled),
        ("mqtt.embedded", old.mqtt.embedded != new.mqtt.embedded),
    ];
    if let Some((key, _)) = fixed.iter().find(|(_, changed)| *changed) {
        return Err(format!(
            "{key} cannot change while oriond runs; restart oriond"
        ));
    }
    let mut rebased = desired.clone();
    rebased.rebase(
        &crate::desired::baseline(old),
        &crate::desired::baseline(&new),
    );
    let mut restart = Vec::new();
    for name in children {
        let before = crate::spec::spec(name, old, config_path, desired);
        let after = crate::spec::spec(name, &new, config_path, &rebased)?;
        let mqtt_changed = name == ProcessName::Control
            && (old.mqtt != new.mqtt
                || old.room_id != new.room_id
                || old.homeassistant != new.homeassistant);
        if before.as_ref() != Ok(&after) || mqtt_changed {
            restart.push(name);
        }
    }
    Ok(Plan {
        occupancy_changed: old.occupancy != new.occupancy,
        config: new,
        desired: rebased,
        restart,
    })
}

/// How `name`, in `state`, takes new settings: a running capture make-before-break, a
/// child that runs or is on its way the ordinary way; one that is stopped or given up on
/// takes them at its next start.
pub(super) fn restart(name: ProcessName, state: Option<State>) -> Option<Act> {
    match state? {
        State::Running if name == ProcessName::Capture => Some(Act::ReplaceCapture),
        State::Running | State::Starting | State::Backoff => Some(Act::Restart(name)),
        State::Stopped | State::Stopping | State::Exited | State::Fatal => None,
    }
}

impl Supervisor {
    /// SIGHUP (`systemctl reload`): systemd hears RELOADING=1 before and READY=1 after,
    /// whether the file was taken or refused.
    pub(super) fn reload(&mut self) {
        let _ = sd_notify::notify(&[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::MonotonicUsec(monotonic_usec()),
        ]);
        match self.reload_inner() {
            Ok(restarted) => tracing::info!(?restarted, "config reloaded"),
            Err(e) => tracing::error!(error = e, "config not reloaded; keeping the running one"),
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    }

    /// Applies the file; the children restarted for it.
    pub(super) fn reload_inner(&mut self) -> Result<Vec<ProcessName>, String> {
        if self.shutdown.is_some() {
            return Err("oriond is shutting down; the config was not reloaded".into());
        }
        let new = Config::load(&self.config_path).map_err(|e| e.to_string())?;
        let children = self.children.keys().copied();
        let plan = plan(
            &self.config,
            new,
            &self.config_path,
            &self.desired,
            children,
        )?;
        let zones_before = self.desired.zones.clone();
        if plan.occupancy_changed {
            self.occupancy = super::room::tracker(&plan.config);
            // Every zone starts over with the new settings; a zone no longer there is
            // cleared.
            let gone: Vec<_> = zones_before
                .iter()
                .filter(|z| !plan.desired.zones.iter().any(|n| n.name() == z.name()))
                .map(|z| (z.name().clone(), None))
                .collect();
            self.zones = super::room::zone_trackers(&plan.config, &plan.desired.zones);
            let now = self.zones.current().into_iter();
            self.send_zones(
                gone.into_iter()
                    .chain(now.map(|o| (o.zone.clone(), Some(o))))
                    .collect(),
            );
        } else if plan.desired.zones != zones_before {
            let changes = self.zones.set(&plan.desired.zones);
            self.send_zones(changes);
        }
        self.config = plan.config;
        self.desired = plan.desired;
        self.persist();
        let effects: Vec<Act> = plan
            .restart
            .iter()
            .filter_map(|&name| restart(name, self.state_of(name)))
            .collect();
        self.carry_out(effects);
        self.push_status();
        Ok(plan.restart)
    }
}

/// CLOCK_MONOTONIC in µs, which systemd wants with RELOADING=1.
fn monotonic_usec() -> i128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| i128::from(t.tv_sec()) * 1_000_000 + i128::from(t.tv_nsec()) / 1000)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ALL: [ProcessName; 4] = ProcessName::START_ORDER;

    /// `text`, with the camera every config needs unless it names one (after `text`, so
    /// its top-level keys stay top-level).
    fn config(text: &str) -> Config {
        let camera = "[camera]\nsource = \"rtsp://cam:8554/room\"\n";
        if text.contains("[camera]") {
            Config::parse(text).unwrap()
        } else {
            Config::parse(&format!("{text}\n{camera}")).unwrap()
        }
    }

    fn plan_for(old: &str, new: &str) -> Result<Plan, String> {
        let old = config(old);
        let desired = crate::desired::baseline(&old);
        plan(
            &old,
            config(new),
            Path::new("/etc/orion/orion.toml"),
            &desired,
            ALL,
        )
    }

    #[test]
    fn the_same_config_restarts_nothing() {
        let plan = plan_for("", "").unwrap();
        assert!(plan.restart.is_empty(), "{:?}", plan.restart);
        assert!(!plan.occupancy_changed);
    }

    #[test]
    fn only_the_children_whose_settings_changed_restart() {
        let camera = "[camera]\nsource = \"rtsp://cam:8554/other\"\n";
        let plan = plan_for("", camera).unwrap();
        assert_eq!(plan.restart, vec![ProcessName::Capture]);
        let mqtt = "[mqtt]\nport = 1884\n";
        let plan = plan_for("", mqtt).unwrap();
        assert!(
            plan.restart.contains(&ProcessName::Control),
            "{:?}",
            plan.restart
        );
        assert!(!plan.restart.contains(&ProcessName::Capture));
        assert!(!plan.restart.contains(&ProcessName::Detector));
        let occupancy = "[occupancy]\nenter_frames = 7\n";
        let plan = plan_for("", occupancy).unwrap();
        assert!(plan.occupancy_changed);
        assert!(plan.restart.is_empty(), "{:?}", plan.restart);
    }

    #[test]
    fn settings_that_shape_the_ring_or_the_socket_are_refused_by_name() {
        let why = plan_for("", "[stream]\nwidth = 1280\n").unwrap_err();
        assert!(why.contains("stream.width"), "{why}");
        let why = plan_for("", "instance_id = \"room-2\"\n").unwrap_err();
        assert!(why.contains("instance_id"), "{why}");
    }

    #[test]
    fn a_child_takes_new_settings_by_its_state() {
        use State::*;
        let capture = ProcessName::Capture;
        let detector = ProcessName::Detector;
        assert_eq!(restart(capture, Some(Running)), Some(Act::ReplaceCapture));
        assert_eq!(restart(capture, Some(Backoff)), Some(Act::Restart(capture)));
        assert_eq!(
            restart(detector, Some(Running)),
            Some(Act::Restart(detector))
        );
        assert_eq!(
            restart(detector, Some(Starting)),
            Some(Act::Restart(detector))
        );
        for idle in [Stopped, Stopping, Exited, Fatal] {
            assert_eq!(restart(detector, Some(idle)), None, "{idle:?}");
            assert_eq!(restart(capture, Some(idle)), None, "{idle:?}");
        }
        assert_eq!(restart(detector, None), None);
    }
}
