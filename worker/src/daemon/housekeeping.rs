//! What the daemon keeps tidy: its scratch space (jobs' outputs, plaintext
//! until uploaded, must not outlive the process that made them) and the
//! diagnostics folder's retention limit.
//!
//! Scratch layout: `<scratch_dir>/monteur-<instance>/` per worker start, with
//! a `.lock` file the worker holds locked (`flock`) for as long as it runs,
//! and a `job-<n>/` folder per running job. A process id would not do as the
//! owner's mark: in a container every worker is PID 1 after a restart. The
//! kernel drops a dead process's lock (kill -9 and OOM included), so at
//! start a worker removes every instance folder whose lock it can take.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::{info, warn};

const PREFIX: &str = "monteur-";
const LOCK: &str = ".lock";

/// This worker start's scratch folder.
#[derive(Debug)]
pub(crate) struct Scratch {
    dir: PathBuf,
    next: AtomicU64,
    /// Held locked for the life of the process.
    _lock: File,
}

impl Scratch {
    /// Sweeps dead instances' folders under `root`, then makes and locks
    /// this instance's.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        sweep(root);
        let instance = instance_id();
        // Made and locked under a name the sweep ignores, then renamed: a
        // worker starting at the same moment never sees it without its lock.
        let making = root.join(format!(".{PREFIX}{instance}"));
        std::fs::create_dir(&making)?;
        let lock = File::create(making.join(LOCK))?;
        lock.try_lock().map_err(std::io::Error::other)?;
        let dir = root.join(format!("{PREFIX}{instance}"));
        std::fs::rename(&making, &dir)?;
        Ok(Self {
            dir,
            next: AtomicU64::new(1),
            _lock: lock,
        })
    }

    /// A new, empty folder for one job; removed when the guard drops.
    pub fn job(&self) -> std::io::Result<JobScratch> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.join(format!("job-{n}"));
        std::fs::create_dir(&dir)?;
        Ok(JobScratch { dir })
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One job's scratch folder, removed (with whatever is in it) on drop.
#[derive(Debug)]
pub(crate) struct JobScratch {
    dir: PathBuf,
}

impl JobScratch {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for JobScratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(error = %e, "could not remove a job's scratch folder");
        }
    }
}

/// 16 random hex digits.
fn instance_id() -> String {
    let mut b = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        // No randomness: time and pid still tell starts apart on one host.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b = (t ^ u64::from(std::process::id())).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Removes the instance folders under `root` whose owner is gone.
fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(PREFIX) || !e.path().is_dir() {
            continue;
        }
        let held = File::open(e.path().join(LOCK)).is_ok_and(|f| f.try_lock().is_err());
        if held {
            continue;
        }
        match std::fs::remove_dir_all(e.path()) {
            Ok(()) => info!("removed a dead worker's scratch folder"),
            Err(err) => warn!(error = %err, "could not remove a dead worker's scratch folder"),
        }
    }
}

/// Deletes expired diagnostic files every `sweep_interval_s` (the first
/// sweep ran in `telemetry::init`).
pub(crate) fn spawn_retention_sweep(d: &crate::config::DiagnosticsConfig) {
    if d.dir.is_empty() {
        return;
    }
    let (dir, max_age) = (PathBuf::from(&d.dir), d.retention());
    let every = Duration::from_secs(d.sweep_interval_s);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (dir, max_age) = (dir.clone(), max_age);
            let _ =
                tokio::task::spawn_blocking(move || crate::telemetry::sweep_expired(&dir, max_age))
                    .await;
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_live_instance_is_kept_and_a_dead_one_swept() {
        let root = tempfile::tempdir().unwrap();
        let live = Scratch::open(root.path()).unwrap();
        let job = live.job().unwrap();
        std::fs::write(job.path().join("render.mp4"), b"plaintext").unwrap();
        // A dead worker's folder: its lock file is there, nobody holds it.
        let dead = root.path().join("monteur-0123456789abcdef");
        std::fs::create_dir_all(dead.join("job-3")).unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        std::fs::write(dead.join("job-3/captions.vtt"), b"words").unwrap();
        let second = Scratch::open(root.path()).unwrap();
        assert!(!dead.exists(), "the dead worker's scratch was swept");
        assert!(job.path().join("render.mp4").exists(), "a live job's kept");
        assert_ne!(live.path(), second.path());
        let path = job.path().to_path_buf();
        drop(job);
        assert!(!path.exists(), "a job's folder goes with its guard");
        drop(live);
        drop(second);
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
