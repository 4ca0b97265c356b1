//! Test-only fault injection, compiled in only with the `failpoints` cargo
//! feature (the test suites turn it on; release builds never have it).
//!
//! `MONTEUR_FAILPOINTS` holds comma-separated `name=<job id>[:arg]` entries:
//! - `job.panic=<job>`: panics inside the job with its identifiers in the
//!   message, as a careless `expect` would (the canary test checks that none
//!   of them survive into logs or crash reports).
//! - `read.hang=<job>`: once the decode starts (after the probe), every read
//!   of the job's input blocks until the read is interrupted: a storage
//!   connection that stops answering mid-decode.
//! - `read.throttle=<job>:<ms>`: every read of the input waits `ms`
//!   milliseconds per MiB asked for: a slow link, for progress tests.
//! - `stage.hold=<job>:<s>`: the job holds its slot `s` seconds before its
//!   work (reporting progress, cancellable): a long job that costs no CPU.

#[cfg(feature = "failpoints")]
mod armed {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use crate::storage::{Fetch, ObjectReader};

    /// The argument of failpoint `name` for `job_id`, when armed ("" when it
    /// takes none).
    pub(crate) fn arg(name: &str, job_id: &str) -> Option<String> {
        let v = std::env::var("MONTEUR_FAILPOINTS").ok()?;
        v.split(',').find_map(|f| {
            let (n, rest) = f.split_once('=')?;
            let (job, arg) = rest.split_once(':').unwrap_or((rest, ""));
            (n == name && job == job_id).then(|| arg.to_string())
        })
    }

    pub(crate) fn panic(job_id: &str, message: impl FnOnce() -> String) {
        if arg("job.panic", job_id).is_some() {
            panic!("failpoint job.panic: {}", message());
        }
    }

    /// What a reader does before each read.
    #[derive(Debug)]
    pub(crate) enum Read {
        Hang { decoding: AtomicBool },
        Throttle { per_mib: Duration },
    }

    pub(crate) fn arm_reader(reader: &ObjectReader, job_id: &str) {
        let read = if arg("read.hang", job_id).is_some() {
            Some(Read::Hang {
                decoding: AtomicBool::new(false),
            })
        } else {
            arg("read.throttle", job_id)
                .and_then(|ms| ms.parse::<u64>().ok())
                .map(|ms| Read::Throttle {
                    per_mib: Duration::from_millis(ms),
                })
        };
        if let Ok(mut f) = reader.failpoint.lock() {
            *f = read;
        }
    }

    /// The job's probe is over: a hang armed for it starts now.
    pub(crate) fn decoding(reader: &ObjectReader) {
        if let Ok(f) = reader.failpoint.lock()
            && let Some(Read::Hang { decoding }) = &*f
        {
            decoding.store(true, Ordering::SeqCst);
        }
    }

    /// Seconds to hold the job's slot before its work.
    pub(crate) fn hold(job_id: &str) -> Option<Duration> {
        arg("stage.hold", job_id)
            .and_then(|s| s.parse::<f64>().ok())
            .map(Duration::from_secs_f64)
    }

    impl ObjectReader {
        pub(crate) fn failpoint_read(&self, bytes: usize) -> Result<(), Fetch> {
            let wait = match self.failpoint.lock().ok().as_deref() {
                Some(Some(Read::Hang { decoding })) if decoding.load(Ordering::SeqCst) => None,
                Some(Some(Read::Throttle { per_mib })) => {
                    Some(per_mib.mul_f64(bytes as f64 / f64::from(1u32 << 20)))
                }
                _ => return Ok(()),
            };
            self.wait_interruptibly(wait)
        }
    }
}

#[cfg(feature = "failpoints")]
pub(crate) use armed::*;

/// Without the feature every failpoint is a no-op the compiler removes.
#[cfg(not(feature = "failpoints"))]
mod disarmed {
    use std::time::Duration;

    pub(crate) fn panic(_: &str, _: impl FnOnce() -> String) {}
    pub(crate) fn arm_reader(_: &crate::storage::ObjectReader, _: &str) {}
    pub(crate) fn decoding(_: &crate::storage::ObjectReader) {}
    pub(crate) fn hold(_: &str) -> Option<Duration> {
        None
    }
}

#[cfg(not(feature = "failpoints"))]
pub(crate) use disarmed::*;
