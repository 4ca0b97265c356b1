//! The cut planner: which frames of the source an automatic edit keeps, and why.
//!
//! Pure, deterministic logic over per-frame measurements; everything is in
//! whole frames of the source's timebase so the plan, the timeline exports and
//! the render agree to the frame.
//!
//! Modes ([`CutMode`]):
//! - `silence` (the default) is auto-editor's audio method: a frame is loud
//!   when its loudest sample reaches `threshold` of the file's loudest; loud
//!   runs shorter than `min_clip_s` are dropped, quiet runs shorter than
//!   `min_cut_s` are kept, then `margin_s` is added on both sides.
//! - `speech` keeps voice-activity spans plus `margin_s` on each side, rounded
//!   outwards to whole frames, so no detected word is clipped.
//! - `transcript` edits by the words (`transcript.json`): filler words and
//!   any time ranges the editor asked to drop are removed, pauses longer than
//!   `pause_max_s` are shortened to `pause_target_s`. Every cut lies in the
//!   gap between two words, at least `word_guard_s` from a kept word, and
//!   kept ranges are rounded outwards to frames, so no kept word is clipped.
//!
//! Then, optionally: range edges move out to a nearby hard cut
//! (`align_to_scenes`: never inwards, so nothing kept is lost), and the edit is
//! fitted to `target_s` by keeping the best-scoring pieces (ranges split at
//! scene cuts) in source order.

use serde::{Deserialize, Serialize};

/// Version tag of `cutplan.json`.
pub const PLAN_SCHEMA: &str = "monteur.cutplan.v1";

/// What decides what is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CutMode {
    Silence,
    Speech,
    Transcript,
}

/// `[autocut]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutocutSettings {
    pub mode: CutMode,
    /// Silence mode: a frame is loud when its peak reaches this fraction of
    /// the file's peak (0.04 = -28 dB below it).
    pub threshold: f64,
    /// Kept on each side of what is loud (or spoken).
    pub margin_s: f64,
    /// Loud runs shorter than this are noise (clicks), not content.
    pub min_clip_s: f64,
    /// Quiet runs shorter than this are pauses inside speech, not dead air.
    pub min_cut_s: f64,
    /// Speech mode: a pause must last this long to end a speech span.
    pub speech_min_silence_s: f64,
    /// Move range edges out to a hard cut within `snap_s`.
    pub align_to_scenes: bool,
    pub snap_s: f64,
    /// Fit the edit to this length by keeping the best pieces; 0 = off.
    pub target_s: f64,
    /// Transcript mode: filler words by language code, matched on the word
    /// without case or punctuation. A filler of several words ("you know")
    /// is removed only when set off by a comma, as Whisper punctuates it when
    /// it is a filler ("so, you know, it") and not when it is meant ("do you
    /// know him").
    pub fillers: std::collections::BTreeMap<String, Vec<String>>,
    /// Transcript mode: a pause between kept words longer than this ...
    pub pause_max_s: f64,
    /// ... is shortened to this.
    pub pause_target_s: f64,
    /// Transcript mode: no cut comes closer than this to a kept word.
    pub word_guard_s: f64,
    /// Transcript mode: source time ranges whose words are removed (a word
    /// goes when its middle is inside one): the editor's deletions, sent as
    /// the job's `options.drop`.
    pub drop: Vec<(f64, f64)>,
}

impl Default for AutocutSettings {
    fn default() -> Self {
        // auto-editor's defaults (audio:threshold=0.04, mincut=6, minclip=3
        // frames at 30 fps, margin 0.2 s).
        Self {
            mode: CutMode::Silence,
            threshold: 0.04,
            margin_s: 0.2,
            min_clip_s: 0.1,
            min_cut_s: 0.2,
            speech_min_silence_s: 0.3,
            align_to_scenes: false,
            snap_s: 0.5,
            target_s: 0.0,
            fillers: default_fillers(),
            pause_max_s: 1.0,
            pause_target_s: 0.4,
            word_guard_s: 0.08,
            drop: Vec::new(),
        }
    }
}

