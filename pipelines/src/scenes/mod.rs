//! Scene boundaries from per-frame features, and the `scenes.json` contract.
//!
//! Pure logic: no GStreamer, no I/O, so every rule is unit-tested on synthetic
//! feature curves.
//!
//! - [`cuts`]: hard cuts (adaptive threshold, flash suppression).
//! - [`gradual`]: fades to and from black, and dissolves.
//! - [`fusion`]: boundaries from the TransNetV2 model, kinds and spans from
//!   the kernel features (the default when the model is present).
//! - [`learned`]: small trained networks: one proposes transitions the
//!   model and the rules miss (wipes, slides, transitions of seconds), one
//!   rates each frame as a cut.
//! - [`eval`]: precision, recall and F1 against labelled transitions.
//!
//! Scenes are the spans between transitions: a cut ends one scene and starts
//! the next at the same frame; the frames of a gradual transition belong to
//! neither scene.

pub mod cuts;
pub mod eval;
pub mod fusion;
pub mod gradual;
pub mod learned;

pub use cuts::{detect_cuts, frame_score};
pub use fusion::Span;
pub use gradual::{Gradual, detect_gradual};

use monteur_kernels::FrameFeatures;
use monteur_models::transnet::Prediction;

use crate::analyse::Grid;

use serde::{Deserialize, Serialize};

use crate::upright::Orientation;
use crate::{Analysis, MediaInfo};

pub const DEFAULT_MIN_SCORE: f32 = 0.15;
pub const DEFAULT_ADAPTIVE_RATIO: f32 = 3.0;
pub const DEFAULT_WINDOW: usize = 3;
pub const DEFAULT_MIN_SCENE_S: f64 = 0.4;

/// Which detector finds the boundaries (`scenes.detector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// The kernel features alone: the cheapest, and weakest on gradual
    /// transitions it was not tuned for.
    Kernel,
    /// TransNetV2 proposes, the kernel features classify ([`fusion`]); the
    /// model must be installed.
    Neural,
    /// `neural` when the model file is installed, else `kernel` (with a
    /// warning).
    Auto,
}

