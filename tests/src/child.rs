//! Child processes that cannot outlive a failing test.

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail};

/// A spawned helper with piped stdin/stdout. Closing stdin asks it to finish; dropping the
/// guard SIGKILLs and reaps it if it is still running.
pub struct ChildGuard {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    what: String,
}

impl ChildGuard {
    pub fn spawn(mut cmd: Command) -> Result<Self> {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawn {what}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("child stdout")?;
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            what,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's next stdout line; an error if it exited first.
    pub fn next_line(&mut self) -> Result<String> {
        match self.stdout.next() {
            Some(line) => Ok(line?),
            None => bail!("{} closed its stdout", self.what),
        }
    }

    /// Closes stdin (the helpers' "finish now"), then returns the last stdout line and
    /// waits for a successful exit.
    pub fn finish(mut self) -> Result<String> {
        drop(self.stdin.take());
        self.join()
    }

    /// Waits for the child to end on its own; returns its last stdout line.
    pub fn join(mut self) -> Result<String> {
        let mut last = None;
        for line in self.stdout.by_ref() {
            last = Some(line?);
        }
        let status = self.child.wait()?;
        if !status.success() {
            bail!("{} exited with {status}", self.what);
        }
        last.with_context(|| format!("{} printed nothing", self.what))
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
