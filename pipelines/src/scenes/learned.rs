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
//! A second network, the cut head ([`cut_features`]), rates each frame as
//! the first of a new shot from its step against the steps, the path and
//! the change around it: it finds cuts between alike shots that no single
//! rule separates from motion, and confirms the cuts the rules find.
//!
//! Pure arithmetic on data already in memory; the weights are a few kB of
//! JSON compiled in, so the detector needs no model file and no runtime.

use std::sync::OnceLock;

use monteur_kernels::FrameFeatures;
use monteur_models::transnet::Prediction;
use serde::Deserialize;

use super::fusion::{VIDEO_BLACK, VIDEO_WHITE, grid_distance as distance};
use crate::PipelineError;
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
        v[o + 6] = level(features[t].mean_luma);
        v
    })
}

/// How far a mean luma is from black or white, whichever is nearer, 0..1
/// (1 about half way between them): fades pass through one of them. The
/// scale, 110, is what the networks were trained with.
fn level(luma: f32) -> f32 {
    ((luma - VIDEO_BLACK).min(VIDEO_WHITE - luma) / 110.0).clamp(0.0, 1.0)
}

/// Features of a cut between frames `t - 1` and `t`.
pub const CUT_FEATURES: usize = 14;

/// Per frame `t`, what says a cut lands on it (`t` the first frame of the
/// new shot); frame 0 has none. Made as consumed, like [`window_features`].
///
/// The hand-set cut rules each look at one of these; the failures they leave
/// are the ones a single measure cannot see: two shots alike enough that the
/// step is small yet still the only step around, and a slide or push of three
/// frames whose every step is as large as a cut's.
pub fn cut_features<'a>(
    features: &'a [FrameFeatures],
    grids: &'a [Grid],
    predictions: &'a [Prediction],
    fps: f64,
) -> impl Iterator<Item = [f32; CUT_FEATURES]> + 'a {
    let n = features.len().min(grids.len()).min(predictions.len());
    // A quarter of a second either side: longer than a flash or a short
    // transition, shorter than the briefest shot.
    let k = ((0.25 * fps).round() as usize).max(2);
    let d = move |i: usize, j: usize| distance(&grids[i.min(n - 1)], &grids[j.min(n - 1)]);
    let step = move |i: usize| if i == 0 { 0.0 } else { d(i - 1, i) };
    let ratio = |x: f32, y: f32| ((x + 2.0) / (y + 2.0)).ln();
    (0..n).map(move |t| {
        let mut v = [0.0f32; CUT_FEATURES];
        if t == 0 {
            return v;
        }
        let s = step(t);
        let before = (t.saturating_sub(k).max(1)..t)
            .map(step)
            .fold(0.0f32, f32::max);
        let after = (t + 1..(t + k + 1).min(n)).map(step).fold(0.0f32, f32::max);
        // The step against the path through the frames either side of it,
        // and against the whole change across the window.
        let path = step(t - 1) + s + if t + 1 < n { step(t + 1) } else { 0.0 };
        let across = d(t.saturating_sub(k + 1), (t + k).min(n - 1));
        // Does the picture come back (a flash, a passing object)? The
        // nearest any later frame gets to the old shot, and any earlier one
        // to the new.
        let back = (t + 1..(t + k + 1).min(n))
            .map(|j| d(t - 1, j))
            .fold(f32::MAX, f32::min);
        let back = if back == f32::MAX { s } else { back };
        let echo = (t.saturating_sub(k + 1)..t - 1)
            .map(|j| d(j, t))
            .fold(f32::MAX, f32::min);
        let echo = if echo == f32::MAX { s } else { echo };
        let (f, g) = (&features[t - 1], &features[t]);
        let p = &predictions[t - 1..(t + 1).min(n)];
        v[0] = (1.0 + s).ln();
        v[1] = ratio(s, before);
        v[2] = ratio(s, after);
        v[3] = s / (path + 1.0);
        v[4] = ratio(s, across);
        v[5] = ratio(back, s);
        v[6] = ratio(echo, s);
        v[7] = g.hist_distance.unwrap_or(0.0);
        v[8] = g.residual_diff.unwrap_or(0.0);
        v[9] = p.iter().map(|q| q.single_frame).fold(0.0, f32::max);
        v[10] = p.iter().map(|q| q.many_hot).fold(0.0, f32::max);
        v[11] = level(f.mean_luma);
        v[12] = level(g.mean_luma);
        v[13] = (g.mean_luma - f.mean_luma).abs() / 64.0;
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
    fn fits(&self, width: usize) -> bool {
        self.mean.len() == width
            && self.std.len() == width
            && self.w1.len() == self.b1.len()
            && self.w2.len() == self.b1.len()
            && self.w1.iter().all(|r| r.len() == width)
    }

    fn probability(&self, v: &[f32]) -> f32 {
        let x = || {
            v.iter()
                .zip(self.mean.iter().zip(&self.std))
                .map(|(v, (m, s))| (v - m) / s)
        };
        let z = self
            .w1
            .iter()
            .zip(&self.b1)
            .zip(&self.w2)
            .map(|((row, b), w)| {
                let h = row.iter().zip(x()).map(|(a, b)| a * b).sum::<f32>() + b;
                h.max(0.0) * w
            })
            .sum::<f32>()
            + self.b2;
        1.0 / (1.0 + (-z).exp())
    }

    fn parse(json: &str, width: usize) -> Option<Network> {
        serde_json::from_str::<Network>(json)
            .ok()
            .filter(|n| n.fits(width))
    }
}

static NET: OnceLock<Option<Network>> = OnceLock::new();
static CUT_NET: OnceLock<Option<Network>> = OnceLock::new();

fn network() -> Option<&'static Network> {
    NET.get_or_init(|| Network::parse(include_str!("transitions.json"), FEATURES))
        .as_ref()
}