/// Hesitations people cut, per language.
fn default_fillers() -> std::collections::BTreeMap<String, Vec<String>> {
    let list = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    [
        (
            "en",
            list(&[
                "um", "umm", "uh", "uhh", "uhm", "erm", "er", "ah", "hmm", "mm", "you know",
                "i mean",
            ]),
        ),
        ("fr", list(&["euh", "heu", "bah", "ben", "hum"])),
        ("de", list(&["äh", "ähm", "öh", "hm"])),
        ("es", list(&["eh", "este", "em", "mmm"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl AutocutSettings {
    /// Every problem with these values, for the config check.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.word_guard_s >= 0.0
            && self.pause_target_s >= 2.0 * self.word_guard_s
            && self.pause_max_s >= self.pause_target_s
            && self.pause_max_s <= 60.0)
        {
            p.push(
                "autocut: need 0 <= 2 * word_guard_s <= pause_target_s <= pause_max_s <= 60".into(),
            );
        }
        if self.drop.len() > 10_000
            || self
                .drop
                .iter()
                .any(|&(a, b)| !(a.is_finite() && b.is_finite() && 0.0 <= a && a < b))
        {
            p.push("autocut.drop: at most 10000 ranges, each 0 <= start < end".into());
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            p.push(format!(
                "autocut.threshold must be in (0, 1), got {}",
                self.threshold
            ));
        }
        for (name, v) in [
            ("margin_s", self.margin_s),
            ("min_clip_s", self.min_clip_s),
            ("min_cut_s", self.min_cut_s),
            ("speech_min_silence_s", self.speech_min_silence_s),
            ("snap_s", self.snap_s),
            ("target_s", self.target_s),
        ] {
            if !(v.is_finite() && (0.0..=3600.0).contains(&v)) {
                p.push(format!("autocut.{name} must be 0 to 3600 s, got {v}"));
            }
        }
        p
    }
}

/// The source's timebase: frames per second as a fraction, so NTSC rates stay
/// exact in the exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub num: u32,
    pub den: u32,
}

impl Rate {
    /// A usable timebase from a stream's declared rate: variable or missing
    /// rates get 30 fps, as auto-editor does.
    pub fn from_stream(rate: Option<(i32, i32)>) -> Self {
        match rate {
            Some((n, d)) if n > 0 && d > 0 && f64::from(n) / f64::from(d) <= 1000.0 => Self {
                num: n as u32,
                den: d as u32,
            },
            _ => Self { num: 30, den: 1 },
        }
    }

    pub fn fps(&self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Start time of frame `f` in seconds.
    pub fn seconds(&self, frame: u64) -> f64 {
        frame as f64 * f64::from(self.den) / f64::from(self.num)
    }

    /// The frame containing time `t` (s).
    pub fn frame_at(&self, t: f64) -> u64 {
        (t.max(0.0) * self.fps()).floor() as u64
    }

    /// A whole number of frames closest to `t` seconds.
    pub fn frames_in(&self, t: f64) -> u64 {
        (t.max(0.0) * self.fps()).round() as u64
    }

    /// Frames per timecode second (30 for 29.97), for EDL timecodes.
    pub fn timecode_base(&self) -> u64 {
        self.fps().round().max(1.0) as u64
    }
}

/// Why a range is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Audio above the silence threshold (with margins).
    Loud,
    /// Detected speech (with margins).
    Speech,
    /// Words of the transcript kept.
    Words,
}

/// Something a transcript plan took out, for review (timeline markers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Removal {
    pub start_s: f64,
    pub end_s: f64,
    pub kind: RemovalKind,
    /// The words removed; empty for a pause.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalKind {
    Filler,
    Pause,
    /// Asked for in the job's `options.drop`.
    Dropped,
}

/// A word as the transcript planner reads it: text and source times.
#[derive(Debug, Clone, PartialEq)]
pub struct SpokenWord {
    pub text: String,
    pub start_s: f64,
    pub end_s: f64,
}

/// Frames `[start_frame, end_frame)` of the source, kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptRange {
    pub start_frame: u64,
    pub end_frame: u64,
    pub start_s: f64,
    pub end_s: f64,
    pub reason: Reason,
    /// Moved out to a scene cut at either edge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub aligned: bool,
}

impl KeptRange {
    pub fn frames(&self) -> u64 {
        self.end_frame - self.start_frame
    }
}

