//! The three state machines driven without processes, on virtual time: a recorder stands
//! in for the worker process (the integration tests in `tests/detect.rs` run the real one).

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use super::*;

/// What the link did to one worker.
#[derive(Default)]
struct Seen {
    sent: Vec<String>,
    niceness: Option<i32>,
}

struct Recorder {
    pid: u32,
    seen: Rc<RefCell<Seen>>,
    broken: bool,
}

impl Handle for Recorder {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn send(&mut self, request: &Request) -> anyhow::Result<()> {
        anyhow::ensure!(!self.broken, "broken pipe");
        self.seen.borrow_mut().sent.push(format!("{request:?}"));
        Ok(())
    }

    fn renice(&self, nice: i32) -> std::io::Result<()> {
        self.seen.borrow_mut().niceness = Some(nice);
        Ok(())
    }
}

fn files(size: ModelSize) -> ModelFiles {
    ModelFiles {
        size,
        path_640: PathBuf::from(format!("/m/yolo11{size}.onnx")),
        path_320: None,
    }
}

fn command() -> Command {
    orion_protocol::command::parse(r#"{"command": "set_model_size", "params": {"size": "m"}}"#)
}

fn ready_reply(sizes: &[u32]) -> WorkerEvent {
    WorkerEvent::Reply(Ok(Reply::Ready {
        pid: 0,
        size: "n".into(),
        sizes: sizes.to_vec(),
        names: Vec::new(),
    }))
}

/// A process the link started: its generation, whether as a spare, what it saw.
type Started = (u64, bool, Rc<RefCell<Seen>>);

/// A link on model n, the processes it started (pid = 100 + generation, and whether each
/// was a spare) and the time.
struct Rig {
    link: WorkerLink<Recorder>,
    started: Rc<RefCell<Vec<Started>>>,
    now: Instant,
}

impl Rig {
    fn new(keep_spare: bool) -> Self {
        let now = Instant::now();
        Self {
            link: WorkerLink::new(files(ModelSize::N), keep_spare, false, now),
            started: Rc::default(),
            now,
        }
    }

    fn tick(&mut self, by: Duration) -> Result<(), String> {
        self.now += by;
        let started = self.started.clone();
        self.link.start_if_due(self.now, |_, spare, generation| {
            let seen = Rc::new(RefCell::new(Seen::default()));
            started.borrow_mut().push((generation, spare, seen.clone()));
            Ok(Recorder {
                pid: 100 + generation as u32,
                seen,
                broken: false,
            })
        })
    }

    fn seen(&self, generation: u64) -> Rc<RefCell<Seen>> {
        let started = self.started.borrow();
        let (_, _, seen) = started.iter().find(|(g, _, _)| *g == generation).unwrap();
        seen.clone()
    }

    /// A worker serving frames that delivered results.
    fn healthy_worker(keep_spare: bool) -> Self {
        let mut r = Self::new(keep_spare);
        r.tick(Duration::ZERO).unwrap();
        r.link.ready(vec![320, 640]);
        r.link.healthy();
        r
    }

    /// ...and a spare starting beside it (generation 2).
    fn with_starting_spare() -> Self {
        let mut r = Self::healthy_worker(true);
        r.tick(Duration::ZERO).unwrap();
        assert_eq!(r.link.spare_pid(), None, "not in the same moment");
        r.tick(SPARE_DELAY).unwrap();
        assert_eq!(r.link.spare_pid(), Some(102));
        assert!(r.started.borrow()[1].1, "started as a spare");
        assert!(!r.link.spare_ready());
        r
    }

    /// ...loaded.
    fn with_ready_spare() -> Self {
        let mut r = Self::with_starting_spare();
        let now = r.now;
        assert!(
            r.link
                .spare_event(2, &ready_reply(&[320, 640]), now)
                .is_none()
        );
        assert!(r.link.spare_ready());
        r
    }
}

#[test]
fn a_worker_starts_when_due_and_is_ready_when_it_says_so() {
    let mut r = Rig::new(false);
    assert_eq!(r.link.pid(), None);
    r.tick(Duration::ZERO).unwrap();
    assert_eq!((r.link.pid(), r.link.generation()), (Some(101), 1));
    assert!(!r.link.is_ready());
    r.link.ready(vec![640]);
    assert!(r.link.is_ready());
    assert_eq!(r.link.sizes(), [640]);
    // Started at the normal priority: it is not a spare.
    assert!(!r.started.borrow()[0].1);
}

#[test]
fn a_crash_loop_backs_off_and_a_healthy_run_restarts_at_once() {
    let mut r = Rig::new(false);
    r.tick(Duration::ZERO).unwrap();
    // Died before any result: a growing delay.
    let (_, first) = r.link.died(r.now);
    let first = first.unwrap();
    assert!(first >= BACKOFF_MIN, "{first:?}");
    r.tick(first / 2).unwrap();
    assert_eq!(r.link.pid(), None, "not before the delay");
    r.tick(first).unwrap();
    assert_eq!(r.link.generation(), 2);
    let (_, second) = r.link.died(r.now);
    assert!(second.unwrap() > first, "{second:?} after {first:?}");
    // A worker that delivered a result was not crash-looping: at once.
    r.tick(second.unwrap()).unwrap();
    r.link.ready(vec![640]);
    r.link.healthy();
    assert_eq!(r.link.died(r.now).1, Some(Duration::ZERO));
    assert_eq!(r.link.restarts, 3);
    // A start that fails is the worker's failure.
    let now = r.now;
    let failed = r.link.start_if_due(now, |_, _, _| Err("no python".into()));
    assert_eq!(failed, Err("no python".into()));
}

#[test]
fn a_ready_spare_takes_over_a_death_at_once_and_another_follows_later() {
    let mut r = Rig::with_ready_spare();
    let (swap, delay) = r.link.died(r.now);
    assert!(swap.is_none());
    assert_eq!(delay, None, "the spare took over");
    assert_eq!((r.link.pid(), r.link.generation()), (Some(102), 2));
    assert!(r.link.is_ready());
    assert_eq!(r.link.spare_takeovers, 1);
    assert_eq!(r.link.spare_pid(), None);
    // The next spare once the new worker proved healthy, and not at once.
    r.link.healthy();
    r.tick(Duration::ZERO).unwrap();
    assert_eq!(r.link.spare_pid(), None);
    r.tick(SPARE_DELAY).unwrap();
    assert_eq!(r.link.spare_pid(), Some(103));
    // A spare still starting is no worker: a death then restarts the ordinary way.
    assert!(r.link.died(r.now).1.is_some());
    // A spare that dies is replaced after a while.
    let now = r.now;
    assert!(
        r.link
            .spare_event(3, &WorkerEvent::Gone("exit 1".into()), now)
            .is_none()
    );
    assert_eq!(r.link.spare_pid(), None);
}

#[test]
fn without_a_spare_the_worker_loads_the_new_model() {
    let mut r = Rig::healthy_worker(false);
    assert_eq!(
        r.link
            .begin_swap(files(ModelSize::M), &command(), r.now)
            .unwrap(),
        None
    );
    assert_eq!(r.link.loading(), Some(ModelSize::M));
    assert!(r.seen(1).borrow().sent[0].contains("LoadModel"));
    let busy = r.link.begin_swap(files(ModelSize::S), &command(), r.now);
    assert_eq!(busy.unwrap_err().kind, ErrorKind::Busy);
    // Another id is not this swap.
    assert!(r.link.swapped(1, vec![640], 1.0).is_none());
    let id = SWAP_IDS;
    let outcome = r.link.swapped(id, vec![640], 812.0).unwrap();
    let answer = outcome.answer().unwrap();
    assert_eq!(answer["size"], "m");
    assert_eq!(answer["load_ms"], 812.0);
    assert!(answer.get("loaded_by").is_none());
    assert_eq!(r.link.model().size, ModelSize::M);
    assert_eq!(r.link.loading(), None);
    // Asking for the model it has changes nothing.
    let same = r
        .link
        .begin_swap(files(ModelSize::M), &command(), r.now)
        .unwrap()
        .unwrap();
    assert_eq!(same["unchanged"], true);
}

#[test]
fn a_ready_spare_loads_the_new_model_and_replaces_the_worker_between_frames() {
    let mut r = Rig::with_ready_spare();
    r.link
        .begin_swap(files(ModelSize::M), &command(), r.now)
        .unwrap();
    assert!(
        r.seen(1).borrow().sent.is_empty(),
        "the serving worker never loads"
    );
    assert!(r.seen(2).borrow().sent[0].contains("LoadModel"));
    let loaded = WorkerEvent::Reply(Ok(Reply::ModelLoaded {
        id: SWAP_IDS,
        size: "m".into(),
        sizes: vec![640],
        load_ms: 900.0,
    }));
    let now = r.now;
    assert!(r.link.spare_event(2, &loaded, now).is_none());
    // Frames prepared from now on are for the new model; the old worker gets none.
    assert!(r.link.switch_pending());
    assert_eq!(r.link.next_sizes(), [640]);
    assert_eq!(r.link.sizes(), [320, 640]);
    let outcome = r.link.promote_loaded_spare(now).unwrap();
    assert_eq!(outcome.answer().unwrap()["loaded_by"], "spare");
    assert_eq!((r.link.pid(), r.link.generation()), (Some(102), 2));
    assert_eq!(r.link.model().size, ModelSize::M);
    assert_eq!(r.link.sizes(), [640]);
    assert!(!r.link.switch_pending());
    assert!(r.link.promote_loaded_spare(now).is_none(), "one outcome");
}

#[test]
fn every_way_a_swap_fails_ends_it_once_with_the_old_model_kept() {
    // The worker cannot load it.
    let mut r = Rig::healthy_worker(false);
    r.link
        .begin_swap(files(ModelSize::M), &command(), r.now)
        .unwrap();
    let outcome = r.link.swap_failed(Some(SWAP_IDS), "bad file").unwrap();
    let err = outcome.answer().unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::Failed, "model m not loaded: bad file")
    );
    assert!(r.link.swap_failed(Some(SWAP_IDS), "again").is_none());
    assert_eq!(r.link.model().size, ModelSize::N);

    // The worker dies while loading it.
    r.link
        .begin_swap(files(ModelSize::M), &command(), r.now)
        .unwrap();
    let (outcome, _) = r.link.died(r.now);
    let err = outcome.unwrap().answer().unwrap_err();
    assert_eq!(
        err.message,
        "worker restarted while loading model m; still n"
    );

    // It takes too long: a timeout, and the worker loading it must restart.
    let mut r = Rig::healthy_worker(false);
    r.link
        .begin_swap(files(ModelSize::M), &command(), r.now)
        .unwrap();
    let limit = Duration::from_secs(120);
    assert!(r.link.overdue_swap(limit, r.now + limit / 2).is_none());
    let (outcome, restart) = r.link.overdue_swap(limit, r.now + limit).unwrap();
    assert_eq!(
        restart.as_deref(),
        Some("model m did not load within 120 s; still n")
    );
    let err = outcome.answer().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert_eq!(err.message, "model m did not load within 120 s; still n");

    // The spare loading it dies: the worker serving frames is untouched.
    let mut r = Rig::with_ready_spare();
    r.link
        .begin_swap(files(ModelSize::M), &command(), r.now)
        .unwrap();
    let now = r.now;
    let gone = WorkerEvent::Gone("signal 9".into());
    let err = r
        .link
        .spare_event(2, &gone, now)
        .unwrap()
        .answer()
        .unwrap_err();
    assert_eq!(
        err.message,
        "model m not loaded: the worker loading it exited (signal 9)"
    );
    assert_eq!((r.link.pid(), r.link.loading()), (Some(101), None));

    // The spare loading it takes too long: only the spare goes.
    let mut r = Rig::with_ready_spare();
    r.link
        .begin_swap(files(ModelSize::M), &command(), r.now)
        .unwrap();
    let (_, restart) = r.link.overdue_swap(limit, r.now + limit).unwrap();
    assert_eq!(restart, None);
    assert_eq!((r.link.pid(), r.link.spare_pid()), (Some(101), None));
}

