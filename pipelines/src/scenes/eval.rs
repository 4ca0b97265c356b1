//! Scoring detected transitions against ground truth: precision, recall, F1.
//!
//! Hard cuts match within a frame tolerance (±1 by default: decoders and
//! labellers disagree on which side of a cut a frame lies). Gradual transitions
//! match when a detection of the same kind overlaps the labelled span; the
//! wrong kind counts as a miss and a false alarm. Matching is one-to-one.

use serde::{Deserialize, Serialize};

use super::{Transition, TransitionKind};

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

/// Scores `predicted` against `truth`.
pub fn evaluate(predicted: &[Transition], truth: &[Labeled], cut_tolerance: u64) -> Scores {
    let is_cut = |k: TransitionKind| k == TransitionKind::Cut;
    let mut used = vec![false; predicted.len()];
    let mut scores = Scores::default();
    for t in truth {
        let found = predicted.iter().enumerate().position(|(i, p)| {
            !used[i]
                && p.kind == t.kind
                && if is_cut(t.kind) {
                    p.start_frame.abs_diff(t.start) <= cut_tolerance
                } else {
                    p.start_frame < t.end.max(t.start + 1)
                        && t.start < p.end_frame.max(p.start_frame + 1)
                }
        });
        let counts = if is_cut(t.kind) {
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
        if is_cut(p.kind) {
            scores.cuts.false_alarms += 1;
        } else {
            scores.gradual.false_alarms += 1;
        }
    }
    scores
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
    fn nothing_to_find_and_nothing_found_is_perfect() {
        assert_eq!(evaluate(&[], &[], 1).cuts.f1(), 1.0);
    }
}
