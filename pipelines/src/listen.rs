//! What the analysis pass keeps of the audio as it is decoded: the speech
//! probability of each 32 ms (voice activity) and the loudness of each video
//! frame's stretch. About 250 bytes a second, where the 16 kHz track itself
//! is 64 KB a second: a three-hour recording is analysed in the memory of a
//! three-minute one. Recognition reads the audio again, forward, over the
//! speech these probabilities mark ([`crate::captions::transcribe`]).

use monteur_kernels::WindowLevel;
use monteur_kernels::loudness::{window_count, window_level, window_range};
use monteur_models::{VoiceActivity, vad};

use crate::PipelineError;

/// Listens to a track chunk by chunk; [`Self::finish`] gives what it heard.
/// Results are the same whatever the chunking: voice activity steps over
/// whole 512-sample windows (a remainder waits for the next chunk) and
/// loudness windows are placed on the track, not on the chunk.
#[derive(Debug)]
pub struct Scan<'a> {
    vad: Option<&'a mut VoiceActivity>,
    /// Samples short of a whole voice-activity window.
    carry: Vec<f32>,
    probs: Vec<f32>,
    loudness: Option<Loudness>,
    samples: usize,
}

/// What a [`Scan`] heard.
#[derive(Debug, Clone, Default)]
pub struct Heard {
    /// Speech probability of each [`vad::WINDOW`] samples, from the track's
    /// first sample; empty when no voice activity was asked for.
    pub probs: Vec<f32>,
    /// Level of each window of the track, when asked for.
    pub levels: Vec<WindowLevel>,
    /// Samples heard.
    pub samples: usize,
}

impl<'a> Scan<'a> {
    /// Voice activity when `vad` is given (its state reset first); loudness
    /// over windows of `samples_per_window` (fractional: a video frame's
    /// length in samples) when given.
    pub fn new(mut vad: Option<&'a mut VoiceActivity>, samples_per_window: Option<f64>) -> Self {
        if let Some(v) = vad.as_deref_mut() {
            v.reset();
        }
        Self {
            vad,
            carry: Vec::with_capacity(vad::WINDOW),
            probs: Vec::new(),
            loudness: samples_per_window.map(Loudness::new),
            samples: 0,
        }
    }

    /// Hears the next samples of the track.
    pub fn push(&mut self, chunk: &[f32]) -> Result<(), PipelineError> {
        self.samples += chunk.len();
        if let Some(l) = self.loudness.as_mut() {
            l.push(chunk);
        }
        let Some(vad) = self.vad.as_deref_mut() else {
            return Ok(());
        };
        let mut rest = chunk;
        if !self.carry.is_empty() {
            let take = (vad::WINDOW - self.carry.len()).min(rest.len());
            self.carry.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.carry.len() < vad::WINDOW {
                return Ok(());
            }
            self.probs.extend(vad.probabilities(&self.carry)?);
            self.carry.clear();
        }
        let whole = rest.len() / vad::WINDOW * vad::WINDOW;
        if whole > 0 {
            self.probs.extend(vad.probabilities(&rest[..whole])?);
        }
        self.carry.extend_from_slice(&rest[whole..]);
        Ok(())
    }

    /// The track's end: a last partial window is padded with silence, as
    /// [`VoiceActivity::probabilities`] pads one.
    pub fn finish(mut self) -> Result<Heard, PipelineError> {
        if let Some(vad) = self.vad.as_deref_mut()
            && !self.carry.is_empty()
        {
            self.probs.extend(vad.probabilities(&self.carry)?);
        }
        let levels = match self.loudness {
            Some(l) => l.finish(self.samples)?,
            None => Vec::new(),
        };
        Ok(Heard {
            probs: self.probs,
            levels,
            samples: self.samples,
        })
    }
}

/// Window levels over a streamed track: what
/// [`Backend::loudness`](monteur_kernels::Backend::loudness) gives for the
/// whole track, window for window.
#[derive(Debug)]
struct Loudness {
    per_window: f64,
    /// Samples from track index `base` on, not yet in a finished window.
    pending: Vec<f32>,
    base: usize,
    next: usize,
    levels: Vec<WindowLevel>,
}

impl Loudness {
    fn new(per_window: f64) -> Self {
        Self {
            per_window,
            pending: Vec::new(),
            base: 0,
            next: 0,
            levels: Vec::new(),
        }
    }

    fn push(&mut self, chunk: &[f32]) {
        self.pending.extend_from_slice(chunk);
        let have = self.base + self.pending.len();
        loop {
            let (a, b) = window_range(self.next, self.per_window, usize::MAX);
            if b > have || b <= a {
                break;
            }
            self.levels
                .push(window_level(&self.pending[a - self.base..b - self.base]));
            self.next += 1;
        }
        let (start, _) = window_range(self.next, self.per_window, usize::MAX);
        let done = start.saturating_sub(self.base).min(self.pending.len());
        self.pending.drain(..done);
        self.base += done;
    }

    fn finish(mut self, samples: usize) -> Result<Vec<WindowLevel>, PipelineError> {
        let n = window_count(samples, self.per_window)?;
        for i in self.next..n {
            let (a, b) = window_range(i, self.per_window, samples);
            let (a, b) = (
                a.saturating_sub(self.base).min(self.pending.len()),
                b.saturating_sub(self.base).min(self.pending.len()),
            );
            self.levels.push(window_level(&self.pending[a..b.max(a)]));
        }
        Ok(self.levels)
    }
}

#[cfg(test)]
mod tests {
    use monteur_kernels::{Backend, CpuBackend};

    use super::*;

    fn tone(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * 0.01).sin() * (i as f32 * 0.0003).cos()) * 0.8)
            .collect()
    }

    #[test]
    fn streamed_loudness_equals_the_whole_track_for_any_chunking() {
        let track = tone(48_123);
        for per_window in [640.0, 16_000.0 * 1001.0 / 30_000.0, 333.3] {
            let mut whole = Vec::new();
            CpuBackend::new()
                .loudness(&track, per_window, &mut whole)
                .unwrap();
            for chunk in [1, 341, 512, 1000, 48_123] {
                let mut scan = Scan::new(None, Some(per_window));
                for c in track.chunks(chunk) {
                    scan.push(c).unwrap();
                }
                let heard = scan.finish().unwrap();
                assert_eq!(heard.levels, whole, "window {per_window}, chunk {chunk}");
                assert_eq!(heard.samples, track.len());
                assert!(heard.probs.is_empty());
            }
        }
    }
}
