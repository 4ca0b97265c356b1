//! Boundaries from the learned model, kinds and spans from the kernels.
//!
//! TransNetV2 finds where shots change far better than hand-set rules on
//! footage nobody tuned for (fast dissolves, wipes, short fades), but says
//! nothing about what kind of change it saw. The kernel features do: a dip of
//! the mean luma is a fade through black (or a peak, through white); one frame
//! carrying the whole change is a cut; a gradual change that every part of
//! the picture follows at once is a dissolve, one that sweeps across it is a
//! wipe. So the model proposes, the features classify, and the features also
//! veto what returns to where it started (a flash, a dimmed light, a
//! subtitle).

use monteur_kernels::FrameFeatures;
use monteur_kernels::features::hist_distance;
use monteur_models::transnet::Prediction;

use super::{SceneSettings, TransitionKind};
use crate::analyse::Grid;

/// A detected transition over frames `[start, end)` (a cut: `start == end`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub kind: TransitionKind,
    pub start: usize,
    pub end: usize,
    pub score: f32,
}

/// Luma of black in video range: the floor a fade's dip is measured from.
pub(super) const VIDEO_BLACK: f32 = 16.0;
/// Luma of white in video range.
pub(super) const VIDEO_WHITE: f32 = 235.0;

/// Transitions found by the boundary model, classified by the kernel features,
/// plus what the learned networks and strong kernel cuts find where the model
/// saw nothing; every cut confirmed by the learned cut head.
pub fn detect_fused(
    features: &[FrameFeatures],
    grids: &[Grid],
    predictions: &[Prediction],
    coarse: Option<&[Prediction]>,
    fps: f64,
    s: &SceneSettings,
) -> Vec<Span> {
    let n = features.len().min(predictions.len()).min(grids.len());
    if n < 2 {
        return Vec::new();
    }
    let max_len = frames(s.max_dissolve_s, fps);
    let mut found: Vec<Span> = Vec::new();
    // The cut head, when any setting reads it.
    let cut_p = (s.learned_cut_threshold <= 1.0 || s.learned_cut_confirm > 0.0)
        .then(|| {
            super::learned::cut_probabilities(super::learned::cut_features(
                &features[..n],
                &grids[..n],
                &predictions[..n],
                fps,
            ))
        })
        .flatten();
    let at = Frames {
        features,
        grids,
        cut_p: cut_p.as_deref(),
    };
    let flash = s.flash_frames.max(frames(s.flash_s, fps));
    for (start, end, b, peak) in proposals(predictions, n, s.boundary_threshold, max_len, s) {
        if returns(
            features,
            grids,
            start.max(1),
            end.max(b + 1).min(n),
            flash,
            s,
        ) {
            continue;
        }
        found.extend(classify(&at, start.max(1), end, peak, Gate::StandOut, s));
    }
    // The coarse pass sees a transition of seconds as the model's training
    // footage showed a short one; it proposes only where the full-rate pass
    // found nothing, and the features classify as before.
    if let Some(coarse) = coarse.filter(|c| c.len() >= n) {
        for (start, end, b, peak) in proposals(coarse, n, s.coarse_threshold, max_len, s) {
            let (start, end) = (start.max(1), end.max(b + 1).min(n));
            if found
                .iter()
                .any(|f| start < f.end.max(f.start + 1) && f.start < end)
                || returns(features, grids, start, end, flash, s)
            {
                continue;
            }
            found.extend(classify(&at, start, end, peak, Gate::Settle, s));
        }
    }
    // The learned proposer (`learned`): where its probability holds above
    // the threshold and nothing was found yet. It finds changes of any
    // length, so the proposal must either stand out or join two settled
    // pictures (pans and zooms fire it otherwise); the features give the
    // kind and veto a picture that comes back.
    if s.learned_threshold <= 1.0 {
        let rows = super::learned::window_features(
            &features[..n],
            &grids[..n],
            &predictions[..n],
            coarse,
            fps,
        );
        if let Some(p) = super::learned::probabilities(rows) {
            let p: Vec<Prediction> = p
                .into_iter()
                .map(|q| Prediction {
                    single_frame: q,
                    many_hot: q,
                })
                .collect();
            let shortest = frames(s.learned_min_s, fps);
            for (start, end) in hysteresis(&p, n, s.learned_threshold, s.learned_span_threshold) {
                let (start, end) = (start.max(1), end.min(n));
                if end - start < shortest
                    || found
                        .iter()
                        .any(|f| start < f.end.max(f.start + 1) && f.start < end)
                    || returns(features, grids, start, end, flash, s)
                {
                    continue;
                }
                let peak = p[start..end]
                    .iter()
                    .map(|q| q.single_frame)
                    .fold(0.0f32, f32::max);
                found.extend(classify(&at, start, end, peak, Gate::Either, s));
            }
        }
    }
    // Kernel cuts strong enough to stand on their own, where the model saw
    // nothing (it was trained on footage, not on every synthetic edge).
    let min_gap = frames(s.min_scene_s, fps);
    let kernel_cuts = super::detect_cuts(&features[..n], fps, s);
    if s.kernel_gradual {
        for g in super::detect_gradual(&features[..n], &kernel_cuts, fps, s) {
            let (start, end) = (g.start.max(1), g.end.max(g.start + 1).min(n));
            if found
                .iter()
                .any(|f| start < f.end.max(f.start + 1) && f.start < end)
                || returns(features, grids, start, end, flash, s)
            {
                continue;
            }
            let kind = match g.kind {
                TransitionKind::Dissolve if is_wipe(grids, start, end, s) => TransitionKind::Wipe,
                k => k,
            };
            found.push(Span {
                kind,
                start,
                end,
                score: g.score,
            });
        }
    }
    // The cut head's own peaks, where nothing was found: cuts between shots
    // alike enough that the step is small, yet still the only one around.
    let learned_cuts: Vec<(usize, f32)> = match &cut_p {
        Some(p) if s.learned_cut_threshold <= 1.0 => (1..n)
            .filter(|&t| {
                p[t] >= s.learned_cut_threshold
                    && (t.saturating_sub(min_gap)..(t + min_gap + 1).min(n))
                        .all(|u| p[u] < p[t] || (p[u] == p[t] && u >= t))
            })
            .map(|t| (t, p[t]))
            .collect(),
        _ => Vec::new(),
    };
    let strong = kernel_cuts
        .into_iter()
        .filter(|&(c, score)| score >= s.kernel_cut_score && confirmed(&at, c, s));
    let mut cuts: Vec<(usize, f32)> = strong.chain(learned_cuts).collect();
    cuts.sort_by_key(|c| c.0);
    for (c, score) in cuts {
        if found
            .iter()
            .any(|f| c + min_gap > f.start && c < f.end.max(f.start + 1) + min_gap)
        {
            continue;
        }
        found.push(Span {
            kind: TransitionKind::Cut,
            start: c,
            end: c,
            score,
        });
    }
    // Changes between two steady stretches of picture that neither the
    // model nor the kernels' rules caught: wipes and slow transitions.
    if s.novelty_ratio > 0.0 {
        let k = frames(s.novelty_s, fps).max(2);
        let r = novelty(grids, n, k);
        // Only where both stretches are whole: at the ends of the input the
        // ratio compares a few frames with nothing.
        for t in k..n.saturating_sub(k) {
            let lo = t.saturating_sub(k / 2);
            let hi = (t + k / 2 + 1).min(n);
            if r[t] < s.novelty_ratio || (lo..hi).any(|u| r[u] > r[t] || (r[u] == r[t] && u < t)) {
                continue;
            }
            if found
                .iter()
                .any(|f| t + k / 2 > f.start && t < f.end.max(f.start + 1) + k / 2)
            {
                continue;
            }
            let (start, end) = widen(grids, t, t + 1);
            if returns(features, grids, start, end, flash, s) {
                continue;
            }
            found.extend(classify(&at, start, end, r[t], Gate::StandOut, s));
        }
    }
    found.sort_by_key(|f| f.start);
    // Two proposals for one change (the model's spans can touch): keep the
    // first, which the later one overlaps.
    let mut out: Vec<Span> = Vec::with_capacity(found.len());
    for f in found {
        // A cut that would leave a scene shorter than `min_scene_s` at
        // either end of the input: the model's windows are padded there
        // with copies of the first and last frames, and what it sees is the
        // padding, not a shot.
        if f.kind == TransitionKind::Cut && (f.start < min_gap || f.start + min_gap > n) {
            continue;
        }
        match out.last() {
            Some(last) if f.start < last.end.max(last.start + 1) => {}
            _ => out.push(f),
        }
    }
    out
}