#[test]
fn a_spare_error_without_an_id_does_not_end_the_workers_swap() {
    let mut r = Rig::with_starting_spare(); // not ready: the worker loads
    r.link
        .begin_swap(files(ModelSize::M), &command(), r.now)
        .unwrap();
    let error = WorkerEvent::Reply(Ok(Reply::Error {
        id: None,
        kind: "load".into(),
        message: "no model".into(),
    }));
    let now = r.now;
    assert!(r.link.spare_event(2, &error, now).is_none());
    assert_eq!(r.link.loading(), Some(ModelSize::M));
    assert!(r.seen(1).borrow().sent[0].contains("LoadModel"));
    assert!(r.link.swapped(SWAP_IDS, vec![640], 1.0).is_some());
}

#[test]
fn a_swap_is_refused_while_the_worker_is_down_or_unreachable() {
    let mut r = Rig::new(false);
    r.tick(Duration::ZERO).unwrap();
    let starting = r.link.begin_swap(files(ModelSize::M), &command(), r.now);
    assert_eq!(starting.unwrap_err().kind, ErrorKind::Unavailable);
    r.link.ready(vec![640]);
    if let Some(w) = r.link.worker_mut() {
        w.broken = true;
    }
    let err = r
        .link
        .begin_swap(files(ModelSize::M), &command(), r.now)
        .unwrap_err();
    assert!(err.message.starts_with("cannot reach the worker"), "{err}");
    assert_eq!(r.link.loading(), None);
}

