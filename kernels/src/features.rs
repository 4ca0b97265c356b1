//! Normalised features derived on the host from the exact [`FrameStats`].

use crate::{FrameStats, HIST_BINS};

/// What the detectors read for one frame. Differences are `None` for the first
/// frame of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameFeatures {
    /// Mean luma, 0..=255: the fade signal.
    pub mean_luma: f32,
    /// Mean absolute luma difference to the previous frame, scaled to 0..=1.
    pub mean_abs_diff: Option<f32>,
    /// Mean absolute difference once the change in mean luma is removed, 0..=1:
    /// high for a new shot, low for a global brightness or flat-colour change.
    pub residual_diff: Option<f32>,
    /// Total variation distance between this frame's and the previous frame's
    /// luma histograms, 0..=1: the share of pixels that changed brightness class.
    pub hist_distance: Option<f32>,
    /// The luma histogram, normalised to sum to 1: lets detectors compare
    /// frames that are not neighbours (flashes, dissolves).
    pub hist: [f32; HIST_BINS],
}

/// Total variation distance between two normalised histograms, 0..=1.
pub fn hist_distance(a: &[f32; HIST_BINS], b: &[f32; HIST_BINS]) -> f32 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>()
}

impl FrameFeatures {
    /// Derives the features of a frame of `pixels` pixels from its statistics and
    /// those of the frame before it.
    pub fn derive(current: &FrameStats, previous: Option<&FrameStats>, pixels: usize) -> Self {
        let n = pixels.max(1) as f64;
        let hist_distance = previous.map(|prev| {
            let moved: u64 = (0..HIST_BINS)
                .map(|i| u64::from(current.hist[i].abs_diff(prev.hist[i])))
                .sum();
            (moved as f64 / (2.0 * n)) as f32
        });
        Self {
            mean_luma: (current.luma_sum as f64 / n) as f32,
            mean_abs_diff: current
                .abs_diff_sum
                .map(|d| (d as f64 / (255.0 * n)) as f32),
            residual_diff: current
                .residual_diff_sum
                .map(|d| (d as f64 / (255.0 * n)) as f32),
            hist_distance,
            hist: std::array::from_fn(|i| (f64::from(current.hist[i]) / n) as f32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::frame_stats;

    #[test]
    fn black_to_white_is_maximal() {
        let black = vec![0u8; 100];
        let white = vec![255u8; 100];
        let a = frame_stats(&black, None);
        let b = frame_stats(&white, Some(&black));
        let f = FrameFeatures::derive(&b, Some(&a), 100);
        assert_eq!(f.mean_luma, 255.0);
        assert_eq!(f.mean_abs_diff, Some(1.0));
        // Flat black to flat white is a pure brightness change.
        assert_eq!(f.residual_diff, Some(0.0));
        assert_eq!(f.hist_distance, Some(1.0));
        assert_eq!(
            hist_distance(&f.hist, &FrameFeatures::derive(&a, None, 100).hist),
            1.0
        );
    }

    #[test]
    fn identical_frames_do_not_differ() {
        let frame: Vec<u8> = (0..=255).collect();
        let a = frame_stats(&frame, None);
        let b = frame_stats(&frame, Some(&frame));
        let f = FrameFeatures::derive(&b, Some(&a), frame.len());
        assert_eq!(f.mean_abs_diff, Some(0.0));
        assert_eq!(f.hist_distance, Some(0.0));
        assert!((f.mean_luma - 127.5).abs() < 1e-6);
    }
}
