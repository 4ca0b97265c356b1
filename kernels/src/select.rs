//! Choosing a backend at run time.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use crate::cuda::{CudaBackend, CudaProgram, cuda_available};
use crate::{Backend, CpuBackend, KernelError};

/// Which backend to use (`analysis.backend` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// CUDA when a usable GPU is present, else the CPU.
    Auto,
    Cpu,
    /// CUDA or fail: for machines that must not silently fall back.
    Cuda,
}

impl FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(format!("unknown backend `{other}` (auto, cpu, cuda)")),
        }
    }
}

/// A backend and, when `Auto` did not get CUDA, why.
#[derive(Debug)]
pub struct Selected {
    pub backend: Box<dyn Backend>,
    pub fallback_reason: Option<String>,
}

impl std::fmt::Debug for dyn Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Opens the backend `choice` asks for. Never panics on machines without a GPU.
pub fn select(choice: BackendChoice) -> Result<Selected, KernelError> {
    let cpu = |reason: Option<String>| Selected {
        backend: Box::new(CpuBackend::new()),
        fallback_reason: reason,
    };
    match choice {
        BackendChoice::Cpu => Ok(cpu(None)),
        BackendChoice::Cuda => Ok(Selected {
            backend: Box::new(CudaBackend::new(0)?),
            fallback_reason: None,
        }),
        BackendChoice::Auto if !cuda_available() => Ok(cpu(Some("no CUDA device".into()))),
        BackendChoice::Auto => match CudaBackend::new(0) {
            Ok(b) => Ok(Selected {
                backend: Box::new(b),
                fallback_reason: None,
            }),
            Err(e) => Ok(cpu(Some(format!("CUDA present but unusable: {e}")))),
        },
    }
}

/// The backend a process chose, once: the probe and (on CUDA) the NVRTC
/// compile happen here, not per job or per stage. Jobs [`lease`](Self::lease)
/// a backend each; a returned backend keeps its device buffers (and, on
/// CUDA, its own stream) for the next job, so there are as many backends as
/// the most jobs that ever held one at once.
#[derive(Clone)]
pub struct Kernels {
    inner: Arc<Pool>,
}

struct Pool {
    cuda: Option<Arc<CudaProgram>>,
    fallback_reason: Option<String>,
    idle: Mutex<Vec<Box<dyn Backend>>>,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels")
            .field("backend", &self.name())
            .field("fallback_reason", &self.inner.fallback_reason)
            .finish()
    }
}

impl Kernels {
    /// Chooses the backend `choice` asks for. Never panics on machines
    /// without a GPU; `Cuda` fails there, `Auto` falls back with a reason.
    pub fn select(choice: BackendChoice) -> Result<Self, KernelError> {
        let (cuda, fallback_reason) = match choice {
            BackendChoice::Cpu => (None, None),
            BackendChoice::Cuda => (Some(CudaProgram::compile(0)?), None),
            BackendChoice::Auto if !cuda_available() => (None, Some("no CUDA device".into())),
            BackendChoice::Auto => match CudaProgram::compile(0) {
                Ok(p) => (Some(p), None),
                Err(e) => (None, Some(format!("CUDA present but unusable: {e}"))),
            },
        };
        Ok(Self {
            inner: Arc::new(Pool {
                cuda,
                fallback_reason,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// `cpu` or `cuda`.
    pub fn name(&self) -> &'static str {
        if self.inner.cuda.is_some() {
            "cuda"
        } else {
            "cpu"
        }
    }

    /// Why `auto` did not get CUDA, when it did not.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.inner.fallback_reason.as_deref()
    }

    /// The GPU's name when the backend is CUDA.
    pub fn device(&self) -> Option<&str> {
        self.inner.cuda.as_deref().map(CudaProgram::device)
    }

    /// A backend for one user at a time, back to the pool when dropped.
    pub fn lease(&self) -> Result<Lease, KernelError> {
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let backend: Box<dyn Backend> = match (idle, &self.inner.cuda) {
            (Some(b), _) => b,
            (None, Some(program)) => Box::new(CudaBackend::on(program)?),
            (None, None) => Box::new(CpuBackend::new()),
        };
        Ok(Lease {
            backend: Some(backend),
            pool: Arc::clone(&self.inner),
        })
    }

    /// Backends made so far and now idle (for tests of the pool).
    pub fn idle(&self) -> usize {
        self.inner.idle.lock().map(|i| i.len()).unwrap_or(0)
    }
}

/// A leased backend: a [`Backend`] itself, returned to its pool on drop.
pub struct Lease {
    backend: Option<Box<dyn Backend>>,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

impl Lease {
    fn get(&mut self) -> Result<&mut Box<dyn Backend>, KernelError> {
        self.backend
            .as_mut()
            .ok_or_else(|| KernelError::Unavailable("lease already returned".into()))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A backend whose user panicked mid-call may hold half-written
        // state: let it go rather than hand it to the next job.
        if std::thread::panicking() {
            return;
        }
        if let Some(b) = self.backend.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(b);
        }
    }
}

impl Backend for Lease {
    fn name(&self) -> &'static str {
        self.backend.as_ref().map(|b| b.name()).unwrap_or("none")
    }

    fn frame_stats(
        &mut self,
        batch: &crate::LumaBatch<'_>,
        out: &mut Vec<crate::FrameStats>,
    ) -> Result<(), KernelError> {
        self.get()?.frame_stats(batch, out)
    }

    fn log_mel(&mut self, windows: &[f32], out: &mut Vec<f32>) -> Result<(), KernelError> {
        self.get()?.log_mel(windows, out)
    }

    fn loudness(
        &mut self,
        samples: &[f32],
        samples_per_window: f64,
        out: &mut Vec<crate::WindowLevel>,
    ) -> Result<(), KernelError> {
        self.get()?.loudness(samples, samples_per_window, out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn leases_come_back_and_are_reused() {
        let k = Kernels::select(BackendChoice::Cpu).unwrap();
        assert_eq!(k.name(), "cpu");
        let (a, b) = (k.lease().unwrap(), k.lease().unwrap());
        assert_eq!(k.idle(), 0);
        drop(a);
        drop(b);
        assert_eq!(k.idle(), 2, "both returned");
        let _c = k.lease().unwrap();
        assert_eq!(k.idle(), 1, "one reused, none made");
    }
}
