//! A learned proposer of transitions: a small network over multi-scale window
//! features of the kernel grids and the boundary model's outputs, trained on
//! generated clips (`sceneset::training_set`, seeds the tuning and held-out
//! clips never use) by `scripts/models/train_transitions.py`.
//!
//! TransNetV2 barely answers xfade's wipes and slides, and the hand-set
//! rules each see one shape of change at one scale. What every transition
//! shares, whatever its shape and length, is that the frames inside it are
//! made of the pictures at its two ends (a blend, or one region from each),
//! while the pictures at the ends hold still relative to how far apart they
//! are; a pan or a zoom brings in picture that neither end shows. The
//! features measure that at scales from 0.1 s to 2 s, and the network weighs
//! them against the model's probabilities. It only proposes: the kernel
//! features still classify each proposal ([`super::fusion`]) and veto what
//! returns to where it started.
//!
//! Pure arithmetic on data already in memory; the weights are a few kB of
//! JSON compiled in, so the detector needs no model file and no runtime.

use std::sync::OnceLock;

use monteur_kernels::FrameFeatures;
use monteur_models::transnet::Prediction;
use serde::Deserialize;

use super::fusion::grid_distance as distance;
use crate::analyse::Grid;

/// Window half-widths, in seconds, the features are measured at.
pub const SCALES_S: [f64; 5] = [0.1, 0.25, 0.5, 1.0, 2.0];
/// Features per scale ([`scale_features`]).
const PER_SCALE: usize = 6;
/// Features of the frame itself and the boundary model.
const OWN: usize = 7;
/// Length of one frame's feature vector.
pub const FEATURES: usize = SCALES_S.len() * PER_SCALE + OWN;

/// The feature vector of every frame, in order, made as it is consumed (a
/// three-hour input holds 300 000 frames: the vectors are not kept).
pub fn window_features<'a>(
    features: &'a [FrameFeatures],
    grids: &'a [Grid],
    predictions: &'a [Prediction],
    coarse: Option<&'a [Prediction]>,
    fps: f64,
) -> impl Iterator<Item = [f32; FEATURES]> + 'a {
    let n = features.len().min(grids.len()).min(predictions.len());
    let coarse = coarse.filter(|c| c.len() >= n);
    let ks: [usize; SCALES_S.len()] = SCALES_S.map(|s| ((s * fps).round() as usize).max(1));
    let near = ks[1];
    (0..n).map(move |t| {
        let mut v = [0.0f32; FEATURES];
        for (j, &k) in ks.iter().enumerate() {
            let f = scale_features(grids, n, t, k);
            v[j * PER_SCALE..(j + 1) * PER_SCALE].copy_from_slice(&f);
        }
        let o = SCALES_S.len() * PER_SCALE;
        let window = t.saturating_sub(near)..(t + near + 1).min(n);
        v[o] = predictions[t].single_frame;
        v[o + 1] = predictions[t].many_hot;
        v[o + 2] = predictions[window.clone()]
            .iter()
            .map(|p| p.many_hot)
            .fold(0.0, f32::max);
        v[o + 3] = coarse.map_or(0.0, |c| {
            c[window.clone()]
                .iter()
                .map(|p| p.single_frame)
                .fold(0.0, f32::max)
        });
        v[o + 4] = coarse.map_or(0.0, |c| c[t].many_hot);
        v[o + 5] = features[t].hist_distance.unwrap_or(0.0);
        // Distance from black or white, whichever is nearer: fades pass
        // through one of them.
        let l = features[t].mean_luma;
        v[o + 6] = ((l - 16.0).min(235.0 - l) / 110.0).clamp(0.0, 1.0);
        v
    })
}

