//! Whether the box can afford the stand-ins (the detector's spare worker, the standby
//! detector): they buy a fast recovery with memory, and a room must never run short for
//! them. oriond samples memory every second ([`Sample::read`]): what is available (the
//! kernel's MemAvailable, or what this room's cgroup may still take under its MemoryHigh /
//! MemoryMax if that is less, its page cache not counted) and how much tasks stall waiting
//! for memory (PSI `some avg10`, the cgroup's or the box's). The [`Gate`] sheds the
//! stand-ins at once when either crosses `[memory]`'s limits and lets them back only after
//! memory has been plentiful for a while, so a box near the edge does not start and drop
//! them in turn.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orion_config::Memory;

/// Overrides `/proc/meminfo` (a file in its format): the integration test simulates a box
/// short of memory with it. Not for production use.
pub const TEST_MEMINFO_ENV: &str = "ORION_TEST_MEMINFO";

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// MB this room can still take.
    pub available_mb: u64,
    /// PSI `some avg10`, percent (None: the kernel does not report it).
    pub pressure_pct: Option<f64>,
}

impl Sample {
    /// Reads the box's and this process's cgroup's memory (None: MemAvailable unreadable).
    pub fn read() -> Option<Self> {
        let meminfo = std::env::var_os(TEST_MEMINFO_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| "/proc/meminfo".into());
        let mut available_mb = mem_available_mb(&std::fs::read_to_string(meminfo).ok()?)?;
        let cgroup = own_cgroup();
        if let Some(dir) = &cgroup {
            // The page cache counts in memory.current but is given back under pressure
            // (as MemAvailable counts it): what the room holds is the rest.
            let cache = std::fs::read_to_string(dir.join("memory.stat"))
                .ok()
                .and_then(|t| stat_field(&t, "file"))
                .unwrap_or(0);
            let held = read_u64(&dir.join("memory.current")).map(|c| c.saturating_sub(cache));
            for limit in ["memory.high", "memory.max"] {
                if let (Some(limit), Some(held)) = (read_u64(&dir.join(limit)), held) {
                    available_mb = available_mb.min(limit.saturating_sub(held) >> 20);
                }
            }
        }
        let pressure = cgroup
            .map(|d| d.join("memory.pressure"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| "/proc/pressure/memory".into());
        let pressure_pct = std::fs::read_to_string(pressure)
            .ok()
            .and_then(|t| some_avg10(&t));
        Some(Self {
            available_mb,
            pressure_pct,
        })
    }
}

/// `MemAvailable:  123456 kB` → MB.
fn mem_available_mb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// A field of a cgroup's `memory.stat` (`file 123456`), bytes.
fn stat_field(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// `some avg10=1.23 avg60=... total=...` → 1.23.
fn some_avg10(pressure: &str) -> Option<f64> {
    let line = pressure.lines().find(|l| l.starts_with("some "))?;
    let field = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))?;
    field.parse().ok()
}

/// The cgroup v2 directory of this process (`0::/system.slice/oriond@room.service`).
fn own_cgroup() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

/// A number of bytes, or None for `max` (no limit) and anything unreadable.
fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Why the stand-ins were shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// Less available than `stand_ins_min_available_mb`.
    Memory,
    /// Tasks stalled on memory more than `stand_ins_max_pressure_pct`.
    Pressure,
}

impl Shortage {
    pub fn as_str(self) -> &'static str {
        match self {
            Shortage::Memory => "memory",
            Shortage::Pressure => "memory pressure",
        }
    }
}

/// The decision, with hysteresis: shed at once; back after `stand_ins_return_after_s` of
/// plenty (a quarter above the minimum, the pressure under half its limit).
#[derive(Debug, Default)]
pub struct Gate {
    shed: Option<Shortage>,
    plenty_since: Option<Instant>,
}

impl Gate {
    /// Why the stand-ins are shed now, if they are.
    pub fn shed(&self) -> Option<Shortage> {
        self.shed
    }

