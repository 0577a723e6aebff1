//! One child's lifecycle as a pure state machine: supervisord's states, and what oriond
//! must do on each event. `step` touches no process, clock or socket; the supervisor
//! carries out the returned [`Effect`]s. The whole table — every state against every event,
//! the ignored ones included — is tested below and drawn in the crate README.

use std::time::Duration;

/// supervisord's process states (shared with the status document).
pub use orion_protocol::ProcessState as State;

/// What happens to a child.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Boot, an operator's `start`, or the second half of a restart.
    Start,
    /// The process could not be spawned (or handed its files).
    SpawnFailed(String),
    /// Ready, and the desired state re-applied.
    Ready,
    /// The process ended after `uptime`.
    Exited { status: String, uptime: Duration },
    /// The backoff delay is over.
    RetryDue,
    /// An operator's `stop`, the first half of a restart, or shutdown.
    Stop,
    /// `stopwaitsecs` passed after SIGTERM.
    KillDue,
    /// `ready_timeout_s` passed while starting.
    ReadyTimeout,
}

impl Input {
    /// One of each kind, for the table test.
    #[cfg(test)]
    fn samples() -> Vec<Input> {
        vec![
            Input::Start,
            Input::SpawnFailed("no such file".into()),
            Input::Ready,
            Input::Exited {
                status: "exit 1".into(),
                uptime: Duration::from_millis(100),
            },
            Input::Exited {
                status: "signal 9".into(),
                uptime: Duration::from_secs(10),
            },
            Input::RetryDue,
            Input::Stop,
            Input::KillDue,
            Input::ReadyTimeout,
        ]
    }
}

/// What oriond does about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Spawn the process (a new generation).
    Spawn,
    /// SIGTERM, and a [`Input::KillDue`] after `stopwaitsecs`.
    Terminate,
    /// SIGKILL.
    Kill,
    /// A [`Input::RetryDue`] after this delay.
    RetryIn(Duration),
    /// It is RUNNING: answer who waits for that, continue the boot.
    Announce(State),
}

/// The supervisor's policy (from `[supervisor]`) and situation.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub startsecs: Duration,
    pub startretries: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// oriond is shutting down: nothing is started or restarted.
    pub shutting_down: bool,
}

/// A child's lifecycle: its state, failed starts in a row, and why it is where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    pub state: State,
    /// Failed starts in a row.
    pub retries: u32,
    /// Why it is in BACKOFF, FATAL or STOPPED, or why it last exited.
    pub reason: Option<String>,
    /// A ready timeout is being enforced: the exit that follows is a failed start.
    not_ready: bool,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            state: State::Stopped,
            retries: 0,
            reason: None,
            not_ready: false,
        }
    }
}

