use std::path::Path;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use crate::ModelError;

/// Where the heavy models (Whisper) run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// CUDA when the loaded ONNX Runtime has its CUDA provider and it
    /// registers (a GPU is present), else the CPU, with the reason logged.
    Auto,
    Cpu,
    /// CUDA or fail: for machines that must not silently run slow.
    Cuda,
}

impl std::str::FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(format!("unknown provider `{other}` (auto, cpu, cuda)")),
        }
    }
}

/// The loaded ONNX Runtime. Sessions made from it stay valid while it lives.
#[derive(Debug)]
pub struct Runtime {
    environment: Environment,
    provider: Provider,
}

impl Runtime {
    /// Loads ONNX Runtime from `library` (`libonnxruntime.so.1.x`). Loading the
    /// same library again in one process is cheap and returns a new handle.
    pub fn load(library: &Path) -> Result<Self, ModelError> {
        let err = |reason: String| ModelError::Runtime {
            path: library.display().to_string(),
            reason,
        };
        if !library.is_file() {
            return Err(err(
                "no such file (run scripts/setup.sh, which unpacks it from the onnxruntime wheel)"
                    .into(),
            ));
        }
        let environment = ort::init_from(library)
            .map_err(|e| err(e.to_string()))?
            .with_name("monteur")
            .build()
            .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            environment,
            provider: Provider::Auto,
        })
    }

    /// Sets where [`Runtime::accelerated_session`] runs models.
    pub fn with_provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    /// Whether this ONNX Runtime library was built with the CUDA provider
    /// (the default CPU wheel is not; `onnxruntime-gpu` is).
    pub fn has_cuda(&self) -> bool {
        use ort::ep::ExecutionProvider;
        ort::ep::CUDA::is_available().unwrap_or(false)
    }

    /// A session for a heavy model: on CUDA when the provider setting and the
    /// machine allow (see [`Provider`]), else like [`Runtime::session`].
    pub fn accelerated_session(&self, path: &Path, threads: usize) -> Result<Session, ModelError> {
        let use_cuda = match self.provider {
            Provider::Cpu => false,
            Provider::Auto => self.has_cuda(),
            Provider::Cuda => {
                if !self.has_cuda() {
                    return Err(ModelError::Load {
                        model: file_name(path),
                        reason: "models.provider = cuda, but this ONNX Runtime has no CUDA \
                                 provider (install the onnxruntime-gpu library)"
                            .into(),
                    });
                }
                true
            }
        };
        if !use_cuda {
            return self.session(path, threads);
        }
        let mut cuda = ort::ep::CUDA::default().build();
        if self.provider == Provider::Cuda {
            cuda = cuda.error_on_failure();
        }
        self.build(path, threads, Some(cuda))
    }

    /// A session for the model at `path`, running on `threads` intra-op threads.
    pub fn session(&self, path: &Path, threads: usize) -> Result<Session, ModelError> {
        self.build(path, threads, None)
    }

    fn build(
        &self,
        path: &Path,
        threads: usize,
        provider: Option<ort::ep::ExecutionProviderDispatch>,
    ) -> Result<Session, ModelError> {
        let err = |reason: String| ModelError::Load {
            model: file_name(path),
            reason,
        };
        let mut builder = Session::builder(&self.environment).map_err(|e| err(e.to_string()))?;
        // On the CPU, tensors come from the process's allocator and go back
        // after each run. ONNX Runtime's arena (and its memory patterns)
        // would keep the largest shapes ever seen: Whisper's decoder grows
        // with each window's tokens, so a long recording's peak crept up
        // window by window (docs/BENCHMARKS.md, "Memory by input length").
        let cpu = provider.is_none();
        let p =
            provider.unwrap_or_else(|| ort::ep::CPU::default().with_arena_allocator(false).build());
        builder = builder
            .with_execution_providers([p])
            .map_err(|e| err(e.to_string()))?;
        if cpu {
            builder = builder
                .with_memory_pattern(false)
                .map_err(|e| err(e.to_string()))?;
        }
        builder
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| err(e.to_string()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| err(e.to_string()))?
            // A worker runs several jobs, and GStreamer's threads, on the
            // same cores: threads that spin between operators take CPU from
            // all of them (docs/BENCHMARKS.md has the cost on one job).
            .with_intra_op_spinning(false)
            .map_err(|e| err(e.to_string()))?
            .commit_from_file(path)
            .map_err(|e| err(e.to_string()))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
