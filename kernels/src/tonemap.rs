//! HDR to SDR: 10-bit BT.2100 (PQ or HLG) 4:2:0 to 8-bit BT.709 4:2:0.
//!
//! The same chain as the recipe people check against,
//! `zscale=t=linear:npl=100, zscale=p=bt709, tonemap=hable:desat=0,
//! zscale=t=bt709:m=bt709:r=tv`, so a render and its analysis look like
//! what ffmpeg users see:
//!
//! 1. limited-range Y'CbCr (BT.2020 non-constant luminance) to R'G'B';
//! 2. the transfer's inverse to linear light, 1.0 = 100 cd/m² (PQ: the
//!    ST 2084 EOTF; HLG: the inverse OETF and a system gamma of 1.2 for a
//!    1000 cd/m² display, applied to each component as zimg does; BT.2100's
//!    OOTF scales by the scene luminance instead, which differs only on
//!    saturated colours, and matching the recipe people check against wins);
//! 3. BT.2020 to BT.709 primaries, in linear light;
//! 4. Hable's filmic curve on the brightest component, every component
//!    scaled by the same factor so hues do not shift, with a signal peak of
//!    10 (1000 cd/m²), which is what ffmpeg's `tonemap` assumes once the
//!    frame is linear and carries no light-level metadata;
//! 5. the BT.1886 inverse EOTF (display-referred BT.709) and limited-range BT.709 Y'CbCr; chroma is taken from
//!    the mean of each 2×2 block's R'G'B'.
//!
//! Curves whose input is a code value are tables; the rest is a handful of
//! multiplies per pixel.

use crate::KernelError;

/// The HDR transfer characteristic of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// SMPTE ST 2084 (HDR10, Dolby Vision base layers).
    Pq,
    /// ARIB STD-B67 hybrid log-gamma (broadcast, most phones' HDR video).
    Hlg,
}

/// Signal peak the curve maps to white, in units of 100 cd/m².
const PEAK: f32 = 10.0;
/// Entries of the non-linear-to-linear table over [0, 1]: four per 10-bit
/// code, read nearest (R'G'B' fall between codes).
const CODES: usize = 4096;
/// Entries of the linear-to-BT.709 table, evenly spaced in the square root
/// of linear light so the steep start of the 1/2.4 power is finely sampled
/// (the first step is a fifth of an 8-bit code), read nearest.
const OETF_STEPS: usize = 4096;
/// Entries of the curve's gain table (see [`ToneMapper::gain`]).
const GAIN_STEPS: usize = 8192;

/// BT.2020 to BT.709 primaries, linear light (ITU-R BT.2087).
const TO_709: [[f32; 3]; 3] = [
    [1.660_491, -0.587_641, -0.072_850],
    [-0.124_550, 1.132_9, -0.008_349],
    [-0.018_151, -0.100_579, 1.118_73],
];

/// A 10-bit plane: little-endian 16-bit samples, `stride` bytes a row.
#[derive(Debug, Clone, Copy)]
pub struct Plane10<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// An 8-bit plane being written.
#[derive(Debug)]
pub struct PlaneOut<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
}

/// Tone-maps frames of one transfer; build once per stream.
#[derive(Debug, Clone)]
pub struct ToneMapper {
    transfer: Transfer,
    /// Non-linear component (per 10-bit code over [0, 1]) to display light.
    to_linear: Vec<f32>,
    /// Linear light [0, 1] to the BT.709 non-linear value.
    oetf: Vec<f32>,
    /// The curve's gain `hable(s) / (hable(peak) · s)` for the brightest
    /// component `s` over [0, `brightest`], spaced in the square root.
    gain: Vec<f32>,
    /// The most linear light the transfer can carry: 100 (PQ's 10 000
    /// cd/m²) or 10 (HLG on a 1000 cd/m² display).
    brightest: f32,
}

impl ToneMapper {
    pub fn new(transfer: Transfer) -> Self {
        let to_linear = (0..CODES)
            .map(|i| {
                let e = i as f64 / (CODES - 1) as f64;
                (match transfer {
                    Transfer::Pq => pq_eotf(e) / 100.0,
                    Transfer::Hlg => 10.0 * hlg_inverse_oetf(e).powf(1.2),
                }) as f32
            })
            .collect();
        let oetf = (0..OETF_STEPS)
            .map(|i| {
                let root = i as f64 / (OETF_STEPS - 1) as f64;
                bt709_oetf(root * root) as f32
            })
            .collect();
        let brightest = match transfer {
            Transfer::Pq => 100.0f32,
            Transfer::Hlg => 10.0,
        };
        let white = hable(PEAK);
        let gain = (0..GAIN_STEPS)
            .map(|i| {
                let root = i as f32 / (GAIN_STEPS - 1) as f32;
                let s = (root * root * brightest).max(1e-6);
                hable(s) / (white * s)
            })
            .collect();
        Self {
            transfer,
            to_linear,
            oetf,
            gain,
            brightest,
        }
    }