fn cut_network() -> Option<&'static Network> {
    CUT_NET
        .get_or_init(|| Network::parse(include_str!("cuts.json"), CUT_FEATURES))
        .as_ref()
}

/// Replaces the compiled-in weights for the rest of the process with the
/// JSON `train_transitions.py` writes: for evaluation tools that score
/// networks on clips they were not trained on (one process per fold). Must
/// come before the first detection.
pub fn use_weights(transitions: &str, cuts: &str) -> Result<(), PipelineError> {
    let parse = |json: &str, width: usize, what: &str| {
        Network::parse(json, width).ok_or_else(|| {
            PipelineError::Model(format!("{what} weights do not fit {width} inputs"))
        })
    };
    let (t, c) = (
        parse(transitions, FEATURES, "transition")?,
        parse(cuts, CUT_FEATURES, "cut")?,
    );
    let taken = NET.set(Some(t)).is_ok() && CUT_NET.set(Some(c)).is_ok();
    if taken {
        Ok(())
    } else {
        Err(PipelineError::Model(
            "the networks were already in use".into(),
        ))
    }
}

/// Per frame, the probability that it lies inside a transition; `None` when
/// the compiled-in weights do not fit the features (a build error the tests
/// catch, never a silent zero).
pub fn probabilities(vectors: impl Iterator<Item = [f32; FEATURES]>) -> Option<Vec<f32>> {
    let net = network()?;
    Some(vectors.map(|v| net.probability(&v)).collect())
}

/// Per frame, the probability that a cut lands on it; `None` as above.
pub fn cut_probabilities(vectors: impl Iterator<Item = [f32; CUT_FEATURES]>) -> Option<Vec<f32>> {
    let net = cut_network()?;
    Some(vectors.map(|v| net.probability(&v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_weights_fit_the_features() {
        for net in [
            network().expect("transitions.json parses and fits FEATURES"),
            cut_network().expect("cuts.json parses and fits CUT_FEATURES"),
        ] {
            assert!(!net.b1.is_empty());
            assert!(net.std.iter().all(|s| *s > 0.0));
        }
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

    fn still(n: usize) -> Vec<FrameFeatures> {
        (0..n)
            .map(|_| FrameFeatures {
                mean_luma: 120.0,
                mean_abs_diff: Some(0.0),
                residual_diff: Some(0.0),
                hist_distance: Some(0.0),
                hist: monteur_kernels::features::flat_hist(),
            })
            .collect()
    }

    fn quiet(n: usize) -> Vec<Prediction> {
        vec![
            Prediction {
                single_frame: 0.0,
                many_hot: 0.0,
            };
            n
        ]
    }

    /// `n` frames of one shot, then of the other from frame `at` on.
    fn cut_at(n: usize, at: usize) -> Vec<Grid> {
        (0..n).map(|t| shot(usize::from(t >= at), t)).collect()
    }

    /// The same shots, the second sliding in over three frames from `first`
    /// (a quarter, a half, three quarters of the picture), whole after them.
    fn slide_from(n: usize, first: usize) -> Vec<Grid> {
        (0..n)
            .map(|t| {
                let (a, b) = (shot(0, t), shot(1, t));
                let edge = ((t + 1).saturating_sub(first) * 4).min(16);
                std::array::from_fn(|i| if i % 16 < edge { b[i] } else { a[i] })
            })
            .collect()
    }

    #[test]
    fn a_cut_carries_its_whole_path_and_a_slide_does_not() {
        // At 25 fps: the cut at 10, the slide over 9..12.
        let (cut, slide) = (cut_at(20, 10), slide_from(20, 9));
        let (features, predictions) = (still(20), quiet(20));
        let at = |grids: &[Grid], t: usize| {
            cut_features(&features, grids, &predictions, 25.0)
                .nth(t)
                .expect("a row per frame")
        };
        let (c, s) = (at(&cut, 10), at(&slide, 10));
        // The cut's step is all of the path through its neighbours and of
        // the change across the window; the slide's middle step a third.
        assert!(c[3] > 0.9 && c[4] > -0.1, "{c:?}");
        assert!(s[3] < 0.5 && s[4] < -0.5, "{s:?}");
        // The cut stands out from the frames before it; the slide's step
        // does not stand out from the slide's first.
        assert!(c[1] > 2.0 && s[1] < 0.3, "{c:?} {s:?}");
        // Nothing after the cut comes back to the frame before it.
        assert!(c[5] > -0.2, "{c:?}");
    }

    #[test]
    fn the_cut_head_rates_the_cut_and_not_the_slide() {
        let (cut, slide) = (cut_at(40, 20), slide_from(40, 19));
        let (features, predictions) = (still(40), quiet(40));
        let rate = |grids: &[Grid]| {
            cut_probabilities(cut_features(&features, grids, &predictions, 25.0))
                .expect("cuts.json fits")
        };
        let (c, s) = (rate(&cut), rate(&slide));
        assert!(c[20] >= 0.5, "{:?}", &c[18..23]);
        let mut elsewhere = c.iter().enumerate().filter(|&(t, _)| t != 20);
        assert!(elsewhere.all(|(_, &p)| p < 0.5), "{c:?}");
        assert!(s.iter().all(|&p| p < 0.5), "{s:?}");
    }
}
