//! Captions: speech found by voice activity, transcribed by Whisper, cut into
//! cues that follow common broadcast subtitle rules, written as SRT and VTT.
//!
//! Only speech reaches the recogniser: the detected speech regions are joined
//! end to end, so music and noise between them cannot be "transcribed" into
//! hallucinated text, and times are mapped back to the source afterwards.
//!
//! Cue rules (all in [`CaptionSettings`]): at most 2 lines of at most 42
//! characters, at most 17 characters per second, 5/6 s to 7 s on screen where
//! the speech allows, at least 2 frames between cues, line breaks after
//! punctuation when possible, and no cue across a hard cut. The cue builder
//! meets them by construction; [`check_cues`] verifies any cue list.

use std::fmt::Write as _;

use monteur_kernels::Backend;
use monteur_kernels::mel::WINDOW_SAMPLES;
use monteur_models::{VoiceActivity, Whisper, vad};
use serde::{Deserialize, Serialize};

use crate::{AUDIO_RATE, AudioTrack, Cancel, PipelineError};

/// `[captions]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptionSettings {
    /// Language of the speech (`en`, `fr`, ...) for a multilingual model, or
    /// `auto` to let it detect the language per window.
    pub language: String,
    /// Speech probability that starts a speech region ...
    pub speech_threshold: f32,
    /// ... and the one it must fall below, for `min_silence_s`, to end it.
    pub silence_threshold: f32,
    pub min_silence_s: f64,
    /// Shorter regions are dropped (clicks, breaths).
    pub min_speech_s: f64,
    /// Audio kept on each side of a region, so no word is clipped.
    pub speech_pad_s: f64,
    pub max_line_chars: usize,
    pub max_lines: usize,
    pub max_chars_per_s: f64,
    pub min_cue_s: f64,
    pub max_cue_s: f64,
    /// Gap between cues, in frames of the source (25 fps without video).
    pub min_gap_frames: f64,
}

impl Default for CaptionSettings {
    fn default() -> Self {
        Self {
            language: "auto".into(),
            speech_threshold: 0.5,
            silence_threshold: 0.35,
            // faster-whisper's defaults: pauses under 2 s stay inside a region,
            // so the recogniser keeps a sentence's context (measured: WER 6.5%
            // with 0.3 s / 0.2 s, 4.3% with these, docs/BENCHMARKS.md).
            min_silence_s: 2.0,
            min_speech_s: 0.25,
            speech_pad_s: 0.4,
            max_line_chars: 42,
            max_lines: 2,
            max_chars_per_s: 17.0,
            min_cue_s: 5.0 / 6.0,
            max_cue_s: 7.0,
            min_gap_frames: 2.0,
        }
    }
}

impl CaptionSettings {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.language != "auto" && !(2..=3).contains(&self.language.len()) {
            p.push(format!(
                "captions.language must be `auto` or a language code, got `{}`",
                self.language
            ));
        }
        if !(0.0 < self.silence_threshold
            && self.silence_threshold <= self.speech_threshold
            && self.speech_threshold < 1.0)
        {
            p.push("captions: need 0 < silence_threshold <= speech_threshold < 1".into());
        }
        if !(10..=80).contains(&self.max_line_chars) || !(1..=3).contains(&self.max_lines) {
            p.push("captions: max_line_chars must be 10..=80 and max_lines 1..=3".into());
        }
        if !(self.max_chars_per_s >= 5.0 && self.min_cue_s > 0.0 && self.min_cue_s < self.max_cue_s)
        {
            p.push("captions: need max_chars_per_s >= 5 and 0 < min_cue_s < max_cue_s".into());
        }
        let longest = (self.max_line_chars * self.max_lines) as f64 / self.max_chars_per_s;
        if longest > self.max_cue_s {
            p.push(format!(
                "captions: a full cue needs {longest:.1} s at max_chars_per_s, above max_cue_s"
            ));
        }
        p
    }
}

/// A span of recognised text, times in seconds on the source's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Phrase {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
}

/// One subtitle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cue {
    pub start_s: f64,
    pub end_s: f64,
    pub lines: Vec<String>,
}

