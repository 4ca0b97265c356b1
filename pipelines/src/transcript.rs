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

/// How word edges are refined against the audio ([`refine_edges`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EdgeSettings {
    /// Sound is this many dB above the window's noise floor ...
    pub rise_db: f32,
    /// ... after at least this long below it (an onset), or before it (an
    /// offset).
    pub quiet_s: f64,
    /// How far from the attention's estimate an edge may move.
    pub search_s: f64,
}

/// Level in dB of each 10 ms of `samples` (RMS, full scale 0 dB).
pub(crate) fn envelope(samples: &[f32]) -> Vec<f32> {
    samples
        .chunks(ENVELOPE_HOP)
        .map(|c| {
            let ms = c.iter().map(|&x| x * x).sum::<f32>() / c.len().max(1) as f32;
            10.0 * ms.max(1e-12).log10()
        })
        .collect()
}

/// How soon after an onset, and how near the word's peak, the level must
/// come for the onset to be the word's.
const CONFIRM_S: f64 = 0.15;
const CONFIRM_DB: f32 = 15.0;

/// Samples per envelope step (10 ms at 16 kHz).
pub(crate) const ENVELOPE_HOP: usize = 160;

/// Moves word edges onto the audio. Cross-attention alignment places a word
/// that follows a pause too early (the path enters it in the silence) and
/// ends one before a pause late; where a clear silence-to-sound transition
/// lies near the estimate, that transition is the edge. Between words run
/// together there is no such transition and the estimate stands.
///
/// `words` are `(text, start, end, p)` in seconds on the track `env` was
/// measured on, whose first step is at `t0`.
pub(crate) fn refine_edges(
    words: &mut [(String, f64, f64, f32)],
    env: &[f32],
    t0: f64,
    s: &EdgeSettings,
) {
    if env.is_empty() || words.is_empty() {
        return;
    }
    let step = ENVELOPE_HOP as f64 / 16_000.0;
    let mut sorted: Vec<f32> = env.to_vec();
    sorted.sort_by(f32::total_cmp);
    let floor = sorted[sorted.len() / 10].max(-100.0);
    let threshold = floor + s.rise_db;
    let quiet = ((s.quiet_s / step).round() as usize).max(1);
    let n = env.len();
    let frame = |t: f64| (((t - t0) / step).round().max(0.0) as usize).min(n);
    let loud = |f: usize| env.get(f).is_some_and(|&v| v >= threshold);
    // Onsets: loud after `quiet` quiet frames; offsets: loud before them.
    let onset = |f: usize| f >= quiet && loud(f) && (f - quiet..f).all(|g| !loud(g));
    let offset = |f: usize| f + quiet < n && loud(f) && (f + 1..=f + quiet).all(|g| !loud(g));
    let nearest = |lo: usize, hi: usize, target: usize, test: &dyn Fn(usize) -> bool| {
        (lo..hi.min(n))
            .filter(|&f| test(f))
            .min_by_key(|&f| f.abs_diff(target))
    };
    let search = (s.search_s / step).round() as usize;
    for i in 0..words.len() {
        let (a, b) = (frame(words[i].1), frame(words[i].2));
        let prev_end = if i > 0 { frame(words[i - 1].2) } else { 0 };
        // The word's sound starts somewhere before the estimated end: look
        // from a little before the estimated start up to that end.
        let lo = a.saturating_sub(search).max(prev_end);
        // Not at the very end, which would leave the word no length.
        let hi = b.saturating_sub(2).max(a + 1);
        // An onset counts when the word's voice follows it: within
        // `CONFIRM_S` the level comes within `CONFIRM_DB` of the word's
        // peak. A step up to a recording's own room noise (after digital
        // silence, or a door) is not the word.
        let peak = env[lo.min(n - 1)..hi.max(lo + 1).min(n)]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let confirm = (CONFIRM_S / step).round() as usize;
        let voiced = |f: usize| {
            onset(f)
                && env[f..(f + confirm).min(n)]
                    .iter()
                    .any(|&v| v >= peak - CONFIRM_DB)
        };
        if let Some(f) = nearest(lo, hi + 1, a, &voiced) {
            words[i].1 = t0 + f as f64 * step;
        }
        // And ends after its start: look from there to a little past the
        // estimated end, short of the next word.
        let start = frame(words[i].1);
        let next_start = words.get(i + 1).map_or(n, |w| frame(w.1));
        let lo = start + 1;
        let hi = (b + search).min(next_start);
        if let Some(f) = nearest(lo, hi, b, &offset) {
            words[i].2 = t0 + (f + 1) as f64 * step;
        }
        if words[i].2 < words[i].1 {
            words[i].2 = words[i].1;
        }
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