/// The model's proposals: each run of single-frame probabilities at or above
/// `threshold` (`[a, b)`), widened over the neighbours the many-hot head puts
/// in the same transition (it covers every frame of one, the single-frame
/// head only its middle), up to `max_len` a side. Returns `(start, end, b,
/// peak)`.
fn proposals(
    p: &[Prediction],
    n: usize,
    threshold: f32,
    max_len: usize,
    s: &SceneSettings,
) -> Vec<(usize, usize, usize, f32)> {
    regions(p, n, threshold)
        .into_iter()
        .map(|(a, b)| {
            let peak = p[a..b]
                .iter()
                .map(|q| q.single_frame)
                .fold(0.0f32, f32::max);
            let mut start = a;
            while start > 1 && a - start < max_len && p[start - 1].many_hot >= s.span_threshold {
                start -= 1;
            }
            let mut end = b;
            while end < n && end - b < max_len && p[end].many_hot >= s.span_threshold {
                end += 1;
            }
            (start, end, b, peak)
        })
        .collect()
}

/// Runs of frames at or above `high` (bridging single-frame dips), each
/// widened over its neighbours at or above `low`, runs that then touch
/// merged: a long transition whose probability sags in the middle stays one.
fn hysteresis(p: &[Prediction], n: usize, high: f32, low: f32) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (mut start, mut end) in regions(p, n, high) {
        while start > 0 && p[start - 1].single_frame >= low {
            start -= 1;
        }
        while end < n && p[end].single_frame >= low {
            end += 1;
        }
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// Runs of frames at or above `threshold`, bridging single-frame dips, as
/// `[start, end)`.
fn regions(p: &[Prediction], n: usize, threshold: f32) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        if p[i].single_frame < threshold {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        let mut j = end;
        while j < n && j - end <= 1 {
            if p[j].single_frame >= threshold {
                end = j + 1;
            }
            j += 1;
        }
        out.push((start, end));
        i = end;
    }
    out
}

fn frames(seconds: f64, fps: f64) -> usize {
    ((seconds * fps).round() as usize).max(1)
}

/// What [`classify`] reads of every frame.
struct Frames<'a> {
    features: &'a [FrameFeatures],
    grids: &'a [Grid],
    /// The learned cut head's probabilities, when a setting reads them.
    cut_p: Option<&'a [f32]>,
}

/// The cut head gives frame `k` or one beside it `learned_cut_confirm`
/// (always true when the head does not run).
fn confirmed(at: &Frames<'_>, k: usize, s: &SceneSettings) -> bool {
    at.cut_p.is_none_or(|p| {
        let hi = (k + 2).min(p.len());
        p[k.saturating_sub(1).min(hi)..hi]
            .iter()
            .any(|&q| q >= s.learned_cut_confirm)
    })
}