/// `cutplan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutPlan {
    pub schema: String,
    pub mode: CutMode,
    pub rate: Rate,
    /// Source length in frames of `rate`.
    pub source_frames: u64,
    pub source_s: f64,
    pub ranges: Vec<KeptRange>,
    pub kept_frames: u64,
    pub kept_s: f64,
    /// Speech mode: the voice-activity spans (s) the ranges were built from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub speech: Vec<(f64, f64)>,
    /// Transcript mode: what was taken out and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<Removal>,
}

impl CutPlan {
    /// A plan from frame ranges (sorted, disjoint) and their reasons.
    pub fn new(
        mode: CutMode,
        rate: Rate,
        source_frames: u64,
        ranges: Vec<(u64, u64, Reason, bool)>,
    ) -> Self {
        let ranges: Vec<KeptRange> = ranges
            .into_iter()
            .filter(|r| r.1 > r.0)
            .map(|(a, b, reason, aligned)| KeptRange {
                start_frame: a,
                end_frame: b,
                start_s: rate.seconds(a),
                end_s: rate.seconds(b),
                reason,
                aligned,
            })
            .collect();
        let kept_frames = ranges.iter().map(KeptRange::frames).sum();
        Self {
            schema: PLAN_SCHEMA.into(),
            mode,
            rate,
            source_frames,
            source_s: rate.seconds(source_frames),
            kept_s: rate.seconds(kept_frames),
            kept_frames,
            ranges,
            speech: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// Where source frame `f` lands in the edit, if it is kept.
    pub fn edit_frame(&self, f: u64) -> Option<u64> {
        let mut before = 0;
        for r in &self.ranges {
            if f < r.start_frame {
                return None;
            }
            if f < r.end_frame {
                return Some(before + f - r.start_frame);
            }
            before += r.frames();
        }
        None
    }

    /// Source time `t` mapped onto the edit's timeline, clamped into the
    /// kept range at or after it (`None` past the last one).
    pub fn edit_time(&self, t: f64) -> Option<f64> {
        let mut before = 0.0;
        for r in &self.ranges {
            if t < r.end_s {
                return Some(before + (t - r.start_s).max(0.0));
            }
            before += r.end_s - r.start_s;
        }
        None
    }

    /// Checks the plan's own invariants (used on plans read from disk).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.schema != PLAN_SCHEMA {
            p.push(format!(
                "schema is `{}`, expected {PLAN_SCHEMA}",
                self.schema
            ));
        }
        if self.rate.num == 0 || self.rate.den == 0 {
            p.push("rate must be positive".into());
        }
        let mut end = 0;
        for (i, r) in self.ranges.iter().enumerate() {
            if r.end_frame <= r.start_frame {
                p.push(format!("range {i} is empty"));
            }
            if r.start_frame < end {
                p.push(format!("range {i} overlaps or precedes the one before"));
            }
            if r.end_frame > self.source_frames {
                p.push(format!("range {i} ends after the source"));
            }
            end = r.end_frame;
        }
        p
    }
}

/// Replaces runs of `value` shorter than `min` frames with `!value`
/// (auto-editor's `mut_remove_small`, including its handling of a run that
/// reaches the end).
fn remove_short_runs(flags: &mut [bool], min: usize, value: bool) {
    let mut i = 0;
    while i < flags.len() {
        if flags[i] != value {
            i += 1;
            continue;
        }
        let start = i;
        while i < flags.len() && flags[i] == value {
            i += 1;
        }
        // auto-editor measures a run that reaches the last frame one short.
        let len = if i == flags.len() {
            i - start - 1
        } else {
            i - start
        };
        if len < min {
            flags[start..i].fill(!value);
        }
    }
}

/// Widens every kept run by `before` frames at its start and `after` at its end.
fn add_margin(flags: &[bool], before: usize, after: usize) -> Vec<bool> {
    let mut out = vec![false; flags.len()];
    for (i, _) in flags.iter().enumerate().filter(|(_, k)| **k) {
        let a = i.saturating_sub(before);
        let b = (i + after + 1).min(flags.len());
        out[a..b].fill(true);
    }
    out
}

fn runs(flags: &[bool]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &k) in flags.iter().enumerate() {
        match (k, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s as u64, i as u64));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s as u64, flags.len() as u64));
    }
    out
}

