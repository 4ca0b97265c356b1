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
use monteur_kernels::mel::{HOP, N_MELS, WINDOW_FRAMES, WINDOW_SAMPLES};
use monteur_models::{DecodeOptions, Whisper, vad};
use serde::{Deserialize, Serialize};

use crate::listen::Heard;
use crate::transcript::{
    Draft, EdgeSettings, Region, TRANSCRIPT_VERSION, Transcript, TranscriptSegment, Word, envelope,
    refine_edges, tidy_words,
};
use crate::{AUDIO_RATE, AudioReader, Cancel, PipelineError};

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
    /// 1 decodes greedily; more is a beam search (faster-whisper's default
    /// is 5), more accurate on hard audio at a measured cost in time.
    pub beam_size: usize,
    /// Time every word (`transcript.json`, word-level captions, transcript
    /// cut plans need it).
    pub word_timestamps: bool,
    /// A window whose `<|nospeech|>` probability is above this, and whose
    /// mean token log-probability is below `log_prob_threshold`, is taken as
    /// silence and skipped (Whisper's rule, its defaults).
    pub no_speech_threshold: f32,
    pub log_prob_threshold: f32,
    /// Move word edges onto the audio where a clear pause borders a word:
    /// sound `word_edge_rise_db` above the noise floor after (or before)
    /// `word_edge_quiet_s` below it, within `word_edge_search_s` of the
    /// attention's estimate.
    pub word_edges: bool,
    /// Text the recogniser reads as what came before (Whisper's
    /// `initial_prompt`): names, spellings, style. Empty for none; a
    /// transcript edit that finds it empty uses [`VERBATIM_PROMPT`].
    pub initial_prompt: String,
    pub word_edge_rise_db: f32,
    pub word_edge_quiet_s: f64,
    pub word_edge_search_s: f64,
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
            beam_size: 1,
            word_timestamps: true,
            no_speech_threshold: 0.6,
            log_prob_threshold: -1.0,
            word_edges: true,
            initial_prompt: String::new(),
            word_edge_rise_db: 20.0,
            word_edge_quiet_s: 0.05,
            word_edge_search_s: 0.5,
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
        if self.initial_prompt.chars().count() > 1000 {
            p.push("captions.initial_prompt: at most 1000 characters".into());
        }
        if !(1..=16).contains(&self.beam_size) {
            p.push("captions.beam_size must be 1..=16".into());
        }
        if !(0.0..=1.0).contains(&self.no_speech_threshold) || self.log_prob_threshold > 0.0 {
            p.push(
                "captions: need 0 <= no_speech_threshold <= 1 and log_prob_threshold <= 0".into(),
            );
        }
        if !(self.word_edge_rise_db > 0.0
            && self.word_edge_rise_db <= 80.0
            && (0.01..=1.0).contains(&self.word_edge_quiet_s)
            && (0.0..=2.0).contains(&self.word_edge_search_s))
        {
            p.push(
                "captions: need 0 < word_edge_rise_db <= 80, 0.01 <= word_edge_quiet_s <= 1, \
                 0 <= word_edge_search_s <= 2"
                    .into(),
            );
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

/// Whisper leaves hesitations out of what it writes unless what came
/// before has them (OpenAI's prompting guide): a transcript edit, which must
/// see the fillers to cut them, reads this as the previous text.
pub const VERBATIM_PROMPT: &str =
    "Umm, let me think like, hmm... Okay, here's what I'm, like, thinking. Uh, so, you know, um.";

/// A span of recognised text, times in seconds on the source's timeline,
/// with its words' times when they were aligned.
#[derive(Debug, Clone, PartialEq)]
pub struct Phrase {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
    pub words: Vec<TimedWord>,
}

/// A word on screen: its text and when it is spoken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimedWord {
    pub text: String,
    pub start_s: f64,
    pub end_s: f64,
}