    pub fn transfer(&self) -> Transfer {
        self.transfer
    }

    /// Maps one `width`×`height` frame (even or odd sizes; chroma planes are
    /// `ceil(w/2)`×`ceil(h/2)`).
    pub fn frame(
        &self,
        (width, height): (usize, usize),
        input: [Plane10<'_>; 3],
        output: [PlaneOut<'_>; 3],
    ) -> Result<(), KernelError> {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        check_in(&input[0], width, height)?;
        check_in(&input[1], cw, ch)?;
        check_in(&input[2], cw, ch)?;
        let [oy, ou, ov] = output;
        check_out(&oy, width, height)?;
        check_out(&ou, cw, ch)?;
        check_out(&ov, cw, ch)?;
        // Bands of rows on every core: one core maps about ten 1080p
        // frames a second, a third of real time.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 16)
            .min(ch.max(1));
        let band = ch.div_ceil(threads).max(1);
        let (strides, geometry) = ([oy.stride, ou.stride, ov.stride], (width, height));
        let (mut ys, mut us, mut vs) = (oy.data, ou.data, ov.data);
        std::thread::scope(|scope| {
            let mut first = 0;
            while first < ch {
                let rows = band.min(ch - first);
                let y = take(&mut ys, 2 * rows * strides[0]);
                let u = take(&mut us, rows * strides[1]);
                let v = take(&mut vs, rows * strides[2]);
                scope.spawn(move || {
                    self.band(geometry, first..first + rows, &input, [y, u, v], strides)
                });
                first += rows;
            }
        });
        Ok(())
    }

    /// Chroma rows `rows` (luma rows twice as many) into `out`, whose
    /// first rows are those of `rows.start`.
    fn band(
        &self,
        (width, height): (usize, usize),
        rows: std::ops::Range<usize>,
        input: &[Plane10<'_>; 3],
        [oy, ou, ov]: [&mut [u8]; 3],
        [sy, su, sv]: [usize; 3],
    ) {
        let cw = width.div_ceil(2);
        let code = |row: &[u8], x: usize| -> f32 {
            f32::from(u16::from_le_bytes([row[2 * x], row[2 * x + 1]]).min(1023))
        };
        for (r, by) in rows.enumerate() {
            let (urow, vrow) = (row(&input[1], by, cw), row(&input[2], by, cw));
            let lines = (2 * by..(2 * by + 2).min(height)).collect::<Vec<_>>();
            let terms: Vec<[f32; 3]> = (0..cw)
                .map(|bx| chroma_terms(code(urow, bx), code(vrow, bx)))
                .collect();
            let mut sums = vec![[0f32; 3]; cw];
            for (k, &y) in lines.iter().enumerate() {
                let yrow = row(&input[0], y, width);
                let out = &mut oy[(2 * r + k) * sy..][..width];
                for (x, o) in out.iter_mut().enumerate() {
                    let bx = x / 2;
                    let luma = (code(yrow, x) - 64.0) * (1.0 / 876.0);
                    let rgb = self.pixel(luma, terms[bx]);
                    *o = quantise(
                        16.0 + 219.0 * (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]),
                    );
                    for (s, c) in sums[bx].iter_mut().zip(rgb) {
                        *s += c;
                    }
                }
            }
            let (uo, vo) = (&mut ou[r * su..][..cw], &mut ov[r * sv..][..cw]);
            for (bx, sum) in sums.iter().enumerate() {
                let n = (lines.len() * (2 * bx + 2).min(width).saturating_sub(2 * bx)) as f32;
                let [red, green, blue] = sum.map(|s| s / n);
                let y709 = 0.2126 * red + 0.7152 * green + 0.0722 * blue;
                uo[bx] = quantise(128.0 + 224.0 * (blue - y709) / 1.8556);
                vo[bx] = quantise(128.0 + 224.0 * (red - y709) / 1.5748);
            }
        }
    }

    /// One pixel, BT.2100 luma in [0, 1] and its block's chroma terms
    /// ([`chroma_terms`]) in, BT.709 R'G'B' in [0, 1] out.
    #[inline(always)]
    fn pixel(&self, luma: f32, chroma: [f32; 3]) -> [f32; 3] {
        let nonlinear = chroma.map(|c| luma + c);
        let lin = nonlinear.map(|e| self.lookup_linear(e));
        let mut rgb = [0f32; 3];
        for (out, row) in rgb.iter_mut().zip(TO_709) {
            *out = row[0] * lin[0] + row[1] * lin[1] + row[2] * lin[2];
        }
        let sig = rgb[0].max(rgb[1]).max(rgb[2]);
        let i = ((sig / self.brightest).clamp(0.0, 1.0).sqrt() * (GAIN_STEPS - 1) as f32 + 0.5)
            as usize;
        let scale = self.gain[i.min(GAIN_STEPS - 1)];
        rgb.map(|c| self.lookup_oetf(c * scale))
    }

    #[inline(always)]
    fn lookup_linear(&self, e: f32) -> f32 {
        let i = (e.clamp(0.0, 1.0) * (CODES - 1) as f32 + 0.5) as usize;
        self.to_linear[i.min(CODES - 1)]
    }

    #[inline(always)]
    fn lookup_oetf(&self, l: f32) -> f32 {
        let i = (l.clamp(0.0, 1.0).sqrt() * (OETF_STEPS - 1) as f32 + 0.5) as usize;
        self.oetf[i.min(OETF_STEPS - 1)]
    }
}

/// What a block's chroma codes add to its luma to give R', G', B'
/// (BT.2020 non-constant luminance, limited range).
fn chroma_terms(u: f32, v: f32) -> [f32; 3] {
    let (cb, cr) = ((u - 512.0) / 896.0, (v - 512.0) / 896.0);
    [1.4746 * cr, -0.164_553 * cb - 0.571_353 * cr, 1.8814 * cb]
}

/// The first `len` bytes of `rest` (all of it when shorter), leaving the
/// remainder in `rest`.
fn take<'a>(rest: &mut &'a mut [u8], len: usize) -> &'a mut [u8] {
    let all = std::mem::take(rest);
    let (head, tail) = all.split_at_mut(len.min(all.len()));
    *rest = tail;
    head
}

