//! The capture process parses untrusted network video, so it runs with the least it needs
//! (ADR 0005). Once GStreamer is initialised and the ring is mapped — and before any thread
//! starts — it locks itself in:
//!
//! - **no new privileges** (`PR_SET_NO_NEW_PRIVS`), so nothing it executes gains any;
//! - **Landlock**: files readable only under the system's library and data directories plus
//!   the handful of `/etc` files name resolution and TLS need, and the camera itself (the
//!   file, or the video device read-write); nothing writable; TCP connects only to the
//!   camera's port (and 53 for DNS over TCP), no TCP bind; no signals to, and no abstract
//!   sockets of, processes outside the sandbox. The MQTT password, the config, the state
//!   directory, `/dev/shm` and other processes' `/proc` entries are out of reach;
//! - **seccomp**: no new Unix sockets (so no new connection to oriond's socket or any local
//!   daemon; the one oriond gave it stays), no network sockets at all for a source that
//!   needs none (file, test pattern, v4l2), signals only to itself, no `execve`, and no
//!   kernel-tampering calls (ptrace, process_vm_*, mount, bpf, modules, keyrings,
//!   namespaces...). Denied calls fail with EPERM rather than killing the process, so a
//!   library that probes gets an error.
//!
//! Landlock grows with the kernel: ABI 1 (5.13) and 2 (5.19, Debian 12's 6.1) restrict files,
//! ABI 4 (6.7) TCP ports, ABI 6 (6.12) signals and abstract sockets. What an older ABI cannot
//! enforce, seccomp does where it can: signals and Unix sockets on every kernel; TCP ports
//! it cannot see (they are behind a pointer), so below ABI 4 an RTSP capture may connect to
//! any TCP port. [`Enforced`] says which layers hold, for the status.
//!
//! The frame ring needs no rule: it is a memfd the process already holds, sealed against
//! resizing, and the only thing writable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use crate::source::Source;

/// The Landlock ABI whose rights are asked for; older kernels enforce what they can.
pub const ABI_TARGET: u8 = 6;

/// Read-only trees: code (GStreamer plugins are loaded as the stream needs them), data,
/// locales, certificates.
const READ_DIRS: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/gnutls",
    "/etc/alternatives",
    "/sys/devices/system/cpu",
];

/// Single files in /etc that name resolution, the dynamic loader and time need.
const READ_FILES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/dev/urandom",
    "/dev/random",
];

/// What the capture of one source may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub read_dirs: Vec<PathBuf>,
    pub read_files: Vec<PathBuf>,
    /// Devices opened read-write (with ioctls): a v4l2 camera.
    pub devices: Vec<PathBuf>,
    /// TCP ports it may connect to; none: no network sockets at all.
    pub tcp_ports: Vec<u16>,
    /// The highest Landlock ABI to use (the kernel's if lower); tests ask for older ones.
    pub landlock_abi: u8,
}

impl Policy {
    /// The policy for capturing `source`.
    pub fn for_source(source: &Source) -> Self {
        let mut p = Policy {
            read_dirs: READ_DIRS.iter().map(PathBuf::from).collect(),
            read_files: READ_FILES.iter().map(PathBuf::from).collect(),
            devices: vec!["/dev/null".into()],
            tcp_ports: Vec::new(),
            landlock_abi: ABI_TARGET,
        };
        // The process's own /proc entry (its threads, limits, maps); never other processes'.
        p.read_dirs.push("/proc/self".into());
        match source {
            Source::Rtsp {
                location, tls_ca, ..
            } => {
                p.read_files.extend(tls_ca.iter().cloned());
                let default = if location.scheme() == "rtsps" {
                    322
                } else {
                    554
                };
                p.tcp_ports.push(location.port().unwrap_or(default));
                p.tcp_ports.push(53);
            }
            Source::File(path) => p.read_files.push(path.clone()),
            Source::V4l2(device) => {
                p.devices.push(device.clone());
                // Device discovery and capabilities.
                p.read_dirs.push("/sys".into());
                p.read_dirs.push("/run/udev".into());
            }
            Source::Test(_) => {}
        }
        p
    }
}

