use std::path::Path;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use crate::ModelError;

/// The loaded ONNX Runtime. Sessions made from it stay valid while it lives.
#[derive(Debug)]
pub struct Runtime {
    environment: Environment,
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
        Ok(Self { environment })
    }

    /// A session for the model at `path`, running on `threads` intra-op threads.
    pub fn session(&self, path: &Path, threads: usize) -> Result<Session, ModelError> {
        let err = |reason: String| ModelError::Load {
            model: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            reason,
        };
        Session::builder(&self.environment)
            .map_err(|e| err(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| err(e.to_string()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| err(e.to_string()))?
            .commit_from_file(path)
            .map_err(|e| err(e.to_string()))
    }
}
