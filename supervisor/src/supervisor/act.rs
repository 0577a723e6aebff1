//! What oriond's decisions ask for: an [`Act`]. The decisions (`standby::check`,
//! `handover`'s `Successor` steps, `reload::plan` and `reload::restart`, `routing::route`)
//! are pure: the situation, the event and the time in, acts out, unit-tested without
//! processes. This is the one place that carries acts out: it spawns, signals, sends and
//! records. (A child's lifecycle has its own, smaller vocabulary, `lifecycle::Effect`,
//! carried out by `processes.rs`.)

use orion_protocol::ProcessName;
use orion_protocol::status::Handover;

use super::Supervisor;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Act {
    /// Start a standby detector beside the detector.
    StartStandby,
    /// SIGKILL the standby detector, saying why.
    DropStandby(&'static str),
    /// SIGKILL the capture successor, saying why.
    DropSuccessor(String),
    /// Stop `name` and start it again (its lifecycle's ordinary restart).
    Restart(ProcessName),
    /// Replace the capture: make-before-break if its stream runs, else a restart.
    ReplaceCapture,
    /// Record how a capture replacement went (status `capture_handover`).
    Handover(Handover),
}

impl Supervisor {
    /// Carries out `acts`, in order.
    pub(super) fn carry_out(&mut self, acts: impl IntoIterator<Item = Act>) {
        for act in acts {
            match act {
                Act::StartStandby => self.start_standby(),
                Act::DropStandby(why) => self.drop_standby(why),
                Act::DropSuccessor(why) => self.drop_successor(&why),
                Act::Restart(name) => self.restart(name),
                Act::ReplaceCapture => self.replace_capture(),
                Act::Handover(outcome) => self.handover_done(outcome),
            }
        }
    }
}