/// What was enforced, for the status an operator reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforced {
    /// The Landlock ABI in force (0: none), and the kernel's.
    pub landlock_abi: u8,
    pub kernel_abi: u8,
    pub seccomp: bool,
    pub no_new_privs: bool,
}

impl Enforced {
    /// Per layer, what holds: files (ABI 1), TCP ports (ABI 4), signals and abstract
    /// sockets (ABI 6, else seccomp for signals; Unix sockets are seccomp's on every ABI).
    pub fn layers(&self) -> String {
        let abi = self.landlock_abi;
        let files = if abi >= 1 {
            "files"
        } else {
            "no file rules (kernel without Landlock)"
        };
        let tcp = if abi >= 4 {
            "TCP ports"
        } else {
            "no TCP port rules (ABI 4)"
        };
        let signals = if abi >= 6 {
            "signal scope"
        } else {
            "signals by seccomp"
        };
        format!("{files}, {tcp}, {signals}")
    }
}

impl std::fmt::Display for Enforced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "landlock ABI {} of kernel {} ({}), seccomp {}, no_new_privs {}",
            self.landlock_abi,
            self.kernel_abi,
            self.layers(),
            if self.seccomp { "on" } else { "off" },
            if self.no_new_privs { "on" } else { "off" }
        )
    }
}

/// The highest Landlock ABI this kernel supports (0: none), found by creating (and
/// dropping) a ruleset that requires it.
pub fn kernel_abi() -> u8 {
    (1..=9u8)
        .rev()
        .find(|&v| {
            Ruleset::default()
                .set_compatibility(CompatLevel::HardRequirement)
                .handle_access(AccessFs::from_all(ABI::from(i32::from(v))))
                .and_then(|r| r.create())
                .is_ok()
        })
        .unwrap_or(0)
}

/// Applies `policy` to this process. Must run while the process has a single thread:
/// Landlock binds only the calling thread and the threads it creates afterwards.
pub fn apply(policy: &Policy) -> Result<Enforced> {
    let threads = thread_count().context("count this process's threads")?;
    if threads != 1 {
        bail!("the sandbox must be applied before any thread starts ({threads} running)");
    }
    let kernel = kernel_abi();
    let abi = kernel.min(policy.landlock_abi);
    let status = landlock(policy, abi).context("Landlock")?;
    seccomp(policy).context("seccomp")?;
    let in_force = match status.ruleset {
        RulesetStatus::NotEnforced => 0,
        _ => abi,
    };
    Ok(Enforced {
        landlock_abi: in_force,
        kernel_abi: kernel,
        seccomp: true,
        no_new_privs: status.no_new_privs,
    })
}

fn thread_count() -> Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// Landlock at exactly `version` (what the rights of that ABI cover, nothing newer).
fn landlock(policy: &Policy, version: u8) -> Result<landlock::RestrictionStatus> {
    let abi = ABI::from(i32::from(version));
    let read = AccessFs::from_read(abi);
    let read_file = read & AccessFs::from_file(abi);
    // IoctlDev exists from ABI 5; below, device ioctls are not restricted.
    let device =
        (AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev) & AccessFs::from_all(abi);
    let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(abi))?;
    if version >= 4 {
        ruleset = ruleset.handle_access(AccessNet::from_all(abi))?;
    }
    if version >= 6 {
        ruleset = ruleset.scope(Scope::AbstractUnixSocket | Scope::Signal)?;
    }
    let mut ruleset = ruleset.create()?;
    let rules: [(&[PathBuf], BitFlags<AccessFs>); 3] = [
        (&policy.read_dirs, read),
        (&policy.read_files, read_file),
        (&policy.devices, device),
    ];
    for (paths, access) in rules {
        for path in paths.iter().filter(|p| exists(p)) {
            let fd = PathFd::new(path).with_context(|| format!("open {}", path.display()))?;
            ruleset = ruleset.add_rule(PathBeneath::new(fd, access))?;
        }
    }
    if version >= 4 {
        for &port in &policy.tcp_ports {
            ruleset = ruleset.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
        }
    }
    Ok(ruleset.restrict_self()?)
}