/// Thresholds of the detectors (`[scenes]` in the config). Each default
/// says where its value comes from; the ones set on the generated tuning set
/// (`tests/src/sceneset.rs`) were never looked at on its held-out part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SceneSettings {
    pub detector: Detector,
    /// TransNetV2's single-frame probability at which a frame is a boundary
    /// (0.5, the reference implementation's).
    pub boundary_threshold: f32,
    /// Its many-hot probability at which a neighbouring frame belongs to the
    /// same transition: how far a boundary's span reaches.
    pub span_threshold: f32,
    /// The single-frame probability that makes a boundary in the model's
    /// coarse pass (`analysis.neural_coarse`), where nothing was found at
    /// full rate: transitions too long for its window at full rate. Above
    /// 1 turns the pass's proposals off.
    pub coarse_threshold: f32,
    /// A coarse-pass transition must separate pictures this many times
    /// further apart than either side moves on its own over as long
    /// (`fusion::settle`): a slow dissolve changes little per frame, but
    /// joins two shots that each hold still.
    pub coarse_contrast: f32,
    /// A proposed transition is a cut when one frame carries at least this
    /// share of the change (grid distance) between the frames either side.
    pub cut_share: f32,
    /// ...and this share of the path through the frames just before and
    /// after it (`fusion::classify`): a slide's steps are each as large as
    /// the whole change, a cut's neighbours sit at its two ends...
    pub cut_path_share: f32,
    /// ...and its frame score (`frame_score`) reaches this: a flat colour
    /// change moves every cell but not the structure.
    pub cut_min_score: f32,
    /// A proposed dissolve or wipe must change this many times more per frame
    /// than the footage either side (a pan goes on changing).
    pub gradual_contrast: f32,
    /// Frames either side of a proposed transition closer than this
    /// (histogram distance) and than `same_picture_grid` (mean luma change
    /// per grid cell) show one picture: a flash or a title, not a transition.
    pub same_picture_hist: f32,
    pub same_picture_grid: f32,
    /// A fade through black (white) dips to at most this share of the ends'
    /// height above black (below white)...
    pub dip_ratio: f32,
    /// ...and frames within this share of the dip's depth from its bottom are
    /// the black between the fade out and the fade in.
    pub dip_core: f32,
    /// A span ending (starting) within this much luma of black or white is a
    /// lone fade out (in).
    pub fade_floor: f32,
    /// How far a gradual change departs from one uniform blend (see
    /// `fusion::sweep`) before it is a wipe rather than a dissolve, and a
    /// dip through black or white a wipe through it rather than two fades.
    pub wipe_sweep: f32,
    /// Grid cells whose two ends differ by less than this luma carry no
    /// evidence of a sweep.
    pub wipe_cell_contrast: f32,
    /// ...and a gradual change is a wipe only if, besides, its cells are
    /// this close to one end or the other (share of the ends' difference,
    /// `fusion::cellwise`; dissolves sit near a half)...
    pub wipe_cell_share: f32,
    /// ...or it departs from one blend by this much: the pictures move (a
    /// slide).
    pub slide_sweep: f32,
    /// The learned proposer's probability (`learned`) at which a frame
    /// proposes a transition where nothing else was found; above 1 turns
    /// it off.
    pub learned_threshold: f32,
    /// ...for at least this long; the proposal spans the frames around it
    /// at or above `learned_span_threshold`.
    pub learned_min_s: f64,
    pub learned_span_threshold: f32,
    /// Kernel cuts at least this strong are kept where the model saw nothing.
    pub kernel_cut_score: f32,
    /// The learned cut head's probability (`learned::cut_features`) at which
    /// a frame is a cut where nothing else was found; above 1 turns it off.
    pub learned_cut_threshold: f32,
    /// A cut the rules found is kept only if the cut head gives it (or a
    /// frame beside it) at least this. 0 turns the check off.
    pub learned_cut_confirm: f32,
    /// Keep the kernels' fades and dissolves where the model saw nothing.
    pub kernel_gradual: bool,
    /// Novelty (see `fusion::novelty`) over stretches of this many seconds
    /// either side...
    pub novelty_s: f64,
    /// ...at or above which a frame proposes a transition nobody else found
    /// (0 turns the proposals off).
    pub novelty_ratio: f32,
    /// Longest disturbance, in seconds, after which the picture coming back
    /// undoes a proposed transition (a strobe's half period); `flash_frames`
    /// is the floor.
    pub flash_s: f64,
    /// Puts the residual difference on the histogram distance's scale: real
    /// cuts' residuals sit around 0.1..0.2 of full scale.
    pub residual_scale: f32,
    /// The least neighbour mean the adaptive threshold compares against, so
    /// a static shot (mean near zero) does not let any ratio through.
    pub adaptive_floor: f32,
    /// Mean-luma difference within which two frames can be the same picture
    /// either side of a flash.
    pub transient_luma: f32,
    /// Quiet frames a dissolve's run of change may bridge.
    pub dissolve_gap: usize,
    /// The least change per frame the footage around a dissolve is taken to
    /// have, so a still shot does not make any run stand out.
    pub dissolve_floor: f32,
    /// A cut's frame difference score must reach this (0..1).
    pub min_score: f32,
    /// ...and be this many times the mean score of its neighbours.
    pub adaptive_ratio: f32,
    /// Neighbours on each side considered for the adaptive threshold.
    pub window: usize,
    /// Shortest scene kept, in seconds; a cut closer than this to the previous
    /// one is dropped.
    pub min_scene_s: f64,
    /// Longest disturbance, in frames, that is undone afterwards (a flash, a
    /// passing occlusion) and therefore not a cut.
    pub flash_frames: usize,
    /// Mean luma (0..255) at or below which a frame counts as black.
    pub black_level: f32,
    /// Smallest per-frame luma change that continues a fade.
    pub fade_step: f32,
    /// Shortest fade, in seconds; faster ones are cuts to or from black.
    pub min_fade_s: f64,
    /// Smallest total luma change of a fade.
    pub min_fade_drop: f32,
    /// Per-frame histogram distance that marks a frame as possibly inside a
    /// dissolve.
    pub dissolve_low: f32,
    /// Histogram distance between the frames either side of a dissolve.
    pub dissolve_high: f32,
    /// How many times more a dissolve changes per frame than the footage
    /// around it.
    pub dissolve_contrast: f32,
    /// Shortest and longest dissolve, in seconds.
    pub min_dissolve_s: f64,
    pub max_dissolve_s: f64,
}

