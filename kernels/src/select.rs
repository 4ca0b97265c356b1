//! Choosing a backend at run time.

use std::str::FromStr;

use crate::cuda::{CudaBackend, cuda_available};
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