/// At half-width `k` around frame `t`, with `a` and `b` the frames `k`
/// before and after (clamped to the clip):
/// - how far `a` and `b` are apart (log),
/// - that against the busier and the calmer of the stretches beyond them
///   (`a` against `k` before it, `b` against `k` after it): a change between
///   two steadier stretches stands out, a pan does not,
/// - how much of frame `t` one blend of `a` and `b` leaves unexplained, and
///   the blend's weight (a dissolve),
/// - how much of frame `t` neither `a` nor `b` explains cell by cell (a
///   wipe: each cell is one end or the other).
fn scale_features(grids: &[Grid], n: usize, t: usize, k: usize) -> [f32; PER_SCALE] {
    let at = |i: isize| &grids[i.clamp(0, n as isize - 1) as usize];
    let (ti, ki) = (t as isize, k as isize);
    let (a, b, g) = (at(ti - ki), at(ti + ki), &grids[t]);
    let cross = distance(a, b);
    let before = distance(at(ti - 2 * ki), a);
    let after = distance(b, at(ti + 2 * ki));
    let (mut dd, mut xd, mut xx) = (0.0f32, 0.0f32, 0.0f32);
    let mut either = 0.0f32;
    for ((&x, &y), &z) in a.iter().zip(b.iter()).zip(g.iter()) {
        let (x, y, z) = (f32::from(x), f32::from(y), f32::from(z));
        let (d, e) = (y - x, z - x);
        dd += d * d;
        xd += d * e;
        xx += e * e;
        either += (z - x).abs().min((z - y).abs());
    }
    let cells = g.len() as f32;
    let alpha = if dd > 0.0 {
        (xd / dd).clamp(0.0, 1.0)
    } else {
        0.0
    };
    // |e - alpha d|^2 expanded, so one pass serves both.
    let residual = (xx - 2.0 * alpha * xd + alpha * alpha * dd).max(0.0);
    // Two luma levels per cell of slack: compression noise on a still shot.
    let scale = (dd / cells).sqrt() + 2.0;
    [
        (1.0 + cross).ln(),
        ((cross + 2.0) / (before.max(after) + 2.0)).ln(),
        ((cross + 2.0) / (before.min(after) + 2.0)).ln(),
        ((residual / cells).sqrt() / scale).min(4.0),
        alpha,
        (either / cells / (cross + 2.0)).min(4.0),
    ]
}

/// The trained network: standardised inputs, one hidden layer of ReLUs, a
/// logistic output.
#[derive(Debug, Deserialize)]
struct Network {
    mean: Vec<f32>,
    std: Vec<f32>,
    w1: Vec<Vec<f32>>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: f32,
}

impl Network {
    fn fits(&self) -> bool {
        self.mean.len() == FEATURES
            && self.std.len() == FEATURES
            && self.w1.len() == self.b1.len()
            && self.w2.len() == self.b1.len()
            && self.w1.iter().all(|r| r.len() == FEATURES)
    }

    fn probability(&self, v: &[f32; FEATURES]) -> f32 {
        let mut x = [0.0f32; FEATURES];
        for (x, (v, (m, s))) in x
            .iter_mut()
            .zip(v.iter().zip(self.mean.iter().zip(&self.std)))
        {
            *x = (v - m) / s;
        }
        let z = self
            .w1
            .iter()
            .zip(&self.b1)
            .zip(&self.w2)
            .map(|((row, b), w)| {
                let h = row.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>() + b;
                h.max(0.0) * w
            })
            .sum::<f32>()
            + self.b2;
        1.0 / (1.0 + (-z).exp())
    }
}

fn network() -> Option<&'static Network> {
    static NET: OnceLock<Option<Network>> = OnceLock::new();
    NET.get_or_init(|| {
        serde_json::from_str::<Network>(include_str!("transitions.json"))
            .ok()
            .filter(Network::fits)
    })
    .as_ref()
}

/// Per frame, the probability that it lies inside a transition; `None` when
/// the compiled-in weights do not fit the features (a build error the tests
/// catch, never a silent zero).
pub fn probabilities(vectors: impl Iterator<Item = [f32; FEATURES]>) -> Option<Vec<f32>> {
    let net = network()?;
    Some(vectors.map(|v| net.probability(&v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_weights_fit_the_features() {
        let net = network().expect("transitions.json parses and fits FEATURES");
        assert!(!net.b1.is_empty());
        assert!(net.std.iter().all(|s| *s > 0.0));
    }

    fn shot(k: usize, t: usize) -> Grid {
        std::array::from_fn(|i| {
            let (x, y) = (i % 16, i / 16);
            let base = if k == 0 { 40 + x * 10 } else { 200 - y * 15 };
            (base + (t * 7 + i) % 3) as u8
        })
    }

    #[test]
    fn a_blend_is_explained_by_its_ends_and_a_wipe_cell_by_cell() {
        let a = shot(0, 0);
        let b = shot(1, 0);
        let mid: Grid = std::array::from_fn(|i| ((u16::from(a[i]) + u16::from(b[i])) / 2) as u8);
        let wiped: Grid = std::array::from_fn(|i| if i % 16 < 8 { b[i] } else { a[i] });
        let frames = |m: Grid| vec![a, a, a, m, b, b, b];
        let blend = scale_features(&frames(mid), 7, 3, 1);
        let wipe = scale_features(&frames(wiped), 7, 3, 1);
        // The blend: one mix explains it, at about half way.
        assert!(blend[3] < 0.05, "{blend:?}");
        assert!((blend[4] - 0.5).abs() < 0.05, "{blend:?}");
        // The wipe: no single mix does, but every cell is one end or the other.
        assert!(wipe[3] > 0.3, "{wipe:?}");
        assert!(wipe[5] < 0.05, "{wipe:?}");
        // Both stand out from ends that hold still.
        assert!(blend[1] > 2.0 && wipe[1] > 2.0, "{blend:?} {wipe:?}");
    }
}
