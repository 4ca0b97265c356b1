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

/// Whether a session keeps its intermediate tensors between runs. CPU
/// sessions only: a CUDA session keeps ONNX Runtime's defaults either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tensors {
    /// Kept in ONNX Runtime's arena, sized by the largest run so far, until
    /// a run asks for the arena's free memory back (TransNetV2's last runs
    /// of a stream do: the worker pools its sessions, and the stages after
    /// scene detection would otherwise carry it): for models run on the same shapes again and
    /// again (TransNetV2's windows of 100 thumbnails, one to a few windows
    /// a run). Allocated afresh, each run's large tensors are mapped and
    /// faulted in anew (blocks over the worker's 1 MiB mmap threshold):
    /// 937 000 page faults for 150 frames of the fused detector, and on a
    /// 720-frame 1080p clip 7.2 s of system time and 12.1 s wall against
    /// 0.4 s and 8.6 s kept, for 366 against 354 MiB peak. (Memory patterns
    /// on top reserved 180 MiB more and saved nothing: 8.6 s either way.)
    Kept,
    /// From the process's allocator and returned after each run: for
    /// shapes that grow with the input (Whisper's decoder, with each
    /// window's tokens), whose largest an arena would keep for good, and
    /// for the models beside it whose resident size matters more than
    /// their speed (docs/BENCHMARKS.md, "Memory by input length").
    Released,
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
    pub fn accelerated_session(
        &self,
        path: &Path,
        threads: usize,
        tensors: Tensors,
    ) -> Result<Session, ModelError> {
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
            return self.session(path, threads, tensors);
        }
        let mut cuda = ort::ep::CUDA::default().build();
        if self.provider == Provider::Cuda {
            cuda = cuda.error_on_failure();
        }
        self.build(path, threads, tensors, Some(cuda))
    }

    /// A session for the model at `path`, running on `threads` intra-op threads.
    pub fn session(
        &self,
        path: &Path,
        threads: usize,
        tensors: Tensors,
    ) -> Result<Session, ModelError> {
        self.build(path, threads, tensors, None)
    }

    fn build(
        &self,
        path: &Path,
        threads: usize,
        tensors: Tensors,
        provider: Option<ort::ep::ExecutionProviderDispatch>,
    ) -> Result<Session, ModelError> {
        let err = |reason: String| ModelError::Load {
            model: file_name(path),
            reason,
        };
        let mut builder = Session::builder(&self.environment).map_err(|e| err(e.to_string()))?;
        // On the CPU, where tensors live follows `tensors`; memory patterns
        // stay off (see `Tensors::Kept`).
        let cpu = provider.is_none();
        let arena = tensors == Tensors::Kept;
        let p =
            provider.unwrap_or_else(|| ort::ep::CPU::default().with_arena_allocator(arena).build());
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
