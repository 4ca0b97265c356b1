//! The transcript: segments of recognised speech, each word timed, as the
//! `captions` task writes it to `transcript.json`. This is a contract with
//! the editor that reads it (documented in `docs/transcript.md`); fields are
//! only ever added.
//!
//! Word times come from Whisper's cross-attention alignment
//! ([`monteur_models::Whisper::align`]) on the spliced speech track, then go
//! through the same clean-ups faster-whisper applies (a word stretched over a
//! pause is cut to a plausible length; a segment's first and last word defer
//! to the segment's timestamps when those are tighter) before being mapped
//! back to the source's timeline.

use serde::{Deserialize, Serialize};

/// Version of the `transcript.json` layout.
pub const TRANSCRIPT_VERSION: u32 = 1;

/// `transcript.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub version: u32,
    /// Language code of the speech (`en`, `fr`, ...): the one asked for, or
    /// the one detected in the first window.
    pub language: String,
    /// Speech regions found by voice activity, seconds on the source's
    /// timeline; segments and words name theirs by index.
    pub regions: Vec<Region>,
    pub segments: Vec<TranscriptSegment>,
}

/// A span of detected speech.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub id: usize,
    pub start_s: f64,
    pub end_s: f64,
}

/// A sentence or phrase, as Whisper's timestamps cut it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptSegment {
    pub id: usize,
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
    /// The speech region the segment starts in.
    pub region: usize,
    /// Mean token log-probability of its window: low means unsure.
    pub avg_logprob: f32,
    pub words: Vec<Word>,
}

/// One word: its text as spoken (punctuation attached, no leading space),
/// when it starts and ends, how sure the model was (mean token probability).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub text: String,
    pub start_s: f64,
    pub end_s: f64,
    pub p: f32,
    pub region: usize,
}

impl Transcript {
    /// Every word, in order.
    pub fn words(&self) -> impl Iterator<Item = &Word> {
        self.segments.iter().flat_map(|s| s.words.iter())
    }

    /// The whole text, segments joined by spaces.
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A segment's span and words before mapping, on the spliced track.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Draft {
    pub start_s: f64,
    pub end_s: f64,
    pub words: Vec<(String, f64, f64, f32)>,
}

/// faster-whisper's clean-ups of one window's word times (its
/// `add_word_timestamps`). Attention-based alignment tends to stretch a word
/// across the silence next to it; these rules cut such a word back to about
/// twice the median word length, at sentence ends, after a long pause, and
/// against the segment's own timestamps. `last_speech_s` carries the end of
/// speech from one window to the next.
pub(crate) fn tidy_words(drafts: &mut [Draft], last_speech_s: &mut f64) {
    let mut durations: Vec<f64> = drafts
        .iter()
        .flat_map(|d| d.words.iter().map(|w| w.2 - w.1))
        .filter(|&d| d > 0.0)
        .collect();
    durations.sort_by(f64::total_cmp);
    let n = durations.len();
    let median = match n {
        0 => 0.0,
        _ if n % 2 == 1 => durations[n / 2],
        _ => (durations[n / 2 - 1] + durations[n / 2]) / 2.0,
    }
    .min(0.7);
    let max = median * 2.0;
    if !durations.is_empty() {
        let ends = |w: &str| {
            w.trim()
                .ends_with(['.', '\u{3002}', '!', '\u{ff01}', '?', '\u{ff1f}'])
        };
        for d in drafts.iter_mut() {
            for i in 1..d.words.len() {
                if d.words[i].2 - d.words[i].1 > max {
                    if ends(&d.words[i].0) {
                        d.words[i].2 = d.words[i].1 + max;
                    } else if ends(&d.words[i - 1].0) {
                        d.words[i].1 = d.words[i].2 - max;
                    }
                }
            }
        }
    }
    for d in drafts.iter_mut() {
        let Some(first) = d.words.first().cloned() else {
            continue;
        };
        // A first word that starts long after the last speech and lasts too
        // long has absorbed the pause: share the boundary with the next word.
        if first.2 - *last_speech_s > median * 4.0
            && (first.2 - first.1 > max
                || (d.words.len() > 1 && d.words[1].2 - first.1 > max * 2.0))
        {
            if d.words.len() > 1 && d.words[1].2 - d.words[1].1 > max {
                let boundary = (d.words[1].2 / 2.0).max(d.words[1].2 - max);
                d.words[0].2 = boundary;
                d.words[1].1 = boundary;
            }
            d.words[0].1 = (d.words[0].2 - max).max(0.0);
        }
        // Prefer the segment's start when the first word starts well before
        // it, and its end when the last word runs well past it.
        if d.start_s < d.words[0].2 && d.start_s - 0.5 > d.words[0].1 {
            d.words[0].1 = (d.words[0].2 - median).min(d.start_s).max(0.0);
        } else {
            d.start_s = d.words[0].1;
        }
        let n = d.words.len() - 1;
        if d.end_s > d.words[n].1 && d.end_s + 0.5 < d.words[n].2 {
            d.words[n].2 = (d.words[n].1 + median).max(d.end_s);
        } else {
            d.end_s = d.words[n].2;
        }
        *last_speech_s = d.end_s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(start: f64, end: f64, words: &[(&str, f64, f64)]) -> Draft {
        Draft {
            start_s: start,
            end_s: end,
            words: words
                .iter()
                .map(|&(w, a, b)| (w.to_string(), a, b, 0.9))
                .collect(),
        }
    }

    #[test]
    fn a_word_stretched_over_a_pause_is_cut_back() {
        // "world." absorbed 3 s of silence after the sentence end.
        let mut d = [draft(
            0.0,
            5.0,
            &[
                ("Hello", 0.0, 0.4),
                ("big", 0.4, 0.8),
                ("wide", 0.8, 1.2),
                ("world.", 1.2, 4.6),
            ],
        )];
        let mut last = 0.0;
        tidy_words(&mut d, &mut last);
        let w = &d[0].words[3];
        assert!((w.2 - w.1 - 0.8).abs() < 1e-9, "{w:?}");
        assert_eq!(d[0].end_s, w.2);
        assert_eq!(last, d[0].end_s);
    }

    #[test]
    fn segment_start_wins_over_a_first_word_far_before_it() {
        let mut d = [draft(
            2.0,
            3.0,
            &[("So", 0.5, 2.3), ("then", 2.3, 2.6), ("we", 2.6, 3.0)],
        )];
        let mut last = 0.0;
        tidy_words(&mut d, &mut last);
        assert!(d[0].words[0].1 >= 1.5, "{:?}", d[0].words[0]);
        assert!(d[0].words[0].1 <= 2.0);
    }
}