/// Row `y` of a 10-bit plane, `w` samples.
fn row<'a>(p: &Plane10<'a>, y: usize, w: usize) -> &'a [u8] {
    &p.data[y * p.stride..][..2 * w]
}

/// Nearest 8-bit code. (`f32::round` is a libm call on baseline x86-64,
/// a third of the frame's time here.)
#[inline(always)]
fn quantise(v: f32) -> u8 {
    (v.clamp(0.0, 255.0) + 0.5) as u8
}

fn check_in(p: &Plane10<'_>, w: usize, h: usize) -> Result<(), KernelError> {
    let need = (h.saturating_sub(1)) * p.stride + 2 * w;
    if p.stride < 2 * w || p.data.len() < need {
        return Err(KernelError::InvalidBatch(format!(
            "10-bit plane of {} bytes (stride {}) cannot hold {w}x{h}",
            p.data.len(),
            p.stride
        )));
    }
    Ok(())
}

fn check_out(p: &PlaneOut<'_>, w: usize, h: usize) -> Result<(), KernelError> {
    let need = (h.saturating_sub(1)) * p.stride + w;
    if p.stride < w || p.data.len() < need {
        return Err(KernelError::InvalidBatch(format!(
            "8-bit plane of {} bytes (stride {}) cannot hold {w}x{h}",
            p.data.len(),
            p.stride
        )));
    }
    Ok(())
}

/// SMPTE ST 2084: non-linear value to cd/m².
fn pq_eotf(e: f64) -> f64 {
    const M1: f64 = 2610.0 / 16384.0;
    const M2: f64 = 2523.0 / 4096.0 * 128.0;
    const C1: f64 = 3424.0 / 4096.0;
    const C2: f64 = 2413.0 / 4096.0 * 32.0;
    const C3: f64 = 2392.0 / 4096.0 * 32.0;
    let p = e.max(0.0).powf(1.0 / M2);
    10_000.0 * ((p - C1).max(0.0) / (C2 - C3 * p)).powf(1.0 / M1)
}

/// ARIB STD-B67: non-linear value to scene light in [0, 1].
fn hlg_inverse_oetf(e: f64) -> f64 {
    const A: f64 = 0.178_832_77;
    const B: f64 = 1.0 - 4.0 * A;
    const C: f64 = 0.559_910_73;
    if e <= 0.5 {
        e * e / 3.0
    } else {
        (((e - C) / A).exp() + B) / 12.0
    }
}

