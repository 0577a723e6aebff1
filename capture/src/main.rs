//! `orion-capture`: writes one camera's frames into an existing frame ring until SIGTERM.
//! See `orion_capture::cli` for the arguments.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    orion_capture::cli::main()
}