    /// Takes one sample; returns whether the verdict changed.
    pub fn judge(&mut self, sample: &Sample, limits: &Memory, now: Instant) -> bool {
        let min = u64::from(limits.stand_ins_min_available_mb);
        let pressure = sample.pressure_pct.unwrap_or(0.0);
        let short = if sample.available_mb < min {
            Some(Shortage::Memory)
        } else if pressure > limits.stand_ins_max_pressure_pct {
            Some(Shortage::Pressure)
        } else {
            None
        };
        if let Some(why) = short {
            self.plenty_since = None;
            let changed = self.shed.is_none();
            self.shed.get_or_insert(why);
            return changed;
        }
        if self.shed.is_none() {
            return false;
        }
        let plenty = sample.available_mb >= min + min / 4
            && pressure <= limits.stand_ins_max_pressure_pct / 2.0;
        if !plenty {
            self.plenty_since = None;
            return false;
        }
        let since = *self.plenty_since.get_or_insert(now);
        if now.duration_since(since) >= Duration::from_secs(limits.stand_ins_return_after_s.into())
        {
            self.shed = None;
            self.plenty_since = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample(available_mb: u64, pressure: f64) -> Sample {
        Sample {
            available_mb,
            pressure_pct: Some(pressure),
        }
    }

    fn limits() -> Memory {
        Memory {
            stand_ins_min_available_mb: 400,
            stand_ins_max_pressure_pct: 10.0,
            stand_ins_return_after_s: 60,
        }
    }

    #[test]
    fn shed_at_once_when_short_and_back_only_after_a_minute_of_plenty() {
        let (mut g, l, t0) = (Gate::default(), limits(), Instant::now());
        assert!(!g.judge(&sample(2000, 0.0), &l, t0));
        assert_eq!(g.shed(), None);
        assert!(g.judge(&sample(399, 0.0), &l, t0), "shed at once");
        assert_eq!(g.shed(), Some(Shortage::Memory));
        // Just above the minimum is not plenty: stays shed however long.
        assert!(!g.judge(&sample(450, 0.0), &l, t0 + Duration::from_secs(600)));
        // Plenty, but not for long enough; a dip starts the wait over.
        assert!(!g.judge(&sample(600, 0.0), &l, t0 + Duration::from_secs(601)));
        assert!(!g.judge(&sample(600, 0.0), &l, t0 + Duration::from_secs(650)));
        assert!(!g.judge(&sample(480, 0.0), &l, t0 + Duration::from_secs(655)));
        assert!(!g.judge(&sample(600, 0.0), &l, t0 + Duration::from_secs(656)));
        assert!(!g.judge(&sample(600, 0.0), &l, t0 + Duration::from_secs(715)));
        assert!(g.judge(&sample(600, 0.0), &l, t0 + Duration::from_secs(716)));
        assert_eq!(g.shed(), None);
    }

    #[test]
    fn pressure_sheds_too_and_must_fall_below_half_its_limit() {
        let (mut g, l, t0) = (Gate::default(), limits(), Instant::now());
        assert!(g.judge(&sample(8000, 12.5), &l, t0));
        assert_eq!(g.shed().map(Shortage::as_str), Some("memory pressure"));
        assert!(!g.judge(&sample(8000, 6.0), &l, t0 + Duration::from_secs(120)));
        assert!(!g.judge(&sample(8000, 4.0), &l, t0 + Duration::from_secs(121)));
        assert!(g.judge(&sample(8000, 4.0), &l, t0 + Duration::from_secs(181)));
        // No PSI in the kernel: memory alone decides.
        let none = Sample {
            available_mb: 8000,
            pressure_pct: None,
        };
        assert!(!g.judge(&none, &l, t0 + Duration::from_secs(200)));
    }

    #[test]
    fn the_kernel_formats_are_read() {
        let meminfo =
            "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    2048000 kB\n";
        assert_eq!(mem_available_mb(meminfo), Some(2000));
        assert_eq!(mem_available_mb("MemTotal: 1 kB\n"), None);
        let psi = "some avg10=3.25 avg60=1.00 avg300=0.10 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(some_avg10(psi), Some(3.25));
        assert_eq!(some_avg10("garbage"), None);
        let stat = "anon 1000\nfile 52428800\nfile_mapped 10\n";
        assert_eq!(stat_field(stat, "file"), Some(52_428_800));
        assert_eq!(stat_field(stat, "shmem"), None);
        // This machine's own files parse.
        assert!(Sample::read().is_some());
    }
}
