//! Where a process finds a shared-memory object: by POSIX name (`/dev/shm`, used by tests
//! and tools that run without oriond), or through a file descriptor its parent handed down
//! — a memfd sealed against shrinking and growing (ADR 0005). A sealed memfd has no name
//! another local user could squat, and nobody holding it (not even a compromised capture)
//! can truncate it under a reader's mapping, so a reader can never take SIGBUS from it.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, SealFlag, fcntl};
use nix::sys::mman::shm_open;
use nix::sys::stat::{Mode, fstat};

use crate::{RingError, RingName};

/// The seals every handed-down object must carry: its size is fixed for good.
pub(crate) fn required_seals() -> SealFlag {
    SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL
}

/// Who may write through a descriptor handed to a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

/// A shared-memory object to attach to.
#[derive(Debug, Clone)]
pub enum ShmSource {
    /// A POSIX shared-memory object by name.
    Named(RingName),
    /// A sealed memfd this process holds.
    Fd(Arc<SealedFd>),
}

/// An open, size-sealed memfd and a label for messages (the memfd's name).
#[derive(Debug)]
pub struct SealedFd {
    fd: OwnedFd,
    label: String,
}

/// Opens an existing named object; returns its file and size in bytes.
fn open_named(name: &RingName, writable: bool) -> Result<(File, u64), RingError> {
    let (flag, op) = if writable {
        (OFlag::O_RDWR, "shm_open(rw)")
    } else {
        (OFlag::O_RDONLY, "shm_open(ro)")
    };
    let fd = shm_open(name.as_str(), flag, Mode::empty()).map_err(|e| match e {
        Errno::ENOENT => RingError::NotFound {
            name: name.to_string(),
        },
        e => RingError::io(op, name.as_str(), e),
    })?;
    let st = fstat(&fd).map_err(|e| RingError::io("fstat", name.as_str(), e))?;
    let size = u64::try_from(st.st_size).unwrap_or(0);
    Ok((File::from(fd), size))
}

/// Descriptor numbers already taken over by [`ShmSource::inherited`] in this process.
static CLAIMED: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

impl ShmSource {
    /// Takes over descriptor `fd`, inherited from the parent (oriond passes the frame ring
    /// as fd 3). Fails unless `fd` is open, a regular file (a memfd) and sealed against
    /// resizing. The descriptor is made close-on-exec so it goes no further. A number can
    /// be taken over once per process.
    pub fn inherited(fd: RawFd, label: &str) -> Result<Self, RingError> {
        let what = format!("fd {fd} ({label})");
        if fd < 3 {
            return Err(RingError::io(
                "inherit",
                &what,
                std::io::Error::other("descriptors 0-2 are stdio, not shared memory"),
            ));
        }
        let mut claimed = CLAIMED
            .lock()
            .map_err(|_| RingError::io("inherit", &what, std::io::Error::other("poisoned")))?;
        if claimed.contains(&fd) {
            return Err(RingError::io(
                "inherit",
                &what,
                std::io::Error::other("already taken over"),
            ));
        }
        // Is it open at all? (F_GETFD fails with EBADF otherwise.)
        fcntl(
            // SAFETY: borrowing for one fcntl call; F_GETFD on a number that is not open
            // fails with EBADF and touches nothing.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            FcntlArg::F_GETFD,
        )
        .map_err(|e| RingError::io("inherit (fcntl F_GETFD)", &what, e))?;
        // SAFETY: `fd` is open (checked above), it is not stdio, and no other owner exists
        // in this process: the parent handed it down for this purpose, and CLAIMED makes
        // sure it is taken over only once.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .map_err(|e| RingError::io("fcntl F_SETFD", &what, e))?;
        let sealed = SealedFd {
            fd,
            label: label.to_owned(),
        };
        // On refusal the descriptor is closed, so its number may be handed over again.
        sealed.check()?;
        claimed.push(sealed.fd.as_raw_fd());
        Ok(ShmSource::Fd(Arc::new(sealed)))
    }

    /// A fresh open file of the object and its size in bytes.
    pub(crate) fn open(&self, writable: bool) -> Result<(File, u64), RingError> {
        match self {
            ShmSource::Named(name) => open_named(name, writable),
            ShmSource::Fd(sealed) => {
                let fd = sealed
                    .fd
                    .try_clone()
                    .map_err(|e| RingError::io("dup", &sealed.label, e))?;
                let file = File::from(fd);
                let meta = file
                    .metadata()
                    .map_err(|e| RingError::io("fstat", &sealed.label, e))?;
                Ok((file, meta.len()))
            }
        }
    }
}

impl SealedFd {
    pub(crate) fn new(fd: OwnedFd, label: String) -> Self {
        Self { fd, label }
    }

    fn check(&self) -> Result<(), RingError> {
        let seals = fcntl(&self.fd, FcntlArg::F_GET_SEALS)
            .map_err(|e| RingError::io("fcntl F_GET_SEALS (not a memfd?)", &self.label, e))?;
        let seals = SealFlag::from_bits_truncate(seals);
        if !seals.contains(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW) {
            return Err(RingError::io(
                "inherit",
                &self.label,
                std::io::Error::other("not sealed against resizing"),
            ));
        }
        Ok(())
    }

    /// A new descriptor for a child: the same open file (read-write), or a read-only
    /// reopening of it through `/proc/self/fd`, so the child cannot write even by mistake.
    pub(crate) fn share(&self, access: Access) -> Result<OwnedFd, RingError> {
        match access {
            Access::ReadWrite => self
                .fd
                .try_clone()
                .map_err(|e| RingError::io("dup", &self.label, e)),
            Access::ReadOnly => {
                let path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
                File::open(&path)
                    .map(OwnedFd::from)
                    .map_err(|e| RingError::io("reopen read-only", &self.label, e))
            }
        }
    }
}

impl From<RingName> for ShmSource {
    fn from(name: RingName) -> Self {
        ShmSource::Named(name)
    }
}

impl fmt::Display for ShmSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmSource::Named(name) => write!(f, "{name}"),
            ShmSource::Fd(sealed) => write!(f, "memfd:{}", sealed.label),
        }
    }
}