fn exists(path: &Path) -> bool {
    std::fs::metadata(path).is_ok()
}

/// Calls that fail with EPERM inside the sandbox.
const DENIED: &[i64] = &[
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
];

/// A condition on argument `arg` (a 32-bit int).
fn arg(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition> {
    Ok(SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Dword,
        op,
        value,
    )?)
}

fn seccomp(policy: &Policy) -> Result<()> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&call| (call, Vec::new())).collect();
    // socket(AF_UNIX, ...): a new connection to oriond's or any other local socket. And
    // for a source without a network (file, test pattern, v4l2), no network socket at all:
    // the only way to keep it from any TCP port where Landlock cannot (ABI < 4).
    let mut families = vec![libc::AF_UNIX];
    if policy.tcp_ports.is_empty() {
        // Netlink stays: it reaches the kernel (udev's device discovery for v4l2), not a
        // daemon or the network.
        families.extend([libc::AF_INET, libc::AF_INET6, libc::AF_PACKET]);
    }
    let socket_rules = families
        .into_iter()
        .map(|f| SeccompRule::new(vec![arg(0, SeccompCmpOp::Eq, f as u64)?]).map_err(Into::into))
        .collect::<Result<Vec<_>>>()?;
    rules.insert(libc::SYS_socket, socket_rules);
    // Signals only to itself (Landlock's signal scope needs ABI 6): the process's own
    // pid as the target, or 0 (its own process group, which oriond made for it alone).
    // Signal 0 sends nothing and stays allowed: the ring asks it whether a writer lives.
    let me = u64::from(std::process::id());
    let not_me = || arg(0, SeccompCmpOp::Ne, me);
    rules.insert(
        libc::SYS_kill,
        vec![SeccompRule::new(vec![
            not_me()?,
            arg(0, SeccompCmpOp::Ne, 0)?,
            arg(1, SeccompCmpOp::Ne, 0)?,
        ])?],
    );
    for call in [
        libc::SYS_tgkill,
        libc::SYS_tkill,
        libc::SYS_rt_sigqueueinfo,
        libc::SYS_rt_tgsigqueueinfo,
    ] {
        rules.insert(call, vec![SeccompRule::new(vec![not_me()?])?]);
    }
    rules.insert(libc::SYS_pidfd_send_signal, Vec::new());
    let arch = std::env::consts::ARCH
        .try_into()
        .with_context(|| format!("no seccomp support for {}", std::env::consts::ARCH))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    let program: seccompiler::BpfProgram = filter.try_into()?;
    seccompiler::apply_filter_all_threads(&program)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::RtspTransport;

    #[test]
    fn policy_follows_the_source() {
        let rtsp = Source::parse("rtsp://cam.local/stream", RtspTransport::Tcp).unwrap();
        assert_eq!(Policy::for_source(&rtsp).tcp_ports, vec![554, 53]);
        let rtsps = Source::parse("rtsps://cam.local:8322/s", RtspTransport::Tcp).unwrap();
        assert_eq!(Policy::for_source(&rtsps).tcp_ports, vec![8322, 53]);
        let file = Source::parse("file:///etc/hostname", RtspTransport::Tcp).unwrap();
        let p = Policy::for_source(&file);
        assert!(p.tcp_ports.is_empty());
        assert!(p.read_files.contains(&PathBuf::from("/etc/hostname")));
        let test = Source::parse("test://", RtspTransport::Tcp).unwrap();
        let p = Policy::for_source(&test);
        assert!(p.tcp_ports.is_empty() && p.devices == vec![PathBuf::from("/dev/null")]);
        // Nothing of Orion's own is ever in a policy.
        for p in [Policy::for_source(&rtsp), Policy::for_source(&file)] {
            for path in p.read_dirs.iter().chain(&p.read_files).chain(&p.devices) {
                let s = path.to_string_lossy();
                assert!(
                    !s.starts_with("/etc/orion")
                        && !s.starts_with("/run")
                        && !s.starts_with("/var")
                        && !s.starts_with("/dev/shm")
                        && s != "/etc"
                        && s != "/",
                    "{s}"
                );
            }
        }
    }
}