/// What a gradual proposal must show before it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Change faster than the footage around it ([`stand_out`]), which a
    /// transition of seconds does not: the model's full-rate pass, the
    /// kernels' novelty.
    StandOut,
    /// Join two pictures that hold still ([`settle`]): the model's coarse
    /// pass.
    Settle,
    /// Either of the two: the learned proposer, which finds both kinds.
    Either,
}

/// What happened over `[start, end)`: nothing (the picture came back), a cut,
/// fades, a dissolve or a wipe. `start >= 1`. A gradual change must pass
/// `gate`.
fn classify(
    at: &Frames<'_>,
    start: usize,
    end: usize,
    peak: f32,
    gate: Gate,
    s: &SceneSettings,
) -> Vec<Span> {
    let (features, grids) = (at.features, at.grids);
    let n = features.len();
    let before = start - 1;
    if let Some(fades) = fades(features, start, end, peak, s) {
        // A fade darkens (or lightens) the whole picture at once; a wipe
        // through black (xfade's `rectcrop`, a closing iris) reaches the
        // same dip one region at a time, which the sweep measure sees.
        if let (Some(first), Some(last)) = (fades.first(), fades.last()) {
            // Followed out to its ends, the dip may give back the picture
            // it started from: a light dimmed and raised within one shot.
            if returns(
                features,
                grids,
                first.start.max(1),
                last.end.max(first.start + 1).min(n),
                s.flash_frames,
                s,
            ) {
                return Vec::new();
            }
            if let [lone] = fades.as_slice()
                && let Some(cut) = flash_beside_a_cut(at, lone, s)
            {
                return cut;
            }
            let swept = fades
                .iter()
                .map(|f| sweep(grids, f.start.max(1), f.end.max(f.start + 1), s))
                .sum::<f32>()
                / fades.len() as f32;
            if swept >= s.wipe_sweep {
                return vec![Span {
                    kind: TransitionKind::Wipe,
                    start: first.start,
                    end: last.end,
                    score: peak,
                }];
            }
        }
        return fades;
    }
    // The frame that carries most of the change: a cut if it carries nearly
    // all of it. Grid differences add up over a dissolve or a wipe (each step
    // moves a share of the total), where histogram distances do not. The model
    // marks the last frame of the old shot, so the new one may start just
    // after the region.
    let last = (end + 1).min(n);
    let (k, k_change) = (start..last)
        .map(|i| (i, grid_distance(&grids[i - 1], &grids[i])))
        .fold(
            (start, 0.0f32),
            |best, x| if x.1 > best.1 { x } else { best },
        );
    let total = grid_distance(&grids[before], &grids[last.min(n - 1)]);
    // Differences between frames of a moving picture do not add up: each
    // step of a slide or a push is as far from the last as the two ends
    // are from each other. So the frame must also carry that share of the
    // path through the picture just before it and just after it, which the
    // frames either side of a cut sit at and a slide's do not.
    let pre = grid_distance(&grids[before], &grids[k - 1]);
    let post = grid_distance(&grids[k], &grids[last.min(n - 1)]);
    if k_change >= s.cut_share * total && k_change >= s.cut_path_share * (pre + k_change + post) {
        // The whole picture changing level or colour (a flat background
        // turning another colour) moves every grid cell but keeps the
        // structure: the mean-compensated difference says no.
        if super::frame_score(&features[k], s) < s.cut_min_score {
            return Vec::new();
        }
        // The cut head has seen short slides, pushes and motion whose one
        // step carries the change as a cut's does. Where it does not call
        // this a cut, nothing is: weighing the span as a gradual change
        // instead turned a false cut into a false wipe on the tuning clips
        // and found nothing on the training pool.
        if !confirmed(at, k, s) {
            return Vec::new();
        }
        return vec![Span {
            kind: TransitionKind::Cut,
            start: k,
            end: k,
            score: peak,
        }];
    }
    let (start, end) = widen(grids, start, end);
    let passes = match gate {
        Gate::Settle => settle(grids, start, end) >= s.coarse_contrast,
        Gate::StandOut => stand_out(grids, start, end) >= s.gradual_contrast,
        Gate::Either => {
            stand_out(grids, start, end) >= s.gradual_contrast
                || settle(grids, start, end) >= s.coarse_contrast
        }
    };
    if !passes {
        return Vec::new();
    }
    let kind = if is_wipe(grids, start, end, s) {
        TransitionKind::Wipe
    } else {
        TransitionKind::Dissolve
    };
    vec![Span {
        kind,
        start,
        end,
        score: peak,
    }]
}

/// Widens a gradual transition's `[start, end)` to the frames still moving
/// towards the other shot: going back from the start, each frame is further
/// from the shot after than the one following it, until the old shot is
/// reached (and likewise forwards). Frame-rate conversion repeats frames, so
/// two frames that do not move are bridged.
fn widen(grids: &[Grid], start: usize, end: usize) -> (usize, usize) {
    let n = grids.len();
    let (a, b) = (start - 1, end.min(n - 1));
    let total = grid_distance(&grids[a], &grids[b]);
    let eps = (total * 0.01).max(0.25);
    let (mut s, mut stalled) = (start, 0);
    let mut k = start;
    while k > 1 && stalled <= 2 {
        let (near, far) = (
            grid_distance(&grids[k - 1], &grids[b]),
            grid_distance(&grids[k - 2], &grids[b]),
        );
        if far > near + eps {
            s = k - 1;
            stalled = 0;
        } else {
            stalled += 1;
        }
        k -= 1;
    }
    let (mut e, mut stalled) = (end, 0);
    let mut k = end;
    while k + 1 < n && stalled <= 2 {
        let (near, far) = (
            grid_distance(&grids[k], &grids[a]),
            grid_distance(&grids[k + 1], &grids[a]),
        );
        if far > near + eps {
            e = k + 1;
            stalled = 0;
        } else {
            stalled += 1;
        }
        k += 1;
    }
    (s.max(1), e)
}

