//! Area-averaging a decoded plane down to analysis size.
//!
//! The detectors read 320-pixel-wide luma and the boundary model 48×27
//! colour thumbnails; a general-purpose scaler (GStreamer's `videoscale`)
//! filters every decoded pixel through a many-tap kernel to get there and
//! costs about as much CPU as the decoder itself at 720p. Here each output
//! sample is the plain mean of the input samples whose positions fall in its
//! cell: rows are first summed into one accumulator row (a loop the compiler
//! turns into wide vector adds), and each output row then sums its
//! accumulator cells once, so the work is one add per input sample.
//!
//! Cell edges are whole input samples (`[c·w/dw, (c+1)·w/dw)`), so cells of a
//! non-integer ratio differ by one sample in size: harmless for statistics
//! over whole frames and coarse grids, and exact for the usual integer ratios
//! (1280→320, 1920→320).

use crate::KernelError;

/// One plane of 8-bit samples inside a decoded frame.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
    /// Bytes from one row to the next.
    stride: usize,
    /// Bytes from one sample to the next: 1, or 2 for the interleaved
    /// chroma of NV12 (the offset of V within the pair is in `data`'s start).
    step: usize,
}

impl<'a> Plane<'a> {
    /// Checks that `data` holds `height` rows of `width` samples.
    pub fn new(
        data: &'a [u8],
        width: usize,
        height: usize,
        stride: usize,
        step: usize,
    ) -> Result<Self, KernelError> {
        if width == 0 || height == 0 || step == 0 {
            return Err(KernelError::InvalidBatch(format!(
                "empty plane {width}x{height} (sample step {step})"
            )));
        }
        let row = (width - 1)
            .checked_mul(step)
            .and_then(|r| r.checked_add(1))
            .filter(|&r| r <= stride)
            .ok_or_else(|| {
                KernelError::InvalidBatch(format!(
                    "a row of {width} samples {step} bytes apart does not fit a stride of {stride}"
                ))
            })?;
        let needed = (height - 1)
            .checked_mul(stride)
            .and_then(|b| b.checked_add(row));
        if needed.is_none_or(|n| n > data.len()) {
            return Err(KernelError::InvalidBatch(format!(
                "a {width}x{height} plane with stride {stride} needs more than the {} bytes given",
                data.len()
            )));
        }
        Ok(Self {
            data,
            width,
            height,
            stride,
            step,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    fn row(&self, y: usize) -> &'a [u8] {
        let start = y * self.stride;
        &self.data[start..start + (self.width - 1) * self.step + 1]
    }
}

/// Samples summed in 16 bits before they are carried into 32: 257 × 255 is
/// the most a `u16` holds.
const U16_TERMS: usize = 257;

/// Reusable accumulators: a plane of the same geometry as the last costs
/// no allocation.
#[derive(Debug, Default, Clone)]
pub struct Decimator {
    /// Column sums of up to [`U16_TERMS`] rows: twice as many lanes per
    /// vector add as 32-bit sums.
    acc16: Vec<u16>,
    acc: Vec<u32>,
    /// Input column where each output column's cell ends, and 1 / its width.
    col_ends: Vec<usize>,
    col_scale: Vec<f32>,
    geometry: (usize, usize),
}

impl Decimator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the `dw`×`dh` area average of `src` into `dst` (packed rows).
    /// Never enlarges: `dw`, `dh` must be at most the plane's size.
    pub fn run(
        &mut self,
        src: &Plane<'_>,
        dst: &mut [u8],
        dw: usize,
        dh: usize,
    ) -> Result<(), KernelError> {
        let (w, h) = (src.width, src.height);
        if dw == 0 || dh == 0 || dw > w || dh > h {
            return Err(KernelError::InvalidBatch(format!(
                "cannot area-average {w}x{h} to {dw}x{dh}"
            )));
        }
        if dst.len() != dw * dh {
            return Err(KernelError::InvalidBatch(format!(
                "output holds {} bytes, {dw}x{dh} needs {}",
                dst.len(),
                dw * dh
            )));
        }
        if self.geometry != (w, dw) {
            self.col_ends = (1..=dw).map(|c| c * w / dw).collect();
            // A division per output sample costs more than all the adds
            // before it; a multiply by the reciprocal is exact enough (sums
            // stay far below 2^24).
            self.col_scale = (0..dw)
                .map(|c| 1.0 / (self.col_ends[c] - c * w / dw) as f32)
                .collect();
            self.geometry = (w, dw);
        }
        self.acc16.resize(w, 0);
        // When a cell's column sums fit 16 bits (at most `U16_TERMS` rows to
        // a cell: any frame under 46 000 rows), each output row is its rows
        // summed straight into `acc16`, the first one stored rather than
        // added, and the cells summed from there in 32 bits: no clearing,
        // no widening pass, half the bytes read per cell. At 720p, four
        // rows to a cell, those passes had cost as much as the adds.
        let narrow = h.div_ceil(dh) <= U16_TERMS;
        if !narrow {
            self.acc.resize(w, 0);
        }
        let cells = Cells {
            w,
            dw,
            ends: &self.col_ends,
            scales: &self.col_scale,
        };
        for (r, out_row) in dst.chunks_exact_mut(dw).enumerate() {
            let (y0, y1) = (r * h / dh, (r + 1) * h / dh);
            let row_scale = 1.0 / (y1 - y0) as f32;
            if narrow {
                fold_row(&mut self.acc16, src, y0, |a, v| *a = v);
                for y in y0 + 1..y1 {
                    fold_row(&mut self.acc16, src, y, |a, v| *a += v);
                }
                cells.write(&self.acc16, out_row, row_scale);
                continue;
            }
            self.acc.fill(0);
            let mut y = y0;
            while y < y1 {
                let end = (y + U16_TERMS).min(y1);
                fold_row(&mut self.acc16, src, y, |a, v| *a = v);
                for y in y + 1..end {
                    fold_row(&mut self.acc16, src, y, |a, v| *a += v);
                }
                for (a, &v) in self.acc.iter_mut().zip(&self.acc16) {
                    *a += u32::from(v);
                }
                y = end;
            }
            cells.write(&self.acc, out_row, row_scale);
        }
        Ok(())
    }
}

/// Applies `op` to each sample of `acc` with the matching sample of row `y`
/// of `src`, widened: `*a = v` to start a cell's sums, `*a += v` after.
fn fold_row(acc: &mut [u16], src: &Plane<'_>, y: usize, op: impl Fn(&mut u16, u16)) {
    let row = src.row(y);
    if src.step == 1 {
        for (a, &v) in acc.iter_mut().zip(row) {
            op(a, u16::from(v));
        }
    } else {
        for (a, &v) in acc.iter_mut().zip(row.iter().step_by(src.step)) {
            op(a, u16::from(v));
        }
    }
}

/// Where an output row's cells start and end in the column sums.
struct Cells<'a> {
    w: usize,
    dw: usize,
    ends: &'a [usize],
    scales: &'a [f32],
}

