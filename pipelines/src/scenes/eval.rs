//! Scoring detected transitions against ground truth: precision, recall, F1.
//!
//! Hard cuts match within a frame tolerance (±1 by default: decoders and
//! labellers disagree on which side of a cut a frame lies). Gradual transitions
//! match when a detection of the same kind overlaps the labelled span; the
//! wrong kind counts as a miss and a false alarm. Matching is one-to-one.

use serde::{Deserialize, Serialize};

use monteur_models::transnet::Prediction;

use super::{Span, Transition, TransitionKind};

/// A labelled transition over frames `[start, end)`; a cut has `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labeled {
    pub kind: TransitionKind,
    pub start: u64,
    pub end: u64,
}

/// True and false positives and misses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub hits: u64,
    pub false_alarms: u64,
    pub misses: u64,
}

impl Counts {
    pub fn precision(&self) -> f64 {
        ratio(self.hits, self.hits + self.false_alarms)
    }

    pub fn recall(&self) -> f64 {
        ratio(self.hits, self.hits + self.misses)
    }

    /// Harmonic mean of precision and recall; 1 when there was nothing to find
    /// and nothing was found.
    pub fn f1(&self) -> f64 {
        let denom = 2 * self.hits + self.false_alarms + self.misses;
        if denom == 0 {
            1.0
        } else {
            2.0 * self.hits as f64 / denom as f64
        }
    }

    pub fn add(&mut self, other: Counts) {
        self.hits += other.hits;
        self.false_alarms += other.false_alarms;
        self.misses += other.misses;
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// Scores for cuts and for gradual transitions, kept apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Scores {
    pub cuts: Counts,
    pub gradual: Counts,
}

impl Scores {
    pub fn add(&mut self, other: Scores) {
        self.cuts.add(other.cuts);
        self.gradual.add(other.gradual);
    }
}

impl std::fmt::Display for Scores {
    /// `cuts P … R … F1 … | gradual P … R … F1 …`, the line every scorer prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cuts P {:.3} R {:.3} F1 {:.3} | gradual P {:.3} R {:.3} F1 {:.3}",
            self.cuts.precision(),
            self.cuts.recall(),
            self.cuts.f1(),
            self.gradual.precision(),
            self.gradual.recall(),
            self.gradual.f1()
        )
    }
}

/// Detected spans as transitions to score (frame indices only: the scorers
/// never read times).
pub fn spans_to_transitions(spans: Vec<Span>) -> Vec<Transition> {
    spans
        .into_iter()
        .map(|t| Transition {
            kind: t.kind,
            start_frame: t.start as u64,
            end_frame: t.end as u64,
            start_s: 0.0,
            end_s: 0.0,
            score: t.score,
        })
        .collect()
}

/// Scores `predicted` against `truth`.
pub fn evaluate(predicted: &[Transition], truth: &[Labeled], cut_tolerance: u64) -> Scores {
    score(
        predicted,
        truth,
        |p, t| {
            p.kind == t.kind
                && if t.kind == TransitionKind::Cut {
                    p.start_frame.abs_diff(t.start) <= cut_tolerance
                } else {
                    p.start_frame < t.end.max(t.start + 1)
                        && t.start < p.end_frame.max(p.start_frame + 1)
                }
        },
        |p| p.kind == TransitionKind::Cut,
    )
}

/// One-to-one matching shared by both scorers: each labelled transition takes
/// the first unused prediction that `matches` it (a hit in the truth's
/// class, else a miss); every prediction left over is a false alarm, a cut's
/// when `is_cut` says so.
fn score<P>(
    predicted: &[P],
    truth: &[Labeled],
    matches: impl Fn(&P, &Labeled) -> bool,
    is_cut: impl Fn(&P) -> bool,
) -> Scores {
    let mut used = vec![false; predicted.len()];
    let mut scores = Scores::default();
    for t in truth {
        let found = predicted
            .iter()
            .enumerate()
            .position(|(i, p)| !used[i] && matches(p, t));
        let counts = if t.kind == TransitionKind::Cut {
            &mut scores.cuts
        } else {
            &mut scores.gradual
        };
        match found {
            Some(i) => {
                used[i] = true;
                counts.hits += 1;
            }
            None => counts.misses += 1,
        }
    }
    for (p, _) in predicted.iter().zip(&used).filter(|(_, u)| !**u) {
        if is_cut(p) {
            scores.cuts.false_alarms += 1;
        } else {
            scores.gradual.false_alarms += 1;
        }
    }
    scores
}

/// A boundary without a kind: frames `[start, end)` (a cut: `start == end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundary {
    pub start: u64,
    pub end: u64,
}