impl Default for SceneSettings {
    fn default() -> Self {
        Self {
            detector: Detector::Auto,
            boundary_threshold: 0.5,
            coarse_threshold: 0.5,
            coarse_contrast: 1.5,
            span_threshold: 0.3,
            cut_share: 0.7,
            cut_path_share: 0.5,
            cut_min_score: 0.05,
            gradual_contrast: 1.5,
            same_picture_hist: 0.1,
            same_picture_grid: 6.0,
            dip_ratio: 0.35,
            dip_core: 0.1,
            fade_floor: 10.0,
            wipe_sweep: 0.2,
            wipe_cell_contrast: 12.0,
            wipe_cell_share: 0.28,
            slide_sweep: 0.6,
            kernel_cut_score: 0.4,
            learned_cut_threshold: 0.95,
            learned_cut_confirm: 0.5,
            learned_threshold: 0.9,
            learned_min_s: 0.1,
            learned_span_threshold: 0.5,
            kernel_gradual: false,
            novelty_s: 1.0,
            novelty_ratio: 3.5,
            flash_s: 0.1,
            residual_scale: 4.0,
            adaptive_floor: 0.01,
            transient_luma: 8.0,
            dissolve_gap: 2,
            dissolve_floor: 0.002,
            min_score: DEFAULT_MIN_SCORE,
            adaptive_ratio: DEFAULT_ADAPTIVE_RATIO,
            window: DEFAULT_WINDOW,
            min_scene_s: DEFAULT_MIN_SCENE_S,
            flash_frames: 3,
            black_level: 24.0,
            fade_step: 0.3,
            min_fade_s: 0.15,
            min_fade_drop: 12.0,
            dissolve_low: 0.012,
            dissolve_high: 0.3,
            dissolve_contrast: 3.0,
            min_dissolve_s: 0.25,
            max_dissolve_s: 3.0,
        }
    }
}

impl SceneSettings {
    /// Every problem with these values, empty when they are usable.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        within(
            &mut p,
            0.0..=1.0,
            "",
            &[
                ("min_score", self.min_score),
                ("dissolve_low", self.dissolve_low),
                ("dissolve_high", self.dissolve_high),
                ("boundary_threshold", self.boundary_threshold),
                ("learned_span_threshold", self.learned_span_threshold),
                ("span_threshold", self.span_threshold),
                ("cut_share", self.cut_share),
                ("cut_path_share", self.cut_path_share),
                ("same_picture_hist", self.same_picture_hist),
                ("dip_ratio", self.dip_ratio),
                ("dip_core", self.dip_core),
                ("wipe_sweep", self.wipe_sweep),
                ("wipe_cell_share", self.wipe_cell_share),
                ("kernel_cut_score", self.kernel_cut_score),
                ("learned_cut_confirm", self.learned_cut_confirm),
                ("adaptive_floor", self.adaptive_floor),
                ("dissolve_floor", self.dissolve_floor),
            ],
        );
        within(
            &mut p,
            0.0..=2.0,
            " (above 1: off)",
            &[
                ("coarse_threshold", self.coarse_threshold),
                ("learned_threshold", self.learned_threshold),
                ("learned_cut_threshold", self.learned_cut_threshold),
            ],
        );
        within(
            &mut p,
            0.0..=255.0,
            "",
            &[
                ("black_level", self.black_level),
                ("fade_step", self.fade_step),
                ("min_fade_drop", self.min_fade_drop),
                ("same_picture_grid", self.same_picture_grid),
                ("fade_floor", self.fade_floor),
                ("wipe_cell_contrast", self.wipe_cell_contrast),
                ("transient_luma", self.transient_luma),
            ],
        );
        within(&mut p, 0.0..=10.0, "", &[("slide_sweep", self.slide_sweep)]);
        within(
            &mut p,
            0.0..=100.0,
            " (0: off)",
            &[("novelty_ratio", self.novelty_ratio)],
        );
        within(
            &mut p,
            1.0..=100.0,
            "",
            &[("dissolve_contrast", self.dissolve_contrast)],
        );
        within(
            &mut p,
            0.0..=10.0,
            "",
            &[("learned_min_s", self.learned_min_s)],
        );
        within(&mut p, 0.0..=2.0, "", &[("flash_s", self.flash_s)]);
        within(&mut p, 0.0..=60.0, "", &[("min_scene_s", self.min_scene_s)]);
        if !(self.adaptive_ratio >= 1.0 && self.adaptive_ratio.is_finite()) {
            p.push(format!(
                "scenes.adaptive_ratio must be at least 1, got {}",
                self.adaptive_ratio
            ));
        }
        if self.window == 0 || self.window > 60 {
            p.push(format!(
                "scenes.window must be within 1..=60, got {}",
                self.window
            ));
        }
        if self.flash_frames > 30 {
            p.push(format!(
                "scenes.flash_frames must be at most 30, got {}",
                self.flash_frames
            ));
        }
        if self.dissolve_gap > 30 {
            p.push(format!(
                "scenes.dissolve_gap must be at most 30, got {}",
                self.dissolve_gap
            ));
        }
        // Half-open ranges: zero is no usable value for these.
        for (key, v) in [
            ("gradual_contrast", self.gradual_contrast),
            ("coarse_contrast", self.coarse_contrast),
            ("residual_scale", self.residual_scale),
        ] {
            if !(v > 0.0 && v <= 100.0) {
                p.push(format!("scenes.{key} must be within (0, 100], got {v}"));
            }
        }
        for (key, v) in [
            ("min_fade_s", self.min_fade_s),
            ("novelty_s", self.novelty_s),
        ] {
            if !(v > 0.0 && v <= 10.0) {
                p.push(format!("scenes.{key} must be within (0, 10], got {v}"));
            }
        }
        if !(self.min_dissolve_s > 0.0
            && self.min_dissolve_s < self.max_dissolve_s
            && self.max_dissolve_s <= 30.0)
        {
            p.push(format!(
                "scenes.min_dissolve_s and max_dissolve_s must satisfy 0 < min < max <= 30, got {} and {}",
                self.min_dissolve_s, self.max_dissolve_s
            ));
        }
        p
    }
}

