//! Word alignment from cross-attention: the attention of a speech model's
//! alignment heads, normalised and smoothed, then a monotonic path through it
//! by dynamic time warping (the method of openai-whisper's `timing.py`, which
//! faster-whisper's CTranslate2 backend follows).
//!
//! CPU only, on purpose: a 30 s window is at most a few hundred tokens by
//! 1500 frames (a few hundred thousand cells, once per window), next to the
//! decoder pass that produces the attention and the hundreds of decoder
//! steps before it. A CUDA kernel would add a copy each way for work the CPU
//! finishes in passing; it is not worth a kernel until a profile says so.

/// Rows of attention scores, one matrix per head: `heads × rows × cols`,
/// row-major, `cols` being the model's frames.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadScores<'a> {
    pub data: &'a [f32],
    pub heads: usize,
    pub rows: usize,
    /// Frames per row in `data`.
    pub stride: usize,
}

/// The alignment matrix (`rows × cols`, row-major) of Whisper's recipe: for
/// each head, a softmax over the first `cols` frames of each row, each frame
/// standardised over the rows, a median filter of `width` along the frames;
/// then the mean over the heads.
pub fn alignment_matrix(scores: &HeadScores<'_>, cols: usize, width: usize) -> Vec<f32> {
    let (rows, cols) = (scores.rows, cols.min(scores.stride));
    let mut mean = vec![0f32; rows * cols];
    if rows == 0 || cols == 0 || scores.heads == 0 {
        return mean;
    }
    let mut w = vec![0f32; rows * cols];
    let mut filtered = vec![0f32; cols];
    for h in 0..scores.heads {
        for r in 0..rows {
            let start = (h * rows + r) * scores.stride;
            let Some(src) = scores.data.get(start..start + cols) else {
                return mean;
            };
            let dst = &mut w[r * cols..(r + 1) * cols];
            let max = src.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = (s - max).exp();
                sum += *d;
            }
            let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
            dst.iter_mut().for_each(|d| *d *= inv);
        }
        // Standardise each frame over the rows (population deviation), so a
        // frame every token attends to says nothing about which token it is.
        for c in 0..cols {
            let m = (0..rows).map(|r| w[r * cols + c]).sum::<f32>() / rows as f32;
            let var = (0..rows)
                .map(|r| (w[r * cols + c] - m).powi(2))
                .sum::<f32>()
                / rows as f32;
            let sd = var.sqrt();
            for r in 0..rows {
                let v = &mut w[r * cols + c];
                *v = if sd > 0.0 { (*v - m) / sd } else { 0.0 };
            }
        }
        for r in 0..rows {
            median_filter(&w[r * cols..(r + 1) * cols], width, &mut filtered);
            for (m, f) in mean[r * cols..(r + 1) * cols].iter_mut().zip(&filtered) {
                *m += f / scores.heads as f32;
            }
        }
    }
    mean
}

/// Median of each `width`-wide window along `x`, reflecting at the ends (as
/// `torch.nn.functional.pad(mode="reflect")` does); `width` odd. A row too
/// short to reflect is copied unchanged.
pub fn median_filter(x: &[f32], width: usize, out: &mut Vec<f32>) {
    out.clear();
    let pad = width / 2;
    if width < 3 || x.len() <= pad {
        out.extend_from_slice(x);
        return;
    }
    let n = x.len() as isize;
    let at = |i: isize| -> f32 {
        let j = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        x[j as usize]
    };
    let mut win = vec![0f32; width];
    for i in 0..n {
        for (k, w) in win.iter_mut().enumerate() {
            *w = at(i + k as isize - pad as isize);
        }
        win.sort_unstable_by(f32::total_cmp);
        out.push(win[pad]);
    }
}

/// The cheapest monotonic path through `cost` (`rows × cols`, row-major)
/// from the first cell to the last, moving right, down or diagonally: each
/// step's `(row, col)`, in order. Ties prefer moving along the frames, as
/// openai-whisper's `dtw_cpu` does, so the results match it.
pub fn dtw(cost: &[f32], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    if rows == 0 || cols == 0 || cost.len() < rows * cols {
        return Vec::new();
    }
    let w = cols + 1;
    let mut acc = vec![f32::INFINITY; (rows + 1) * w];
    let mut trace = vec![0u8; (rows + 1) * w];
    acc[0] = 0.0;
    for j in 1..=cols {
        for i in 1..=rows {
            let c0 = acc[(i - 1) * w + j - 1];
            let c1 = acc[(i - 1) * w + j];
            let c2 = acc[i * w + j - 1];
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            acc[i * w + j] = cost[(i - 1) * cols + j - 1] + c;
            trace[i * w + j] = t;
        }
    }
    let (mut i, mut j) = (rows, cols);
    let mut path = Vec::with_capacity(rows + cols);
    while i > 0 && j > 0 {
        path.push((i - 1, j - 1));
        match trace[i * w + j] {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path
}

/// For each row, the first column the path reaches it at: the frame a token
/// starts at.
pub fn row_starts(path: &[(usize, usize)], rows: usize) -> Vec<usize> {
    let mut starts = vec![usize::MAX; rows];
    for &(r, c) in path {
        if let Some(s) = starts.get_mut(r) {
            *s = (*s).min(c);
        }
    }
    // A row the path skipped diagonally cannot happen (each step moves at
    // most one row), but keep starts monotonic whatever the input.
    let mut last = 0;
    for s in &mut starts {
        if *s == usize::MAX {
            *s = last;
        }
        last = *s;
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_filter_reflects_at_the_ends() {
        let mut out = Vec::new();
        median_filter(&[5.0, 1.0, 9.0, 2.0, 7.0], 3, &mut out);
        // Reflected: [1,5,1,9,2,7,2] -> medians of each 3.
        assert_eq!(out, vec![1.0, 5.0, 2.0, 7.0, 2.0]);
        median_filter(&[3.0, 1.0], 7, &mut out);
        assert_eq!(out, vec![3.0, 1.0]);
    }

    #[test]
    fn dtw_follows_the_cheap_diagonal_band() {
        // Three tokens over nine frames: token k is cheap on frames 3k..3k+2.
        let (rows, cols) = (3, 9);
        let cost: Vec<f32> = (0..rows * cols)
            .map(|i| {
                let (r, c) = (i / cols, i % cols);
                if c / 3 == r { -1.0 } else { 1.0 }
            })
            .collect();
        let path = dtw(&cost, rows, cols);
        assert_eq!(path.first(), Some(&(0, 0)));
        assert_eq!(path.last(), Some(&(2, 8)));
        assert!(
            path.windows(2)
                .all(|p| p[1].0 >= p[0].0 && p[1].1 >= p[0].1)
        );
        assert_eq!(row_starts(&path, rows), vec![0, 3, 6]);
    }

    #[test]
    fn alignment_matrix_picks_the_attended_frame() {
        // One head, two tokens; token 0 attends to frame 1, token 1 to frame 4.
        let (rows, stride) = (2, 8);
        let mut data = vec![0f32; rows * stride];
        data[1] = 10.0;
        data[stride + 4] = 10.0;
        let m = alignment_matrix(
            &HeadScores {
                data: &data,
                heads: 1,
                rows,
                stride,
            },
            6,
            1,
        );
        assert_eq!(m.len(), rows * 6);
        let argmax = |r: usize| {
            (0..6)
                .max_by(|&a, &b| m[r * 6 + a].total_cmp(&m[r * 6 + b]))
                .unwrap()
        };
        assert_eq!((argmax(0), argmax(1)), (1, 4));
    }
}
