//! Silero voice activity detection (v6, the `silero-vad` wheel's ONNX export).
//!
//! The model is recurrent: it reads 512 new samples at 16 kHz per step (32 ms),
//! preceded by the last 64 samples of the step before, and carries a hidden
//! state. Steps of one stream must therefore run in order; separate streams use
//! separate [`VoiceActivity`] values.

use std::path::Path;

use ort::session::Session;
use ort::value::Tensor;

use crate::{ModelError, Runtime, Tensors};

/// Sample rate the model expects.
pub const SAMPLE_RATE: u32 = 16_000;
/// New samples per step: one probability per 32 ms.
pub const WINDOW: usize = 512;
const CONTEXT: usize = 64;
const STATE: usize = 2 * 128;
const NAME: &str = "silero_vad";

/// Windows between two looks at the caller's stop flag (about 1 s of audio).
const CHECK_EVERY: usize = 32;

/// A voice activity detector for one audio stream.
#[derive(Debug)]
pub struct VoiceActivity {
    session: Session,
    state: Vec<f32>,
    context: [f32; CONTEXT],
    input: Vec<f32>,
}

impl VoiceActivity {
    /// Loads the model; one thread is plenty for a 576-sample recurrent step.
    pub fn load(runtime: &Runtime, model: &Path) -> Result<Self, ModelError> {
        let session = runtime.session(model, 1, Tensors::Released)?;
        let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        if inputs != ["input", "state", "sr"] {
            return Err(ModelError::Load {
                model: NAME.into(),
                reason: format!("unexpected inputs {inputs:?}: not Silero VAD v5/v6"),
            });
        }
        Ok(Self {
            session,
            state: vec![0.0; STATE],
            context: [0.0; CONTEXT],
            input: Vec::with_capacity(CONTEXT + WINDOW),
        })
    }

    /// Forgets the stream so far: call between unrelated streams.
    pub fn reset(&mut self) {
        self.state.fill(0.0);
        self.context = [0.0; CONTEXT];
    }

    /// Speech probability (0..1) of each 512-sample window of `samples`
    /// (16 kHz mono, -1..1), continuing the stream from earlier calls. A last
    /// partial window is padded with silence.
    pub fn probabilities(&mut self, samples: &[f32]) -> Result<Vec<f32>, ModelError> {
        self.probabilities_until(samples, &|| false)
    }

    /// [`Self::probabilities`], giving up with [`ModelError::Interrupted`]
    /// as soon as `stop` says so (checked every second of audio: an hour of
    /// audio takes minutes, a cancelled job must stop within a second or two).
    pub fn probabilities_until(
        &mut self,
        samples: &[f32],
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<f32>, ModelError> {
        let mut out = Vec::with_capacity(samples.len().div_ceil(WINDOW));
        for (i, chunk) in samples.chunks(WINDOW).enumerate() {
            if i % CHECK_EVERY == 0 && stop() {
                return Err(ModelError::Interrupted(NAME));
            }
            out.push(self.step(chunk)?);
        }
        Ok(out)
    }

    fn step(&mut self, chunk: &[f32]) -> Result<f32, ModelError> {
        let err = |e: ort::Error| ModelError::Inference {
            model: NAME,
            reason: e.to_string(),
        };
        self.input.clear();
        self.input.extend_from_slice(&self.context);
        self.input.extend_from_slice(chunk);
        self.input.resize(CONTEXT + WINDOW, 0.0);
        let window = &self.input[CONTEXT..];
        self.context.copy_from_slice(&window[WINDOW - CONTEXT..]);

        let input =
            Tensor::from_array(([1usize, CONTEXT + WINDOW], self.input.clone())).map_err(err)?;
        let state = Tensor::from_array(([2usize, 1, 128], self.state.clone())).map_err(err)?;
        let sr = Tensor::from_array(((), vec![i64::from(SAMPLE_RATE)])).map_err(err)?;
        let outputs = self
            .session
            .run(ort::inputs!["input" => input, "state" => state, "sr" => sr])
            .map_err(err)?;
        let (_, prob) = outputs["output"].try_extract_tensor::<f32>().map_err(err)?;
        let (_, next) = outputs["stateN"].try_extract_tensor::<f32>().map_err(err)?;
        if next.len() != STATE || prob.is_empty() {
            return Err(ModelError::Inference {
                model: NAME,
                reason: format!("unexpected output sizes {} and {}", prob.len(), next.len()),
            });
        }
        self.state.copy_from_slice(next);
        Ok(prob[0])
    }
}
