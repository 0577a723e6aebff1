//! The desired runtime state: what the operator last set (rate, model size, attention ROIs,
//! auto-focus, pause). oriond re-applies it to every child it (re)starts, and persists it
//! atomically (temp file, fsync, rename, fsync of the directory) so a reboot keeps it. The
//! config file stays the baseline: a key the operator edits there wins over a runtime
//! change on the next start or SIGHUP.

use std::path::Path;

use anyhow::Result;
use orion_config::Config;
pub use orion_protocol::desired::Desired;
use serde::{Deserialize, Serialize};

/// Largest state file read back.
const MAX_FILE: u64 = 256 * 1024;

/// What the config file asks for.
pub fn baseline(config: &Config) -> Desired {
    Desired {
        rate_hz: config.stream.rate_hz,
        model_size: config.detector.size,
        rois: None,
        paused: false,
        auto_focus: config.auto_focus.enabled,
        auto_focus_params: config.auto_focus.params().unwrap_or_default(),
        zones: config.zones.clone(),
    }
}

/// The state saved at `path` if there is a valid one, else the baseline. A file that
/// cannot be used is renamed to `*.bad` (kept for the operator) and reported.
pub fn load(path: &Path, config: &Config) -> (Desired, Option<String>) {
    let baseline = baseline(config);
    match crate::atomic_file::read_json::<Saved>(path, MAX_FILE) {
        Ok(None) => (baseline, None),
        Ok(Some(saved)) => {
            let mut desired = saved.desired;
            // Keys edited in the config file since the state was saved win.
            desired.rebase(&saved.baseline, &baseline);
            (desired, None)
        }
        Err(e) => {
            let aside = crate::atomic_file::set_aside(path);
            let why = format!(
                "ignoring the saved state {} ({e:#}); moved to {}",
                path.display(),
                aside.display()
            );
            (baseline, Some(why))
        }
    }
}

/// Saves atomically next to `path`.
pub fn save(desired: &Desired, path: &Path, config: &Config) -> Result<()> {
    let saved = Saved {
        desired: desired.clone(),
        baseline: baseline(config),
    };
    let body = serde_json::to_vec_pretty(&saved)?;
    crate::atomic_file::write_atomically(path, &body)
}

/// The file: the state and the baseline it was saved against.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    desired: Desired,
    baseline: Desired,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use orion_protocol::{Action, ModelSize, RateHz};

    fn config(extra: &str) -> Config {
        Config::parse(&format!("[camera]\nsource = \"test://ball\"\n{extra}")).unwrap()
    }

    #[test]
    fn state_round_trips_and_config_edits_win() {
        let dir = std::env::temp_dir().join(format!("oriond-desired-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("desired.json");
        let c = config("");
        let mut d = baseline(&c);
        assert!(d.apply(&Action::Pause));
        assert!(d.apply(&Action::SetModelSize(ModelSize::M)));
        assert!(d.apply(&Action::SetRate(RateHz::new(2.0).unwrap())));
        assert!(!d.apply(&Action::Pause), "no change the second time");
        save(&d, &path, &c).unwrap();
        assert_eq!(load(&path, &c), (d.clone(), None));
        // The operator edits the rate in the file: it wins; the model size stays.
        let edited = config("[stream]\nrate_hz = 7\n");
        let (loaded, _) = load(&path, &edited);
        assert_eq!(loaded.rate_hz.hz(), 7.0);
        assert_eq!(loaded.model_size, ModelSize::M);
        assert!(loaded.paused);
        // A corrupt file: baseline, moved aside, reported.
        std::fs::write(&path, "{not json").unwrap();
        let (loaded, why) = load(&path, &c);
        assert_eq!(loaded, baseline(&c));
        assert!(why.unwrap().contains("ignoring"));
        assert!(dir.join("desired.json.bad").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn saving_never_writes_through_a_planted_link_or_a_leftover() {
        let dir = std::env::temp_dir().join(format!("oriond-links-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("desired.json");
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("desired.json.tmp")).unwrap();
        let c = config("");
        let d = baseline(&c);
        save(&d, &path, &c).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(load(&path, &c), (d.clone(), None));
        // A leftover temp file from a crash does not stop the next save.
        std::fs::write(dir.join("desired.json.tmp"), "half").unwrap();
        save(&d, &path, &c).unwrap();
        assert!(!dir.join("desired.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
