//! `orion-detector`: person detection on the newest frames of a ring. See
//! `orion_detector_bridge::cli` for the arguments.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    orion_detector_bridge::cli::main()
}
