//! Child processes that cannot outlive a failing test.

use std::io::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Bytes of a child's stderr kept for inspection (the newest ones).
const STDERR_KEEP: usize = 1 << 20;

/// How long `next_line` waits before calling the child hung.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// A spawned helper with piped stdin/stdout. Closing stdin asks the Orion helpers to finish;
/// dropping the guard stops and reaps the child if it is still running: SIGTERM first, so
/// it can remove what it created in /dev/shm, SIGKILL after a grace period. Stdout lines are
/// read on a thread, so waiting for one can time out instead of hanging a test.
pub struct ChildGuard {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    what: String,
}

impl ChildGuard {
    pub fn spawn(mut cmd: Command) -> Result<Self> {
        let what = format!("{:?}", cmd.get_program());
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {cmd:?}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            // Split on bytes, not as text: a binary payload (a snapshot) in the output must
            // not end the reading.
            for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (pipe, kept) = (child.stderr.take().context("child stderr")?, stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                // Passed through, so a failing test shows the child's logs.
                let _ = writeln!(std::io::stderr(), "{line}");
                if let Ok(mut kept) = kept.lock() {
                    kept.push_str(&line);
                    kept.push('\n');
                    if kept.len() > STDERR_KEEP {
                        let cut = kept.len() - STDERR_KEEP / 2;
                        let cut = (cut..kept.len())
                            .find(|&i| kept.is_char_boundary(i))
                            .unwrap_or(kept.len());
                        kept.drain(..cut);
                    }
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            lines,
            stderr,
            what,
        })
    }

    /// Writes one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin already closed")?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        Ok(())
    }

    /// What the child wrote to stderr so far (its newest megabyte).
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's next stdout line; an error if it exited first or stayed silent too long.
    pub fn next_line(&mut self) -> Result<String> {
        self.next_line_within(LINE_TIMEOUT)?
            .with_context(|| format!("{} printed nothing for {LINE_TIMEOUT:?}", self.what))
    }

    /// The next stdout line, `None` if none came within `timeout`; an error if stdout closed.
    pub fn next_line_within(&mut self, timeout: Duration) -> Result<Option<String>> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                bail!("{} closed its stdout (exited?)", self.what)
            }
        }
    }

    /// Reads lines until `pick` returns `Some`, or fails after `timeout`.
    pub fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("{}: condition not met within {timeout:?}", self.what);
            }
            if let Some(line) = self.next_line_within(left)?
                && let Some(found) = pick(&line)
            {
                return Ok(found);
            }
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its exit status once it has exited (reaped), `None` while it runs.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Closes stdin (the helpers' "finish now"), then returns the last stdout line and
    /// waits for a successful exit.
    pub fn finish(mut self) -> Result<String> {
        drop(self.stdin.take());
        self.join()
    }

    /// Waits for the child to end on its own; returns its last stdout line.
    pub fn join(mut self) -> Result<String> {
        let status = self.child.wait()?;
        let last = self.lines.iter().last();
        if !status.success() {
            bail!("{} exited with {status}", self.what);
        }
        last.with_context(|| format!("{} printed nothing", self.what))
    }

    /// Sends `signal` and reaps the child; returns its exit status.
    pub fn signal(mut self, signal: nix::sys::signal::Signal) -> Result<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, signal)?;
        Ok(self.child.wait()?)
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// How long a dropped child gets to leave after SIGTERM.
const DROP_GRACE: Duration = Duration::from_secs(3);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + DROP_GRACE;
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
