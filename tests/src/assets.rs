//! The runtime assets scripts/setup.sh installs (ONNX Runtime, models).

use std::path::PathBuf;

/// `MONTEUR_ASSETS`, or setup's default `~/.cache/monteur/assets`. Panics
/// when absent: model tests must not pass without their models.
pub fn dir() -> PathBuf {
    let dir = std::env::var_os("MONTEUR_ASSETS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/monteur/assets"))
        })
        .unwrap_or_default();
    assert!(
        dir.is_dir(),
        "runtime assets not found at {}: run scripts/setup.sh",
        dir.display()
    );
    dir
}

/// The ONNX Runtime library: `ORT_DYLIB_PATH` (setup's env.sh exports it) or
/// the copy in the assets.
pub fn onnxruntime() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir().join("onnxruntime/libonnxruntime.so.1.31.1"))
}
