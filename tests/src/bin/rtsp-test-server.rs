//! Test helper: serves a looping file or a test pattern over RTSP on 127.0.0.1 until stdin
//! closes. See `orion_tests::rtsp_server`.

#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> anyhow::Result<()> {
    orion_tests::rtsp_server::serve(&orion_tests::rtsp_server::Args::parse())
}
