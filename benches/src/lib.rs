//! Shared parts of the benchmarks: test media made on demand, timing, and the
//! tables printed for `docs/BENCHMARKS.md`.
//!
//! Every benchmark compares monteur with a peer or a physical limit in the same
//! run, on the same file, so machine load moves both sides alike.
//!
//! # Layout
//! - [`timing`]: best-of-N wall-clock timing of a closure, a command, or a
//!   process under `/usr/bin/time` (wall time and peak RSS).
//! - [`cache_dir`], [`monteur_bin`]: where the media cache and the release
//!   binary are.
//! - [`finish`]: the exit code of a bench binary.
//!
//! Test media come from `monteur_tests::synthetic` (frame-exact answers) and
//! the shared fixtures.

pub mod timing;

use std::path::{Path, PathBuf};

/// The cache scripts/setup.sh fills (shared with the tests).
pub use monteur_tests::cache_dir;

/// The release `monteur` binary beside the running bench (`MONTEUR_BIN`
/// overrides), or why it is missing.
pub fn monteur_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MONTEUR_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("monteur"))
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            "target/release/monteur missing: run `cargo build --release --bin monteur` first".into()
        })
}

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

/// A generated clip's truth in the evaluation code's terms.
pub fn labels(
    truth: &[monteur_tests::synthetic::Truth],
) -> Result<Vec<monteur_pipelines::scenes::eval::Labeled>, String> {
    truth
        .iter()
        .map(|t| {
            Ok(monteur_pipelines::scenes::eval::Labeled {
                kind: serde_json::from_value(serde_json::Value::String(t.kind.into()))
                    .map_err(|e| format!("transition kind {}: {e}", t.kind))?,
                start: t.start,
                end: t.end,
            })
        })
        .collect()
}