impl Lifecycle {
    /// The state after `event`, and what to do. Events that do not apply in the current
    /// state (a stale timer, a second stop) change nothing and ask for nothing.
    pub fn step(&self, event: &Input, policy: &Policy) -> (Lifecycle, Vec<Effect>) {
        use State::*;
        let mut next = self.clone();
        let effects = match (self.state, event) {
            // -- starting ----------------------------------------------------------------
            (Stopped | Exited | Fatal | Backoff, Input::Start) if !policy.shutting_down => {
                if self.state == Fatal || self.state == Stopped {
                    // An operator's start (or boot) clears the failed-start count.
                    next.retries = 0;
                }
                next.state = Starting;
                next.reason = None;
                next.not_ready = false;
                vec![Effect::Spawn]
            }
            (Stopped | Exited | Fatal | Backoff, Input::Start) => vec![],
            (Starting | Running | Stopping, Input::Start) => vec![],
            (Backoff, Input::RetryDue) if !policy.shutting_down => {
                next.state = Starting;
                next.not_ready = false;
                vec![Effect::Spawn]
            }
            (_, Input::RetryDue) => vec![],
            (Starting, Input::SpawnFailed(why)) => return self.failed_start(why, policy),
            (_, Input::SpawnFailed(_)) => vec![],
            (Starting, Input::Ready) => {
                next.state = Running;
                next.reason = None;
                vec![Effect::Announce(Running)]
            }
            (_, Input::Ready) => vec![],
            (Starting, Input::ReadyTimeout) => {
                next.not_ready = true;
                next.reason = Some("not ready in time".into());
                vec![Effect::Kill]
            }
            (_, Input::ReadyTimeout) => vec![],

            // -- an exit -----------------------------------------------------------------
            (Stopping, Input::Exited { status, .. }) => {
                next.state = Stopped;
                next.reason = Some(format!("stopped ({status})"));
                vec![Effect::Announce(Stopped)]
            }
            (Running, Input::Exited { status, uptime }) if *uptime >= policy.startsecs => {
                next.retries = 0;
                if policy.shutting_down {
                    next.state = Exited;
                    next.reason = Some(format!("exited: {status}"));
                    vec![Effect::Announce(Exited)]
                } else {
                    // supervisord: EXITED, and at once STARTING again.
                    next.state = Starting;
                    next.reason = Some(format!("exited: {status}; restarted"));
                    vec![Effect::Spawn]
                }
            }
            (Running | Starting, Input::Exited { status, .. }) => {
                let why = if self.not_ready {
                    "not ready in time".to_string()
                } else {
                    format!("exited: {status}")
                };
                return self.failed_start(&why, policy);
            }
            (Stopped | Backoff | Exited | Fatal, Input::Exited { .. }) => vec![],

            // -- stopping ----------------------------------------------------------------
            (Starting | Running, Input::Stop) => {
                next.state = Stopping;
                vec![Effect::Terminate]
            }
            (Stopping, Input::Stop) => vec![],
            (Backoff | Exited | Fatal | Stopped, Input::Stop) => {
                // Nothing runs; a pending retry will find it STOPPED and do nothing. Who
                // waits for STOPPED is answered now.
                next.state = Stopped;
                next.reason = Some("stopped".into());
                vec![Effect::Announce(Stopped)]
            }
            (Stopping, Input::KillDue) => vec![Effect::Kill],
            (_, Input::KillDue) => vec![],
        };
        (next, effects)
    }