impl Phrase {
    /// The transcript's segments as phrases, without the words whose middle
    /// lies in one of `removed` (source seconds): captions for an edit that
    /// took fillers or deleted words out, so the render does not show them.
    pub fn from_transcript_without(t: &Transcript, removed: &[(f64, f64)]) -> Vec<Phrase> {
        t.segments
            .iter()
            .filter_map(|s| {
                let words: Vec<TimedWord> = s
                    .words
                    .iter()
                    .filter(|w| {
                        let mid = (w.start_s + w.end_s) / 2.0;
                        !removed.iter().any(|&(a, b)| a <= mid && mid < b)
                    })
                    .map(|w| TimedWord {
                        text: w.text.clone(),
                        start_s: w.start_s,
                        end_s: w.end_s,
                    })
                    .collect();
                let (first, last) = (words.first()?, words.last()?);
                Some(Phrase {
                    start_s: first.start_s,
                    end_s: last.end_s,
                    text: words
                        .iter()
                        .map(|w| w.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    words: words.clone(),
                })
            })
            .collect()
    }

    /// The transcript's segments as phrases for the cue builder.
    pub fn from_transcript(t: &Transcript) -> Vec<Phrase> {
        t.segments
            .iter()
            .map(|s| Phrase {
                start_s: s.start_s,
                end_s: s.end_s,
                text: s.text.clone(),
                words: s
                    .words
                    .iter()
                    .map(|w| TimedWord {
                        text: w.text.clone(),
                        start_s: w.start_s,
                        end_s: w.end_s,
                    })
                    .collect(),
            })
            .collect()
    }
}

/// One subtitle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cue {
    pub start_s: f64,
    pub end_s: f64,
    pub lines: Vec<String>,
    /// Each word's time, in the order of the lines' words; empty when the
    /// words were not timed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<TimedWord>,
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

/// Track samples, read by index, forward.
pub trait Samples {
    /// Copies the samples from index `at` into `out`; returns how many
    /// (fewer only at the track's end).
    fn read(&mut self, at: usize, out: &mut [f32]) -> Result<usize, PipelineError>;
    /// Nothing before index `at` will be read again.
    fn forget_before(&mut self, _at: usize) {}
    /// Nothing outside these index ranges `[start, end)` will be read.
    fn keep_only(&mut self, _ranges: &[(usize, usize)]) {}
}

impl Samples for AudioReader {
    fn read(&mut self, at: usize, out: &mut [f32]) -> Result<usize, PipelineError> {
        AudioReader::read(self, at, out)
    }
    fn forget_before(&mut self, at: usize) {
        AudioReader::forget_before(self, at);
    }
    fn keep_only(&mut self, ranges: &[(usize, usize)]) {
        AudioReader::keep_only(self, ranges);
    }
}

/// A track held in memory (tests, short clips).
#[derive(Debug)]
pub struct InMemory<'a>(pub &'a [f32]);

impl Samples for InMemory<'_> {
    fn read(&mut self, at: usize, out: &mut [f32]) -> Result<usize, PipelineError> {
        let n = self.0.len().saturating_sub(at).min(out.len());
        out[..n].copy_from_slice(&self.0[at..at + n]);
        Ok(n)
    }
}

/// Speech regions joined end to end, and where each piece came from, so
/// times on the joined track map back to the source.
struct Spliced {
    /// Joined-track samples in all.
    len: usize,
    /// Sample ranges of the track, in order: `(start on the joined track,
    /// start in the track, length)`. The joined track is never built: a
    /// window is read from these, so memory does not grow with speech.
    spans: Vec<(usize, usize, usize)>,
    /// The same in seconds, for mapping times back.
    pieces: Vec<(f64, f64, f64)>,
}

impl Spliced {
    /// `track_len`: samples in the track.
    fn new(track_len: usize, regions: &[(f64, f64)]) -> Self {
        let rate = f64::from(AUDIO_RATE);
        let mut len = 0usize;
        let mut spans = Vec::new();
        let mut pieces = Vec::new();
        for &(a, b) in regions {
            let (sa, sb) = ((a * rate) as usize, ((b * rate) as usize).min(track_len));
            if sb <= sa {
                continue;
            }
            pieces.push((len as f64 / rate, sa as f64 / rate, (sb - sa) as f64 / rate));
            spans.push((len, sa, sb - sa));
            len += sb - sa;
        }
        Self { len, spans, pieces }
    }

