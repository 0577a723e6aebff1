//! How a child is told where the frame ring is: `--ring NAME` (a named POSIX object, for
//! running a child by hand or in tests) or `--ring-fd N` (the sealed memfd oriond hands
//! down at descriptor [`RING_FD`]; ADR 0005).

use std::os::fd::RawFd;

use anyhow::{Context, Result, bail};
use orion_ring::{RingName, ShmSource};

/// The descriptor number oriond gives the frame ring in its children.
pub const RING_FD: RawFd = 3;

/// A validated `--ring` / `--ring-fd` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingArg {
    Named(RingName),
    Fd(RawFd),
}

impl RingArg {
    /// Exactly one of the two must be given.
    pub fn new(name: Option<&str>, fd: Option<RawFd>) -> Result<Self> {
        match (name, fd) {
            (Some(name), None) => Ok(RingArg::Named(RingName::new(name)?)),
            (None, Some(fd)) if (3..=1024).contains(&fd) => Ok(RingArg::Fd(fd)),
            (None, Some(fd)) => bail!("ring_fd must be in 3..=1024, got {fd}"),
            (None, None) => bail!("give the frame ring: --ring NAME or --ring-fd N"),
            (Some(_), Some(_)) => bail!("give --ring or --ring-fd, not both"),
        }
    }

    /// Opens it: a name as is, a descriptor taken over (once per process).
    pub fn source(&self, label: &str) -> Result<ShmSource> {
        match self {
            RingArg::Named(name) => Ok(ShmSource::Named(name.clone())),
            RingArg::Fd(fd) => ShmSource::inherited(*fd, label)
                .with_context(|| format!("the frame ring at descriptor {fd}")),
        }
    }
}

impl std::fmt::Display for RingArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingArg::Named(name) => write!(f, "{name}"),
            RingArg::Fd(fd) => write!(f, "fd {fd}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_location() {
        assert!(matches!(
            RingArg::new(Some("/orion-x-frames"), None),
            Ok(RingArg::Named(_))
        ));
        assert_eq!(RingArg::new(None, Some(3)).ok(), Some(RingArg::Fd(3)));
        for (name, fd, why) in [
            (None, None, "give the frame ring"),
            (Some("/a"), Some(3), "not both"),
            (None, Some(1), "3..=1024"),
            (Some("no-slash"), None, "must start with '/'"),
        ] {
            let err = RingArg::new(name, fd)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(why), "{name:?} {fd:?}: {err}");
        }
    }
}