/// The truth as a detector without kinds sees it: a fade out followed at
/// once (or after a few black frames) by a fade in is one change of shot.
pub fn boundary_truth(truth: &[Labeled], max_black: u64) -> Vec<Labeled> {
    let mut out: Vec<Labeled> = Vec::with_capacity(truth.len());
    for t in truth {
        if let Some(last) = out.last_mut()
            && last.kind == TransitionKind::FadeOut
            && t.kind == TransitionKind::FadeIn
            && t.start <= last.end + max_black
        {
            last.kind = TransitionKind::Dissolve;
            last.end = t.end;
            continue;
        }
        out.push(*t);
    }
    out
}

/// Scores boundaries that carry no kind (TransNetV2's own output, or any
/// detector's transitions with their kinds dropped) against `truth`: a
/// boundary matches a labelled transition it touches within `tolerance`
/// frames, one to one. Misses count in the class of the truth; a boundary
/// that matches nothing is a false cut when it spans at most `cut_frames`
/// frames, else a false gradual transition.
pub fn evaluate_boundaries(
    predicted: &[Boundary],
    truth: &[Labeled],
    tolerance: u64,
    cut_frames: u64,
) -> Scores {
    score(
        predicted,
        truth,
        |p, t| {
            let (lo, hi) = (
                t.start.saturating_sub(tolerance),
                t.end.max(t.start) + tolerance,
            );
            p.start <= hi && lo <= p.end.max(p.start)
        },
        |p| p.end.saturating_sub(p.start) <= cut_frames,
    )
}

/// TransNetV2's own reading: runs of frames above 0.5, each closing a scene
/// (the reference's `predictions_to_scenes`); a run of one or two frames is a
/// cut at the first frame after it.
pub fn transnet_boundaries(p: &[Prediction]) -> Vec<Boundary> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        if p[i].single_frame <= 0.5 {
            i += 1;
            continue;
        }
        let start = i;
        while i < p.len() && p[i].single_frame > 0.5 {
            i += 1;
        }
        if start == 0 {
            continue;
        }
        let b = if i - start <= 2 {
            Boundary {
                start: i as u64,
                end: i as u64,
            }
        } else {
            Boundary {
                start: start as u64,
                end: i as u64,
            }
        };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(kind: TransitionKind, start: u64, end: u64) -> Transition {
        Transition {
            kind,
            start_frame: start,
            end_frame: end,
            start_s: 0.0,
            end_s: 0.0,
            score: 1.0,
        }
    }

    fn l(kind: TransitionKind, start: u64, end: u64) -> Labeled {
        Labeled { kind, start, end }
    }

    #[test]
    fn cuts_match_within_tolerance_once() {
        use TransitionKind::Cut;
        let s = evaluate(
            &[t(Cut, 31, 31), t(Cut, 32, 32), t(Cut, 90, 90)],
            &[l(Cut, 30, 30), l(Cut, 180, 180)],
            1,
        );
        assert_eq!(
            s.cuts,
            Counts {
                hits: 1,
                false_alarms: 2,
                misses: 1
            }
        );
        assert!((s.cuts.f1() - 2.0 / 5.0).abs() < 1e-9);
    }

    #[test]
    fn gradual_needs_overlap_and_the_right_kind() {
        use TransitionKind::*;
        let s = evaluate(
            &[t(FadeOut, 20, 30), t(Dissolve, 50, 60)],
            &[l(FadeOut, 25, 40), l(FadeIn, 50, 60)],
            1,
        );
        assert_eq!(
            s.gradual,
            Counts {
                hits: 1,
                false_alarms: 1,
                misses: 1
            }
        );
    }

    #[test]
    fn boundaries_match_without_kinds() {
        use TransitionKind::*;
        let truth = boundary_truth(
            &[
                l(Cut, 10, 10),
                l(FadeOut, 20, 25),
                l(FadeIn, 27, 30),
                l(Wipe, 50, 60),
            ],
            5,
        );
        assert_eq!(truth.len(), 3, "{truth:?}");
        let b = |start, end| Boundary { start, end };
        let s = evaluate_boundaries(&[b(11, 11), b(26, 26), b(80, 84)], &truth, 1, 2);
        assert_eq!(
            (s.cuts, s.gradual),
            (
                Counts {
                    hits: 1,
                    false_alarms: 0,
                    misses: 0
                },
                Counts {
                    hits: 1,
                    false_alarms: 1,
                    misses: 1
                }
            )
        );
    }

    #[test]
    fn nothing_to_find_and_nothing_found_is_perfect() {
        assert_eq!(evaluate(&[], &[], 1).cuts.f1(), 1.0);
    }
}
