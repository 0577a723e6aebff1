//! The config file re-read (SIGHUP, `orionctl reload`): the children whose settings changed
//! restart, the others keep running; settings that shape the ring, the socket or the set of
//! children need an oriond restart and make the reload fail, changing nothing.

use orion_config::Config;
use orion_protocol::ProcessName;

use super::Supervisor;
use crate::lifecycle::State;

impl Supervisor {
    pub(super) fn reload(&mut self) {
        match self.reload_inner() {
            Ok(restarted) => tracing::info!(?restarted, "config reloaded"),
            Err(e) => tracing::error!(error = e, "config not reloaded; keeping the running one"),
        }
    }

    /// Applies the file; the children restarted for it.
    pub(super) fn reload_inner(&mut self) -> Result<Vec<ProcessName>, String> {
        if self.shutdown.is_some() {
            return Err("oriond is shutting down; the config was not reloaded".into());
        }
        let new = Config::load(&self.config_path).map_err(|e| e.to_string())?;
        let old = &self.config;
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
        let mut desired = self.desired.clone();
        desired.rebase(
            &crate::desired::baseline(old),
            &crate::desired::baseline(&new),
        );
        let mut restart = Vec::new();
        for &name in self.children.keys() {
            let before = crate::spec::spec(name, old, &self.config_path, &self.desired);
            let after = crate::spec::spec(name, &new, &self.config_path, &desired);
            if let Err(why) = &after {
                return Err(why.clone());
            }
            let mqtt_changed = name == ProcessName::Control
                && (old.mqtt != new.mqtt
                    || old.room_id != new.room_id
                    || old.homeassistant != new.homeassistant);
            if before != after || mqtt_changed {
                restart.push(name);
            }
        }
        if old.occupancy != new.occupancy {
            self.occupancy = super::room::tracker(&new);
        }
        self.config = new;
        self.desired = desired;
        self.persist();
        for &name in &restart {
            if name == ProcessName::Capture && self.state_of(name) == Some(State::Running) {
                self.replace_capture();
            } else if matches!(
                self.state_of(name),
                Some(State::Running | State::Starting | State::Backoff)
            ) {
                self.restart(name);
            }
        }
        self.push_status();
        Ok(restart)
    }
}