/// Foote's novelty as a ratio: for each frame, how much the `k` frames
/// before it differ from the `k` after, against how much each stretch varies
/// within itself. A change between two steady shots scores high whatever
/// its shape; a pan or a zoom, which changes as much within each stretch as
/// across, stays near 2. Sampled at up to 12 frames a side.
fn novelty(grids: &[Grid], n: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; n];
    let step = (k / 12).max(1);
    for (t, o) in out.iter_mut().enumerate().skip(1) {
        let a: Vec<usize> = (t.saturating_sub(k)..t).step_by(step).collect();
        let b: Vec<usize> = (t..(t + k).min(n)).step_by(step).collect();
        if a.len() < 2 || b.len() < 2 {
            continue;
        }
        let mean = |pairs: &mut dyn Iterator<Item = (usize, usize)>| {
            let (sum, count) = pairs.fold((0.0f32, 0usize), |(s, c), (x, y)| {
                (s + grid_distance(&grids[x], &grids[y]), c + 1)
            });
            sum / count.max(1) as f32
        };
        let cross = mean(&mut a.iter().flat_map(|&x| b.iter().map(move |&y| (x, y))));
        let within_a = mean(
            &mut a
                .iter()
                .enumerate()
                .flat_map(|(i, &x)| a[i + 1..].iter().map(move |&y| (x, y))),
        );
        let within_b = mean(
            &mut b
                .iter()
                .enumerate()
                .flat_map(|(i, &x)| b[i + 1..].iter().map(move |&y| (x, y))),
        );
        // Two luma levels per cell of slack: compression noise on a still shot.
        *o = cross / (0.5 * (within_a + within_b) + 2.0);
    }
    out
}

/// How many times more the picture changes per frame over `[start, end)`
/// than over as many frames (3 to 12) either side, the busier side counting:
/// a transition between two steadier shots stands out, a pan or a zoom that
/// goes on changing does not.
fn stand_out(grids: &[Grid], start: usize, end: usize) -> f32 {
    let n = grids.len();
    let step = |i: usize| grid_distance(&grids[i - 1], &grids[i]);
    let mean = |r: std::ops::Range<usize>| {
        let len = r.len().max(1) as f32;
        r.map(step).sum::<f32>() / len
    };
    let edge = (end - start).clamp(3, 12);
    let inside = mean(start.max(1)..end.min(n));
    let before = mean(start.saturating_sub(edge).max(1)..start.max(1));
    let after = mean((end + 1).min(n)..(end + 1 + edge).min(n));
    // Half a luma level per cell: compression noise on a still shot.
    inside / before.max(after).max(0.5)
}

/// How far apart the pictures either side of `[start, end)` are, against
/// how far each side moves on its own over as many frames (up to the
/// transition's length): two steady shots joined by a slow transition score
/// high however little each frame of it changes; a pan or a zoom, which
/// moves as much within each side as across, stays near 1.
fn settle(grids: &[Grid], start: usize, end: usize) -> f32 {
    let n = grids.len();
    let (a, b) = (start.saturating_sub(1), end.min(n - 1));
    let len = (end - start).max(1);
    // Without half as long again on each side there is no telling a
    // transition from motion: no proposal.
    if a < len / 2 || b + len / 2 >= n || end >= n {
        return 0.0;
    }
    let before = grid_distance(&grids[a.saturating_sub(len)], &grids[a]);
    let after = grid_distance(&grids[b], &grids[(b + len).min(n - 1)]);
    // Two luma levels per cell of slack: compression noise on a still shot.
    grid_distance(&grids[a], &grids[b]) / (before.max(after) + 2.0)
}

/// Mean absolute luma difference per grid cell, 0..255.
pub(super) fn grid_distance(a: &Grid, b: &Grid) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f32::from(x.abs_diff(*y)))
        .sum::<f32>()
        / a.len() as f32
}

/// A lone fade out whose "ramp" is one picture held, which comes back
/// straight after the dip, was no fade: the dip is a flash a few frames into
/// a new shot, and the ramp's first frame, where the level jumped, is where
/// the shot changed. `Some` with that cut (when the cut head confirms it) or
/// with nothing; `None` when the rule does not apply. (Its mirror, a flash
/// just before a cut, never reads as a fade in: the walk up from the dip
/// runs on into the new shot, which is not the held picture.)
fn flash_beside_a_cut(at: &Frames<'_>, fade: &Span, s: &SceneSettings) -> Option<Vec<Span>> {
    let (features, grids) = (at.features, at.grids);
    let n = features.len();
    if fade.kind != TransitionKind::FadeOut {
        return None;
    }
    let last = fade.end.checked_sub(1)?;
    let after = (fade.end + 1).min(n)..(fade.end + s.flash_frames + 2).min(n);
    let comes_back = after
        .into_iter()
        .any(|b| same_picture(features, grids, last, b, s));
    // Frames that moved towards the floor were a fade after all, whatever
    // came after the dip.
    let held = (fade.start..last).all(|i| same_picture(features, grids, i, last, s));
    if !comes_back || !held {
        return None;
    }
    let cut = fade.start;
    if cut == 0 || !confirmed(at, cut, s) {
        return Some(Vec::new());
    }
    Some(vec![Span {
        kind: TransitionKind::Cut,
        start: cut,
        end: cut,
        score: fade.score,
    }])
}