    /// A start that did not get to RUNNING (or died before `startsecs`): BACKOFF with a
    /// doubling delay, or FATAL after `startretries`. During shutdown it is just STOPPED.
    fn failed_start(&self, why: &str, policy: &Policy) -> (Lifecycle, Vec<Effect>) {
        let mut next = self.clone();
        next.not_ready = false;
        if policy.shutting_down {
            next.state = State::Stopped;
            next.reason = Some(format!("stopped: {why}"));
            return (next, vec![Effect::Announce(State::Stopped)]);
        }
        next.retries = self.retries + 1;
        if next.retries > policy.startretries {
            next.state = State::Fatal;
            next.reason = Some(format!("{why}; gave up after {} attempts", next.retries));
            return (next, vec![Effect::Announce(State::Fatal)]);
        }
        let delay = orion_process::backoff::delay(
            policy.backoff_initial,
            policy.backoff_max,
            next.retries - 1,
        );
        next.state = State::Backoff;
        next.reason = Some(format!(
            "{why}; retry {} in {:.1} s",
            next.retries,
            delay.as_secs_f64()
        ));
        (next, vec![Effect::RetryIn(delay)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(shutting_down: bool) -> Policy {
        Policy {
            startsecs: Duration::from_secs(1),
            startretries: 3,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            shutting_down,
        }
    }

    fn at(state: State, retries: u32) -> Lifecycle {
        Lifecycle {
            state,
            retries,
            ..Lifecycle::default()
        }
    }

    /// Short names for the table.
    fn ev(name: &str) -> Input {
        match name {
            "start" => Input::Start,
            "spawn-failed" => Input::SpawnFailed("no such file".into()),
            "ready" => Input::Ready,
            "exit-early" => Input::Exited {
                status: "exit 1".into(),
                uptime: Duration::from_millis(100),
            },
            "exit-late" => Input::Exited {
                status: "signal 9".into(),
                uptime: Duration::from_secs(10),
            },
            "retry" => Input::RetryDue,
            "stop" => Input::Stop,
            "kill-due" => Input::KillDue,
            "ready-timeout" => Input::ReadyTimeout,
            other => panic!("no event {other}"),
        }
    }

    const RETRY_1: Effect = Effect::RetryIn(Duration::from_millis(1000));

    /// Every state × every event (retries = 1 before the event, not shutting down):
    /// the state after it and the effects. `-` means "nothing happens".
    #[test]
    fn the_transition_table() {
        use Effect::*;
        use State::*;
        let table: Vec<(State, &str, State, Vec<Effect>)> = vec![
            (Stopped, "start", Starting, vec![Spawn]),
            (Stopped, "spawn-failed", Stopped, vec![]),
            (Stopped, "ready", Stopped, vec![]),
            (Stopped, "exit-early", Stopped, vec![]),
            (Stopped, "exit-late", Stopped, vec![]),
            (Stopped, "retry", Stopped, vec![]),
            (Stopped, "stop", Stopped, vec![Announce(Stopped)]),
            (Stopped, "kill-due", Stopped, vec![]),
            (Stopped, "ready-timeout", Stopped, vec![]),
            (Starting, "start", Starting, vec![]),
            (Starting, "spawn-failed", Backoff, vec![RETRY_1]),
            (Starting, "ready", Running, vec![Announce(Running)]),
            (Starting, "exit-early", Backoff, vec![RETRY_1]),
            (Starting, "exit-late", Backoff, vec![RETRY_1]),
            (Starting, "retry", Starting, vec![]),
            (Starting, "stop", Stopping, vec![Terminate]),
            (Starting, "kill-due", Starting, vec![]),
            (Starting, "ready-timeout", Starting, vec![Kill]),
            (Running, "start", Running, vec![]),
            (Running, "spawn-failed", Running, vec![]),
            (Running, "ready", Running, vec![]),
            (Running, "exit-early", Backoff, vec![RETRY_1]),
            (Running, "exit-late", Starting, vec![Spawn]),
            (Running, "retry", Running, vec![]),
            (Running, "stop", Stopping, vec![Terminate]),
            (Running, "kill-due", Running, vec![]),
            (Running, "ready-timeout", Running, vec![]),
            (Backoff, "start", Starting, vec![Spawn]),
            (Backoff, "spawn-failed", Backoff, vec![]),
            (Backoff, "ready", Backoff, vec![]),
            (Backoff, "exit-early", Backoff, vec![]),
            (Backoff, "exit-late", Backoff, vec![]),
            (Backoff, "retry", Starting, vec![Spawn]),
            (Backoff, "stop", Stopped, vec![Announce(Stopped)]),
            (Backoff, "kill-due", Backoff, vec![]),
            (Backoff, "ready-timeout", Backoff, vec![]),
            (Stopping, "start", Stopping, vec![]),
            (Stopping, "spawn-failed", Stopping, vec![]),
            (Stopping, "ready", Stopping, vec![]),
            (Stopping, "exit-early", Stopped, vec![Announce(Stopped)]),
            (Stopping, "exit-late", Stopped, vec![Announce(Stopped)]),
            (Stopping, "retry", Stopping, vec![]),
            (Stopping, "stop", Stopping, vec![]),
            (Stopping, "kill-due", Stopping, vec![Kill]),
            (Stopping, "ready-timeout", Stopping, vec![]),
            (Exited, "start", Starting, vec![Spawn]),
            (Exited, "spawn-failed", Exited, vec![]),
            (Exited, "ready", Exited, vec![]),
            (Exited, "exit-early", Exited, vec![]),
            (Exited, "exit-late", Exited, vec![]),
            (Exited, "retry", Exited, vec![]),
            (Exited, "stop", Stopped, vec![Announce(Stopped)]),
            (Exited, "kill-due", Exited, vec![]),
            (Exited, "ready-timeout", Exited, vec![]),
            (Fatal, "start", Starting, vec![Spawn]),
            (Fatal, "spawn-failed", Fatal, vec![]),
            (Fatal, "ready", Fatal, vec![]),
            (Fatal, "exit-early", Fatal, vec![]),
            (Fatal, "exit-late", Fatal, vec![]),
            (Fatal, "retry", Fatal, vec![]),
            (Fatal, "stop", Stopped, vec![Announce(Stopped)]),
            (Fatal, "kill-due", Fatal, vec![]),
            (Fatal, "ready-timeout", Fatal, vec![]),
        ];
        // The table is complete: every state with every kind of event.
        let kinds = Input::samples().len();
        assert_eq!(table.len(), State::ALL.len() * kinds);
        for s in State::ALL {
            assert_eq!(table.iter().filter(|r| r.0 == s).count(), kinds, "{s:?}");
        }
        for (from, name, to, effects) in table {
            let (next, got) = at(from, 1).step(&ev(name), &policy(false));
            assert_eq!(
                (next.state, &got),
                (to, &effects),
                "{from:?} --{name}--> expected {to:?} {effects:?}"
            );
        }
    }

    #[test]
    fn failed_starts_back_off_doubling_then_give_up() {
        let p = policy(false);
        let mut l = at(State::Starting, 0);
        let mut delays = Vec::new();
        for _ in 0..3 {
            let (next, effects) = l.step(&ev("exit-early"), &p);
            assert_eq!(next.state, State::Backoff);
            match effects.as_slice() {
                [Effect::RetryIn(d)] => delays.push(d.as_millis()),
                other => panic!("{other:?}"),
            }
            let (next, effects) = next.step(&Input::RetryDue, &p);
            assert_eq!(
                (next.state, effects),
                (State::Starting, vec![Effect::Spawn])
            );
            l = next;
        }
        assert_eq!(delays, [500, 1000, 2000]);
        let (fatal, effects) = l.step(&ev("exit-early"), &p);
        assert_eq!(fatal.state, State::Fatal);
        assert_eq!(effects, vec![Effect::Announce(State::Fatal)]);
        assert!(
            fatal
                .reason
                .as_deref()
                .unwrap()
                .contains("gave up after 4 attempts")
        );
        // An operator's start clears FATAL and the count.
        let (started, _) = fatal.step(&Input::Start, &p);
        assert_eq!((started.state, started.retries), (State::Starting, 0));
    }

    #[test]
    fn a_healthy_run_resets_the_count_and_a_ready_timeout_is_a_failed_start() {
        let p = policy(false);
        let (l, _) = at(State::Running, 2).step(&ev("exit-late"), &p);
        assert_eq!((l.state, l.retries), (State::Starting, 0));
        let (l, effects) = at(State::Starting, 0).step(&Input::ReadyTimeout, &p);
        assert_eq!(effects, vec![Effect::Kill]);
        let (l, _) = l.step(&ev("exit-late"), &p);
        assert_eq!(l.state, State::Backoff);
        assert!(
            l.reason
                .as_deref()
                .unwrap()
                .starts_with("not ready in time")
        );
    }

    #[test]
    fn nothing_starts_while_shutting_down() {
        let p = policy(true);
        for s in State::ALL {
            let (next, effects) = at(s, 0).step(&Input::Start, &p);
            assert!(!effects.contains(&Effect::Spawn), "{s:?}");
            assert_eq!(next.state, s);
            let (_, effects) = at(s, 0).step(&Input::RetryDue, &p);
            assert!(!effects.contains(&Effect::Spawn), "{s:?}");
        }
        let (l, effects) = at(State::Running, 0).step(&ev("exit-late"), &p);
        assert_eq!(
            (l.state, effects),
            (State::Exited, vec![Effect::Announce(State::Exited)])
        );
        let (l, _) = at(State::Starting, 0).step(&ev("exit-early"), &p);
        assert_eq!(l.state, State::Stopped);
    }
}
