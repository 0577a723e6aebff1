//! `orionctl`: supervisorctl-style control of a running oriond over its Unix socket.
//!
//! `orionctl status` prints `name  STATE  description` and exits 3 when a listed process
//! is not RUNNING, 4 for an unknown name, 5 when all run but the camera stream or the
//! detector is not working (the description says why); `--json` prints oriond's answers as JSON. With no
//! verb it reads verbs from a prompt (`orion>`).

#![forbid(unsafe_code)]

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use orion_protocol::command::{self, Ack, ErrorKind, TailReport};
use orion_protocol::focus::{Params, ParamsUpdate};
use orion_protocol::message::{self, Frame, Message};
use orion_protocol::{Action, NormRect, ProcessName, RateHz, RoiSet, Status, wire};
use orion_supervisor::cli::orionctl::{Cli, Verb};
use serde_json::Value;

mod guided;
mod prompt;
mod snapshot;
mod status;
use status::find;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = match socket_path(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orionctl: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut client = Client {
        socket,
        json: cli.json,
    };
    match cli.verb {
        Some(verb) => client.run(verb),
        None => client.prompt(),
    }
}

fn socket_path(cli: &Cli) -> Result<PathBuf> {
    if let Some(s) = &cli.socket {
        return Ok(s.clone());
    }
    if let Some(name) = &cli.instance {
        return instance_socket(name);
    }
    let config = orion_config::Config::load(&cli.config)
        .with_context(|| "finding oriond's socket (or pass --socket)".to_string())?;
    Ok(config.socket_path())
}

/// The socket of instance `name`: from its config `/etc/orion/NAME.toml` (the template unit
/// `oriond@NAME` reads that file), else the default socket directory.
fn instance_socket(name: &str) -> Result<PathBuf> {
    let id = orion_protocol::InstanceId::new(name).map_err(|e| anyhow!("--instance {e}"))?;
    let dir = Path::new(orion_config::DEFAULT_PATH)
        .parent()
        .unwrap_or(Path::new("/etc/orion"));
    let config = dir.join(format!("{name}.toml"));
    if config.is_file() {
        let c = orion_config::Config::load(&config)
            .with_context(|| format!("finding instance {name}'s socket"))?;
        return Ok(c.socket_path());
    }
    Ok(id.socket_path(&orion_config::Supervisor::default().socket_dir))
}

struct Client {
    socket: PathBuf,
    json: bool,
}

/// Exit codes of supervisorctl's status.
const NOT_RUNNING: u8 = 3;
const UNKNOWN_NAME: u8 = 4;
/// Every listed process RUNNING, but the camera stream or the detector is not working.
const NOT_DETECTING: u8 = 5;