/// A problem for each of `values` outside `range` (NaN included); `note`
/// says what an end of the range means.
fn within<T: PartialOrd + std::fmt::Display>(
    p: &mut Vec<String>,
    range: std::ops::RangeInclusive<T>,
    note: &str,
    values: &[(&str, T)],
) {
    for (key, v) in values {
        if !range.contains(v) {
            p.push(format!(
                "scenes.{key} must be within {}..={}{note}, got {v}",
                range.start(),
                range.end()
            ));
        }
    }
}

/// Kinds of transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    Cut,
    /// From black (or white) to the new shot.
    FadeIn,
    /// From the old shot to black (or white).
    FadeOut,
    /// Every part of the picture blends from one shot to the next at once.
    Dissolve,
    /// A moving edge (a wipe, a slide, an iris) sweeps the new shot in.
    Wipe,
}

/// The `scenes.json` document. Field names and meanings are a fixed contract
/// read by tools outside this repository; extra fields may be added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenesDocument {
    pub source: SourceSummary,
    pub scenes: Vec<Scene>,
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSummary {
    pub duration_s: f64,
    pub fps: f64,
    pub frames: u64,
    /// The picture as shown: a phone's portrait clip is taller than wide.
    pub width: u32,
    pub height: u32,
    /// The display transform read from the container (`rotate-90`,
    /// `flip-rotate-0`, ...) and the size as coded before it.
    #[serde(default)]
    pub orientation: Orientation,
    #[serde(default)]
    pub stored_width: u32,
    #[serde(default)]
    pub stored_height: u32,
}

/// A span of frames between transitions; `end_frame` is exclusive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    pub index: usize,
    pub start_frame: u64,
    pub end_frame: u64,
    pub start_s: f64,
    pub end_s: f64,
}

/// A cut's `start_frame` is the first frame of the new shot and equals its
/// `end_frame`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub kind: TransitionKind,
    pub start_frame: u64,
    pub end_frame: u64,
    pub start_s: f64,
    pub end_s: f64,
    pub score: f32,
}

