//! A job's stop signal, shared by everything that works for the job on any
//! thread: the graph watchers (which tear their graph down), the appsink
//! callbacks (which refuse further buffers), the model loops (between decoder
//! steps and VAD windows), the byte sources behind `monteursrc` and the
//! worker's uploads (through [`Cancel::on_cancel`]).
//!
//! Cancelling is one-way and idempotent: a cancelled job never resumes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::PipelineError;

type Hook = Box<dyn FnOnce() + Send>;

/// A clonable stop signal; every clone sees the same state.
#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Read on hot paths (every frame) without taking the lock.
    flag: AtomicBool,
    hooks: Mutex<Option<Vec<Hook>>>,
    wake: Condvar,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the job: sets the flag, wakes every [`Cancel::sleep`], then runs
    /// the hooks (once; later calls do nothing).
    pub fn cancel(&self) {
        if self.inner.flag.swap(true, Ordering::SeqCst) {
            return;
        }
        let hooks = {
            let mut guard = self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner());
            // `None` from now on: hooks added later run at once.
            guard.take().unwrap_or_default()
        };
        self.inner.wake.notify_all();
        for hook in hooks {
            hook();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once cancelled: for `?` between steps of work.
    pub fn check(&self) -> Result<(), PipelineError> {
        if self.is_cancelled() {
            Err(PipelineError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Runs `hook` when the job is cancelled (at once if it already is), on
    /// the cancelling thread: it must be quick and must not block.
    pub fn on_cancel(&self, hook: impl FnOnce() + Send + 'static) {
        {
            let mut guard = self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner());
            if !self.is_cancelled() {
                guard.get_or_insert_with(Vec::new).push(Box::new(hook));
                return;
            }
        }
        hook();
    }

    /// Sleeps for `d` unless cancelled first; true when it slept the whole
    /// time.
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = std::time::Instant::now() + d;
        let mut guard = self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner());
        while !self.is_cancelled() {
            let now = std::time::Instant::now();
            if now >= deadline {
                return true;
            }
            guard = match self.inner.wake.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        false
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn hooks_run_once_and_late_hooks_run_at_once() {
        let c = Cancel::new();
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = Arc::clone(&n);
        c.on_cancel(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        });
        assert!(c.check().is_ok());
        c.clone().cancel();
        c.cancel();
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert!(matches!(c.check(), Err(PipelineError::Cancelled)));
        let n3 = Arc::clone(&n);
        c.on_cancel(move || {
            n3.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 11);
    }

    #[test]
    fn a_sleep_ends_when_cancelled() {
        let c = Cancel::new();
        let c2 = c.clone();
        let t = std::thread::spawn(move || c2.sleep(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(50));
        let started = std::time::Instant::now();
        c.cancel();
        assert!(!t.join().unwrap(), "woken, not slept out");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(Cancel::new().sleep(Duration::from_millis(1)));
    }
}
