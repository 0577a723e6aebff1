//! Shared-memory objects: POSIX names (create/open/unlink, the /dev/shm space check) and
//! sealed memfds (create; see [`crate::source`]).

use std::fs::File;
use std::os::fd::OwnedFd;

use memmap2::{Mmap, MmapMut, MmapOptions};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{Mode, fchmod};

use crate::RingError;
use crate::source::{SealedFd, ShmSource};

/// Where Linux keeps POSIX shared memory; free space here bounds the ring size.
pub const SHM_DIR: &str = "/dev/shm";

/// A validated POSIX shared-memory name: `/` then 1..=200 of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RingName(String);

impl RingName {
    pub fn new(name: &str) -> Result<Self, RingError> {
        let bad = |reason| RingError::InvalidName {
            name: name.to_owned(),
            reason,
        };
        let rest = name
            .strip_prefix('/')
            .ok_or_else(|| bad("must start with '/'"))?;
        if rest.is_empty() || rest.len() > 200 {
            return Err(bad("must have 1..=200 characters after '/'"));
        }
        if !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(bad(
                "may only contain A-Z a-z 0-9 . _ - after the leading '/'",
            ));
        }
        if rest.starts_with('.') {
            return Err(bad("must not start with '.' after the '/'"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The frame ring of one Orion instance: `/orion-<instance_id>-frames`.
    pub fn frames_for_instance(instance_id: &str) -> Result<Self, RingError> {
        Self::new(&format!("/orion-{instance_id}-frames"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RingName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Free bytes in /dev/shm available to this user.
pub fn shm_free_bytes() -> Result<u64, RingError> {
    let st =
        nix::sys::statvfs::statvfs(SHM_DIR).map_err(|e| RingError::io("statvfs", SHM_DIR, e))?;
    Ok(st.blocks_available() * st.fragment_size())
}

/// Removes a shared-memory object; a missing one is not an error.
pub fn unlink(name: &RingName) -> Result<(), RingError> {
    match shm_unlink(name.as_str()) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(RingError::io("shm_unlink", name.as_str(), e)),
    }
}

/// Creates a fresh object of `size` bytes, mode 0600, with its pages reserved up front so
/// that a full /dev/shm is reported here rather than as SIGBUS on first write later.
/// Any stale object of the same name is unlinked first.
pub(crate) fn create(name: &RingName, size: u64) -> Result<MmapMut, RingError> {
    unlink(name)?;
    let free = shm_free_bytes()?;
    if size > free {
        return Err(no_space(name, size, free));
    }
    let fd = shm_open(
        name.as_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .map_err(|e| RingError::io("shm_open(create)", name.as_str(), e))?;
    let result = reserve_and_map(name, fd, size);
    if result.is_err() {
        // Leave nothing half-made behind.
        let _ = unlink(name);
    }
    result
}

fn reserve_and_map(name: &RingName, fd: OwnedFd, size: u64) -> Result<MmapMut, RingError> {
    // The umask can only narrow the mode; set it exactly anyway so the intent is explicit.
    fchmod(&fd, Mode::S_IRUSR | Mode::S_IWUSR)
        .map_err(|e| RingError::io("fchmod", name.as_str(), e))?;
    let len = i64::try_from(size).map_err(|_| no_space(name, size, 0))?;
    nix::unistd::ftruncate(&fd, len).map_err(|e| RingError::io("ftruncate", name.as_str(), e))?;
    match nix::fcntl::posix_fallocate(&fd, 0, len) {
        Ok(()) => {}
        Err(Errno::ENOSPC) => return Err(no_space(name, size, shm_free_bytes().unwrap_or(0))),
        Err(e) => return Err(RingError::io("posix_fallocate", name.as_str(), e)),
    }
    let file = File::from(fd);
    let len = usize::try_from(size).map_err(|_| no_space(name, size, 0))?;
    // SAFETY: the object was just created with O_EXCL and sized to `len`; it is only ever
    // resized by its creator, so the mapping stays valid. Concurrent access by other
    // processes is confined to atomics and seqlock-checked byte copies (see ring/README.md).
    unsafe { MmapOptions::new().len(len).map_mut(&file) }
        .map_err(|e| RingError::io("mmap", name.as_str(), e))
}

/// Creates an anonymous object of `size` bytes (a memfd named `label`, close-on-exec),
/// pages reserved up front, then sealed so nobody can shrink or grow it (ADR 0005).
pub(crate) fn create_sealed(label: &str, size: u64) -> Result<(SealedFd, MmapMut), RingError> {
    let fd = memfd_create(label, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
        .map_err(|e| RingError::io("memfd_create", label, e))?;
    let len = i64::try_from(size).map_err(|_| no_memory(label, size))?;
    nix::unistd::ftruncate(&fd, len).map_err(|e| RingError::io("ftruncate", label, e))?;
    match nix::fcntl::posix_fallocate(&fd, 0, len) {
        Ok(()) => {}
        Err(Errno::ENOSPC | Errno::ENOMEM) => return Err(no_memory(label, size)),
        Err(e) => return Err(RingError::io("posix_fallocate", label, e)),
    }
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_ADD_SEALS(crate::source::required_seals()),
    )
    .map_err(|e| RingError::io("fcntl F_ADD_SEALS", label, e))?;
    let file = File::from(fd);
    let map_len = usize::try_from(size).map_err(|_| no_memory(label, size))?;
    // SAFETY: the memfd was just sized to `map_len` and sealed against shrinking, so the
    // mapping stays valid for its whole life whoever else holds the descriptor.
    let map = unsafe { MmapOptions::new().len(map_len).map_mut(&file) }
        .map_err(|e| RingError::io("mmap", label, e))?;
    Ok((SealedFd::new(OwnedFd::from(file), label.to_owned()), map))
}

/// Maps an existing object read-write (for the writer).
pub(crate) fn open_rw(source: &ShmSource) -> Result<MmapMut, RingError> {
    let (file, size) = source.open(true)?;
    let len = map_len(source, size)?;
    // SAFETY: as in `reserve_and_map`: a named object is only resized by its creator, a
    // handed-down one cannot be resized at all (sealed); the size was checked against the
    // header's claims by the caller before any slot access.
    unsafe { MmapOptions::new().len(len).map_mut(&file) }
        .map_err(|e| RingError::io("mmap", &source.to_string(), e))
}

/// Maps an existing object read-only (for readers).
pub(crate) fn open_ro(source: &ShmSource) -> Result<Mmap, RingError> {
    let (file, size) = source.open(false)?;
    let len = map_len(source, size)?;
    // SAFETY: read-only mapping of an object that is never shrunk while mapped (sealed, or
    // resized only by its creator); all reads of shared state go through atomics or
    // seqlock-validated copies.
    unsafe { MmapOptions::new().len(len).map(&file) }
        .map_err(|e| RingError::io("mmap", &source.to_string(), e))
}

fn map_len(source: &ShmSource, size: u64) -> Result<usize, RingError> {
    if size < crate::layout::HEADER_SIZE {
        return Err(RingError::Truncated {
            name: source.to_string(),
            actual: size,
            expected: crate::layout::HEADER_SIZE,
        });
    }
    usize::try_from(size).map_err(|_| RingError::CorruptHeader {
        name: source.to_string(),
        reason: format!("object size {size} does not fit this address space"),
    })
}

fn no_memory(label: &str, needed: u64) -> RingError {
    RingError::NoMemory {
        name: label.to_owned(),
        needed,
    }
}

fn no_space(name: &RingName, needed: u64, free: u64) -> RingError {
    RingError::NoSpace {
        name: name.to_string(),
        needed,
        free,
        dir: SHM_DIR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(RingName::new("/orion-room1-frames").is_ok());
        for bad in ["orion", "/", "/a/b", "/a b", "/..", "/.hidden", "/ä"] {
            let err = RingName::new(bad).unwrap_err();
            assert!(
                err.to_string().contains("invalid ring name"),
                "{bad}: {err}"
            );
        }
        assert!(RingName::new(&format!("/{}", "a".repeat(201))).is_err());
        assert_eq!(
            RingName::frames_for_instance("cam-1").unwrap().as_str(),
            "/orion-cam-1-frames"
        );
    }
}
