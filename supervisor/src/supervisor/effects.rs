//! What oriond's decisions ask for. The decisions (`standby::check`, `handover`'s
//! `Successor` steps, `reload::plan`, `routing::route`) are pure: the situation, the event
//! and the time in, effects out, unit-tested without processes. This is the one place that
//! carries effects out: it spawns, signals, sends and records.

use orion_protocol::ProcessName;
use orion_protocol::status::Handover;

use super::Supervisor;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Effect {
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
    /// Carries out `effects`, in order.
    pub(super) fn carry_out(&mut self, effects: impl IntoIterator<Item = Effect>) {
        for effect in effects {
            match effect {
                Effect::StartStandby => self.start_standby(),
                Effect::DropStandby(why) => self.drop_standby(why),
                Effect::DropSuccessor(why) => self.drop_successor(&why),
                Effect::Restart(name) => self.restart(name),
                Effect::ReplaceCapture => self.replace_capture(),
                Effect::Handover(outcome) => self.handover_done(outcome),
            }
        }
    }
}
