//! Gradual transitions: fades to and from black, and dissolves.
//!
//! A fade is a monotone luma ramp into or out of a run of black frames; it must
//! last long enough and move far enough that a cut to black (one big step) is
//! not mistaken for one.
//!
//! A dissolve is found by twin comparison: a run of frames that each differ a
//! little from their predecessor (too little for a cut) while the frames on
//! either side of the run differ as much as two shots do. Camera motion also
//! makes runs of moderate change, but it has no edges: a dissolve stands out
//! from the steadier footage just before and after it, a pan goes on changing.

use monteur_kernels::FrameFeatures;
use monteur_kernels::features::hist_distance;

use super::{SceneSettings, TransitionKind};

/// A gradual transition over frames `[start, end)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradual {
    pub kind: TransitionKind,
    pub start: usize,
    pub end: usize,
    pub score: f32,
}

/// Fades and dissolves, in order, never overlapping each other or a cut.
pub fn detect_gradual(
    features: &[FrameFeatures],
    cuts: &[(usize, f32)],
    fps: f64,
    s: &SceneSettings,
) -> Vec<Gradual> {
    let mut found = detect_fades(features, fps, s);
    let mut taken = vec![false; features.len()];
    for g in &found {
        taken[g.start..g.end].fill(true);
    }
    for (i, f) in features.iter().enumerate() {
        if f.mean_luma <= s.black_level {
            taken[i] = true;
        }
    }
    for &(c, _) in cuts {
        taken[c] = true;
    }
    found.extend(detect_dissolves(features, &taken, fps, s));
    found.sort_by_key(|g| g.start);
    found
}

fn frames(seconds: f64, fps: f64) -> usize {
    ((seconds * fps).round() as usize).max(1)
}

fn detect_fades(features: &[FrameFeatures], fps: f64, s: &SceneSettings) -> Vec<Gradual> {
    let n = features.len();
    let luma = |i: usize| features[i].mean_luma;
    let black = |i: usize| luma(i) <= s.black_level;
    let min_len = frames(s.min_fade_s, fps);
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        if !black(i) {
            i += 1;
            continue;
        }
        let (bs, mut be) = (i, i);
        while be < n && black(be) {
            be += 1;
        }
        i = be;
        // Fade out: frames darkening step by step up to the first black frame.
        if bs > 0 {
            let start = fade_out_start(bs, &luma, s.fade_step);
            let drop = luma(start - 1) - luma(bs);
            if bs - start >= min_len && drop >= s.min_fade_drop {
                out.push(Gradual {
                    kind: TransitionKind::FadeOut,
                    start,
                    end: bs,
                    score: (drop / 255.0).min(1.0),
                });
            }
        }
        // Fade in: frames brightening step by step after the last black frame.
        if be < n {
            let end = fade_in_end(be, n, &luma, s.fade_step);
            let rise = luma(end - 1) - luma(be - 1);
            if end - be >= min_len && rise >= s.min_fade_drop {
                out.push(Gradual {
                    kind: TransitionKind::FadeIn,
                    start: be,
                    end,
                    score: (rise / 255.0).min(1.0),
                });
            }
        }
    }
    out
}

/// The earliest frame of the darkening ramp that ends at black frame `bs`
/// (`bs` itself when there is none). One frame that does not darken (a
/// duplicated frame) may sit inside the ramp.
pub(super) fn fade_out_start(bs: usize, luma: &impl Fn(usize) -> f32, step: f32) -> usize {
    let (mut k, mut start, mut stalled) = (bs, bs, false);
    while k >= 1 {
        if luma(k) < luma(k - 1) - step {
            start = k;
            stalled = false;
        } else if stalled || k == bs {
            break;
        } else {
            stalled = true;
        }
        k -= 1;
    }
    start
}

/// One past the last frame of the brightening ramp that starts after the last
/// black frame `be - 1` (`be` when there is none).
pub(super) fn fade_in_end(be: usize, n: usize, luma: &impl Fn(usize) -> f32, step: f32) -> usize {
    let (mut k, mut end, mut stalled) = (be, be, false);
    while k < n {
        if luma(k) > luma(k - 1) + step {
            end = k + 1;
            stalled = false;
        } else if stalled || k == be {
            break;
        } else {
            stalled = true;
        }
        k += 1;
    }
    end
}

fn detect_dissolves(
    features: &[FrameFeatures],
    taken: &[bool],
    fps: f64,
    s: &SceneSettings,
) -> Vec<Gradual> {
    let n = features.len();
    let active: Vec<bool> = (0..n)
        .map(|i| {
            !taken[i]
                && features[i]
                    .hist_distance
                    .is_some_and(|d| d >= s.dissolve_low)
        })
        .collect();
    let (min_len, max_len) = (frames(s.min_dissolve_s, fps), frames(s.max_dissolve_s, fps));
    let mut out = Vec::new();
    let mut i = 1;
    while i < n {
        if !active[i] {
            i += 1;
            continue;
        }
        // A run of active frames, bridging gaps of up to two quiet frames.
        let start = i;
        let mut end = i + 1;
        let mut j = end;
        while j < n && j - end <= s.dissolve_gap && !taken[j] {
            if active[j] {
                end = j + 1;
            }
            j += 1;
        }
        i = end;
        let len = end - start;
        if len < min_len || len > max_len || end >= n {
            continue;
        }
        let (before, after) = (start - 1, end);
        let distance = hist_distance(&features[before].hist, &features[after].hist);
        if distance < s.dissolve_high || !stands_out(features, start, end, s) {
            continue;
        }
        out.push(Gradual {
            kind: TransitionKind::Dissolve,
            start,
            end,
            score: distance,
        });
    }
    out
}

/// The run `[start, end)` changes at least `contrast` times as much per frame
/// as the half-second-ish of footage on each side of it.
fn stands_out(features: &[FrameFeatures], start: usize, end: usize, s: &SceneSettings) -> bool {
    let change = |i: usize| features[i].hist_distance.unwrap_or(0.0);
    let mean = |r: std::ops::Range<usize>| {
        let len = r.len().max(1) as f32;
        r.map(change).sum::<f32>() / len
    };
    let edge = (end - start).clamp(3, 12);
    let inside = mean(start..end);
    let before = mean(start.saturating_sub(edge).max(1)..start);
    let after = mean(end + 1..(end + 1 + edge).min(features.len()));
    inside >= s.dissolve_contrast * before.max(after).max(s.dissolve_floor)
}
