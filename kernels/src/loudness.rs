//! Loudness per short window: peak and mean square of the samples, the measure
//! silence detection thresholds (auto-editor's audio method: the loudest sample
//! of each frame-long window, against the file's loudest).
//!
//! Windows are `samples_per_window` long, which need not be whole (16 kHz audio
//! at 30 fps is 533.3 samples a frame): window `i` covers samples
//! `floor(i * spw) .. floor((i + 1) * spw)`, computed in `f64` by every backend
//! so they cut the signal at the same sample.

use crate::KernelError;

/// Levels of one window, linear (full scale = 1.0).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowLevel {
    /// Largest absolute sample.
    pub peak: f32,
    /// Mean of the squared samples (RMS squared).
    pub mean_square: f32,
}

/// Quietest level reported in dBFS; digital silence would be minus infinity.
pub const FLOOR_DBFS: f32 = -120.0;

impl WindowLevel {
    /// Peak level in dBFS.
    pub fn peak_dbfs(&self) -> f32 {
        to_dbfs(self.peak * self.peak)
    }

    /// RMS level in dBFS.
    pub fn rms_dbfs(&self) -> f32 {
        to_dbfs(self.mean_square)
    }
}

fn to_dbfs(power: f32) -> f32 {
    if power > 0.0 {
        (10.0 * power.log10()).max(FLOOR_DBFS)
    } else {
        FLOOR_DBFS
    }
}

/// Number of whole windows in `samples` samples (a trailing partial window is
/// dropped, as auto-editor does), or why the window length is unusable.
pub fn window_count(samples: usize, samples_per_window: f64) -> Result<usize, KernelError> {
    if !samples_per_window.is_finite() || samples_per_window < 1.0 {
        return Err(KernelError::InvalidBatch(format!(
            "a loudness window must hold at least one sample, got {samples_per_window}"
        )));
    }
    Ok((samples as f64 / samples_per_window + EPSILON) as usize)
}

/// Keeps `x.99999...` from flooring a whole boundary down a sample
/// (16000 / (16000 / 30) is 29.999999999999996 in `f64`).
const EPSILON: f64 = 1e-6;

/// Sample range of window `i`.
pub fn window_range(i: usize, samples_per_window: f64, samples: usize) -> (usize, usize) {
    let start = (i as f64 * samples_per_window + EPSILON) as usize;
    let end = (((i + 1) as f64 * samples_per_window + EPSILON) as usize).min(samples);
    (start.min(end), end)
}

/// The reference: one pass over each window.
pub fn window_level(window: &[f32]) -> WindowLevel {
    if window.is_empty() {
        return WindowLevel::default();
    }
    let (mut peak, mut sum) = (0.0f32, 0.0f64);
    for &x in window {
        peak = peak.max(x.abs());
        sum += f64::from(x) * f64::from(x);
    }
    WindowLevel {
        peak,
        mean_square: (sum / window.len() as f64) as f32,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fractional_windows_tile_the_signal_without_gaps() {
        let spw = 16_000.0 / 30.0;
        let n = window_count(16_000, spw).unwrap();
        assert_eq!(n, 30);
        let mut next = 0;
        for i in 0..n {
            let (a, b) = window_range(i, spw, 16_000);
            assert_eq!(a, next);
            assert!((533..=534).contains(&(b - a)));
            next = b;
        }
        assert_eq!(next, 16_000);
    }

    #[test]
    fn levels_of_a_known_signal() {
        let half: Vec<f32> = (0..1000)
            .map(|i| if i % 2 == 0 { 0.5 } else { -0.5 })
            .collect();
        let l = window_level(&half);
        assert_eq!(l.peak, 0.5);
        assert!((l.mean_square - 0.25).abs() < 1e-7);
        assert!((l.peak_dbfs() - -6.0206).abs() < 1e-3);
        assert!((l.rms_dbfs() - -6.0206).abs() < 1e-3);
        assert_eq!(window_level(&[0.0; 10]).rms_dbfs(), FLOOR_DBFS);
    }

    #[test]
    fn refuses_windows_shorter_than_a_sample() {
        assert!(window_count(100, 0.5).is_err());
        assert!(window_count(100, f64::NAN).is_err());
    }
}
