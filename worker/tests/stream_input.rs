//! Inputs that are not files: `monteursrc` feeds the same probe, analysis and
//! render as a file, with random access (testvideo.mp4 keeps its index at
//! its end, so the demuxer must seek), and gives the same answers.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use monteur_kernels::CpuBackend;
use monteur_pipelines::source::{self, RandomAccess};
use monteur_pipelines::{AnalyseSettings, analyse, probe};
use monteur_tests::fixtures;

/// Bytes in memory, counting what was read.
struct Counted {
    data: Vec<u8>,
    read: AtomicU64,
}

impl RandomAccess for Counted {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, String> {
        let from = (offset as usize).min(self.data.len());
        let n = buf.len().min(self.data.len() - from);
        buf[..n].copy_from_slice(&self.data[from..from + n]);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[test]
fn a_registered_source_probes_and_analyses_like_its_file() {
    monteur_pipelines::init().unwrap();
    let file = fixtures::path("scenes/pyscenedetect/testvideo.mp4");
    let counted = Arc::new(Counted {
        data: std::fs::read(&file).unwrap(),
        read: AtomicU64::new(0),
    });
    let handle = source::register(counted.clone(), "testvideo.mp4");
    let timeout = Duration::from_secs(30);
    let from_file = probe(&file, timeout).unwrap();
    let from_stream = probe(&handle.path(), timeout).unwrap();
    assert_eq!(from_stream.duration, from_file.duration);
    assert_eq!(from_stream.video.len(), 1);
    assert_eq!(from_stream.video[0].width, from_file.video[0].width);

    let settings = AnalyseSettings::default();
    let a = analyse(
        &file,
        &from_file,
        &settings,
        Box::new(CpuBackend::new()),
        &mut |_| {},
    )
    .unwrap();
    let b = analyse(
        &handle.path(),
        &from_stream,
        &settings,
        Box::new(CpuBackend::new()),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(a.frames, b.frames);
    assert_eq!(a.features, b.features, "same frames, same features");
    assert!(counted.read.load(Ordering::Relaxed) >= counted.data.len() as u64 / 2);
    // Gone once unregistered: a clear error, not a hang.
    let stale = handle.path();
    drop(handle);
    assert!(probe(&stale, timeout).is_err());
}
