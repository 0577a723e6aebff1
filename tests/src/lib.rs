//! Helpers shared by Orion's cross-process tests and benchmarks.
//!
//! - [`pattern`]: self-checking frame payloads, so a reader can tell a torn frame from a
//!   whole one without trusting the ring.
//! - [`bins`]: the workspace binaries of other packages, for tests.
//! - [`fixtures`]: the repository's fixtures, the venv's Python, decoded footage.
//! - [`child`]: spawned helper processes that are killed and reaped when dropped, so a
//!   failing test leaves nothing running.
//! - [`journal`]: a real systemd-journald (the box's, or one started standalone) and
//!   journalctl.
//! - [`mqtt`]: a real mosquitto on a free port, and `mosquitto_sub`/`mosquitto_pub`.
//! - [`oriond`]: a real oriond on its own config, socket and ring, and a client for it.
//! - [`operator`]: an MQTT 5 client subscribed to `care/#` at QoS 1, as an operator's
//!   backend sees Orion.
//! - [`system`]: the whole system (camera, broker, oriond on the real model) for
//!   end-to-end tests, the soak and the `system` benchmarks.
//! - [`ring_probe`]: the protocol of the `ring-writer` / `ring-reader` helper programs.
//! - [`rtsp_server`]: the RTSP server standing in for a camera (`rtsp-test-server`).

#![forbid(unsafe_code)]

pub mod bins;
pub mod child;
pub mod fixtures;
pub mod homeassistant;
pub mod journal;
pub mod mqtt;
pub mod operator;
pub mod oriond;
pub mod pattern;
pub mod rabbitmq;
pub mod ring_probe;
pub mod rtsp_server;
pub mod system;

/// A number unique within this process (names of scratch objects).
pub fn unique() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
