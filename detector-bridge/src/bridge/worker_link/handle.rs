//! What the link needs of a worker process, so the tests can drive it with a recorder.

use crate::worker::{Request, Worker};

/// What the link needs of a worker process (a real [`Worker`]; the tests use a recorder).
pub trait Handle {
    fn pid(&self) -> u32;
    fn send(&mut self, request: &Request) -> anyhow::Result<()>;
    fn renice(&self, nice: i32) -> std::io::Result<()>;
}

impl Handle for Worker {
    fn pid(&self) -> u32 {
        Worker::pid(self)
    }

    fn send(&mut self, request: &Request) -> anyhow::Result<()> {
        Worker::send(self, request)
    }

    fn renice(&self, nice: i32) -> std::io::Result<()> {
        Worker::renice(self, nice)
    }
}
