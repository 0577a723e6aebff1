//! The futex the reader sleeps on, and the clocks frames are stamped with.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// Sleeps while `*word == expected`, at most `timeout`.
///
/// Returns when woken, when the word already differs, on a signal, or on timeout; the caller
/// re-checks its condition in every case. A shared (not private) futex, because the word
/// lives in memory mapped by several processes.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // Always < 1e9, fits every c_long.
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call (it lives in a
    // mapping the caller holds); FUTEX_WAIT only reads it. `ts` outlives the call. The
    // result is deliberately ignored: EAGAIN, EINTR and ETIMEDOUT all mean "re-check".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every process sleeping in [`futex_wait`] on `word`.
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32 in a mapping the caller holds; FUTEX_WAKE does
    // not access memory besides using the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            0usize,
            0usize,
            0u32,
        );
    }
}

fn now_ns(clock: ClockId) -> u64 {
    // clock_gettime on these clocks cannot fail on Linux; 0 would only ever show up as an
    // obviously wrong timestamp, never as a crash.
    clock_gettime(clock)
        .map(|ts| {
            (ts.tv_sec() as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(ts.tv_nsec() as u64)
        })
        .unwrap_or(0)
}

/// CLOCK_MONOTONIC in nanoseconds: comparable between processes on one boot.
pub fn monotonic_ns() -> u64 {
    now_ns(ClockId::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    now_ns(ClockId::CLOCK_REALTIME)
}
