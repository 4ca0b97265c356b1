//! The CPU reference backend.
//!
//! Plain loops over fixed-size blocks with `u32` accumulators: the shape LLVM
//! turns into SIMD sums of absolute differences. It is the definition every other
//! backend is tested against, so it stays simple.

use crate::backend::mel_windows;
use crate::loudness::{self, WindowLevel};
use crate::mel::{self, MelTables, N_MELS, WINDOW_FRAMES, WINDOW_SAMPLES};
use crate::{Backend, FrameStats, HIST_BINS, KernelError, LumaBatch, mean_offset};

/// Pixels summed in one `u32` accumulator: 4096 * 255 cannot overflow.
const BLOCK: usize = 4096;

/// The reference backend. Its only state is the log-mel tables, built on
/// first use, and scratch space.
#[derive(Debug, Default)]
pub struct CpuBackend {
    mel: Option<Box<MelTables>>,
    scratch: Option<Box<mel::MelScratch>>,
}

impl CpuBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn frame_stats(
        &mut self,
        batch: &LumaBatch<'_>,
        out: &mut Vec<FrameStats>,
    ) -> Result<(), KernelError> {
        out.clear();
        out.reserve(batch.len());
        for i in 0..batch.len() {
            out.push(frame_stats(batch.frame(i), batch.before(i)));
        }
        Ok(())
    }

    fn log_mel(&mut self, windows: &[f32], out: &mut Vec<f32>) -> Result<(), KernelError> {
        let n = mel_windows(windows)?;
        let tables = self
            .mel
            .get_or_insert_with(|| Box::new(MelTables::whisper80()));
        let scratch = self.scratch.get_or_insert_with(Default::default);
        let per = N_MELS * WINDOW_FRAMES;
        out.clear();
        out.resize(n * per, 0.0);
        for (w, dst) in windows
            .chunks_exact(WINDOW_SAMPLES)
            .zip(out.chunks_exact_mut(per))
        {
            mel::log_mel_window(tables, w, dst, scratch);
        }
        Ok(())
    }

    fn loudness(
        &mut self,
        samples: &[f32],
        samples_per_window: f64,
        out: &mut Vec<WindowLevel>,
    ) -> Result<(), KernelError> {
        let n = loudness::window_count(samples.len(), samples_per_window)?;
        out.clear();
        out.extend((0..n).map(|i| {
            let (a, b) = loudness::window_range(i, samples_per_window, samples.len());
            loudness::window_level(&samples[a..b])
        }));
        Ok(())
    }
}

/// Statistics of one frame against the one before it.
pub fn frame_stats(frame: &[u8], previous: Option<&[u8]>) -> FrameStats {
    let sum = luma_sum(frame);
    let (abs_diff_sum, residual_diff_sum) = match previous {
        Some(prev) => {
            let offset = mean_offset(sum, luma_sum(prev), frame.len());
            (
                Some(residual_diff_sum(frame, prev, 0)),
                Some(residual_diff_sum(frame, prev, offset)),
            )
        }
        None => (None, None),
    };
    FrameStats {
        luma_sum: sum,
        abs_diff_sum,
        residual_diff_sum,
        hist: histogram(frame),
    }
}

fn luma_sum(frame: &[u8]) -> u64 {
    frame
        .chunks(BLOCK)
        .map(|block| u64::from(block.iter().map(|&p| u32::from(p)).sum::<u32>()))
        .sum()
}

/// Sum of `|a - b - offset|`; with `offset` 0, the plain absolute difference.
fn residual_diff_sum(a: &[u8], b: &[u8], offset: i32) -> u64 {
    // |a - b - offset| <= 510: 4096 of them fit a u32.
    let offset = offset as i16;
    a.chunks(BLOCK)
        .zip(b.chunks(BLOCK))
        .map(|(x, y)| {
            u64::from(
                x.iter()
                    .zip(y)
                    .map(|(&p, &q)| {
                        u32::from((i16::from(p) - i16::from(q) - offset).unsigned_abs())
                    })
                    .sum::<u32>(),
            )
        })
        .sum()
}

