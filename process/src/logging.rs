//! Where a process's log lines go, one timestamp and a real priority each:
//!
//! - a child of oriond (`ORION_LOG_RELAYED` set): plain `LEVEL target: message` lines on
//!   stderr, without a timestamp; oriond reads them, stamps them once and relays them with
//!   the level and the child's name (`supervisor/src/relay.rs`): the sandboxed capture
//!   cannot reach the journal itself;
//! - a process whose stderr is the journal (systemd's `JOURNAL_STREAM` names it, or
//!   `ORION_LOG=journal`): the journal's native protocol, with PRIORITY from the level and
//!   every field as a journal field (`ORION_CHILD=capture`);
//! - anything else (a terminal, a test): text on stderr, colours only on a TTY.
//!
//! `RUST_LOG` filters (default `info`).

use std::os::fd::AsFd;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Set by oriond for its children: their lines are relayed.
pub const RELAYED_ENV: &str = "ORION_LOG_RELAYED";

pub fn init_logging() {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var_os(RELAYED_ENV).is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .without_time()
            .with_env_filter(filter())
            .init();
        return;
    }
    if wants_journal() {
        match tracing_journald::layer() {
            Ok(journal) => {
                // syslog's meaning: INFO is routine (6), not notable (5).
                let mut priorities = tracing_journald::PriorityMappings::new();
                priorities.info = tracing_journald::Priority::Informational;
                priorities.debug = tracing_journald::Priority::Debug;
                tracing_subscriber::registry()
                    .with(filter())
                    .with(
                        journal
                            .with_field_prefix(None)
                            .with_priority_mappings(priorities),
                    )
                    .init();
                return;
            }
            // No journal socket after all: text on stderr, which the journal still takes.
            Err(e) => eprintln!("the journal socket cannot be used ({e}); logging to stderr"),
        }
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter())
        .init();
}

/// Whether stderr is connected to the journal (systemd sets `JOURNAL_STREAM=dev:inode` of
/// that stream; a process whose stderr was redirected elsewhere no longer matches).
fn wants_journal() -> bool {
    if std::env::var("ORION_LOG").is_ok_and(|v| v == "journal") {
        return true;
    }
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    stream == format!("{}:{}", stat.st_dev, stat.st_ino)
}

/// The level and the rest of a relayed line (`INFO target: message`); a line in another
/// shape (a library writing to stderr, the broker's own log, an older format with a
/// timestamp first) is kept whole, at INFO.
pub fn parse_line(line: &str) -> (tracing::Level, &str) {
    let trimmed = line.trim();
    let mut rest = trimmed;
    for _ in 0..2 {
        let (word, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let level = match word {
            "ERROR" => Some(tracing::Level::ERROR),
            "WARN" => Some(tracing::Level::WARN),
            "INFO" => Some(tracing::Level::INFO),
            "DEBUG" => Some(tracing::Level::DEBUG),
            "TRACE" => Some(tracing::Level::TRACE),
            _ => None,
        };
        if let Some(level) = level {
            return (level, after.trim_start());
        }
        // A leading RFC 3339 timestamp (the default text format) is skipped once.
        let stamped = word.len() >= 20 && word.as_bytes()[0].is_ascii_digit() && word.contains('T');
        if !stamped {
            break;
        }
        rest = after.trim_start();
    }
    (tracing::Level::INFO, trimmed)
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::parse_line;

    #[test]
    fn levels_are_read_from_relayed_and_stamped_lines_and_others_are_info() {
        assert_eq!(
            parse_line(" WARN orion_capture::pipeline: stalled after=5s"),
            (Level::WARN, "orion_capture::pipeline: stalled after=5s")
        );
        assert_eq!(
            parse_line("2026-12-07T17:40:00.123456Z ERROR orion_control: lost"),
            (Level::ERROR, "orion_control: lost")
        );
        assert_eq!(
            parse_line("1702: mosquitto version 2.0.11 running"),
            (Level::INFO, "1702: mosquitto version 2.0.11 running")
        );
        assert_eq!(
            parse_line("Traceback (most recent call last):").0,
            Level::INFO
        );
        assert_eq!(parse_line(""), (Level::INFO, ""));
    }
}
