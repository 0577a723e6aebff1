//! `orion-bench SUITE`: prints one JSON object per line, `{"bench", "value", "unit", ...}`.
//! Ratios are taken against a baseline measured in the same run.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

mod capture;
mod control;
mod detector;
mod fleet;
mod memory;
mod report;
mod ring;
mod rooms;
mod stats;
mod supervisor;
mod system;

#[derive(Parser)]
#[command(about = "Orion benchmarks (JSON lines on stdout)")]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
}

#[derive(Subcommand)]
enum Suite {
    /// Frame ring: write bandwidth vs memcpy, cross-process wake-up latency, torn-read stress.
    Ring(ring::Options),
    /// Capture process: first frame from a local RTSP server, rate accuracy.
    Capture(capture::Options),
    /// Detector: pipeline overhead vs bare ONNX Runtime (320, 640), model swap gap.
    Detector(detector::Options),
    /// Supervisor: crash detection latency (SIGKILL → exit recorded), oriond's RSS.
    Supervisor(supervisor::Options),
    /// Control: MQTT command → ack latency through a local mosquitto while detection runs.
    Control(control::Options),
    /// A fleet of rooms on mosquitto and on a two-node RabbitMQ cluster: group command acks,
    /// traffic per room, a broker node killed (real orion-control processes, replayed
    /// detections).
    Fleet(fleet::Options),
    /// The whole system as an operator sees it: acks on three brokers, rate change and model
    /// swap gaps, kill-to-recovery, crash detection, RSS, latency (real model, real footage).
    System(system::Options),
    /// Internal: a child process of the ring suite.
    #[command(hide = true)]
    RingChild(ring::ChildArgs),
    /// Internal: runs `orion-capture`'s code (for the capture suite).
    #[command(hide = true)]
    CaptureChild(orion_capture::cli::Args),
    /// Internal: runs `orion-detector`'s code (for the detector suite).
    #[command(hide = true)]
    DetectorChild(orion_detector_bridge::cli::Args),
    /// Internal: runs `rtsp-test-server`'s code (for the capture suite).
    #[command(hide = true)]
    RtspServer(orion_tests::rtsp_server::Args),
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    match Cli::parse().suite {
        Suite::Ring(opts) => ring::run(&opts)?,
        Suite::Capture(opts) => capture::run(&opts)?,
        Suite::Detector(opts) => detector::run(&opts)?,
        Suite::Supervisor(opts) => supervisor::run(&opts)?,
        Suite::Control(opts) => control::run(&opts)?,
        Suite::System(opts) => system::run(&opts)?,
        Suite::Fleet(opts) => fleet::run(&opts)?,
        Suite::RingChild(args) => ring::child(&args)?,
        Suite::CaptureChild(args) => {
            orion_capture::cli::init_logging();
            return Ok(orion_capture::cli::run_with(&args));
        }
        Suite::DetectorChild(args) => {
            orion_detector_bridge::cli::init_logging();
            return Ok(orion_detector_bridge::cli::run_with(&args));
        }
        Suite::RtspServer(args) => orion_tests::rtsp_server::serve(&args)?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}