/// Builds the `scenes.json` document for an analysed input.
pub fn detect_scenes(analysis: &Analysis, info: &MediaInfo, s: &SceneSettings) -> ScenesDocument {
    let frames = analysis.features.len();
    let video = info.primary_video();
    let duration = info.duration.map(|d| d.as_secs_f64()).or_else(|| {
        analysis
            .times
            .last()
            .and_then(|t| t.0)
            .map(|d| d.as_secs_f64())
    });
    let fps = analysis
        .fps
        .or_else(|| video.and_then(|v| v.fps()))
        .or_else(|| duration.filter(|&d| d > 0.0).map(|d| frames as f64 / d))
        .unwrap_or(0.0);
    let time_of = |frame: usize| -> f64 {
        if let Some(Some(t)) = analysis.times.get(frame).map(|t| t.0) {
            return t.as_secs_f64();
        }
        if frame >= frames
            && let Some(d) = duration
        {
            return d;
        }
        if fps > 0.0 { frame as f64 / fps } else { 0.0 }
    };

    let spans: Vec<(TransitionKind, usize, usize, f32)> = detect_transitions(
        &analysis.features,
        &analysis.grids,
        analysis.boundaries.as_deref(),
        analysis.coarse_boundaries.as_deref(),
        fps.max(1.0),
        s,
    )
    .into_iter()
    .map(|f| (f.kind, f.start, f.end, f.score))
    .collect();
    let transitions: Vec<Transition> = spans
        .iter()
        .map(|&(kind, start, end, score)| Transition {
            kind,
            start_frame: start as u64,
            end_frame: end as u64,
            start_s: round_us(time_of(start)),
            end_s: round_us(time_of(end)),
            score: (score * 1000.0).round() / 1000.0,
        })
        .collect();
    let mut scenes = Vec::new();
    let mut from = 0usize;
    for &(_, start, end, _) in
        spans
            .iter()
            .chain(std::iter::once(&(TransitionKind::Cut, frames, frames, 0.0)))
    {
        if start > from {
            scenes.push(Scene {
                index: scenes.len(),
                start_frame: from as u64,
                end_frame: start as u64,
                start_s: round_us(time_of(from)),
                end_s: round_us(time_of(start)),
            });
        }
        from = from.max(end);
    }
    ScenesDocument {
        source: SourceSummary {
            duration_s: round_us(duration.unwrap_or_else(|| time_of(frames))),
            fps: (fps * 1000.0).round() / 1000.0,
            frames: frames as u64,
            width: video.map(|v| v.width).unwrap_or(analysis.width),
            height: video.map(|v| v.height).unwrap_or(analysis.height),
            orientation: video.map(|v| v.orientation).unwrap_or_default(),
            stored_width: video.map(|v| v.stored_width).unwrap_or(analysis.width),
            stored_height: video.map(|v| v.stored_height).unwrap_or(analysis.height),
        },
        scenes,
        transitions,
    }
}

/// Every transition, in order: fused with the boundary model's
/// `predictions` when there are some and `s.detector` allows, else from the
/// kernel features alone.
pub fn detect_transitions(
    features: &[FrameFeatures],
    grids: &[Grid],
    predictions: Option<&[Prediction]>,
    coarse: Option<&[Prediction]>,
    fps: f64,
    s: &SceneSettings,
) -> Vec<Span> {
    let mut spans = match predictions {
        Some(p) if s.detector != Detector::Kernel => {
            fusion::detect_fused(features, grids, p, coarse, fps, s)
        }
        _ => kernel_transitions(features, grids, fps, s),
    };
    spans.sort_by_key(|t| t.start);
    spans
}

/// The kernel-only detector: cuts, fades, and gradual changes told apart as
/// dissolves or wipes by the same test the fused detector uses.
fn kernel_transitions(
    features: &[FrameFeatures],
    grids: &[Grid],
    fps: f64,
    s: &SceneSettings,
) -> Vec<Span> {
    let cuts = detect_cuts(features, fps, s);
    let gradual = detect_gradual(features, &cuts, fps, s);
    let has_grids = grids.len() == features.len();
    cuts.iter()
        // A cut inside a gradual transition is part of it.
        .filter(|&&(c, _)| !gradual.iter().any(|g| g.start <= c && c < g.end))
        .map(|&(c, score)| Span {
            kind: TransitionKind::Cut,
            start: c,
            end: c,
            score,
        })
        .chain(gradual.iter().map(|g| {
            let kind = match g.kind {
                TransitionKind::Dissolve
                    if has_grids && fusion::is_wipe(grids, g.start.max(1), g.end, s) =>
                {
                    TransitionKind::Wipe
                }
                k => k,
            };
            Span {
                kind,
                start: g.start,
                end: g.end,
                score: g.score,
            }
        }))
        .collect()
}

