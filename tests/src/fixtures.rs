//! The shared fixtures with known answers (`../shared/fixtures`), read in place.

use std::path::PathBuf;

/// The fixtures folder: `MONTEUR_FIXTURES`, or `shared/fixtures` beside the
/// repository. Panics when absent: a test that needs fixtures must not pass
/// without them.
pub fn dir() -> PathBuf {
    let dir = std::env::var_os("MONTEUR_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    assert!(
        dir.is_dir(),
        "fixtures not found at {} (set MONTEUR_FIXTURES)",
        dir.display()
    );
    dir
}

pub fn path(relative: &str) -> PathBuf {
    dir().join(relative)
}