impl Cue {
    fn chars(&self) -> usize {
        self.lines.iter().map(|l| l.chars().count()).sum::<usize>()
            + self.lines.len().saturating_sub(1)
    }
}

/// Speech regions `[start, end)` in seconds from the track's first sample,
/// from per-window speech probabilities (one per `vad::WINDOW` samples).
pub fn speech_regions(probs: &[f32], s: &CaptionSettings) -> Vec<(f64, f64)> {
    let step = vad::WINDOW as f64 / f64::from(AUDIO_RATE);
    let mut raw: Vec<(f64, f64)> = Vec::new();
    let mut start: Option<usize> = None;
    let mut quiet = 0usize;
    let min_quiet = (s.min_silence_s / step).ceil() as usize;
    for (i, &p) in probs.iter().enumerate() {
        match start {
            None if p >= s.speech_threshold => {
                start = Some(i);
                quiet = 0;
            }
            Some(b) if p < s.silence_threshold => {
                quiet += 1;
                if quiet >= min_quiet {
                    raw.push((b as f64 * step, (i + 1 - quiet) as f64 * step));
                    start = None;
                }
            }
            Some(_) => quiet = 0,
            None => {}
        }
    }
    if let Some(b) = start {
        raw.push((b as f64 * step, (probs.len() - quiet) as f64 * step));
    }
    let total = probs.len() as f64 * step;
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (a, b) in raw.into_iter().filter(|(a, b)| b - a >= s.min_speech_s) {
        let (a, b) = (
            (a - s.speech_pad_s).max(0.0),
            (b + s.speech_pad_s).min(total),
        );
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Speech regions joined end to end, and where each piece came from, so
/// times on the joined track map back to the source.
struct Spliced {
    samples: Vec<f32>,
    /// `(start on the joined track, start in the source, length)`, seconds.
    pieces: Vec<(f64, f64, f64)>,
}

impl Spliced {
    fn new(track: &[f32], regions: &[(f64, f64)]) -> Self {
        let rate = f64::from(AUDIO_RATE);
        let mut samples = Vec::new();
        let mut pieces = Vec::new();
        for &(a, b) in regions {
            let (sa, sb) = ((a * rate) as usize, ((b * rate) as usize).min(track.len()));
            if sb <= sa {
                continue;
            }
            pieces.push((
                samples.len() as f64 / rate,
                sa as f64 / rate,
                (sb - sa) as f64 / rate,
            ));
            samples.extend_from_slice(&track[sa..sb]);
        }
        Self { samples, pieces }
    }

    /// Source time of joined-track time `t`; `end` picks the earlier piece at
    /// a boundary, so a span never stretches over the gap between pieces.
    fn source_time(&self, t: f64, end: bool) -> f64 {
        let i = self
            .pieces
            .iter()
            .rposition(|p| if end { p.0 < t } else { p.0 <= t })
            .unwrap_or(0);
        let (joined, source, len) = self.pieces[i];
        source + (t - joined).clamp(0.0, len)
    }

    fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(AUDIO_RATE)
    }
}

/// Voice activity, then Whisper over the speech. Times are on the source's
/// timeline (the track's start added).
///
/// As faster-whisper does, the speech regions are joined end to end before
/// recognition (the model never sees the silence, music or noise between
/// them) and times are mapped back afterwards. As Whisper's own loop does, a
/// 30 s window is decoded again from its last timestamp when the model stopped
/// before the window's speech did.
#[allow(clippy::too_many_arguments)]
pub fn transcribe(
    track: &AudioTrack,
    settings: &CaptionSettings,
    vad: &mut VoiceActivity,
    whisper: &mut Whisper,
    backend: &mut dyn Backend,
    cancel: &Cancel,
    on_progress: &mut dyn FnMut(f64),
) -> Result<Vec<Phrase>, PipelineError> {
    let stop = || cancel.is_cancelled();
    vad.reset();
    let probs = vad.probabilities_until(&track.samples, &stop)?;
    let speech = Spliced::new(&track.samples, &speech_regions(&probs, settings));
    let rate = f64::from(AUDIO_RATE);
    let span = WINDOW_SAMPLES as f64 / rate;
    let total = speech.seconds();
    let offset = track.start.as_secs_f64();
    let mut window = vec![0f32; WINDOW_SAMPLES];
    let mut mel = Vec::new();
    let mut phrases = Vec::new();
    let mut cursor = 0.0f64;
    while cursor + 0.1 < total {
        on_progress(cursor / total);
        let from = (cursor * rate) as usize;
        let n = (speech.samples.len() - from).min(WINDOW_SAMPLES);
        window.fill(0.0);
        window[..n].copy_from_slice(&speech.samples[from..from + n]);
        let window_end = cursor + n as f64 / rate;
        backend.log_mel(&window, &mut mel)?;
        let mut covered = 0.0f64;
        let language = match settings.language.as_str() {
            "auto" => None,
            code => Some(code),
        };
        for seg in whisper.transcribe_until(&mel, language, &stop)? {
            let (a, b) = (
                cursor + f64::from(seg.start_s),
                (cursor + f64::from(seg.end_s)).min(window_end),
            );
            covered = covered.max(b - cursor);
            if b > a && !seg.text.is_empty() {
                phrases.push(Phrase {
                    start_s: speech.source_time(a, false) + offset,
                    end_s: speech.source_time(b, true) + offset,
                    text: seg.text,
                });
            }
        }
        // Seek to the last timestamp if the model stopped early and made
        // progress, else past the window.
        cursor = if covered >= 0.5 && cursor + covered + 1.0 < window_end {
            cursor + covered
        } else {
            cursor + span
        };
    }
    Ok(phrases)
}

/// Lines of at most `max_chars`, filled word by word.
fn greedy_lines(text: &str, max_chars: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for w in text.split_whitespace() {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + w.chars().count() <= max_chars => {
                l.push(' ');
                l.push_str(w);
            }
            _ => lines.push(w.to_string()),
        }
    }
    lines
}

