//! What a process keeps across jobs: the kernel backend it chose once, and
//! the models (speech, shot boundaries), one set per job running at once.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use monteur_kernels::Kernels;
use monteur_models::{Runtime, TransNet, VoiceActivity, Whisper};
use monteur_pipelines::PipelineError;
use tracing::info;

use super::ProcessError;
use crate::Config;

/// Shared by every job of a process (behind an `Arc` in the daemon): the
/// base configuration, the kernel backend chosen once, and a pool of speech
/// models. Nothing in it changes per job: a job's own settings travel with
/// the job ([`super::Run::config`]).
#[derive(Debug)]
pub struct Engine {
    config: Config,
    kernels: Kernels,
    speech: SpeechPool,
}

impl Engine {
    /// Chooses the kernel backend (`analysis.backend`): a GPU is probed and
    /// its kernels compiled here, once.
    pub fn new(config: Config) -> Result<Self, ProcessError> {
        let kernels =
            Kernels::select(config.analysis.backend_choice()).map_err(PipelineError::Kernel)?;
        match (kernels.device(), kernels.fallback_reason()) {
            (Some(device), _) => info!(device, "frame kernels on the GPU"),
            (None, Some(reason)) => info!(reason, "frame kernels on the CPU"),
            (None, None) => info!("frame kernels on the CPU"),
        }
        Ok(Self {
            config,
            kernels,
            speech: SpeechPool::default(),
        })
    }

    /// The process's configuration, before any job's options.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// A set of speech models for one job, back to the pool when dropped.
    pub(crate) fn speech(&self) -> Result<SpeechLease<'_>, ProcessError> {
        self.speech.lease(&self.config)
    }

    /// The shot-boundary model for one job, back to the pool when dropped.
    pub(crate) fn boundaries(&self) -> Result<BoundaryLease<'_>, ProcessError> {
        let idle = lock(&self.speech.boundaries).pop();
        let model = match idle {
            Some(m) => m,
            None => {
                let m = &self.config.models;
                let started = Instant::now();
                let runtime = self.speech.runtime(&self.config)?;
                let model = TransNet::load(&runtime, &m.path(&m.transnet), m.threads)?;
                info!(
                    elapsed_s = started.elapsed().as_secs_f64(),
                    "shot-boundary model loaded"
                );
                Boundaries {
                    _runtime: runtime,
                    model,
                }
            }
        };
        Ok(BoundaryLease {
            model: Some(model),
            pool: &self.speech,
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Voice activity and Whisper sessions, made on first use (a daemon pays for
/// loading Whisper once per slot, not per job) and lent to one job at a time:
/// ONNX Runtime sessions and the VAD's state are not for two jobs at once.
#[derive(Debug, Default)]
struct SpeechPool {
    runtime: Mutex<Option<Arc<Runtime>>>,
    idle: Mutex<Vec<Speech>>,
    boundaries: Mutex<Vec<Boundaries>>,
}

#[derive(Debug)]
struct Boundaries {
    _runtime: Arc<Runtime>,
    model: TransNet,
}

/// A job's shot-boundary model.
pub(crate) struct BoundaryLease<'a> {
    model: Option<Boundaries>,
    pool: &'a SpeechPool,
}

impl BoundaryLease<'_> {
    pub fn model(&mut self) -> &mut TransNet {
        // Always Some until drop.
        &mut self.model.as_mut().unwrap_or_else(|| unreachable!()).model
    }
}

impl Drop for BoundaryLease<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let Some(m) = self.model.take() {
            lock(&self.pool.boundaries).push(m);
        }
    }
}

#[derive(Debug)]
pub(crate) struct Speech {
    // The sessions below were made from this runtime; keep it alive with them.
    _runtime: Arc<Runtime>,
    pub vad: VoiceActivity,
    pub whisper: Whisper,
}

impl SpeechPool {
    fn lease(&self, config: &Config) -> Result<SpeechLease<'_>, ProcessError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let speech = match idle {
            Some(s) => s,
            None => self.load(config)?,
        };
        Ok(SpeechLease {
            speech: Some(speech),
            pool: self,
        })
    }

    /// ONNX Runtime, loaded once for every model.
    fn runtime(&self, config: &Config) -> Result<Arc<Runtime>, ProcessError> {
        let m = &config.models;
        Ok({
            let mut slot = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
            match slot.as_ref() {
                Some(r) => Arc::clone(r),
                None => {
                    let r = Arc::new(
                        Runtime::load(&m.path(&m.onnxruntime))?.with_provider(m.provider()),
                    );
                    info!(
                        cuda_provider = r.has_cuda(),
                        provider = m.provider.as_str(),
                        "ONNX Runtime loaded"
                    );
                    *slot = Some(Arc::clone(&r));
                    r
                }
            }
        })
    }

    fn load(&self, config: &Config) -> Result<Speech, ProcessError> {
        let m = &config.models;
        let started = Instant::now();
        let runtime = self.runtime(config)?;
        let vad = VoiceActivity::load(&runtime, &m.path(&m.vad))?;
        let whisper = Whisper::load(&runtime, &m.path(&m.whisper), m.threads)?;
        info!(
            elapsed_s = started.elapsed().as_secs_f64(),
            "speech models loaded"
        );
        Ok(Speech {
            _runtime: runtime,
            vad,
            whisper,
        })
    }
}

/// A job's speech models.
pub(crate) struct SpeechLease<'a> {
    speech: Option<Speech>,
    pool: &'a SpeechPool,
}

impl std::ops::Deref for SpeechLease<'_> {
    type Target = Speech;
    fn deref(&self) -> &Speech {
        // Always Some until drop.
        self.speech.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for SpeechLease<'_> {
    fn deref_mut(&mut self) -> &mut Speech {
        self.speech.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for SpeechLease<'_> {
    fn drop(&mut self) {
        // Sessions of a job that panicked mid-inference are not trusted
        // with the next one.
        if std::thread::panicking() {
            return;
        }
        if let Some(s) = self.speech.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(s);
        }
    }
}
