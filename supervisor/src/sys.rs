//! The one place oriond needs `unsafe`: code that runs in a child between fork and exec.

use nix::sys::signal::Signal;

/// Makes the child receive SIGTERM when oriond dies, whatever the child is (Orion's own
/// children also ask for it themselves; the embedded broker cannot). Closes the race of
/// oriond dying between fork and the request: the child then exits before exec.
pub fn die_with_oriond(cmd: &mut tokio::process::Command) {
    let oriond = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: prctl and getppid are plain system calls, and
    // it allocates nothing (the error is built from a raw errno).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)?;
            if nix::unistd::getppid() != oriond {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}