/// Splits `text` into two lines of at most `max_chars`, breaking after
/// punctuation near the middle when it can, else word by word.
fn break_lines(text: &str, max_chars: usize) -> Vec<String> {
    if text.chars().count() <= max_chars {
        return vec![text.to_string()];
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let total = text.chars().count();
    let mut best: Option<(usize, f64)> = None;
    let mut left = 0;
    for i in 1..words.len() {
        left += words[i - 1].chars().count() + usize::from(i > 1);
        let right = total - left - 1;
        if left > max_chars || right > max_chars {
            continue;
        }
        let balance = (left as f64 - right as f64).abs();
        let natural = if words[i - 1].ends_with([',', '.', '?', '!', ';', ':']) {
            0.0
        } else {
            15.0
        };
        let cost = balance + natural;
        if best.is_none_or(|(_, c)| cost < c) {
            best = Some((i, cost));
        }
    }
    match best {
        Some((i, _)) => vec![words[..i].join(" "), words[i..].join(" ")],
        None => greedy_lines(text, max_chars),
    }
}

/// Cuts phrases into cues that meet the rules; `cuts_s` are hard-cut times
/// (cues never span one); `fps` sets the minimum gap.
pub fn build_cues(phrases: &[Phrase], cuts_s: &[f64], fps: f64, s: &CaptionSettings) -> Vec<Cue> {
    let gap = s.min_gap_frames / if fps > 0.0 { fps } else { 25.0 };
    let fits = |text: &str| greedy_lines(text, s.max_line_chars).len() <= s.max_lines;
    // Text chunks with the time their words were spoken.
    let mut chunks: Vec<(f64, f64, String)> = Vec::new();
    for p in phrases {
        let words: Vec<&str> = p.text.split_whitespace().collect();
        let total: usize = p.text.chars().count().max(1);
        let mut current = String::new();
        let mut spoken = p.start_s;
        let mut flush = |current: &mut String, spoken: &mut f64| {
            if current.is_empty() {
                return;
            }
            let share = current.chars().count() as f64 / total as f64;
            let end = (*spoken + share * (p.end_s - p.start_s)).min(p.end_s);
            chunks.push((*spoken, end, std::mem::take(current)));
            *spoken = end;
        };
        for w in words {
            let w: String = w.chars().take(s.max_line_chars).collect();
            if !current.is_empty() && !fits(&format!("{current} {w}")) {
                flush(&mut current, &mut spoken);
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(&w);
            // A sentence end is a natural place for a new cue once the cue
            // holds a readable amount.
            if w.ends_with(['.', '?', '!']) && current.chars().count() >= s.max_line_chars / 2 {
                flush(&mut current, &mut spoken);
            }
        }
        flush(&mut current, &mut spoken);
    }
    let mut cues: Vec<Cue> = Vec::new();
    for (spoken_start, spoken_end, text) in chunks {
        let lines = break_lines(&text, s.max_line_chars);
        let chars = text.chars().count() as f64;
        let need = (chars / s.max_chars_per_s).max(s.min_cue_s);
        let mut start = spoken_start;
        if let Some(prev) = cues.last() {
            start = start.max(prev.end_s + gap);
        }
        let mut end = (start + (spoken_end - spoken_start).max(need)).min(start + s.max_cue_s);
        if let Some(&cut) = cuts_s.iter().find(|&&c| c > start && c < end) {
            if cut - gap - start >= need {
                end = cut - gap;
            } else {
                start = cut;
                end = (cut + (spoken_end - spoken_start).max(need)).min(cut + s.max_cue_s);
            }
        }
        cues.push(Cue {
            start_s: start,
            end_s: end,
            lines,
        });
    }
    cues
}

/// Every rule a cue list breaks, empty when it passes.
pub fn check_cues(cues: &[Cue], cuts_s: &[f64], fps: f64, s: &CaptionSettings) -> Vec<String> {
    let gap = s.min_gap_frames / if fps > 0.0 { fps } else { 25.0 };
    let eps = 1e-6;
    let mut problems = Vec::new();
    for (i, c) in cues.iter().enumerate() {
        let d = c.end_s - c.start_s;
        if c.lines.is_empty() || c.lines.len() > s.max_lines {
            problems.push(format!("cue {i}: {} lines", c.lines.len()));
        }
        if let Some(l) = c
            .lines
            .iter()
            .find(|l| l.chars().count() > s.max_line_chars)
        {
            problems.push(format!(
                "cue {i}: line of {} characters: {l}",
                l.chars().count()
            ));
        }
        if d + eps < s.min_cue_s || d > s.max_cue_s + eps {
            problems.push(format!("cue {i}: on screen {d:.3} s"));
        }
        if c.chars() as f64 / d > s.max_chars_per_s + eps {
            problems.push(format!("cue {i}: {:.1} characters/s", c.chars() as f64 / d));
        }
        if let Some(prev) = i.checked_sub(1).map(|p| &cues[p])
            && c.start_s + eps < prev.end_s + gap
        {
            problems.push(format!(
                "cue {i}: starts {:.3} s after the previous cue",
                c.start_s - prev.end_s
            ));
        }
        if let Some(cut) = cuts_s
            .iter()
            .find(|&&t| t > c.start_s + eps && t < c.end_s - eps)
        {
            problems.push(format!("cue {i}: crosses the cut at {cut:.3} s"));
        }
    }
    problems
}

fn timestamp(s: f64, sep: char) -> String {
    let ms = (s.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// SubRip.
pub fn to_srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    for (i, c) in cues.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(c.start_s, ','),
            timestamp(c.end_s, ','),
            c.lines.join("\n")
        );
    }
    out
}

/// WebVTT.
pub fn to_vtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for c in cues {
        let _ = write!(
            out,
            "{} --> {}\n{}\n\n",
            timestamp(c.start_s, '.'),
            timestamp(c.end_s, '.'),
            c.lines.join("\n")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase(a: f64, b: f64, text: &str) -> Phrase {
        Phrase {
            start_s: a,
            end_s: b,
            text: text.into(),
        }
    }

    #[test]
    fn regions_need_sustained_silence_and_get_padded() {
        let s = CaptionSettings::default();
        // 32 ms steps: 1 s speech, 0.1 s dip (too short to end it), 1 s speech, silence.
        let mut p = vec![0.9f32; 31];
        p.extend([0.1; 3]);
        p.extend([0.9; 31]);
        p.extend([0.0; 80]);
        let r = speech_regions(&p, &s);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].0 == 0.0 && (r[0].1 - (65.0 * 0.032 + 0.4)).abs() < 1e-9,
            "{r:?}"
        );
        assert!(speech_regions(&[0.0; 100], &s).is_empty());
        assert!(
            speech_regions(
                &[0.9, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                &s
            )
            .is_empty(),
            "64 ms is no speech"
        );
    }

    #[test]
    fn spliced_times_map_back_to_the_source() {
        let track = vec![0.1f32; 16_000 * 10];
        let s = Spliced::new(&track, &[(1.0, 2.0), (5.0, 7.5)]);
        assert!((s.seconds() - 3.5).abs() < 1e-9);
        assert!((s.source_time(0.5, false) - 1.5).abs() < 1e-9);
        // The joint: a start goes to the later piece, an end to the earlier.
        assert!((s.source_time(1.0, false) - 5.0).abs() < 1e-9);
        assert!((s.source_time(1.0, true) - 2.0).abs() < 1e-9);
        assert!((s.source_time(3.5, true) - 7.5).abs() < 1e-9);
    }

    #[test]
    fn long_fast_speech_becomes_cues_that_pass_every_rule() {
        let s = CaptionSettings::default();
        let text = "Well, I never thought that we would be standing here today, talking about the \
                    things that matter most to all of us. Really? Yes, really, and I mean every word of it.";
        let phrases = [
            phrase(1.0, 4.0, text),
            phrase(4.1, 4.6, "Okay."),
            phrase(9.0, 9.3, "Go!"),
        ];
        let cuts = [5.0];
        let cues = build_cues(&phrases, &cuts, 25.0, &s);
        assert!(cues.len() >= 3, "{cues:?}");
        assert_eq!(
            check_cues(&cues, &cuts, 25.0, &s),
            Vec::<String>::new(),
            "{cues:#?}"
        );
        let all: Vec<String> = cues.iter().flat_map(|c| c.lines.clone()).collect();
        assert_eq!(
            all.join(" ").split_whitespace().count(),
            (text.to_string() + " Okay. Go!").split_whitespace().count()
        );
    }

    #[test]
    fn the_checker_catches_each_rule() {
        let s = CaptionSettings::default();
        let bad = [
            Cue {
                start_s: 0.0,
                end_s: 0.5,
                lines: vec!["x".repeat(50)],
            },
            Cue {
                start_s: 0.51,
                end_s: 8.0,
                lines: vec!["a".into(), "b".into(), "c".into()],
            },
        ];
        let p = check_cues(&bad, &[3.0], 25.0, &s);
        for needle in [
            "characters:",
            "on screen 0.500",
            "lines",
            "after the previous",
            "crosses the cut",
            "characters/s",
        ] {
            assert!(
                p.iter().any(|x| x.contains(needle)),
                "missing {needle}: {p:?}"
            );
        }
    }

    #[test]
    fn lines_break_after_punctuation() {
        let l = break_lines(
            "We went to the market, and then we walked all the way home.",
            42,
        );
        assert_eq!(
            l,
            vec![
                "We went to the market,",
                "and then we walked all the way home."
            ]
        );
    }

    #[test]
    fn srt_and_vtt_timestamps() {
        let cues = [Cue {
            start_s: 3661.5,
            end_s: 3662.25,
            lines: vec!["Hi.".into()],
        }];
        assert_eq!(to_srt(&cues), "1\n01:01:01,500 --> 01:01:02,250\nHi.\n\n");
        assert_eq!(
            to_vtt(&cues),
            "WEBVTT\n\n01:01:01.500 --> 01:01:02.250\nHi.\n\n"
        );
    }
}
