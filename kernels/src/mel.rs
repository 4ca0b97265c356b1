//! Whisper's log-mel spectrogram: the per-window audio kernel.
//!
//! One window is 30 s of 16 kHz mono audio (shorter input is zero-padded, as
//! Whisper does). Each 400-sample Hann-windowed frame, hop 160, with reflect
//! padding at the ends, becomes a 201-bin power spectrum, then 80 mel bands
//! (Slaney scale and normalisation, as librosa and Whisper build them), then
//! `log10`, clamped to 8 below the window's maximum and mapped by `(x+4)/4`.
//! Checked against the `whisper80.onnx` preprocessor in `models/tests/`.
//!
//! The CPU computes the spectrum with a real FFT; the CUDA kernel with a
//! direct DFT over precomputed Hann-weighted tables (one thread per bin, no
//! cross-thread shuffles). Both are float32 and agree to rounding, well inside
//! the parity test's tolerance.

use std::f64::consts::PI;

pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
pub const N_BINS: usize = N_FFT / 2 + 1;
pub const N_MELS: usize = 80;
/// Samples in one window (30 s).
pub const WINDOW_SAMPLES: usize = 480_000;
/// Frames in one window's spectrogram.
pub const WINDOW_FRAMES: usize = WINDOW_SAMPLES / HOP;

/// The constant tables of the transform, built once.
#[derive(Debug, Clone)]
pub struct MelTables {
    /// The periodic Hann window.
    pub hann: Vec<f32>,
    /// `cos(2πkn/N) * hann(n)` and `sin(...) * hann(n)`, `N_BINS` rows of `N_FFT`.
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
    /// Mel filter weights, `N_MELS` rows of `N_BINS`.
    pub filters: Vec<f32>,
    /// For each mel band, the range of bins with non-zero weight.
    pub bands: Vec<(usize, usize)>,
}

fn hz_to_mel(f: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let log_step = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_hz / f_sp + (f / min_log_hz).ln() / log_step
    } else {
        f / f_sp
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let log_step = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (log_step * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

impl MelTables {
    /// Whisper's 80-band configuration.
    pub fn whisper80() -> Self {
        let hann = |n: usize| 0.5 - 0.5 * (2.0 * PI * n as f64 / N_FFT as f64).cos();
        let mut cos = vec![0f32; N_BINS * N_FFT];
        let mut sin = vec![0f32; N_BINS * N_FFT];
        for k in 0..N_BINS {
            for n in 0..N_FFT {
                // Reduce k*n mod N first: the angle stays small and exact.
                let angle = 2.0 * PI * ((k * n) % N_FFT) as f64 / N_FFT as f64;
                cos[k * N_FFT + n] = (angle.cos() * hann(n)) as f32;
                sin[k * N_FFT + n] = (angle.sin() * hann(n)) as f32;
            }
        }
        let nyquist = f64::from(SAMPLE_RATE) / 2.0;
        let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(nyquist));
        let hz: Vec<f64> = (0..N_MELS + 2)
            .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (N_MELS + 1) as f64))
            .collect();
        let mut filters = vec![0f32; N_MELS * N_BINS];
        let mut bands = Vec::with_capacity(N_MELS);
        for m in 0..N_MELS {
            let norm = 2.0 / (hz[m + 2] - hz[m]);
            let (mut first, mut last) = (N_BINS, 0);
            for k in 0..N_BINS {
                let f = nyquist * k as f64 / (N_BINS - 1) as f64;
                let lower = (f - hz[m]) / (hz[m + 1] - hz[m]);
                let upper = (hz[m + 2] - f) / (hz[m + 2] - hz[m + 1]);
                let w = lower.min(upper).max(0.0) * norm;
                if w > 0.0 {
                    filters[m * N_BINS + k] = w as f32;
                    first = first.min(k);
                    last = k;
                }
            }
            bands.push(if first <= last {
                (first, last + 1)
            } else {
                (0, 0)
            });
        }
        let hann = (0..N_FFT).map(|n| hann(n) as f32).collect();
        Self {
            hann,
            cos,
            sin,
            filters,
            bands,
        }
    }
}

