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
    /// The luma histogram, each bin's share of the pixels in units of
    /// 1/[`HIST_ONE`]: lets detectors compare frames that are not
    /// neighbours (flashes, dissolves).
    pub hist: Hist,
}

/// A normalised luma histogram in fixed point. Every frame of the input
/// keeps one until the scenes are found, so it is u16 rather than f32: an
/// hour at 30 fps holds 14 MB less, and a bin's rounding (1.5e-5 of the
/// frame) is a tenth of one pixel's share at the 320-pixel analysis size.
pub type Hist = [u16; HIST_BINS];

/// A whole frame in [`Hist`] units.
pub const HIST_ONE: u16 = u16::MAX;

/// A histogram with every bin equal (tests and synthetic features).
pub fn flat_hist() -> Hist {
    [(f64::from(HIST_ONE) / HIST_BINS as f64).round() as u16; HIST_BINS]
}

/// Total variation distance between two normalised histograms, 0..=1.
pub fn hist_distance(a: &Hist, b: &Hist) -> f32 {
    let moved: u32 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u32::from(x.abs_diff(*y)))
        .sum();
    (0.5 * f64::from(moved) / f64::from(HIST_ONE)).min(1.0) as f32
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
            hist: std::array::from_fn(|i| {
                (f64::from(current.hist[i]) / n * f64::from(HIST_ONE)).round() as u16
            }),
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

    #[test]
    fn fixed_point_histograms_keep_the_exact_distance() {
        // Two frames of a 320x180 analysis size with unrelated content: the
        // distance from the stored u16 histograms must match the one from
        // the exact pixel counts to within the rounding of 64 bins.
        let n = 320 * 180;
        let mut x = 12345u32;
        let mut next = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        };
        let a: Vec<u8> = (0..n).map(|_| next() / 2).collect();
        let b: Vec<u8> = (0..n).map(|_| next()).collect();
        let sa = frame_stats(&a, None);
        let sb = frame_stats(&b, Some(&a));
        let fa = FrameFeatures::derive(&sa, None, n);
        let fb = FrameFeatures::derive(&sb, Some(&sa), n);
        let exact = fb.hist_distance.unwrap_or(f32::NAN);
        let stored = hist_distance(&fa.hist, &fb.hist);
        assert!(exact > 0.3, "the frames differ: {exact}");
        assert!(
            (exact - stored).abs() <= 32.0 / f32::from(HIST_ONE),
            "{exact} vs {stored}"
        );
        let total: u32 = fa.hist.iter().map(|&h| u32::from(h)).sum();
        assert!(total.abs_diff(u32::from(HIST_ONE)) <= 32, "{total}");
    }
}