impl Client {
    fn run(&mut self, verb: Verb) -> ExitCode {
        match self.verb(verb) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("orionctl: {e:#}");
                ExitCode::FAILURE
            }
        }
    }

    /// No verb: the `orion>` prompt on a terminal (`prompt`), else verbs read line by
    /// line from stdin (scripts).
    fn prompt(&mut self) -> ExitCode {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return match prompt::interactive(|line| self.line(line)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("orionctl: the prompt failed: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => return ExitCode::SUCCESS,
                Ok(_) => {}
            }
            match line.trim() {
                "" => continue,
                "quit" | "exit" => return ExitCode::SUCCESS,
                "help" => print!("{}", prompt::help()),
                words => self.line(words),
            }
        }
    }

    /// One line of verbs, as on the command line.
    fn line(&mut self, line: &str) {
        let args = std::iter::once("orionctl").chain(line.split_whitespace());
        match Cli::try_parse_from(args) {
            Ok(Cli {
                verb: Some(verb), ..
            }) => {
                let _ = self.run(verb);
                let _ = std::io::stdout().flush();
            }
            Ok(_) => {}
            Err(e) => {
                let _ = e.print();
            }
        }
    }

    fn verb(&mut self, verb: Verb) -> Result<u8> {
        match verb {
            Verb::Status { names } => self.status(&names),
            Verb::Start { names } => {
                let names = self.expand(&names, false)?;
                self.each(Action::StartProcess, &names)
            }
            Verb::Stop { names } => {
                let names = self.expand(&names, true)?;
                self.each(Action::StopProcess, &names)
            }
            Verb::Restart { names } => {
                let names = self.expand(&names, false)?;
                let mut reversed = names.clone();
                reversed.reverse();
                let code = self.each(Action::StopProcess, &reversed)?;
                Ok(code.max(self.each(Action::StartProcess, &names)?))
            }
            Verb::Pid { name } => {
                let status = self.read_status(Action::ProcessStatus(None))?;
                let pid = match name.as_deref() {
                    None => Some(status.oriond.pid),
                    Some(n) => find(&status, n)
                        .map(|p| p.pid)
                        .ok_or_else(|| anyhow!("no such process {n:?}"))?,
                };
                println!("{}", pid.unwrap_or(0));
                Ok(0)
            }
            Verb::Tail {
                follow,
                bytes,
                name,
            } => self.tail(&name, bytes, follow),
            Verb::Shutdown => self.simple(Action::Shutdown),
            Verb::Reload => self.simple(Action::ReloadConfig),
            Verb::Pause => self.simple(Action::Pause),
            Verb::Resume => self.simple(Action::Resume),
            Verb::Rate { hz: Some(hz) } => self.simple(Action::SetRate(
                RateHz::new(hz).map_err(|e| anyhow!("rate: {e}"))?,
            )),
            Verb::Model { size: Some(size) } => self.simple(Action::SetModelSize(
                size.parse().map_err(|e| anyhow!("model: {e}"))?,
            )),
            Verb::Rate { hz: None } => self.guided("rate", "HZ", |s| {
                Ok(guided::choose_rate(s)?.map(Action::SetRate))
            }),
            Verb::Model { size: None } => self.guided("model", "SIZE", |s| {
                Ok(guided::choose_model(s)?.map(Action::SetModelSize))
            }),
            Verb::Rois { action, rects } => match action.as_str() {
                "set" => self.simple(Action::SetRois(parse_rects(&rects)?)),
                "clear" => self.simple(Action::ClearRois),
                "get" => self.simple(Action::GetRois),
                other => bail!("rois {other:?}: use set, clear or get"),
            },
            Verb::Focus {
                action,
                strategy,
                alpha,
                velocity_threshold,
                velocity_factor,
                max_expansion,
            } => {
                match action.as_str() {
                    "on" => self.simple(Action::EnableAutoFocus),
                    "off" => self.simple(Action::DisableAutoFocus),
                    "stats" => self.simple(Action::GetAutoFocusStats),
                    "clear" => self.simple(Action::ClearAutoFocusHistory),
                    "get" => self.simple(Action::GetAutoFocus),
                    "strategy" => {
                        let strategy = strategy.ok_or_else(|| {
                            anyhow!("focus strategy NAME (simple, smoothing, velocity)")
                        })?;
                        let strategy = serde_json::from_value(Value::String(strategy.clone()))
                        .map_err(|_| {
                            anyhow!("strategy must be simple, smoothing or velocity, got {strategy:?}")
                        })?;
                        let update = ParamsUpdate {
                            strategy: Some(strategy),
                            alpha,
                            velocity_threshold,
                            velocity_factor,
                            max_expansion,
                            ..ParamsUpdate::default()
                        };
                        Params::default()
                            .with(&update)
                            .map_err(|e| anyhow!("focus strategy: {e}"))?;
                        self.simple(Action::SetAutoFocus(update))
                    }
                    other => bail!("focus {other:?}: use on, off, strategy, stats, clear or get"),
                }
            }
            Verb::GetStatus => {
                let status = self.call(Action::GetStatus)?;
                println!("{}", serde_json::to_string_pretty(&status)?);
                Ok(0)
            }
            Verb::Metrics => {
                let status = self.read_status(Action::ProcessStatus(None))?;
                print!("{}", orion_supervisor::metrics::render(&status));
                Ok(0)
            }
            Verb::Snapshot { output } => self.snapshot(output.as_deref()),
        }
    }

    /// A guided `verb` (its argument `arg` left out): `choose` asks on the terminal, from
    /// the status, and the action it returns is sent. Without a terminal to ask on the
    /// argument is required, as without the guide (exit 2).
    fn guided(
        &mut self,
        verb: &str,
        arg: &str,
        choose: impl FnOnce(&Status) -> Result<Option<Action>>,
    ) -> Result<u8> {
        if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
            eprintln!(
                "orionctl {verb}: {arg} is required (on a terminal, `orionctl {verb}` alone offers the choices)"
            );
            return Ok(2);
        }
        let status = self.read_status(Action::GetStatus)?;
        match choose(&status)? {
            Some(action) => self.simple(action),
            None => {
                println!("unchanged");
                Ok(0)
            }
        }
    }

    /// `all` → every process oriond runs, in start order (stop order when `reverse`);
    /// other names as given.
    fn expand(&mut self, names: &[String], reverse: bool) -> Result<Vec<String>> {
        if !names.iter().any(|n| n == "all") {
            return Ok(names.to_vec());
        }
        let status = self.read_status(Action::ProcessStatus(None))?;
        let mut all: Vec<String> = status
            .processes
            .iter()
            .map(|p| p.name.to_string())
            .collect();
        if reverse {
            all.reverse();
        }
        Ok(all)
    }

    /// `verb` for each name; exit 4 if a name is no process oriond runs.
    fn each(&mut self, verb: fn(ProcessName) -> Action, names: &[String]) -> Result<u8> {
        let mut code = 0;
        for name in names {
            let Ok(process) = name.parse::<ProcessName>() else {
                if !self.json {
                    println!("{name}: ERROR (no such process)");
                }
                code = UNKNOWN_NAME;
                continue;
            };
            let action = verb(process);
            let past = match action {
                Action::StartProcess(_) => "started",
                _ => "stopped",
            };
            let ack = self.request(&action)?;
            if self.json {
                println!("{}", serde_json::to_string(&ack)?);
            }
            match ack.into_result() {
                Ok(_) if !self.json => println!("{name}: {past}"),
                Ok(_) => {}
                Err(e) => {
                    if !self.json {
                        println!("{name}: ERROR ({e})");
                    }
                    code = code.max(exit_code(e.kind));
                }
            }
        }
        Ok(code)
    }

    fn tail(&mut self, name: &str, bytes: u64, follow: bool) -> Result<u8> {
        let name: ProcessName = name.parse().map_err(|e| anyhow!("{e}"))?;
        let mut offset: Option<u64> = None;
        let mut out = std::io::stdout();
        loop {
            let bytes = if offset.is_some() {
                command::TAIL_MAX
            } else {
                (bytes as usize).clamp(1, command::TAIL_MAX)
            };
            let data = self.call(Action::TailProcess {
                name,
                offset,
                bytes,
            })?;
            let tail: TailReport = serde_json::from_value(data)
                .context("oriond's tail is not one this orionctl reads")?;
            write!(out, "{}", tail.text)?;
            out.flush()?;
            offset = Some(tail.offset);
            if !follow {
                return Ok(0);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A command whose answer is printed as it is.
    fn simple(&mut self, action: Action) -> Result<u8> {
        let ack = self.request(&action)?;
        if self.json {
            println!("{}", serde_json::to_string(&ack)?);
            return Ok(ack.error_kind.map_or(0, exit_code));
        }
        match ack.into_result() {
            Ok(data) => {
                println!("{}: ok {data}", action.name());
                Ok(0)
            }
            Err(e) => {
                eprintln!("{}: ERROR {e}", action.name());
                Ok(exit_code(e.kind))
            }
        }
    }

    /// The data of a successful answer.
    fn call(&mut self, action: Action) -> Result<Value> {
        let name = action.name();
        self.request(&action)?
            .into_result()
            .map_err(|e| anyhow!("{name}: {e}"))
    }

    /// The status document (`get_status`, or `process_status` for all processes).
    fn read_status(&mut self, action: Action) -> Result<Status> {
        let data = self.call(action)?;
        serde_json::from_value(data).context("oriond's status is not one this orionctl reads")
    }

    fn request(&mut self, action: &Action) -> Result<Ack> {
        self.exchange(action).map(|(ack, _)| ack)
    }

    /// Sends `action`; its ack, and the connection for what follows the ack.
    fn exchange(&mut self, action: &Action) -> Result<(Ack, UnixStream)> {
        let mut stream = connect(&self.socket)?;
        // A model load may take a while; oriond itself gives up before this.
        stream.set_read_timeout(Some(orion_protocol::timeouts::COMMANDER))?;
        let id = format!("orionctl-{}", std::process::id());
        let body = action.to_request(Some(&id));
        wire::write_message(&mut stream, body.to_string().as_bytes())?;
        loop {
            let reply = wire::read_message(&mut stream)?
                .ok_or_else(|| anyhow!("oriond closed the connection without answering"))?;
            match message::decode(&reply) {
                Ok(Frame::Message(m)) => match *m {
                    Message::Ack(ack) if ack.request_id.as_deref() == Some(id.as_str()) => {
                        return Ok((ack, stream));
                    }
                    Message::Ack(ack) if ack.request_id.is_none() && !ack.is_success() => {
                        bail!("oriond: {}", ack.error.unwrap_or_default())
                    }
                    _ => {}
                },
                Ok(Frame::Request(_)) => {}
                Err(e) => bail!("unreadable answer from oriond: {e}"),
            }
        }
    }
}

/// Exit codes by error kind: 4 for a process oriond does not run (as supervisorctl), 1
/// for every other failure.
fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::UnknownProcess => UNKNOWN_NAME,
        _ => 1,
    }
}

fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            anyhow!("oriond is not running (no socket at {})", path.display())
        }
        std::io::ErrorKind::ConnectionRefused => {
            anyhow!("oriond is not running (stale socket at {})", path.display())
        }
        std::io::ErrorKind::PermissionDenied => anyhow!(
            "cannot access {}: permission denied (run as root or a member of the orion group)",
            path.display()
        ),
        _ => anyhow!("cannot connect to {}: {e}", path.display()),
    })
}

/// `X,Y,W,H` rectangles (normalized) → a validated ROI set.
fn parse_rects(rects: &[String]) -> Result<RoiSet> {
    if rects.is_empty() {
        bail!("rois set X,Y,W,H [X,Y,W,H …] (normalized to the frame)");
    }
    let rects = rects
        .iter()
        .map(|r| {
            let v: Vec<f64> = r
                .split(',')
                .map(|p| p.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| anyhow!("{r:?} is not X,Y,W,H"))?;
            match v[..] {
                [x, y, width, height] => {
                    NormRect::new(x, y, width, height).map_err(|e| anyhow!("{r}: {e}"))
                }
                _ => bail!("{r:?} is not X,Y,W,H"),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    RoiSet::new(rects).map_err(|e| anyhow!("rois: {e}"))
}