impl Cells<'_> {
    /// One output row from `acc`, the input columns summed over the cell's
    /// rows (`row_scale` being 1 / their count).
    fn write<T: Copy + Into<u32>>(&self, acc: &[T], out_row: &mut [u8], row_scale: f32) {
        let scale = row_scale * self.scales[0];
        // Whole ratios (1280→320, 1920→320) sum fixed-size chunks the
        // compiler unrolls; the rest walk the cell edges.
        match (self.w / self.dw, self.w.is_multiple_of(self.dw)) {
            (2, true) => columns::<2, T>(acc, out_row, scale),
            (3, true) => columns::<3, T>(acc, out_row, scale),
            (4, true) => columns::<4, T>(acc, out_row, scale),
            (6, true) => columns::<6, T>(acc, out_row, scale),
            (8, true) => columns::<8, T>(acc, out_row, scale),
            _ => {
                let mut x0 = 0;
                let cells = out_row.iter_mut().zip(self.ends).zip(self.scales);
                for ((o, &x1), &scale) in cells {
                    let sum: u32 = acc[x0..x1].iter().map(|&v| v.into()).sum();
                    *o = (sum as f32 * scale * row_scale + 0.5) as u8;
                    x0 = x1;
                }
            }
        }
    }
}

/// Means of consecutive `K`-sample cells of `acc` (already summed over the
/// cell's rows), `scale` being 1 / the samples in a cell.
fn columns<const K: usize, T: Copy + Into<u32>>(acc: &[T], out: &mut [u8], scale: f32) {
    for (o, cell) in out.iter_mut().zip(acc.chunks_exact(K)) {
        let sum: u32 = cell.iter().map(|&v| v.into()).sum();
        *o = (sum as f32 * scale + 0.5) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimate(src: &Plane<'_>, dw: usize, dh: usize) -> Vec<u8> {
        let mut out = vec![0; dw * dh];
        Decimator::new().run(src, &mut out, dw, dh).unwrap();
        out
    }

    #[test]
    fn integer_ratio_is_the_exact_block_mean() {
        // 4x2 → 2x1: blocks {0,1,4,5} and {2,3,6,7}, with row padding.
        let data = [0, 10, 20, 30, 99, 40, 50, 60, 70, 99];
        let p = Plane::new(&data, 4, 2, 5, 1).unwrap();
        assert_eq!(decimate(&p, 2, 1), [25, 45]);
    }

    #[test]
    fn non_integer_ratio_keeps_a_flat_picture_flat_and_the_mean() {
        let (w, h) = (854, 480);
        let data: Vec<u8> = (0..w * h).map(|i| (i % w * 255 / (w - 1)) as u8).collect();
        let p = Plane::new(&data, w, h, w, 1).unwrap();
        let out = decimate(&p, 320, 180);
        // A horizontal ramp stays a ramp: rows equal, columns increasing.
        for row in out.chunks_exact(320) {
            assert_eq!(row, &out[..320]);
            assert!(row.windows(2).all(|p| p[0] <= p[1]));
        }
        let mean = |v: &[u8]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        assert!((mean(&out) - mean(&data)).abs() < 0.6);
        let flat = vec![77u8; w * h];
        let p = Plane::new(&flat, w, h, w, 1).unwrap();
        assert!(decimate(&p, 48, 27).iter().all(|&v| v == 77));
    }

    /// Every path (the unrolled whole ratios and the general one) against
    /// the definition, summed sample by sample.
    #[test]
    fn matches_the_naive_cell_mean() {
        for (w, h, dw, dh) in [
            (640, 360, 320, 180),
            (960, 540, 320, 180),
            (1280, 720, 320, 180),
            (1920, 1080, 320, 180),
            (2560, 1440, 320, 180),
            (854, 480, 320, 180),
            (1080, 1920, 320, 569),
            (321, 7, 48, 3),
            // Cells of more rows than one 16-bit pass holds, through the
            // general and the unrolled column sums.
            (1920, 1080, 48, 27),
            (64, 600, 2, 2),
            (96, 600, 48, 2),
        ] {
            let stride = w + 13;
            let data = crate::testing::noise(stride * h, 9);
            let p = Plane::new(&data, w, h, stride, 1).unwrap();
            let got = decimate(&p, dw, dh);
            for r in 0..dh {
                for c in 0..dw {
                    let (mut sum, mut n) = (0u32, 0u32);
                    for y in r * h / dh..(r + 1) * h / dh {
                        for x in c * w / dw..(c + 1) * w / dw {
                            sum += u32::from(data[y * stride + x]);
                            n += 1;
                        }
                    }
                    let want = f64::from(sum) / f64::from(n);
                    let g = f64::from(got[r * dw + c]);
                    assert!(
                        (g - want).abs() <= 0.5 + 1e-3,
                        "{w}x{h}→{dw}x{dh} at {c},{r}: {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn interleaved_chroma_reads_every_second_byte() {
        // NV12-style UV pairs: U = 100, V = 200.
        let uv: Vec<u8> = (0..8 * 4)
            .map(|i| if i % 2 == 0 { 100 } else { 200 })
            .collect();
        let u = Plane::new(&uv, 4, 4, 8, 2).unwrap();
        let v = Plane::new(&uv[1..], 4, 4, 8, 2).unwrap();
        assert_eq!(decimate(&u, 2, 2), [100; 4]);
        assert_eq!(decimate(&v, 2, 2), [200; 4]);
    }

    #[test]
    fn rejects_what_does_not_fit() {
        let data = [0u8; 16];
        assert!(Plane::new(&data, 4, 4, 3, 1).is_err());
        assert!(Plane::new(&data, 4, 5, 4, 1).is_err());
        assert!(Plane::new(&data, 0, 4, 4, 1).is_err());
        assert!(Plane::new(&data[2..], 2, 4, 4, 2).is_err());
        let p = Plane::new(&data, 4, 4, 4, 1).unwrap();
        let mut out = [0u8; 4];
        let mut d = Decimator::new();
        assert!(d.run(&p, &mut out, 8, 1).is_err());
        assert!(d.run(&p, &mut out, 2, 3).is_err());
        assert!(d.run(&p, &mut out, 2, 2).is_ok());
    }
}