fn histogram(frame: &[u8]) -> [u32; HIST_BINS] {
    // Four interleaved sub-histograms break the store-to-load dependency that a
    // single histogram suffers on runs of equal pixels (black frames).
    let mut sub = [[0u32; HIST_BINS]; 4];
    let shift = 8 - HIST_BINS.trailing_zeros();
    let mut quads = frame.chunks_exact(4);
    for q in &mut quads {
        sub[0][usize::from(q[0] >> shift)] += 1;
        sub[1][usize::from(q[1] >> shift)] += 1;
        sub[2][usize::from(q[2] >> shift)] += 1;
        sub[3][usize::from(q[3] >> shift)] += 1;
    }
    for &p in quads.remainder() {
        sub[0][usize::from(p >> shift)] += 1;
    }
    let mut hist = [0u32; HIST_BINS];
    for (i, h) in hist.iter_mut().enumerate() {
        *h = sub[0][i] + sub[1][i] + sub[2][i] + sub[3][i];
    }
    hist
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::noise;

    /// The obvious, slow definition the optimised loops must agree with.
    fn naive(frame: &[u8], previous: Option<&[u8]>) -> FrameStats {
        let mut hist = [0u32; HIST_BINS];
        for &p in frame {
            hist[usize::from(p) * HIST_BINS / 256] += 1;
        }
        let sum: u64 = frame.iter().map(|&p| u64::from(p)).sum();
        let diff = |offset: i64| {
            previous.map(|prev| {
                frame
                    .iter()
                    .zip(prev)
                    .map(|(&a, &b)| (i64::from(a) - i64::from(b) - offset).unsigned_abs())
                    .sum()
            })
        };
        let offset = previous
            .map(|prev| {
                let prev_sum: u64 = prev.iter().map(|&p| u64::from(p)).sum();
                let d = (sum as f64 - prev_sum as f64) / frame.len() as f64;
                // Half away from zero, as mean_offset documents.
                d.round() as i64
            })
            .unwrap_or(0);
        FrameStats {
            luma_sum: sum,
            abs_diff_sum: diff(0),
            residual_diff_sum: diff(offset),
            hist,
        }
    }

    #[test]
    fn agrees_with_naive_definition_on_odd_sizes() {
        for (w, h) in [(1, 1), (3, 5), (320, 180), (97, 61), (641, 7)] {
            let frames = noise(w * h * 3, (w * 31 + h) as u64);
            let prev = noise(w * h, 7);
            let batch = LumaBatch::new(w, h, &frames, Some(&prev)).unwrap();
            let mut out = Vec::new();
            CpuBackend::new().frame_stats(&batch, &mut out).unwrap();
            assert_eq!(out.len(), 3);
            for (i, got) in out.iter().enumerate() {
                assert_eq!(
                    *got,
                    naive(batch.frame(i), batch.before(i)),
                    "{w}x{h} frame {i}"
                );
            }
        }
    }

    #[test]
    fn extremes_do_not_overflow() {
        let (w, h) = (1920, 1080);
        let white = vec![255u8; w * h];
        let black = vec![0u8; w * h];
        let stats = frame_stats(&white, Some(&black));
        assert_eq!(stats.luma_sum, 255 * (w * h) as u64);
        assert_eq!(stats.abs_diff_sum, Some(255 * (w * h) as u64));
        assert_eq!(stats.hist[HIST_BINS - 1], (w * h) as u32);
    }

    #[test]
    fn uniform_brightness_change_leaves_no_residual() {
        let frame = noise(64 * 64, 11)
            .iter()
            .map(|&p| p / 2)
            .collect::<Vec<_>>();
        let brighter: Vec<u8> = frame.iter().map(|&p| p + 40).collect();
        let stats = frame_stats(&brighter, Some(&frame));
        assert_eq!(stats.abs_diff_sum, Some(40 * 64 * 64));
        assert_eq!(stats.residual_diff_sum, Some(0));
    }

    #[test]
    fn first_frame_has_no_difference() {
        let frames = noise(16 * 2, 3);
        let batch = LumaBatch::new(4, 4, &frames, None).unwrap();
        let mut out = Vec::new();
        CpuBackend::new().frame_stats(&batch, &mut out).unwrap();
        assert_eq!(out[0].abs_diff_sum, None);
        assert!(out[1].abs_diff_sum.is_some());
    }

    #[test]
    fn rejects_inconsistent_batches() {
        assert!(LumaBatch::new(4, 4, &[0; 17], None).is_err());
        assert!(LumaBatch::new(0, 4, &[], None).is_err());
        assert!(LumaBatch::new(4, 4, &[0; 16], Some(&[0; 15])).is_err());
    }
}
