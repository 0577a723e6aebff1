//! `orion-detector`: person detection on the newest frames of a ring. See
//! `orion_detector::cli` for the arguments.

fn main() -> std::process::ExitCode {
    orion_detector::cli::main()
}
