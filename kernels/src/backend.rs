use crate::loudness::WindowLevel;
use crate::{FrameStats, KernelError, LumaBatch};

/// A device that computes the per-frame kernels.
///
/// Implementations reuse their buffers between calls: a backend is created once
/// per analysis and fed batches of frames, so no call allocates per frame.
pub trait Backend: Send {
    /// A short, stable name for logs and metrics labels (`cpu`, `cuda`).
    fn name(&self) -> &'static str;

    /// Computes [`FrameStats`] for every frame of `batch`, replacing the contents
    /// of `out` (one entry per frame, in order).
    fn frame_stats(
        &mut self,
        batch: &LumaBatch<'_>,
        out: &mut Vec<FrameStats>,
    ) -> Result<(), KernelError>;

    /// Whisper log-mel spectrograms of a batch of audio windows: `windows`
    /// holds whole windows of [`mel::WINDOW_SAMPLES`](crate::mel::WINDOW_SAMPLES)
    /// samples (16 kHz mono, zero-padded by the caller); `out` is replaced by
    /// `N_MELS * WINDOW_FRAMES` values per window, band after band.
    fn log_mel(&mut self, windows: &[f32], out: &mut Vec<f32>) -> Result<(), KernelError>;

    /// Peak and mean square of each whole window of `samples_per_window`
    /// samples (see [`loudness`](crate::loudness) for where windows start);
    /// `out` is replaced by one entry per window.
    fn loudness(
        &mut self,
        samples: &[f32],
        samples_per_window: f64,
        out: &mut Vec<WindowLevel>,
    ) -> Result<(), KernelError>;
}

/// Number of whole windows in `windows`, or why it is not a batch.
pub(crate) fn mel_windows(windows: &[f32]) -> Result<usize, KernelError> {
    use crate::mel::WINDOW_SAMPLES;
    if windows.is_empty() || !windows.len().is_multiple_of(WINDOW_SAMPLES) {
        return Err(KernelError::InvalidBatch(format!(
            "{} samples is not a whole number of {WINDOW_SAMPLES}-sample windows",
            windows.len()
        )));
    }
    Ok(windows.len() / WINDOW_SAMPLES)
}
