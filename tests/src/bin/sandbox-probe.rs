//! Applies the capture process's sandbox (the same `orion_capture::sandbox` code and
//! policy the capture applies for `--source`), then tries what a decoder exploit would try
//! and prints one JSON line of outcomes. Tests assert on it; operators may run it too.
//!
//! `sandbox-probe --source URI [--landlock-abi N] [--read PATH]... [--unix PATH]...
//!  [--tcp HOST:PORT]... [--signal PID]... [--truncate-fd-of PID:FD]...`
//!
//! `--landlock-abi` caps the Landlock ABI (as on an older kernel: Debian 12 has 2).
//!
//! `--truncate-fd-of` opens `/proc/PID/fd/FD` before the sandbox (as if the descriptor had
//! been handed down) and tries to shrink and grow it afterwards.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use orion_capture::sandbox::{self, Policy};
use orion_capture::source::{RtspTransport, Source};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    source: String,
    #[arg(long, default_value_t = sandbox::ABI_TARGET)]
    landlock_abi: u8,
    #[arg(long)]
    read: Vec<String>,
    #[arg(long)]
    unix: Vec<String>,
    #[arg(long)]
    tcp: Vec<String>,
    #[arg(long)]
    signal: Vec<i32>,
    #[arg(long)]
    truncate_fd_of: Vec<String>,
}

fn outcome(op: &str, target: &str, result: std::io::Result<()>) -> Value {
    match result {
        Ok(()) => json!({"op": op, "target": target, "allowed": true}),
        Err(e) => json!({"op": op, "target": target, "allowed": false,
                         "errno": e.raw_os_error(), "error": e.to_string()}),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let source = Source::parse(&args.source, RtspTransport::Tcp)?;
    let mut held = Vec::new();
    for spec in &args.truncate_fd_of {
        let (pid, fd) = spec
            .split_once(':')
            .context("--truncate-fd-of takes PID:FD")?;
        let path = format!("/proc/{pid}/fd/{fd}");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("open {path} before the sandbox"))?;
        held.push((spec.clone(), file));
    }
    let mut policy = Policy::for_source(&source);
    policy.landlock_abi = args.landlock_abi;
    let enforced = sandbox::apply(&policy)?;
    let mut results = Vec::new();
    for path in &args.read {
        let r = File::open(path).and_then(|mut f| f.read(&mut [0u8; 16]).map(|_| ()));
        results.push(outcome("read", path, r));
    }
    for path in &args.unix {
        results.push(outcome(
            "unix_connect",
            path,
            UnixStream::connect(path).map(|_| ()),
        ));
    }
    for addr in &args.tcp {
        let r = addr
            .parse()
            .map_err(std::io::Error::other)
            .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).map(|_| ()));
        results.push(outcome("tcp_connect", addr, r));
    }
    for &pid in &args.signal {
        // SIGCONT: a real signal that does nothing to a running process (signal 0 sends
        // nothing and is allowed: the ring uses it to ask whether a writer lives).
        let r = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGCONT,
        )
        .map_err(std::io::Error::from);
        results.push(outcome("signal", &pid.to_string(), r));
    }
    for (spec, file) in &held {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        results.push(outcome("shrink", spec, file.set_len(len / 2)));
        results.push(outcome("grow", spec, file.set_len(len * 2)));
    }
    println!(
        "{}",
        json!({"sandbox": enforced.to_string(), "landlock_abi": enforced.landlock_abi,
               "kernel_abi": enforced.kernel_abi, "results": results})
    );
    Ok(())
}