    /// Copies joined-track samples from `from` into `out` (as many as fit
    /// and exist); returns how many.
    fn copy(
        &self,
        track: &mut dyn Samples,
        from: usize,
        out: &mut [f32],
    ) -> Result<usize, PipelineError> {
        let mut done = 0;
        for &(joined, start, len) in &self.spans {
            if done == out.len() {
                break;
            }
            let at = from + done;
            if at >= joined + len || at < joined {
                continue;
            }
            let offset = at - joined;
            let n = (len - offset).min(out.len() - done);
            let got = track.read(start + offset, &mut out[done..done + n])?;
            done += got;
            if got < n {
                break;
            }
        }
        Ok(done)
    }

    /// The track index of joined-track sample `at` (the track's length past
    /// the last piece).
    fn track_index(&self, at: usize) -> usize {
        match self
            .spans
            .iter()
            .find(|&&(joined, _, len)| at < joined + len)
        {
            Some(&(joined, start, _)) => start + at.saturating_sub(joined),
            None => self.spans.last().map_or(0, |&(_, s, l)| s + l),
        }
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

    /// The piece (speech region) joined-track time `t` falls in.
    fn piece(&self, t: f64) -> usize {
        self.pieces.iter().rposition(|p| p.0 <= t).unwrap_or(0)
    }

    /// A word's span on the source: both ends in the piece holding its
    /// middle, so no word stretches across the silence between regions.
    fn word_span(&self, a: f64, b: f64) -> (usize, f64, f64) {
        let i = self.piece((a + b) / 2.0);
        let Some(&(joined, source, len)) = self.pieces.get(i) else {
            return (0, a, b);
        };
        let at = |t: f64| source + (t - joined).clamp(0.0, len);
        (i, at(a), at(b).max(at(a)))
    }
}

/// Whisper over the speech that voice activity found in the first pass
/// (`heard`), then word timing: the transcript, times on the source's
/// timeline (`offset_s`, the track's start, added). `track` is read forward
/// once, window by window, and let go behind the seek point, so nothing
/// holds the track whole.
///
/// As faster-whisper does, the speech regions are joined end to end before
/// recognition (the model never sees the silence, music or noise between
/// them) and times are mapped back afterwards; and Whisper's own seeking
/// loop runs over the joined track: a window is 30 s from the seek point,
/// frames past the audio are zero (as Whisper's `pad_or_trim` leaves them),
/// and the next window starts at the last complete segment, so speech cut by
/// a window's edge is decoded again whole.
#[allow(clippy::too_many_arguments)]
pub fn transcribe(
    track: &mut dyn Samples,
    heard: &Heard,
    offset_s: f64,
    settings: &CaptionSettings,
    whisper: &mut Whisper,
    backend: &mut dyn Backend,
    cancel: &Cancel,
    on_progress: &mut dyn FnMut(f64),
) -> Result<Transcript, PipelineError> {
    let stop = || cancel.is_cancelled();
    let regions = speech_regions(&heard.probs, settings);
    let speech = Spliced::new(heard.samples, &regions);
    // The reader holds the speech it will be asked for, not the silence,
    // music or noise between.
    let spans: Vec<(usize, usize)> = speech.spans.iter().map(|&(_, s, n)| (s, s + n)).collect();
    track.keep_only(&spans);
    let offset = offset_s;
    let language = match settings.language.as_str() {
        "auto" => None,
        code => Some(code),
    };
    let context = match settings.initial_prompt.trim() {
        "" => Vec::new(),
        // Whisper prompts with a leading space, as text mid-stream has.
        text => whisper.tokenize(&format!(" {text}")),
    };
    let options = DecodeOptions {
        beam_size: settings.beam_size,
        context,
    };
    let content_frames = speech.len / HOP;
    let mut window = vec![0f32; WINDOW_SAMPLES];
    let mut mel = Vec::new();
    let mut seek = 0usize;
    let mut last_speech_s = 0.0f64;
    let mut detected: Option<String> = None;
    let mut segments: Vec<TranscriptSegment> = Vec::new();
    while seek < content_frames {
        on_progress(seek as f64 / content_frames as f64);
        let size = (content_frames - seek).min(WINDOW_FRAMES);
        let from = seek * HOP;
        window.fill(0.0);
        track.forget_before(speech.track_index(from));
        let n = speech.copy(track, from, &mut window[..(size * HOP).min(WINDOW_SAMPLES)])?;
        backend.log_mel(&window, &mut mel)?;
        blank_past(&mut mel, size);
        let encoded = whisper.encode(&mel, language, &stop)?;
        detected.get_or_insert_with(|| encoded.language.clone());
        let decoded = whisper.decode(&encoded, &options, &stop)?;
        if decoded.no_speech_prob > settings.no_speech_threshold
            && decoded.avg_logprob < settings.log_prob_threshold
        {
            seek += size;
            continue;
        }
        let cut = whisper.window(&decoded, size);
        let spaceless = Whisper::spaceless(&encoded.language);
        let t0 = seek as f64 / 100.0;
        let words = if settings.word_timestamps && !cut.segments.is_empty() {
            let text: Vec<u32> = cut.segments.iter().flat_map(|s| s.tokens.clone()).collect();
            whisper.align(&encoded, &text, size)?
        } else {
            Vec::new()
        };
        // Words go back to their segments by token count, as faster-whisper
        // splits one alignment over a window's segments.
        let mut words = words.into_iter().peekable();
        let mut drafts: Vec<(Draft, String)> = Vec::new();
        for seg in &cut.segments {
            let mut taken = 0usize;
            let mut draft = Draft {
                start_s: t0 + f64::from(seg.start_s),
                end_s: t0 + f64::from(seg.end_s),
                words: Vec::new(),
            };
            while taken < seg.tokens.len() {
                let Some(w) = words.next() else { break };
                taken += w.tokens.len();
                let (a, b) = (t0 + f64::from(w.start_s), t0 + f64::from(w.end_s));
                // Whisper splits "ill-disposed" into "ill" and "-disposed";
                // a transcript word is what spaces delimit, in languages
                // that use them, so the halves are joined.
                let joins = !w.word.starts_with(' ') && !spaceless;
                match draft.words.last_mut() {
                    Some(last) if joins => {
                        last.0.push_str(w.word.trim());
                        last.2 = b;
                        last.3 = (last.3 + w.probability) / 2.0;
                    }
                    _ => draft
                        .words
                        .push((w.word.trim().to_string(), a, b, w.probability)),
                }
            }
            drafts.push((draft, whisper.text(&seg.tokens)));
        }
        let mut plain: Vec<Draft> = drafts.iter().map(|(d, _)| d.clone()).collect();
        if settings.word_timestamps {
            tidy_words(&mut plain, &mut last_speech_s);
            if settings.word_edges {
                let env = envelope(&window[..n]);
                let edges = EdgeSettings {
                    rise_db: settings.word_edge_rise_db,
                    quiet_s: settings.word_edge_quiet_s,
                    search_s: settings.word_edge_search_s,
                };
                // All the window's words at once, so a segment's first word
                // cannot move back over the previous segment's last.
                let mut flat: Vec<(String, f64, f64, f32)> =
                    plain.iter().flat_map(|d| d.words.clone()).collect();
                refine_edges(&mut flat, &env, t0, &edges);
                let mut refined = flat.into_iter();
                for d in &mut plain {
                    for w in &mut d.words {
                        if let Some(r) = refined.next() {
                            *w = r;
                        }
                    }
                }
            }
        }
        for (d, (_, text)) in plain.into_iter().zip(drafts) {
            let words: Vec<Word> = d
                .words
                .iter()
                .filter(|w| !w.0.is_empty())
                .map(|(w, a, b, p)| {
                    let (region, a, b) = speech.word_span(*a, *b);
                    Word {
                        text: w.clone(),
                        start_s: a + offset,
                        end_s: b + offset,
                        p: *p,
                        region,
                    }
                })
                .collect();
            let (start_s, end_s) = match (words.first(), words.last()) {
                (Some(f), Some(l)) => (f.start_s, l.end_s),
                _ => (
                    speech.source_time(d.start_s, false) + offset,
                    speech.source_time(d.end_s.min(t0 + size as f64 / 100.0), true) + offset,
                ),
            };
            if end_s <= start_s || text.is_empty() {
                continue;
            }
            segments.push(TranscriptSegment {
                id: segments.len(),
                start_s,
                end_s,
                text,
                region: speech.piece(d.start_s),
                avg_logprob: decoded.avg_logprob,
                words,
            });
        }
        seek += cut.seek_frames.max(1);
    }
    Ok(Transcript {
        version: TRANSCRIPT_VERSION,
        language: detected.unwrap_or_else(|| settings.language.clone()),
        regions: speech
            .pieces
            .iter()
            .enumerate()
            .map(|(id, &(_, s, len))| Region {
                id,
                start_s: s + offset,
                end_s: s + len + offset,
            })
            .collect(),
        segments,
    })
}

/// Sets the log-mel frames at and after `content` to 0, as Whisper and
/// faster-whisper pad a window's features (not the log-mel of silence, which
/// the model reads differently: measured in docs/BENCHMARKS.md).
fn blank_past(mel: &mut [f32], content: usize) {
    if content >= WINDOW_FRAMES {
        return;
    }
    for m in 0..N_MELS {
        if let Some(row) = mel.get_mut(m * WINDOW_FRAMES + content..(m + 1) * WINDOW_FRAMES) {
            row.fill(0.0);
        }
    }
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
    // Text chunks with the time their words were spoken: the words' own
    // times when they were aligned, else shares of the phrase by length.
    let mut chunks: Vec<(f64, f64, String, Vec<TimedWord>)> = Vec::new();
    for p in phrases {
        let words: Vec<&str> = p.text.split_whitespace().collect();
        let timed = p.words.len() == words.len() && !words.is_empty();
        let total: usize = p.text.chars().count().max(1);
        let mut current = String::new();
        let mut current_words: Vec<TimedWord> = Vec::new();
        let mut spoken = p.start_s;
        let mut flush =
            |current: &mut String, current_words: &mut Vec<TimedWord>, spoken: &mut f64| {
                if current.is_empty() {
                    return;
                }
                let (start, end) = match (current_words.first(), current_words.last()) {
                    (Some(a), Some(b)) => (a.start_s, b.end_s.max(a.start_s)),
                    _ => {
                        let share = current.chars().count() as f64 / total as f64;
                        (
                            *spoken,
                            (*spoken + share * (p.end_s - p.start_s)).min(p.end_s),
                        )
                    }
                };
                chunks.push((
                    start,
                    end,
                    std::mem::take(current),
                    std::mem::take(current_words),
                ));
                *spoken = end;
            };
        for (i, w) in words.into_iter().enumerate() {
            let w: String = w.chars().take(s.max_line_chars).collect();
            if !current.is_empty() && !fits(&format!("{current} {w}")) {
                flush(&mut current, &mut current_words, &mut spoken);
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(&w);
            if timed {
                current_words.push(TimedWord {
                    text: w.clone(),
                    start_s: p.words[i].start_s,
                    end_s: p.words[i].end_s,
                });
            }
            // A sentence end is a natural place for a new cue once the cue
            // holds a readable amount.
            if w.ends_with(['.', '?', '!']) && current.chars().count() >= s.max_line_chars / 2 {
                flush(&mut current, &mut current_words, &mut spoken);
            }
        }
        flush(&mut current, &mut current_words, &mut spoken);
    }
    let mut cues: Vec<Cue> = Vec::new();
    for (spoken_start, spoken_end, text, words) in chunks {
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
        // A word's highlight never starts before its cue shows or after it
        // goes.
        let words = words
            .into_iter()
            .map(|w| TimedWord {
                start_s: w.start_s.clamp(start, end),
                end_s: w.end_s.clamp(start, end),
                text: w.text,
            })
            .collect();
        cues.push(Cue {
            start_s: start,
            end_s: end,
            lines,
            words,
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
            c.lines
                .iter()
                .map(|l| vtt_escape(l))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    out
}

fn vtt_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Each line's words paired with their times, when every word was timed.
fn timed_lines(c: &Cue) -> Option<Vec<Vec<(&str, &TimedWord)>>> {
    let mut words = c.words.iter();
    let lines: Option<Vec<Vec<(&str, &TimedWord)>>> = c
        .lines
        .iter()
        .map(|l| {
            l.split_whitespace()
                .map(|w| words.next().map(|t| (w, t)))
                .collect()
        })
        .collect();
    lines.filter(|_| words.next().is_none())
}

/// WebVTT with a timestamp tag before each word (karaoke style: a player
/// highlights words as they are spoken). Tags only where the time moves
/// forward inside the cue, as the format requires; a cue without word times
/// is written plain.
pub fn to_karaoke_vtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for c in cues {
        let _ = writeln!(
            out,
            "{} --> {}",
            timestamp(c.start_s, '.'),
            timestamp(c.end_s, '.')
        );
        match timed_lines(c) {
            Some(lines) => {
                let mut last_ms = (c.start_s * 1000.0).round() as i64;
                let end_ms = (c.end_s * 1000.0).round() as i64;
                for (li, line) in lines.iter().enumerate() {
                    if li > 0 {
                        out.push('\n');
                    }
                    for (wi, (w, t)) in line.iter().enumerate() {
                        if wi > 0 {
                            out.push(' ');
                        }
                        let ms = (t.start_s * 1000.0).round() as i64;
                        if ms > last_ms && ms < end_ms {
                            let _ = write!(out, "<{}>", timestamp(ms as f64 / 1000.0, '.'));
                            last_ms = ms;
                        }
                        let _ = write!(out, "<c>{}</c>", vtt_escape(w));
                    }
                }
                out.push_str("\n\n");
            }
            None => {
                let text: Vec<String> = c.lines.iter().map(|l| vtt_escape(l)).collect();
                let _ = write!(out, "{}\n\n", text.join("\n"));
            }
        }
    }
    out
}

fn ass_time(s: f64) -> String {
    let cs = (s.max(0.0) * 100.0).round() as u64;
    format!(
        "{}:{:02}:{:02}.{:02}",
        cs / 360_000,
        cs / 6000 % 60,
        cs / 100 % 60,
        cs % 100
    )
}

/// Braces open override blocks and a backslash starts a tag in ASS text.
fn ass_escape(text: &str) -> String {
    text.replace('\\', "/").replace('{', "(").replace('}', ")")
}

/// Advanced SubStation Alpha with `\k` karaoke timings: each word turns
/// from the secondary colour (white) to the primary (yellow) when it is
/// spoken. `width`×`height` is the video's size (the script's coordinate
/// space; the font scales with the height).
pub fn to_ass(cues: &[Cue], width: u32, height: u32) -> String {
    let (w, h) = (width.max(16), height.max(16));
    let font = (h as f64 / 20.0).round().max(8.0);
    let margin = (h as f64 / 22.0).round();
    let mut out = format!(
        "[Script Info]\nScriptType: v4.00+\nPlayResX: {w}\nPlayResY: {h}\nWrapStyle: 2\n\
         ScaledBorderAndShadow: yes\n\n[V4+ Styles]\n\
         Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, \
         BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, \
         BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n\
         Style: Default,DejaVu Sans,{font},&H0000FFFF,&H00FFFFFF,&H00000000,&H80000000,\
         -1,0,0,0,100,100,0,0,1,{outline},0,2,{margin},{margin},{margin},1\n\n[Events]\n\
         Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n",
        outline = (font / 18.0).round().max(1.0),
    );
    for c in cues {
        let text = match timed_lines(c) {
            Some(lines) => {
                let flat: Vec<&TimedWord> = lines.iter().flatten().map(|(_, t)| *t).collect();
                // Centiseconds from the cue's start to each word's, then the
                // last word's end: every \k is the gap to the next word.
                let cs = |t: f64| ((t - c.start_s).max(0.0) * 100.0).round() as i64;
                let mut marks: Vec<i64> = flat.iter().map(|t| cs(t.start_s)).collect();
                marks.push(flat.last().map_or(0, |t| cs(t.end_s)));
                for i in 1..marks.len() {
                    marks[i] = marks[i].max(marks[i - 1]);
                }
                let mut text = String::new();
                if marks[0] > 0 {
                    let _ = write!(text, "{{\\k{}}}", marks[0]);
                }
                let mut k = 0;
                for (li, line) in lines.iter().enumerate() {
                    if li > 0 {
                        text.push_str("\\N");
                    }
                    for (wi, (word, _)) in line.iter().enumerate() {
                        let space = if wi + 1 < line.len() { " " } else { "" };
                        let _ = write!(
                            text,
                            "{{\\k{}}}{}{space}",
                            marks[k + 1] - marks[k],
                            ass_escape(word)
                        );
                        k += 1;
                    }
                }
                text
            }
            None => c
                .lines
                .iter()
                .map(|l| ass_escape(l))
                .collect::<Vec<_>>()
                .join("\\N"),
        };
        let _ = writeln!(
            out,
            "Dialogue: 0,{},{},Default,,0,0,0,,{text}",
            ass_time(c.start_s),
            ass_time(c.end_s)
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
            words: Vec::new(),
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
        let track: Vec<f32> = (0..16_000 * 10).map(|i| i as f32).collect();
        let s = Spliced::new(track.len(), &[(1.0, 2.0), (5.0, 7.5)]);
        assert_eq!(s.len, 3 * 16_000 + 8_000);
        let mut mem = InMemory(&track);
        // A window across the joint reads the end of one piece, then the
        // start of the next.
        let mut out = vec![0f32; 4];
        assert_eq!(s.copy(&mut mem, 16_000 - 2, &mut out).unwrap(), 4);
        assert_eq!(out, vec![31_998.0, 31_999.0, 80_000.0, 80_001.0]);
        let mut tail = vec![0f32; 10];
        assert_eq!(s.copy(&mut mem, s.len - 3, &mut tail).unwrap(), 3);
        // Where a reader may let go: the track index under a joined sample.
        assert_eq!(s.track_index(0), 16_000);
        assert_eq!(s.track_index(16_000), 80_000);
        assert_eq!(s.track_index(s.len), 120_000);
        assert_eq!(s.word_span(0.9, 1.3).0, 1);
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
                words: Vec::new(),
            },
            Cue {
                start_s: 0.51,
                end_s: 8.0,
                lines: vec!["a".into(), "b".into(), "c".into()],
                words: Vec::new(),
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
            words: Vec::new(),
        }];
        assert_eq!(to_srt(&cues), "1\n01:01:01,500 --> 01:01:02,250\nHi.\n\n");
        assert_eq!(
            to_vtt(&cues),
            "WEBVTT\n\n01:01:01.500 --> 01:01:02.250\nHi.\n\n"
        );
    }

    fn timed(a: f64, b: f64, text: &str, step: f64) -> Phrase {
        let words = text
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| TimedWord {
                text: w.into(),
                start_s: a + i as f64 * step,
                end_s: a + i as f64 * step + step * 0.8,
            })
            .collect();
        Phrase {
            start_s: a,
            end_s: b,
            text: text.into(),
            words,
        }
    }

    #[test]
    fn word_times_reach_karaoke_vtt_and_ass() {
        let s = CaptionSettings::default();
        let p = [timed(1.0, 3.0, "Never drink liquid <nitrogen> {now}", 0.4)];
        let cues = build_cues(&p, &[], 25.0, &s);
        assert_eq!(cues.len(), 1);
        assert_eq!(cues[0].words.len(), 5);
        // Cue times come from the words: first start, last end.
        assert!((cues[0].start_s - 1.0).abs() < 1e-9);
        let vtt = to_karaoke_vtt(&cues);
        assert!(
            vtt.contains("<c>Never</c> <00:00:01.400><c>drink</c>"),
            "{vtt}"
        );
        assert!(vtt.contains("&lt;nitrogen&gt;"), "{vtt}");
        let ass = to_ass(&cues, 1280, 720);
        let line = ass.lines().find(|l| l.starts_with("Dialogue:")).unwrap();
        assert!(line.contains("{\\k40}Never {\\k40}drink"), "{line}");
        assert!(line.contains("(now)"), "{line}");
        // The \k durations add up to the last word's end, within the cue.
        let total: i64 = line
            .split("{\\k")
            .skip(1)
            .map(|x| x.split('}').next().unwrap().parse::<i64>().unwrap())
            .sum();
        assert_eq!(total, 192);
        assert!(f64::from(total as i32) / 100.0 <= cues[0].end_s - cues[0].start_s + 1e-9);
    }
}