/// Silence mode: `peaks` holds each frame's loudest sample (linear, any
/// scale), one per frame of `rate`.
pub fn plan_silence(peaks: &[f32], rate: Rate, source_frames: u64, s: &AutocutSettings) -> CutPlan {
    let max = peaks.iter().cloned().fold(0.0f32, f32::max);
    let n = source_frames as usize;
    let mut loud: Vec<bool> = (0..n)
        .map(|i| {
            max > 0.0
                && peaks
                    .get(i)
                    .is_some_and(|&p| f64::from(p / max) >= s.threshold)
        })
        .collect();
    remove_short_runs(&mut loud, rate.frames_in(s.min_clip_s) as usize, true);
    remove_short_runs(&mut loud, rate.frames_in(s.min_cut_s) as usize, false);
    let m = rate.frames_in(s.margin_s) as usize;
    let kept = add_margin(&loud, m, m);
    let ranges = runs(&kept)
        .into_iter()
        .map(|(a, b)| (a, b, Reason::Loud, false))
        .collect();
    CutPlan::new(CutMode::Silence, rate, source_frames, ranges)
}

/// Speech mode: `speech` spans in seconds from the source's start. Each kept
/// range contains its spans plus the margin, rounded outwards to frames;
/// ranges closer than `min_cut_s` are joined.
pub fn plan_speech(
    speech: &[(f64, f64)],
    rate: Rate,
    source_frames: u64,
    s: &AutocutSettings,
) -> CutPlan {
    let min_gap = rate.frames_in(s.min_cut_s);
    let mut ranges: Vec<(u64, u64, Reason, bool)> = Vec::new();
    for &(a, b) in speech {
        // Outwards to whole frames; the epsilon keeps float noise in
        // `t * fps` from adding a frame at an exact boundary.
        let start = ((a - s.margin_s).max(0.0) * rate.fps() + 1e-9).floor() as u64;
        let end = (((b + s.margin_s) * rate.fps() - 1e-9).ceil() as u64).min(source_frames);
        if end <= start {
            continue;
        }
        match ranges.last_mut() {
            Some(last) if start <= last.1 + min_gap => last.1 = last.1.max(end),
            _ => ranges.push((start, end, Reason::Speech, false)),
        }
    }
    let mut plan = CutPlan::new(CutMode::Speech, rate, source_frames, ranges);
    plan.speech = speech.to_vec();
    plan
}