/// The picture before `[start, end)` comes back within `window` frames after
/// it: a flash, a strobe, a light dimmed and raised, a passing title.
fn returns(
    features: &[FrameFeatures],
    grids: &[Grid],
    start: usize,
    end: usize,
    window: usize,
    s: &SceneSettings,
) -> bool {
    let n = features.len();
    let earlier = start.saturating_sub(window + 1)..start;
    earlier.into_iter().any(|a| {
        (end.min(n - 1)..(end + window + 1).min(n)).any(|b| same_picture(features, grids, a, b, s))
    })
}

/// The frames either side of a change show the same picture: a flash, a
/// light dimmed and raised, a title that came and went.
fn same_picture(
    features: &[FrameFeatures],
    grids: &[Grid],
    a: usize,
    b: usize,
    s: &SceneSettings,
) -> bool {
    hist_distance(&features[a].hist, &features[b].hist) < s.same_picture_hist
        && grid_distance(&grids[a], &grids[b]) < s.same_picture_grid
}

/// Fades through black or white over `[start, end)`: the mean luma dips to
/// (or peaks at) the floor between two ends well away from it (a fade out and
/// a fade in), or one end is at the floor (only one of them). A dissolve into
/// a dark shot has no dip and does not end at the floor.
fn fades(
    features: &[FrameFeatures],
    start: usize,
    end: usize,
    peak: f32,
    s: &SceneSettings,
) -> Option<Vec<Span>> {
    let n = features.len();
    let luma = |i: usize| features[i].mean_luma;
    for (floor, sign) in [(VIDEO_BLACK, 1.0f32), (VIDEO_WHITE, -1.0f32)] {
        // Height above the floor (below it, for white), so one rule serves
        // both. Not clamped at the floor: a dark shot dimmed to a quarter
        // can average below nominal black while the black after it (full
        // range, as xfade's `fadeblack` makes it) is lower still, and a
        // clamp made the two one level, so the fade out's only ramp frame
        // read as part of the dip and the fade out was lost.
        let h = |i: usize| (luma(i) - floor) * sign;
        let (lo_i, lo) = (start.saturating_sub(1)..(end + 1).min(n))
            .map(|i| (i, h(i)))
            .fold((start, f32::MAX), |m, x| if x.1 < m.1 { x } else { m });
        // The core: frames at the bottom, in neither fade; then the ramps
        // either side, followed out to where the luma stops moving (the
        // model's span may cover only part of one).
        let top = h(start - 1).max(h(end.min(n - 1)));
        let core_top = lo + s.dip_core * (top - lo);
        let (mut cs, mut ce) = (lo_i, lo_i + 1);
        while cs > 1 && h(cs - 1) <= core_top {
            cs -= 1;
        }
        while ce < n && h(ce) <= core_top {
            ce += 1;
        }
        let fs = super::gradual::fade_out_start(cs, &h, s.fade_step).max(1);
        let fe = super::gradual::fade_in_end(ce.min(n - 1).max(1), n, &h, s.fade_step);
        let (ha, hb) = (h(fs - 1), h(fe.min(n - 1)));
        // A ramp has frames between the shot and the floor; a cut to black
        // has none.
        let ramp = |r: std::ops::Range<usize>, top: f32| {
            r.clone()
                .any(|i| h(i) > lo + 0.15 * (top - lo) && h(i) < lo + 0.85 * (top - lo))
        };
        let deep = |top: f32| top - lo >= s.min_fade_drop;
        let at_floor = lo <= s.fade_floor || lo <= s.dip_ratio * ha.min(hb);
        if !at_floor {
            continue;
        }
        let mut out = Vec::new();
        if cs > fs && deep(ha) && ramp(fs..cs, ha) {
            out.push(Span {
                kind: TransitionKind::FadeOut,
                start: fs,
                end: cs,
                score: peak,
            });
        }
        if fe > ce && deep(hb) && ramp(ce..fe, hb) {
            out.push(Span {
                kind: TransitionKind::FadeIn,
                start: ce,
                end: fe,
                score: peak,
            });
        }
        if !out.is_empty() {
            return Some(out);
        }
    }
    None
}

/// A gradual change over `[start, end)` is a wipe rather than a dissolve
/// when no single blend of its ends explains it ([`sweep`]) and each cell
/// shows one end or the other ([`cellwise`]), or when it departs from any
/// blend so far that the pictures must be moving (a slide, a push). The
/// shots' own motion during a dissolve also spoils a single blend, but
/// leaves its cells half way between the ends: on the training pool's
/// transitions (`sceneset::training_set`) the sweep test alone told 69% of
/// dissolves and wipes apart, the two together 90%.
pub(super) fn is_wipe(grids: &[Grid], start: usize, end: usize, s: &SceneSettings) -> bool {
    let swept = sweep(grids, start, end, s);
    swept >= s.slide_sweep
        || (swept >= s.wipe_sweep && cellwise(grids, start, end) < s.wipe_cell_share)
}

/// How much of the middle half of `[start, end)` neither end explains cell
/// by cell, against the ends' difference: near 0 for a wipe (every cell is
/// one end or the other), about a half for a dissolve (every cell half way).
pub(super) fn cellwise(grids: &[Grid], start: usize, end: usize) -> f32 {
    let n = grids.len();
    let (a, b) = (&grids[start - 1], &grids[end.min(n - 1)]);
    // Two luma levels per cell of slack: compression noise on a still shot.
    let apart = grid_distance(a, b) + 2.0;
    let len = end - start;
    let middle = &grids[start + len / 4..(end - len / 4).max(start + len / 4 + 1).min(n)];
    if middle.is_empty() {
        return 1.0;
    }
    middle
        .iter()
        .map(|g| {
            g.iter()
                .zip(a.iter().zip(b.iter()))
                .map(|(&v, (&x, &y))| f32::from(v.abs_diff(x).min(v.abs_diff(y))))
                .sum::<f32>()
                / g.len() as f32
                / apart
        })
        .sum::<f32>()
        / middle.len() as f32
}

