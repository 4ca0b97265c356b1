//! Frames as the kernels see them, and the integer statistics they produce.

use crate::KernelError;

/// Number of luma histogram bins. 64 bins (4 levels each) keep the histogram
/// stable under compression noise while still separating shots.
pub const HIST_BINS: usize = 64;

/// A batch of tightly packed 8-bit luma frames of one size.
///
/// `frames` holds `len()` frames of `width * height` bytes each, row after row
/// with no padding. `previous` is the frame just before the first one (the last
/// frame of the previous batch), so differences continue across batches.
#[derive(Debug, Clone, Copy)]
pub struct LumaBatch<'a> {
    width: usize,
    height: usize,
    frames: &'a [u8],
    previous: Option<&'a [u8]>,
}

impl<'a> LumaBatch<'a> {
    /// Checks that the buffers match the geometry.
    pub fn new(
        width: usize,
        height: usize,
        frames: &'a [u8],
        previous: Option<&'a [u8]>,
    ) -> Result<Self, KernelError> {
        let pixels = width
            .checked_mul(height)
            .filter(|&p| p > 0)
            .ok_or_else(|| KernelError::InvalidBatch(format!("empty geometry {width}x{height}")))?;
        if !frames.len().is_multiple_of(pixels) {
            return Err(KernelError::InvalidBatch(format!(
                "{} bytes is not a whole number of {width}x{height} frames",
                frames.len()
            )));
        }
        if let Some(prev) = previous
            && prev.len() != pixels
        {
            return Err(KernelError::InvalidBatch(format!(
                "previous frame has {} bytes, expected {pixels}",
                prev.len()
            )));
        }
        Ok(Self {
            width,
            height,
            frames,
            previous,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Pixels in one frame.
    pub fn pixels(&self) -> usize {
        self.width * self.height
    }

    /// Number of frames in the batch.
    pub fn len(&self) -> usize {
        self.frames.len() / self.pixels()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frame `i` of the batch.
    pub fn frame(&self, i: usize) -> &'a [u8] {
        let n = self.pixels();
        &self.frames[i * n..(i + 1) * n]
    }

    /// The frame before frame `i`, if there is one.
    pub fn before(&self, i: usize) -> Option<&'a [u8]> {
        if i == 0 {
            self.previous
        } else {
            Some(self.frame(i - 1))
        }
    }

    /// All frames, packed.
    pub fn data(&self) -> &'a [u8] {
        self.frames
    }

    /// The frame before the batch.
    pub fn previous(&self) -> Option<&'a [u8]> {
        self.previous
    }
}

/// Exact per-frame statistics. Integers, so that every backend must produce the
/// very same values as the CPU reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameStats {
    /// Sum of all luma values.
    pub luma_sum: u64,
    /// Sum of absolute luma differences to the previous frame; `None` for the
    /// first frame of a stream.
    pub abs_diff_sum: Option<u64>,
    /// Sum of absolute luma differences to the previous frame after removing the
    /// change in mean luma ([`mean_offset`]): what remains when a whole frame
    /// brightens or changes flat colour is structure, which is what a cut
    /// changes.
    pub residual_diff_sum: Option<u64>,
    /// Luma histogram with [`HIST_BINS`] bins.
    pub hist: [u32; HIST_BINS],
}

impl Default for FrameStats {
    fn default() -> Self {
        Self {
            luma_sum: 0,
            abs_diff_sum: None,
            residual_diff_sum: None,
            hist: [0; HIST_BINS],
        }
    }
}

/// The whole-frame luma change between two frames, as an integer every backend
/// computes identically: `(current - previous) / pixels`, rounded half away from
/// zero.
pub fn mean_offset(current_sum: u64, previous_sum: u64, pixels: usize) -> i32 {
    let diff = i128::from(current_sum) - i128::from(previous_sum);
    let n = pixels.max(1) as i128;
    let q = (2 * diff.abs() + n) / (2 * n);
    let q = if diff < 0 { -q } else { q };
    q.clamp(-255, 255) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_offset_rounds_half_away_from_zero() {
        assert_eq!(mean_offset(15, 10, 10), 1); // 0.5
        assert_eq!(mean_offset(10, 15, 10), -1);
        assert_eq!(mean_offset(14, 10, 10), 0); // 0.4
        assert_eq!(mean_offset(255 * 4, 0, 4), 255);
        assert_eq!(mean_offset(0, 0, 0), 0);
    }
}