#[test]
fn a_starved_spare_is_raised_once() {
    let mut r = Rig::with_starting_spare();
    let after = Duration::from_secs(4);
    assert_eq!(r.link.raise_starved_spare(after, r.now), None);
    let later = r.now + after;
    assert_eq!(r.link.raise_starved_spare(after, later), Some("starting"));
    assert_eq!(r.seen(2).borrow().niceness, Some(SPARE_RAISED_NICE));
    assert_eq!(r.link.raise_starved_spare(after, later), None);
}

#[test]
fn a_shed_spare_is_dropped_and_none_starts_until_memory_allows() {
    let mut r = Rig::with_ready_spare();
    r.link.shed_spare(true);
    assert_eq!(r.link.spare_pid(), None, "dropped at once");
    assert!(r.link.spare_shed());
    r.tick(SPARE_DELAY * 10).unwrap();
    assert_eq!(r.link.spare_pid(), None, "none starts while shed");
    r.link.shed_spare(false);
    r.tick(Duration::ZERO).unwrap();
    assert_eq!(r.link.spare_pid(), None, "not in the same moment");
    r.tick(SPARE_DELAY).unwrap();
    assert_eq!(r.link.spare_pid(), Some(103), "back after the usual delay");
    // The worker still serves throughout.
    assert_eq!(r.link.pid(), Some(101));
}
