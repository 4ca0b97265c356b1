//! Scene boundaries from per-frame features, and the `scenes.json` contract.
//!
//! Pure logic: no GStreamer, no I/O, so every rule is unit-tested on synthetic
//! feature curves.
//!
//! A hard cut is a frame whose difference to the previous frame stands out both
//! absolutely and against its neighbourhood (an adaptive threshold, as in
//! PySceneDetect's AdaptiveDetector). The difference combines the residual pixel
//! difference (structure, with the change in mean brightness removed) and the
//! luma-histogram distance (insensitive to motion); a frame must score on both,
//! so camera motion (high pixel difference, stable histogram), a flat colour or
//! brightness change (histogram moves, structure stays) and gradual fades (many
//! small steps) do not pass.

use monteur_kernels::FrameFeatures;
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
}

impl Default for SceneSettings {
    fn default() -> Self {
        Self {
            min_score: DEFAULT_MIN_SCORE,
            adaptive_ratio: DEFAULT_ADAPTIVE_RATIO,
            window: DEFAULT_WINDOW,
            min_scene_s: DEFAULT_MIN_SCENE_S,
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

/// The difference score of a frame to its predecessor, 0..1.
///
/// The smaller of the two measures, so both must move: motion raises the
/// residual but not the histogram distance, while a change of flat background
/// colour or the first steps of a fade from black move the histogram a lot and
/// leave the structure. Measured on the fixtures: real cuts 0.31..0.72, a flat
/// colour change 0.04, fade steps under 0.03.
pub fn frame_score(f: &FrameFeatures) -> f32 {
    match (f.residual_diff, f.hist_distance) {
        // Residuals of real cuts sit around 0.1..0.2 of full scale; the factor
        // puts them on the histogram distance's scale.
        (Some(residual), Some(hist)) => (residual * 4.0).min(1.0).min(hist),
        _ => 0.0,
    }
}

/// Indices of frames that start a new shot.
pub fn detect_cuts(features: &[FrameFeatures], fps: f64, s: &SceneSettings) -> Vec<(usize, f32)> {
    let scores: Vec<f32> = features.iter().map(frame_score).collect();
    let min_gap = ((s.min_scene_s * fps).round() as usize).max(1);
    let mut cuts: Vec<(usize, f32)> = Vec::new();
    for (i, &score) in scores.iter().enumerate().skip(1) {
        if score < s.min_score {
            continue;
        }
        let lo = i.saturating_sub(s.window).max(1);
        let hi = (i + s.window).min(scores.len() - 1);
        let neighbours: Vec<f32> = (lo..=hi).filter(|&j| j != i).map(|j| scores[j]).collect();
        let baseline = if neighbours.is_empty() {
            0.0
        } else {
            neighbours.iter().sum::<f32>() / neighbours.len() as f32
        };
        // A small floor keeps a static scene (baseline near zero) from turning
        // compression noise into cuts; min_score already bounds that, but the
        // ratio must stay meaningful too.
        if score < s.adaptive_ratio * baseline.max(0.01) {
            continue;
        }
        match cuts.last_mut() {
            Some((last, last_score)) if i - *last < min_gap => {
                // Keep the stronger of two cuts that are too close.
                if score > *last_score {
                    *last = i;
                    *last_score = score;
                }
            }
            _ if i < min_gap => {}
            _ => cuts.push((i, score)),
        }
    }
    cuts
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
    let transitions: Vec<Transition> = cuts
        .iter()
        .map(|&(i, score)| Transition {
            kind: TransitionKind::Cut,
            start_frame: i as u64,
            end_frame: i as u64,
            start_s: round_us(time_of(i)),
            end_s: round_us(time_of(i)),
            score: (score * 1000.0).round() / 1000.0,
        })
        .collect();
    let mut bounds: Vec<usize> = vec![0];
    bounds.extend(cuts.iter().map(|&(i, _)| i));
    bounds.push(frames);
    let scenes = bounds
        .windows(2)
        .enumerate()
        .map(|(index, w)| Scene {
            index,
            start_frame: w[0] as u64,
            end_frame: w[1] as u64,
            start_s: round_us(time_of(w[0])),
            end_s: round_us(time_of(w[1])),
        })
        .collect();
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

    fn f(mad: f32, hist: f32) -> FrameFeatures {
        FrameFeatures {
            mean_luma: 100.0,
            mean_abs_diff: Some(mad),
            residual_diff: Some(mad),
            hist_distance: Some(hist),
        }
    }

    fn first() -> FrameFeatures {
        FrameFeatures {
            mean_luma: 100.0,
            mean_abs_diff: None,
            residual_diff: None,
            hist_distance: None,
        }
    }

    fn curve(n: usize, base: (f32, f32), spikes: &[(usize, f32, f32)]) -> Vec<FrameFeatures> {
        let mut v = vec![first()];
        v.extend((1..n).map(|i| {
            spikes
                .iter()
                .find(|s| s.0 == i)
                .map(|s| f(s.1, s.2))
                .unwrap_or(f(base.0, base.1))
        }));
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
        };
        assert_eq!(s.problems().len(), 4);
        assert!(SceneSettings::default().problems().is_empty());
    }
}