fn word_key(w: &str) -> String {
    w.chars()
        .filter(|c| c.is_alphanumeric() || *c == '\'')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Which words are fillers: single-word hesitations always, several-word
/// ones only when a comma sets them off.
fn filler_flags(words: &[SpokenWord], fillers: &[String]) -> Vec<bool> {
    let keys: Vec<String> = words.iter().map(|w| word_key(&w.text)).collect();
    let mut flags = vec![false; words.len()];
    for f in fillers {
        let parts: Vec<String> = f.split_whitespace().map(word_key).collect();
        if parts.is_empty() {
            continue;
        }
        for i in 0..words.len().saturating_sub(parts.len() - 1) {
            if keys[i..i + parts.len()] != parts[..] {
                continue;
            }
            let last = i + parts.len() - 1;
            let set_off = parts.len() == 1
                || words[last].text.ends_with(',')
                || (i > 0 && words[i - 1].text.ends_with(','));
            if set_off {
                flags[i..=last].fill(true);
            }
        }
    }
    flags
}

/// Transcript mode: `words` in source order (seconds), `language` picks the
/// filler list. See the module's description.
pub fn plan_transcript(
    words: &[SpokenWord],
    language: &str,
    rate: Rate,
    source_frames: u64,
    s: &AutocutSettings,
) -> CutPlan {
    let source_s = rate.seconds(source_frames);
    if words.is_empty() {
        // No words (no speech, or words not timed): nothing to edit by, so
        // everything is kept rather than everything cut as one pause.
        return CutPlan::new(
            CutMode::Transcript,
            rate,
            source_frames,
            vec![(0, source_frames, Reason::Words, false)],
        );
    }
    let fillers = s.fillers.get(language).map_or(&[][..], |v| &v[..]);
    let is_filler = filler_flags(words, fillers);
    let dropped: Vec<bool> = words
        .iter()
        .map(|w| {
            let mid = (w.start_s + w.end_s) / 2.0;
            s.drop.iter().any(|&(a, b)| a <= mid && mid < b)
        })
        .collect();
    let (guard, half) = (s.word_guard_s, s.pause_target_s / 2.0);
    let mut removed: Vec<Removal> = Vec::new();
    // The end of the last kept word, and where the current run of removed
    // words began.
    let mut kept_end: Option<f64> = None;
    let mut run: Option<usize> = None;
    for i in 0..=words.len() {
        let gone = i < words.len() && (is_filler[i] || dropped[i]);
        if gone {
            run.get_or_insert(i);
            continue;
        }
        // Word i is kept (or the end of the file is reached): close the gap
        // behind it.
        let next_start = words.get(i).map_or(source_s, |w| w.start_s);
        match run.take() {
            Some(first) => {
                let last = i - 1;
                // Cut into the removed words as far as needed, never nearer
                // than the guard to a kept word; keep up to half the target
                // pause on either side.
                let a = match kept_end {
                    Some(e) => e + guard.max(half.min(words[first].start_s - e)),
                    None => 0.0,
                };
                let b = match words.get(i) {
                    Some(_) => next_start - guard.max(half.min(next_start - words[last].end_s)),
                    None => source_s,
                };
                if b > a {
                    let filler = (first..=last).all(|k| is_filler[k] && !dropped[k]);
                    removed.push(Removal {
                        start_s: a,
                        end_s: b,
                        kind: if filler {
                            RemovalKind::Filler
                        } else {
                            RemovalKind::Dropped
                        },
                        text: words[first..=last]
                            .iter()
                            .map(|w| w.text.as_str())
                            .collect::<Vec<_>>()
                            .join(" "),
                    });
                }
            }
            None => {
                let e = kept_end.unwrap_or(0.0);
                // Silence before the first word and after the last is a
                // pause with a file edge on one side: keep half the target.
                let (keep_before, keep_after) = (
                    if kept_end.is_some() { half } else { 0.0 },
                    if i < words.len() { half } else { 0.0 },
                );
                let (a, b) = (e + keep_before, next_start - keep_after);
                if next_start - e > s.pause_max_s && b > a {
                    removed.push(Removal {
                        start_s: a,
                        end_s: b,
                        kind: RemovalKind::Pause,
                        text: String::new(),
                    });
                }
            }
        }
        if let Some(w) = words.get(i) {
            kept_end = Some(w.end_s);
        }
    }
    // Kept ranges are what lies between removals, rounded outwards to whole
    // frames (so a cut may move into removed material, never into a word).
    let fps = rate.fps();
    let mut ranges: Vec<(u64, u64, Reason, bool)> = Vec::new();
    let mut from = 0.0f64;
    for r in removed
        .iter()
        .map(|r| (r.start_s, r.end_s))
        .chain([(source_s, source_s)])
    {
        let start = ((from * fps) + 1e-9).floor() as u64;
        let end = ((r.0 * fps - 1e-9).ceil() as u64).min(source_frames);
        if end > start {
            match ranges.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => ranges.push((start, end, Reason::Words, false)),
            }
        }
        from = r.1;
    }
    let mut plan = CutPlan::new(CutMode::Transcript, rate, source_frames, ranges);
    plan.removed = removed;
    plan
}

/// Moves range edges out to the nearest hard cut (`cuts`: first frames of new
/// shots) within `snap_s`, joining ranges that come to touch.
pub fn align_to_cuts(plan: &CutPlan, cuts: &[u64], s: &AutocutSettings) -> CutPlan {
    let snap = plan.rate.frames_in(s.snap_s);
    let mut out: Vec<(u64, u64, Reason, bool)> = Vec::new();
    for r in &plan.ranges {
        let mut aligned = false;
        let mut start = r.start_frame;
        if let Some(&c) = cuts
            .iter()
            .filter(|&&c| c <= start && start - c <= snap)
            .max()
        {
            aligned |= c != start;
            start = c;
        }
        let mut end = r.end_frame;
        if let Some(&c) = cuts.iter().filter(|&&c| c >= end && c - end <= snap).min() {
            aligned |= c != end;
            end = c.min(plan.source_frames);
        }
        match out.last_mut() {
            Some(last) if start <= last.1 => {
                last.1 = last.1.max(end);
                last.3 |= aligned;
            }
            _ => out.push((start, end, r.reason, aligned)),
        }
    }
    let mut next = CutPlan::new(plan.mode, plan.rate, plan.source_frames, out);
    next.speech = plan.speech.clone();
    next.removed = plan.removed.clone();
    next
}

