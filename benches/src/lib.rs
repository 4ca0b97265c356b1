//! Shared parts of the benchmarks: test media made on demand, timing, and the
//! tables printed for `docs/BENCHMARKS.md`.
//!
//! Every benchmark compares monteur with a peer or a physical limit in the same
//! run, on the same file, so machine load moves both sides alike.
//!
//! # Layout
//! - [`timing`]: best-of-N wall-clock timing of a closure or a command.
//! - [`finish`]: the exit code of a bench binary.
//!
//! Test media come from `monteur_tests::synthetic` (frame-exact answers) and
//! the shared fixtures.

pub mod timing;

/// Maps a bench's result to its exit code, saying why on failure.
#[allow(clippy::print_stderr)]
pub fn finish(result: Result<(), String>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
