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
}
