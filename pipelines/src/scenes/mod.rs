//! Scene boundaries from per-frame features, and the `scenes.json` contract.
//!
//! Pure logic: no GStreamer, no I/O, so every rule is unit-tested on synthetic
//! feature curves.
//!
//! - [`cuts`]: hard cuts (adaptive threshold, flash suppression).
//! - [`gradual`]: fades to and from black, and dissolves.
//! - [`eval`]: precision, recall and F1 against labelled transitions.
//!
//! Scenes are the spans between transitions: a cut ends one scene and starts
//! the next at the same frame; the frames of a gradual transition belong to
//! neither scene.

pub mod cuts;
pub mod eval;
pub mod gradual;

pub use cuts::{detect_cuts, frame_score};
pub use gradual::{Gradual, detect_gradual};

use serde::{Deserialize, Serialize};

use crate::{Analysis, MediaInfo};

pub const DEFAULT_MIN_SCORE: f32 = 0.15;
pub const DEFAULT_ADAPTIVE_RATIO: f32 = 3.0;
pub const DEFAULT_WINDOW: usize = 3;
pub const DEFAULT_MIN_SCENE_S: f64 = 0.4;

/// Thresholds of the cut detector (`[scenes]` in the config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SceneSettings {
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
        if !(0.0..=1.0).contains(&self.min_score) {
            p.push(format!(
                "scenes.min_score must be within 0..=1, got {}",
                self.min_score
            ));
        }
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
        for (key, v) in [
            ("black_level", self.black_level),
            ("fade_step", self.fade_step),
            ("min_fade_drop", self.min_fade_drop),
        ] {
            if !(0.0..=255.0).contains(&v) {
                p.push(format!("scenes.{key} must be within 0..=255, got {v}"));
            }
        }
        for (key, v) in [
            ("dissolve_low", self.dissolve_low),
            ("dissolve_high", self.dissolve_high),
        ] {
            if !(0.0..=1.0).contains(&v) {
                p.push(format!("scenes.{key} must be within 0..=1, got {v}"));
            }
        }
        if !(self.dissolve_contrast >= 1.0 && self.dissolve_contrast <= 100.0) {
            p.push(format!(
                "scenes.dissolve_contrast must be within 1..=100, got {}",
                self.dissolve_contrast
            ));
        }
        if !(self.min_fade_s > 0.0 && self.min_fade_s <= 10.0) {
            p.push(format!(
                "scenes.min_fade_s must be within (0, 10], got {}",
                self.min_fade_s
            ));
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
        if !(0.0..=60.0).contains(&self.min_scene_s) {
            p.push(format!(
                "scenes.min_scene_s must be within 0..=60, got {}",
                self.min_scene_s
            ));
        }
        p
    }
}

/// Kinds of transition. Only cuts are detected so far; the others are part of
/// the contract that readers must accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    Cut,
    FadeIn,
    FadeOut,
    Dissolve,
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
    pub width: u32,
    pub height: u32,
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

    let cuts = detect_cuts(&analysis.features, fps.max(1.0), s);
    let gradual = detect_gradual(&analysis.features, &cuts, fps.max(1.0), s);
    let mut spans: Vec<(TransitionKind, usize, usize, f32)> = cuts
        .iter()
        // A cut inside a gradual transition is part of it.
        .filter(|&&(c, _)| !gradual.iter().any(|g| g.start <= c && c < g.end))
        .map(|&(c, score)| (TransitionKind::Cut, c, c, score))
        .chain(gradual.iter().map(|g| (g.kind, g.start, g.end, g.score)))
        .collect();
    spans.sort_by_key(|t| t.1);
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
        },
        scenes,
        transitions,
    }
}

fn round_us(s: f64) -> f64 {
    (s * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use monteur_kernels::{FrameFeatures, HIST_BINS};

    fn f(mad: f32, hist: f32) -> FrameFeatures {
        FrameFeatures {
            mean_luma: 100.0,
            mean_abs_diff: Some(mad),
            residual_diff: Some(mad),
            hist_distance: Some(hist),
            hist: [1.0 / HIST_BINS as f32; HIST_BINS],
        }
    }

    fn first() -> FrameFeatures {
        FrameFeatures {
            mean_luma: 100.0,
            mean_abs_diff: None,
            residual_diff: None,
            hist_distance: None,
            hist: [1.0 / HIST_BINS as f32; HIST_BINS],
        }
    }

    /// Histogram of shot `k`: all pixels in one bin, a different bin per shot.
    fn shot_hist(k: usize) -> [f32; HIST_BINS] {
        let mut h = [0.0; HIST_BINS];
        h[(k * 7) % HIST_BINS] = 1.0;
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
            hist: [1.0 / HIST_BINS as f32; HIST_BINS],
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
            ..SceneSettings::default()
        };
        assert_eq!(s.problems().len(), 4);
        assert!(SceneSettings::default().problems().is_empty());
    }
}