/// Working buffers and the FFT plan of the CPU transform, reused across
/// windows.
pub struct MelScratch {
    fft: std::sync::Arc<dyn realfft::RealToComplex<f32>>,
    frame: Vec<f32>,
    spectrum: Vec<realfft::num_complex::Complex<f32>>,
    scratch: Vec<realfft::num_complex::Complex<f32>>,
    power: Vec<f32>,
}

impl std::fmt::Debug for MelScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MelScratch")
    }
}

impl Default for MelScratch {
    fn default() -> Self {
        let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        Self {
            frame: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            power: vec![0.0; N_BINS],
            fft,
        }
    }
}

/// `x` reflected at the window edges as `numpy.pad(mode="reflect")` does.
pub fn reflect(samples: &[f32], i: isize) -> f32 {
    let n = samples.len() as isize;
    if n == 1 {
        return samples[0];
    }
    let period = 2 * (n - 1);
    let mut j = i.rem_euclid(period);
    if j >= n {
        j = period - j;
    }
    samples[j as usize]
}

/// The log-mel spectrogram of one window (exactly `WINDOW_SAMPLES` samples),
/// written to `out` as `N_MELS` rows of `WINDOW_FRAMES`.
pub fn log_mel_window(t: &MelTables, window: &[f32], out: &mut [f32], s: &mut MelScratch) {
    let mut max = f32::NEG_INFINITY;
    for f in 0..WINDOW_FRAMES {
        let start = (f * HOP) as isize - (N_FFT / 2) as isize;
        for (n, v) in s.frame.iter_mut().enumerate() {
            *v = reflect(window, start + n as isize) * t.hann[n];
        }
        // Lengths come from the plan itself, so this cannot fail.
        let _ = s
            .fft
            .process_with_scratch(&mut s.frame, &mut s.spectrum, &mut s.scratch);
        for (p, c) in s.power.iter_mut().zip(&s.spectrum) {
            *p = c.norm_sqr();
        }
        for (m, &(a, b)) in t.bands.iter().enumerate() {
            let w = &t.filters[m * N_BINS + a..m * N_BINS + b];
            let mel: f32 = w.iter().zip(&s.power[a..b]).map(|(x, y)| x * y).sum();
            let v = mel.max(1e-10).log10();
            out[m * WINDOW_FRAMES + f] = v;
            max = max.max(v);
        }
    }
    for v in out.iter_mut() {
        *v = (v.max(max - 8.0) + 4.0) / 4.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let got: Vec<f32> = (-3..7).map(|i| reflect(&x, i)).collect();
        // numpy.pad([1,2,3,4], 3, mode="reflect") == [4,3,2,1,2,3,4,3,2,1]
        assert_eq!(got, [4.0, 3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]);
    }

    #[test]
    fn filters_cover_the_spectrum_once() {
        let t = MelTables::whisper80();
        assert_eq!(t.bands.len(), N_MELS);
        assert!(t.bands.iter().all(|&(a, b)| b > a));
        // Slaney-normalised triangles have unit area in Hz.
        let area: f64 = (0..N_BINS)
            .map(|k| f64::from(t.filters[10 * N_BINS + k]))
            .sum::<f64>()
            * 40.0;
        assert!((area - 1.0).abs() < 0.2, "band 10 area {area}");
    }

    #[test]
    fn a_pure_tone_lands_in_its_mel_band() {
        let t = MelTables::whisper80();
        let tone: Vec<f32> = (0..WINDOW_SAMPLES)
            .map(|i| (2.0 * PI * 1000.0 * i as f64 / f64::from(SAMPLE_RATE)).sin() as f32 * 0.5)
            .collect();
        let mut out = vec![0f32; N_MELS * WINDOW_FRAMES];
        log_mel_window(&t, &tone, &mut out, &mut MelScratch::default());
        let frame = 1500;
        let loudest = (0..N_MELS)
            .max_by(|&a, &b| {
                out[a * WINDOW_FRAMES + frame].total_cmp(&out[b * WINDOW_FRAMES + frame])
            })
            .unwrap_or(0);
        let centre = |m: usize| {
            let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(8000.0));
            mel_to_hz(lo + (hi - lo) * (m + 1) as f64 / (N_MELS + 1) as f64)
        };
        assert!(
            (centre(loudest) - 1000.0).abs() < 60.0,
            "1 kHz peaked in band {loudest} ({} Hz)",
            centre(loudest)
        );
    }
}