/// Fits the plan into `target_s`: kept ranges are split at scene cuts into
/// pieces, each scored by `score(start, end)` (higher is better; for example
/// speech or loudness per frame), and the best pieces are kept, in source
/// order, until the target is met; the last piece taken is trimmed to fit.
/// Ties go to the earlier piece, so the result is deterministic.
///
/// `safe_ends`, when not empty, are the only frames a trimmed piece may end
/// at (sorted): a transcript plan passes the frames between its words, so
/// the trim never cuts a word; a piece with no safe end inside the budget is
/// left out rather than cut mid-word. (Pieces still begin and end at scene
/// cuts, which may fall inside a word.)
pub fn fit_target(
    plan: &CutPlan,
    cuts: &[u64],
    target_s: f64,
    score: &dyn Fn(u64, u64) -> f64,
    safe_ends: &[u64],
) -> CutPlan {
    let budget = plan.rate.frames_in(target_s);
    if target_s <= 0.0 || plan.kept_frames <= budget {
        return plan.clone();
    }
    let mut pieces: Vec<(u64, u64, Reason, bool)> = Vec::new();
    for r in &plan.ranges {
        let mut start = r.start_frame;
        for &c in cuts
            .iter()
            .filter(|&&c| c > r.start_frame && c < r.end_frame)
        {
            pieces.push((start, c, r.reason, r.aligned));
            start = c;
        }
        pieces.push((start, r.end_frame, r.reason, r.aligned));
    }
    let mut order: Vec<(usize, f64)> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (i, score(p.0, p.1)))
        .collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen: Vec<(u64, u64, Reason, bool)> = Vec::new();
    let mut left = budget;
    for (i, _) in order {
        if left == 0 {
            break;
        }
        let (a, b, reason, aligned) = pieces[i];
        let mut take = (b - a).min(left);
        if take < b - a && !safe_ends.is_empty() {
            let limit = a + take;
            take = safe_ends
                .iter()
                .rev()
                .find(|&&e| e > a && e <= limit)
                .map_or(0, |&e| e - a);
            if take == 0 {
                continue;
            }
        }
        chosen.push((a, a + take, reason, aligned));
        left -= take;
    }
    chosen.sort_by_key(|p| p.0);
    // Neighbouring pieces of one range join again.
    let mut joined: Vec<(u64, u64, Reason, bool)> = Vec::new();
    for p in chosen {
        match joined.last_mut() {
            Some(last) if last.1 == p.0 => last.1 = p.1,
            _ => joined.push(p),
        }
    }
    let mut next = CutPlan::new(plan.mode, plan.rate, plan.source_frames, joined);
    next.speech = plan.speech.clone();
    next.removed = plan.removed.clone();
    next
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const R30: Rate = Rate { num: 30, den: 1 };

    fn peaks(pattern: &str) -> Vec<f32> {
        pattern
            .chars()
            .map(|c| if c == '#' { 1.0 } else { 0.0 })
            .collect()
    }

    fn frames(plan: &CutPlan) -> Vec<(u64, u64)> {
        plan.ranges
            .iter()
            .map(|r| (r.start_frame, r.end_frame))
            .collect()
    }

    fn no_margin() -> AutocutSettings {
        AutocutSettings {
            margin_s: 0.0,
            ..AutocutSettings::default()
        }
    }

    #[test]
    fn short_clicks_are_dropped_and_short_pauses_kept() {
        // 2 loud frames (< 3): a click. Then loud 5, pause 4 (< 6), loud 5.
        let p = peaks("..##..........#####....#####..........");
        let plan = plan_silence(&p, R30, p.len() as u64, &no_margin());
        assert_eq!(frames(&plan), vec![(14, 28)]);
        assert_eq!(plan.kept_frames, 14);
        assert!((plan.kept_s - 14.0 / 30.0).abs() < 1e-12);
    }

    #[test]
    fn margins_widen_ranges_and_join_close_ones_within_the_source() {
        let p = peaks("###.......................###..........####");
        let s = AutocutSettings::default(); // 6 frames of margin at 30 fps
        let plan = plan_silence(&p, R30, p.len() as u64, &s);
        // First range clamps at 0; the last two are 10 quiet frames apart,
        // under two margins, so they join; the end clamps at the source.
        assert_eq!(frames(&plan), vec![(0, 9), (20, 43)]);
    }

    #[test]
    fn threshold_is_relative_to_the_files_peak() {
        let mut p = vec![0.125f32; 60];
        p[30..40].fill(0.5);
        let s = AutocutSettings {
            threshold: 0.25,
            ..no_margin()
        };
        // 0.125 / 0.5: exactly the threshold, so all of it is loud.
        let plan = plan_silence(&p, R30, 60, &s);
        assert_eq!(frames(&plan), vec![(0, 60)]);
        p.iter_mut().take(30).for_each(|x| *x = 0.124);
        let plan = plan_silence(&p, R30, 60, &s);
        assert_eq!(frames(&plan), vec![(30, 60)]);
    }

    #[test]
    fn digital_silence_keeps_nothing() {
        let plan = plan_silence(&[0.0; 90], R30, 90, &AutocutSettings::default());
        assert!(plan.ranges.is_empty());
        assert_eq!(plan.kept_frames, 0);
    }

    #[test]
    fn speech_ranges_contain_every_span_with_margin() {
        let speech = [(1.01, 2.52), (2.70, 3.0), (10.0, 10.4)];
        let s = AutocutSettings {
            mode: CutMode::Speech,
            ..AutocutSettings::default()
        };
        let plan = plan_speech(&speech, R30, 600, &s);
        // 2.52 + 0.2 and 2.70 - 0.2 overlap: one range.
        assert_eq!(plan.ranges.len(), 2);
        for &(a, b) in &speech {
            assert!(plan.ranges.iter().any(|r| {
                r.start_s <= a - s.margin_s + 1e-9 && r.end_s >= b + s.margin_s - 1e-9
            }));
        }
        assert_eq!(frames(&plan), vec![(24, 96), (294, 318)]);
    }

    #[test]
    fn alignment_only_moves_edges_outwards() {
        let p = peaks("..........##########..........##########..........");
        let plan = plan_silence(&p, R30, p.len() as u64, &no_margin());
        assert_eq!(frames(&plan), vec![(10, 20), (30, 40)]);
        let s = AutocutSettings {
            snap_s: 0.2, // 6 frames
            ..no_margin()
        };
        // 5 is too far from 10; 8 is close; 22 is close to 20; 33 is inside.
        let aligned = align_to_cuts(&plan, &[5, 8, 22, 33, 45], &s);
        assert_eq!(frames(&aligned), vec![(8, 22), (30, 45)]);
        assert!(aligned.ranges.iter().all(|r| r.aligned));
    }

    #[test]
    fn target_keeps_best_pieces_in_order_and_is_deterministic() {
        let p = peaks("##########..........##########..........##########");
        let plan = plan_silence(&p, R30, p.len() as u64, &no_margin());
        assert_eq!(plan.kept_frames, 30);
        // Score: later pieces are better; the middle range is split by a cut.
        let score = |a: u64, _b: u64| a as f64;
        let fitted = fit_target(&plan, &[25], 12.0 / 30.0, &score, &[]);
        assert_eq!(frames(&fitted), vec![(25, 27), (40, 50)]);
        assert_eq!(fitted.kept_frames, 12);
        assert_eq!(fitted, fit_target(&plan, &[25], 12.0 / 30.0, &score, &[]));
        // A target above what is kept changes nothing.
        assert_eq!(fit_target(&plan, &[25], 5.0, &score, &[]), plan);
        // A transcript plan trims only at a word's end: frame 26 is one, so
        // the two frames left become one; with none inside, the piece goes.
        let safe = fit_target(&plan, &[25], 12.0 / 30.0, &score, &[26, 50]);
        assert_eq!(frames(&safe), vec![(25, 26), (40, 50)]);
        let none = fit_target(&plan, &[25], 12.0 / 30.0, &score, &[29, 50]);
        assert_eq!(frames(&none), vec![(40, 50)]);
    }

    #[test]
    fn edit_mapping_follows_the_ranges() {
        let p = peaks("..........##########..........##########");
        let plan = plan_silence(&p, R30, p.len() as u64, &no_margin());
        assert_eq!(plan.edit_frame(9), None);
        assert_eq!(plan.edit_frame(10), Some(0));
        assert_eq!(plan.edit_frame(31), Some(11));
        assert_eq!(plan.edit_frame(40), None);
        let t = plan.edit_time(31.0 / 30.0).unwrap();
        assert!((t - 11.0 / 30.0).abs() < 1e-9);
        assert!(plan.problems().is_empty());
    }

    #[test]
    fn ntsc_rates_stay_exact() {
        let r = Rate::from_stream(Some((30000, 1001)));
        assert!((r.seconds(30000) - 1001.0).abs() < 1e-9);
        assert_eq!(r.timecode_base(), 30);
        assert_eq!(Rate::from_stream(Some((0, 1))), R30);
    }

    fn spoken(list: &[(&str, f64, f64)]) -> Vec<SpokenWord> {
        list.iter()
            .map(|&(t, a, b)| SpokenWord {
                text: t.into(),
                start_s: a,
                end_s: b,
            })
            .collect()
    }

    #[test]
    fn transcript_mode_removes_fillers_and_pauses_without_clipping_a_word() {
        let words = spoken(&[
            ("So", 0.50, 0.80),
            ("um,", 0.95, 1.40),
            ("we", 1.45, 1.60),
            ("went,", 1.65, 2.00),
            ("you", 2.10, 2.25),
            ("know,", 2.25, 2.50),
            ("there.", 2.60, 3.00),
            // A 3 s pause, then a sentence the editor deleted, then one kept.
            ("Bad", 6.00, 6.30),
            ("take.", 6.30, 6.70),
            ("Do", 7.00, 7.20),
            ("you", 7.20, 7.35),
            ("know", 7.35, 7.60),
            ("him?", 7.60, 8.00),
        ]);
        let rate = Rate { num: 30, den: 1 };
        let mut s = AutocutSettings {
            mode: CutMode::Transcript,
            ..AutocutSettings::default()
        };
        s.drop = vec![(5.9, 6.8)];
        let plan = plan_transcript(&words, "en", rate, 300, &s);
        assert!(plan.problems().is_empty(), "{:?}", plan.problems());
        let kept = |t: f64| {
            plan.ranges
                .iter()
                .any(|r| r.start_s <= t + 1e-9 && t <= r.end_s + 1e-9)
        };
        let gone = ["um,", "you", "know,", "Bad", "take."];
        for (i, w) in words.iter().enumerate() {
            let removed = gone.contains(&w.text.as_str()) && i < 9;
            if removed {
                assert!(!kept((w.start_s + w.end_s) / 2.0), "{} kept", w.text);
            } else {
                // The whole word plus the guard is kept: no clipping.
                assert!(
                    plan.ranges
                        .iter()
                        .any(|r| r.start_s <= w.start_s - s.word_guard_s + 1e-9
                            && w.end_s + s.word_guard_s <= r.end_s + 1e-9),
                    "{} clipped: {:?}",
                    w.text,
                    plan.ranges
                );
            }
        }
        // "Do you know him?" is meant, not a filler: no comma sets it off.
        assert!(kept(7.275) && kept(7.475));
        let kinds: Vec<RemovalKind> = plan.removed.iter().map(|r| r.kind).collect();
        assert!(kinds.contains(&RemovalKind::Filler));
        assert!(kinds.contains(&RemovalKind::Dropped));
        assert!(kinds.contains(&RemovalKind::Pause));
        // The pause after "there." (with the deleted take) now lasts about
        // the target, not 4 s: from "there." to "Do" in the edit.
        let a = plan.edit_time(3.0).unwrap();
        let b = plan.edit_time(7.0).unwrap();
        assert!(b - a <= s.pause_target_s + 2.0 / 30.0 + 1e-9, "{}", b - a);
        assert!(b - a >= 2.0 * s.word_guard_s - 1e-9, "{}", b - a);
        // No words at all (no speech found): the source is kept whole.
        let none = plan_transcript(&[], "en", rate, 300, &s);
        assert_eq!(none.kept_frames, 300);
        assert!(none.removed.is_empty());
    }
}
