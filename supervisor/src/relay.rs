//! A child's log line into oriond's own log: the level read from the line (children write
//! `LEVEL target: message` without a timestamp, `orion_process::logging`), the child's name
//! as a field (`ORION_CHILD=capture` in the journal) and at the start of the message, and
//! one timestamp, oriond's. Under systemd that is the journal with a real priority per
//! line; on a terminal, one text line.

use orion_protocol::ProcessName;
use tracing::Level;

pub fn line(child: ProcessName, line: &str) {
    let (level, message) = orion_process::logging::parse_line(line);
    let child = child.as_str();
    match level {
        Level::ERROR => tracing::error!(orion_child = child, "{child}: {message}"),
        Level::WARN => tracing::warn!(orion_child = child, "{child}: {message}"),
        Level::INFO => tracing::info!(orion_child = child, "{child}: {message}"),
        Level::DEBUG => tracing::debug!(orion_child = child, "{child}: {message}"),
        Level::TRACE => tracing::trace!(orion_child = child, "{child}: {message}"),
    }
}