/// How far the change over `[start, end)` departs from one blend of its two
/// ends applied to the whole picture, 0 (a dissolve) up: per frame, the best
/// single mix of the grids either side, and the share of the ends' difference
/// it leaves unexplained. A wipe shows each cell as one end or the other, at a
/// different moment per cell, so no single mix fits.
pub(super) fn sweep(grids: &[Grid], start: usize, end: usize, s: &SceneSettings) -> f32 {
    let n = grids.len();
    let (a, b) = (&grids[start - 1], &grids[end.min(n - 1)]);
    let d: Vec<f32> = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| f32::from(*y) - f32::from(*x))
        .collect();
    let energy: f32 = d.iter().map(|v| v * v).sum();
    let informative = d.iter().filter(|v| v.abs() >= s.wipe_cell_contrast).count();
    if informative < d.len() / 8 || energy <= 0.0 {
        return 0.0;
    }
    let mut unexplained = 0.0;
    let mut count = 0;
    // The ends of the span are nearly pure A or B whatever the transition;
    // the middle half tells them apart.
    let len = end - start;
    for g in &grids[start + len / 4..end - len / 4] {
        let x: Vec<f32> = g
            .iter()
            .zip(a.iter())
            .map(|(v, w)| f32::from(*v) - f32::from(*w))
            .collect();
        let alpha = (x.iter().zip(&d).map(|(p, q)| p * q).sum::<f32>() / energy).clamp(0.0, 1.0);
        let residual: f32 = x.iter().zip(&d).map(|(p, q)| (p - alpha * q).powi(2)).sum();
        unexplained += (residual / energy).sqrt();
        count += 1;
    }
    if count == 0 {
        0.0
    } else {
        unexplained / count as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monteur_kernels::cpu::frame_stats;

    const CELLS: usize = std::mem::size_of::<Grid>();

    /// Features and grids of frames whose pixels are the grid cells
    /// themselves (144-pixel frames): every rule sees a consistent picture.
    fn clip(frames: &[Grid]) -> (Vec<FrameFeatures>, Vec<Grid>) {
        let mut features = Vec::new();
        let mut previous = None;
        for (i, f) in frames.iter().enumerate() {
            let stats = frame_stats(f, i.checked_sub(1).map(|j| &frames[j][..]));
            features.push(FrameFeatures::derive(&stats, previous.as_ref(), CELLS));
            previous = Some(stats);
        }
        (features, frames.to_vec())
    }

    /// Two shots with different layouts: a horizontal and a vertical ramp,
    /// with a little per-frame noise so they are not perfectly still.
    fn shot(k: usize, t: usize) -> Grid {
        std::array::from_fn(|i| {
            let (x, y) = (i % 16, i / 16);
            let base = if k == 0 { 40 + x * 10 } else { 200 - y * 15 };
            (base + (t * 7 + i) % 3) as u8
        })
    }

    /// `n` frames of shot 0 that shot 1 wipes over from the left, one
    /// column a frame from frame `from` on.
    fn wiping(n: usize, from: i64) -> Vec<Grid> {
        (0..n)
            .map(|t| {
                let edge = (t as i64 - from).clamp(0, 16) as usize;
                let (a, b) = (shot(0, t), shot(1, t));
                std::array::from_fn(|i| if i % 16 < edge { b[i] } else { a[i] })
            })
            .collect()
    }

    fn mix(a: &Grid, b: &Grid, w: f32) -> Grid {
        std::array::from_fn(|i| (f32::from(a[i]) * (1.0 - w) + f32::from(b[i]) * w).round() as u8)
    }

    fn predictions(
        n: usize,
        fire: std::ops::Range<usize>,
        many: std::ops::Range<usize>,
    ) -> Vec<Prediction> {
        (0..n)
            .map(|i| Prediction {
                single_frame: if fire.contains(&i) { 0.9 } else { 0.01 },
                many_hot: if many.contains(&i) { 0.9 } else { 0.01 },
            })
            .collect()
    }

    /// The fused detector at 25 fps with the model's full-rate predictions
    /// only and no kernel or novelty proposals.
    fn fused(f: &[FrameFeatures], g: &[Grid], p: &[Prediction]) -> Vec<Span> {
        detect_fused(f, g, p, None, 25.0, &no_proposals())
    }

    fn no_proposals() -> SceneSettings {
        SceneSettings {
            kernel_gradual: false,
            novelty_ratio: 0.0,
            kernel_cut_score: 2.0,
            learned_threshold: 2.0,
            ..SceneSettings::default()
        }
    }

    #[test]
    fn a_boundary_with_one_jump_is_a_cut() {
        let frames: Vec<Grid> = (0..60).map(|t| shot(usize::from(t >= 30), t)).collect();
        let (f, g) = clip(&frames);
        // The model marks the last frame of the old shot.
        let found = fused(&f, &g, &predictions(60, 29..30, 29..31));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].kind, found[0].start), (TransitionKind::Cut, 30));
    }

    #[test]
    fn a_uniform_blend_is_a_dissolve_over_its_frames() {
        let frames: Vec<Grid> = (0..80)
            .map(|t| {
                let w = (t as f32 - 29.0).clamp(0.0, 20.0) / 20.0;
                mix(&shot(0, t), &shot(1, t), w)
            })
            .collect();
        let (f, g) = clip(&frames);
        let found = fused(&f, &g, &predictions(80, 38..41, 36..44));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, TransitionKind::Dissolve);
        // Widened from the model's middle to the whole blend.
        assert!(found[0].start <= 32 && found[0].end >= 46, "{found:?}");
    }

    #[test]
    fn a_moving_edge_is_a_wipe() {
        let frames = wiping(80, 30);
        let (f, g) = clip(&frames);
        let found = fused(&f, &g, &predictions(80, 37..40, 33..44));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, TransitionKind::Wipe, "{found:?}");
    }

    #[test]
    fn a_flash_the_model_fires_on_is_vetoed() {
        let frames: Vec<Grid> = (0..60)
            .map(|t| {
                if (30..32).contains(&t) {
                    [250; CELLS]
                } else {
                    shot(0, t)
                }
            })
            .collect();
        let (f, g) = clip(&frames);
        let found = fused(&f, &g, &predictions(60, 29..32, 29..32));
        assert!(found.is_empty(), "{found:?}");
    }

    /// A cut and then, two frames into the new shot, a white flash: the
    /// dip to white has a "ramp" of the new shot's level on one side only,
    /// which read as a fade out (a tuning clip's cut was lost that way).
    #[test]
    fn a_flash_just_after_a_cut_leaves_the_cut() {
        let frames: Vec<Grid> = (0..60)
            .map(|t| match t {
                0..30 => shot(0, t),
                32..34 => [250; CELLS],
                _ => shot(1, t),
            })
            .collect();
        let (f, g) = clip(&frames);
        let found = fused(&f, &g, &predictions(60, 29..34, 29..35));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].kind, found[0].start), (TransitionKind::Cut, 30));
        // Just before the cut instead: the flash's far side is the old shot
        // (not a fade in, with or without the rule; kept as its guard).
        let frames: Vec<Grid> = (0..60)
            .map(|t| match t {
                26..28 => [250; CELLS],
                30.. => shot(1, t),
                _ => shot(0, t),
            })
            .collect();
        let (f, g) = clip(&frames);
        let found = fused(&f, &g, &predictions(60, 25..30, 25..31));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].kind, found[0].start), (TransitionKind::Cut, 30));
    }

    /// xfade's `fadeblack` between dark shots: one frame of the first at a
    /// third, which averages below nominal black, then full-range black and
    /// the fade in. The dimmed frame is the fade out, not part of the dip.
    #[test]
    fn a_dark_shot_fading_below_nominal_black_still_fades_out() {
        let dark = |k: usize, t: usize| -> Grid { shot(k, t).map(|v| v / 3) };
        let black = [0u8; CELLS];
        let frames: Vec<Grid> = (0..70)
            .map(|t| match t {
                0..30 => dark(0, t),
                30 => dark(0, t).map(|v| v / 3),
                31..33 => black,
                33..40 => mix(&black, &dark(1, t), (t - 32) as f32 / 8.0),
                _ => dark(1, t),
            })
            .collect();
        let (f, g) = clip(&frames);
        assert!(f[30].mean_luma < VIDEO_BLACK, "{}", f[30].mean_luma);
        let found = fused(&f, &g, &predictions(70, 30..33, 29..41));
        let kinds: Vec<TransitionKind> = found.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [TransitionKind::FadeOut, TransitionKind::FadeIn],
            "{found:?}"
        );
        assert!(found[0].start <= 30 && found[0].end >= 31, "{found:?}");
    }

    #[test]
    fn a_dip_to_black_is_a_fade_out_then_a_fade_in() {
        let black = [16u8; CELLS];
        let frames: Vec<Grid> = (0..90)
            .map(|t| match t {
                0..30 => shot(0, t),
                30..40 => mix(&shot(0, t), &black, (t - 29) as f32 / 10.0),
                40..45 => black,
                45..55 => mix(&black, &shot(1, t), (t - 44) as f32 / 10.0),
                _ => shot(1, t),
            })
            .collect();
        let (f, g) = clip(&frames);
        let found = fused(&f, &g, &predictions(90, 40..45, 36..50));
        let kinds: Vec<TransitionKind> = found.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [TransitionKind::FadeOut, TransitionKind::FadeIn],
            "{found:?}"
        );
        assert!(found[0].start <= 31 && found[0].end >= 39, "{found:?}");
        assert!(found[1].start <= 46 && found[1].end >= 54, "{found:?}");
    }

    /// A six-second blend changes too little per frame to stand out; only
    /// the coarse pass proposes it, and the two still ends confirm it.
    #[test]
    fn a_slow_dissolve_is_found_by_the_coarse_pass() {
        let frames: Vec<Grid> = (0..300)
            .map(|t| {
                let w = (t as f32 - 59.0).clamp(0.0, 180.0) / 180.0;
                mix(&shot(0, t), &shot(1, t), w)
            })
            .collect();
        let (f, g) = clip(&frames);
        let fine = predictions(300, 0..0, 0..0);
        let coarse = predictions(300, 144..156, 96..204);
        let s = no_proposals();
        assert!(detect_fused(&f, &g, &fine, None, 30.0, &s).is_empty());
        let found = detect_fused(&f, &g, &fine, Some(&coarse), 30.0, &s);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, TransitionKind::Dissolve);
        assert!(found[0].start <= 100 && found[0].end >= 200, "{found:?}");
    }

    /// A steady pan the coarse pass fires on moves as much within each side
    /// as across the proposal: not a transition.
    #[test]
    fn a_pan_the_coarse_pass_fires_on_is_rejected() {
        let frames: Vec<Grid> = (0..300)
            .map(|t| {
                std::array::from_fn(|i| {
                    let phase = (i % 16) as f32 + t as f32 * 0.05;
                    (128.0 + 90.0 * (phase * std::f32::consts::TAU / 16.0).sin()) as u8
                })
            })
            .collect();
        let (f, g) = clip(&frames);
        let fine = predictions(300, 0..0, 0..0);
        let coarse = predictions(300, 144..156, 96..204);
        let found = detect_fused(&f, &g, &fine, Some(&coarse), 30.0, &no_proposals());
        assert!(found.is_empty(), "{found:?}");
    }

    /// The picture closes to black from the edges inward, then the next
    /// one opens from the centre: the mean luma dips like a fade, but one
    /// region at a time.
    #[test]
    fn a_wipe_through_black_is_a_wipe_not_two_fades() {
        let black = [16u8; CELLS];
        let frames: Vec<Grid> = (0..90)
            .map(|t| {
                let a = shot(0, t);
                let b = shot(1, t);
                std::array::from_fn(|i| {
                    let (x, y) = ((i % 16) as f32 - 7.5, (i / 16) as f32 - 4.0);
                    // Distance from the centre, 0 (middle) to 1 (corner).
                    let r = (x.abs() / 8.0).max(y.abs() / 4.5);
                    match t {
                        0..30 => a[i],
                        30..40 if r > 1.0 - (t - 29) as f32 / 10.0 => black[i],
                        30..40 => a[i],
                        40..45 => black[i],
                        45..55 if r < (t - 44) as f32 / 10.0 => b[i],
                        45..55 => black[i],
                        _ => b[i],
                    }
                })
            })
            .collect();
        let (f, g) = clip(&frames);
        let found = fused(&f, &g, &predictions(90, 40..45, 36..50));
        let kinds: Vec<TransitionKind> = found.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [TransitionKind::Wipe], "{found:?}");
        assert!(found[0].start <= 31 && found[0].end >= 54, "{found:?}");
    }

    /// Mid-way through a dissolve every cell is half way between the ends;
    /// mid-way through a wipe each is one end or the other. A dissolve
    /// whose shots move (no single blend fits) is still a dissolve.
    #[test]
    fn cells_half_way_make_a_dissolve_and_cells_at_either_end_a_wipe() {
        let s = SceneSettings::default();
        let moving = |k: usize, t: usize| -> Grid {
            std::array::from_fn(|i| {
                let (x, y) = ((i % 16) as f32, (i / 16) as f32);
                let phase = if k == 0 {
                    x + 0.1 * t as f32
                } else {
                    y - 0.1 * t as f32
                };
                (128.0 + 80.0 * (phase * std::f32::consts::TAU / 8.0).sin()) as u8
            })
        };
        let dissolve: Vec<Grid> = (0..60)
            .map(|t| {
                let w = (t as f32 - 19.0).clamp(0.0, 20.0) / 20.0;
                mix(&moving(0, t), &moving(1, t), w)
            })
            .collect();
        let wipe = wiping(60, 20);
        let swept = sweep(&dissolve, 20, 40, &s);
        assert!(
            (s.wipe_sweep..s.slide_sweep).contains(&swept),
            "moving shots spoil one blend: {swept}"
        );
        assert!(
            cellwise(&dissolve, 20, 40) > 0.3,
            "{}",
            cellwise(&dissolve, 20, 40)
        );
        assert!(!is_wipe(&dissolve, 20, 40, &s));
        assert!(cellwise(&wipe, 21, 37) < 0.1, "{}", cellwise(&wipe, 21, 37));
        assert!(is_wipe(&wipe, 21, 37, &s));
    }

    /// A push over four frames: every step is as far from the last as the
    /// two shots are from each other, so no step carries the change alone.
    #[test]
    fn a_fast_slide_is_not_a_cut() {
        let frames: Vec<Grid> = (0..60)
            .map(|t| {
                let shift = ((t as i64 - 29).clamp(0, 4) * 4) as usize;
                // Textured pictures, as footage is: a shifted cell shows
                // other content.
                let texture = |k: usize| -> Grid {
                    std::array::from_fn(|i| (((i * 37 + k * 101) * 2654435761) % 180 + 40) as u8)
                };
                let (a, b) = (texture(0), texture(1));
                std::array::from_fn(|i| {
                    let (x, y) = (i % 16, i / 16);
                    if x + shift < 16 {
                        a[y * 16 + x + shift]
                    } else {
                        b[y * 16 + x + shift - 16]
                    }
                })
            })
            .collect();
        let (f, g) = clip(&frames);
        let found = fused(&f, &g, &predictions(60, 30..33, 29..34));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, TransitionKind::Wipe, "{found:?}");
    }

    #[test]
    fn a_sagging_run_stays_one_proposal() {
        let p: Vec<Prediction> = [0.1, 0.95, 0.5, 0.4, 0.6, 0.95, 0.2, 0.1, 0.92, 0.1]
            .iter()
            .map(|&q| Prediction {
                single_frame: q,
                many_hot: q,
            })
            .collect();
        assert_eq!(hysteresis(&p, p.len(), 0.9, 0.3), [(1, 6), (8, 9)]);
    }

    #[test]
    fn novelty_rises_at_a_change_of_shot_and_not_on_a_steady_one() {
        let frames: Vec<Grid> = (0..100).map(|t| shot(usize::from(t >= 50), t)).collect();
        let r = novelty(&frames, frames.len(), 20);
        assert!(r[50] > 4.0, "{}", r[50]);
        assert!(r[25] < 1.5 && r[75] < 1.5, "{} {}", r[25], r[75]);
    }
}