/// Display light to a BT.709 signal the way a display-referred conversion
/// does (zimg's default, hence ffmpeg's `zscale`): the inverse of the BT.1886
/// EOTF, a pure 2.4 gamma, rather than the camera's OETF, which would leave
/// mid-tones about a tenth darker than what SDR screens are meant to show.
fn bt709_oetf(l: f64) -> f64 {
    l.max(0.0).powf(1.0 / 2.4)
}

/// John Hable's filmic curve, with the constants ffmpeg's `tonemap` uses.
fn hable(x: f32) -> f32 {
    let (a, b, c, d, e, f) = (0.15f32, 0.50, 0.10, 0.20, 0.02, 0.30);
    (x * (x * a + b * c) + d * e) / (x * (x * a + b) + d * f) - e / f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey_frame(code: u16, w: usize, h: usize) -> [Vec<u8>; 3] {
        let y: Vec<u8> = std::iter::repeat_n(code.to_le_bytes(), w * h)
            .flatten()
            .collect();
        let c: Vec<u8> = std::iter::repeat_n(512u16.to_le_bytes(), w.div_ceil(2) * h.div_ceil(2))
            .flatten()
            .collect();
        [y, c.clone(), c]
    }

    fn map(t: &ToneMapper, code: u16) -> [u8; 3] {
        let (w, h) = (3, 3);
        let input = grey_frame(code, w, h);
        let (mut y, mut u, mut v) = (vec![0u8; 9], vec![0u8; 4], vec![0u8; 4]);
        t.frame(
            (w, h),
            [
                Plane10 {
                    data: &input[0],
                    stride: 2 * w,
                },
                Plane10 {
                    data: &input[1],
                    stride: 4,
                },
                Plane10 {
                    data: &input[2],
                    stride: 4,
                },
            ],
            [
                PlaneOut {
                    data: &mut y,
                    stride: w,
                },
                PlaneOut {
                    data: &mut u,
                    stride: 2,
                },
                PlaneOut {
                    data: &mut v,
                    stride: 2,
                },
            ],
        )
        .expect("valid planes");
        assert!(y.iter().all(|&p| p == y[0]), "uniform input, {y:?}");
        [y[0], u[0], v[0]]
    }

    #[test]
    fn black_stays_black_and_grey_stays_grey() {
        for transfer in [Transfer::Pq, Transfer::Hlg] {
            let t = ToneMapper::new(transfer);
            let [y, u, v] = map(&t, 64);
            assert_eq!((y, u, v), (16, 128, 128), "{transfer:?}");
            // A neutral input keeps neutral chroma at every level.
            for code in [200u16, 400, 600, 800, 940] {
                let [_, u, v] = map(&t, code);
                assert!(
                    u.abs_diff(128) <= 1 && v.abs_diff(128) <= 1,
                    "{code}: {u} {v}"
                );
            }
        }
    }

    #[test]
    fn brighter_in_is_brighter_out_and_white_is_near_white() {
        for transfer in [Transfer::Pq, Transfer::Hlg] {
            let t = ToneMapper::new(transfer);
            let ys: Vec<u8> = (64..=940).step_by(16).map(|c| map(&t, c)[0]).collect();
            assert!(ys.windows(2).all(|w| w[0] <= w[1]), "{transfer:?}: {ys:?}");
            assert!(ys.last().is_some_and(|&y| y > 150), "{transfer:?}: {ys:?}");
        }
        // PQ's 1000 cd/m² (code ~ 769) is the curve's white: near full scale.
        let pq = ToneMapper::new(Transfer::Pq);
        assert!(map(&pq, 769)[0] >= 225, "{:?}", map(&pq, 769));
        // 100 cd/m² (code ~ 520) sits mid-scale, as SDR reference white
        // does after a filmic curve.
        let mid = map(&pq, 520)[0];
        assert!((60..=160).contains(&mid), "{mid}");
    }

    #[test]
    fn short_planes_are_refused() {
        let t = ToneMapper::new(Transfer::Pq);
        let (mut y, mut u, mut v) = (vec![0u8; 16], vec![0u8; 4], vec![0u8; 4]);
        let short = vec![0u8; 10];
        let e = t.frame(
            (4, 4),
            [
                Plane10 {
                    data: &short,
                    stride: 8,
                },
                Plane10 {
                    data: &short,
                    stride: 4,
                },
                Plane10 {
                    data: &short,
                    stride: 4,
                },
            ],
            [
                PlaneOut {
                    data: &mut y,
                    stride: 4,
                },
                PlaneOut {
                    data: &mut u,
                    stride: 2,
                },
                PlaneOut {
                    data: &mut v,
                    stride: 2,
                },
            ],
        );
        assert!(e.is_err());
    }
}