fn round_us(s: f64) -> f64 {
    (s * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use monteur_kernels::features::{HIST_ONE, Hist, flat_hist};
    use monteur_kernels::{FrameFeatures, HIST_BINS};

    fn f(mad: f32, hist: f32) -> FrameFeatures {
        FrameFeatures {
            mean_luma: 100.0,
            mean_abs_diff: Some(mad),
            residual_diff: Some(mad),
            hist_distance: Some(hist),
            hist: flat_hist(),
        }
    }

    fn first() -> FrameFeatures {
        FrameFeatures {
            mean_luma: 100.0,
            mean_abs_diff: None,
            residual_diff: None,
            hist_distance: None,
            hist: flat_hist(),
        }
    }

    /// Histogram of shot `k`: all pixels in one bin, a different bin per shot.
    fn shot_hist(k: usize) -> Hist {
        let mut h = [0; HIST_BINS];
        h[(k * 7) % HIST_BINS] = HIST_ONE;
        h
    }

    /// A feature curve of `n` frames with a steady `base` difference and
    /// spikes; a spike whose histogram distance is at least 0.5 starts a new
    /// shot (a different histogram), a smaller one does not.
    fn curve(n: usize, base: (f32, f32), spikes: &[(usize, f32, f32)]) -> Vec<FrameFeatures> {
        let mut shot = 0;
        let mut v = vec![FrameFeatures {
            hist: shot_hist(0),
            ..first()
        }];
        for i in 1..n {
            let (mad, hist) = spikes
                .iter()
                .find(|s| s.0 == i)
                .map(|s| (s.1, s.2))
                .unwrap_or(base);
            if hist >= 0.5 {
                shot += 1;
            }
            v.push(FrameFeatures {
                hist: shot_hist(shot),
                ..f(mad, hist)
            });
        }
        v
    }

    #[test]
    fn finds_isolated_cuts() {
        let feats = curve(100, (0.01, 0.02), &[(30, 0.3, 0.8), (70, 0.2, 0.6)]);
        let cuts: Vec<usize> = detect_cuts(&feats, 25.0, &SceneSettings::default())
            .iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(cuts, vec![30, 70]);
    }

    #[test]
    fn motion_without_histogram_change_is_not_a_cut() {
        let feats = curve(100, (0.02, 0.02), &[(40, 0.4, 0.03)]);
        assert!(detect_cuts(&feats, 25.0, &SceneSettings::default()).is_empty());
    }

    #[test]
    fn a_flat_colour_change_is_not_a_cut() {
        // counter.mp4: the background changes colour, every pixel changes bin,
        // the structure (digits) stays.
        let mut feats = curve(30, (0.003, 0.002), &[]);
        feats[10] = FrameFeatures {
            mean_luma: 112.0,
            mean_abs_diff: Some(0.06),
            residual_diff: Some(0.004),
            hist_distance: Some(0.97),
            hist: flat_hist(),
        };
        assert!(detect_cuts(&feats, 10.0, &SceneSettings::default()).is_empty());
    }

    #[test]
    fn a_fade_is_not_a_cut() {
        // Thirty equal steps: each one large in histogram terms, none stands out.
        let mut feats = vec![first()];
        feats.extend((1..100).map(|i| {
            if (20..50).contains(&i) {
                f(0.03, 0.7)
            } else {
                f(0.005, 0.01)
            }
        }));
        assert!(detect_cuts(&feats, 25.0, &SceneSettings::default()).is_empty());
    }

    #[test]
    fn cuts_closer_than_min_scene_keep_the_stronger() {
        let feats = curve(100, (0.01, 0.01), &[(40, 0.3, 0.6), (43, 0.4, 0.9)]);
        let cuts = detect_cuts(&feats, 25.0, &SceneSettings::default());
        assert_eq!(cuts.len(), 1);
        assert_eq!(cuts[0].0, 43);
    }

    #[test]
    fn settings_report_every_problem() {
        let s = SceneSettings {
            min_score: 2.0,
            adaptive_ratio: 0.5,
            window: 0,
            min_scene_s: -1.0,
            cut_share: 1.5,
            novelty_s: 0.0,
            learned_cut_threshold: 2.5,
            learned_cut_confirm: f32::NAN,
            dissolve_contrast: 0.5,
            ..SceneSettings::default()
        };
        let p = s.problems();
        assert_eq!(p.len(), 9, "{p:?}");
        assert!(
            p.contains(
                &"scenes.learned_cut_threshold must be within 0..=2 (above 1: off), got 2.5".into()
            ),
            "{p:?}"
        );
        assert!(
            p.contains(&"scenes.dissolve_contrast must be within 1..=100, got 0.5".into()),
            "{p:?}"
        );
        assert!(SceneSettings::default().problems().is_empty());
    }
}
