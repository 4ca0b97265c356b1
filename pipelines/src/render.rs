//! Render: GStreamer plays a cut plan into `render.mp4`.
//!
//! ```text
//! decode:  input → decodebin ─ video → queue → upright → videoconvert(I420) → appsink ─┐
//!                              └ audio → queue → audioconvert → audioresample  │ router
//!                                        (F32 stereo 48 kHz) → appsink ────────┤ (retimes,
//! encode:  appsrc(video) → [textoverlay ← appsrc(cues)] → x264enc ─┐           │  trims)
//!          appsrc(audio) → audioconvert → avenc_aac ────────────────┼→ mp4mux → filesink
//!          appsrc(cues, tx3g) ──────────────────────────────────────┘
//! ```
//!
//! One decode pipeline serves the whole plan. Ranges closer than
//! `seek_gap_s` form a run decoded straight through (the gap is decoded and
//! dropped: cheaper than seeking back to a keyframe); each run starts with one
//! frame-accurate flushing seek. The router places every decoded frame and
//! sample by its own timestamp: frame `f` of the source goes to its edit frame,
//! and each range's audio is exactly the samples between its first and last
//! frame's times, so audio and video stay in step at every boundary by
//! construction, however long the edit. Missing frames repeat the previous one
//! and missing audio is silence, so the output is exactly the plan's length.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::captions::Cue;
use crate::cutplan::CutPlan;
use crate::graph::{self, Branches, Watch, lock, make, stream_time};
use crate::{Cancel, Input, MediaInfo, PipelineError};

/// `[render]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenderSettings {
    /// `auto` (NVENC when a GPU and `nvh264enc` are present, else x264),
    /// `x264` or `nvh264`.
    pub encoder: String,
    /// x264's speed preset.
    pub x264_preset: String,
    /// Constant-quality level (x264 `qual` mode, like CRF; lower is better).
    pub quality: u32,
    /// Keyframe interval.
    pub keyframe_s: f64,
    pub audio_bitrate_kbps: u32,
    pub audio_rate: u32,
    /// Draw the captions into the picture as well as muxing them.
    pub burn_captions: bool,
    /// How burned-in captions look: `plain` (the cue's lines) or `karaoke`
    /// (social-video style: the word being spoken highlighted, from the word
    /// times; cues without them stay plain).
    pub burn_style: BurnStyle,
    /// Kept ranges closer than this are decoded through instead of seeked.
    pub seek_gap_s: f64,
    /// Give up when neither stream advances for this long.
    pub stall_timeout_s: f64,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            encoder: "auto".into(),
            x264_preset: "veryfast".into(),
            quality: 21,
            keyframe_s: 2.0,
            audio_bitrate_kbps: 160,
            audio_rate: 48_000,
            burn_captions: false,
            burn_style: BurnStyle::Plain,
            seek_gap_s: 2.0,
            stall_timeout_s: 60.0,
        }
    }
}

const PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

impl RenderSettings {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !["auto", "x264", "nvh264"].contains(&self.encoder.as_str()) {
            p.push(format!(
                "render.encoder must be auto, x264 or nvh264, got `{}`",
                self.encoder
            ));
        }
        if !PRESETS.contains(&self.x264_preset.as_str()) {
            p.push(format!(
                "render.x264_preset must be one of {}, got `{}`",
                PRESETS.join(", "),
                self.x264_preset
            ));
        }
        if !(1..=51).contains(&self.quality) {
            p.push(format!(
                "render.quality must be 1 to 51, got {}",
                self.quality
            ));
        }
        if !(self.keyframe_s > 0.0 && self.keyframe_s <= 60.0) {
            p.push(format!(
                "render.keyframe_s must be in (0, 60], got {}",
                self.keyframe_s
            ));
        }
        if !(32..=512).contains(&self.audio_bitrate_kbps) {
            p.push(format!(
                "render.audio_bitrate_kbps must be 32 to 512, got {}",
                self.audio_bitrate_kbps
            ));
        }
        if ![44_100, 48_000].contains(&self.audio_rate) {
            p.push(format!(
                "render.audio_rate must be 44100 or 48000, got {}",
                self.audio_rate
            ));
        }
        for (name, v) in [
            ("seek_gap_s", self.seek_gap_s),
            ("stall_timeout_s", self.stall_timeout_s),
        ] {
            if !(v.is_finite() && (0.0..=3600.0).contains(&v)) {
                p.push(format!("render.{name} must be 0 to 3600 s, got {v}"));
            }
        }
        p
    }

    /// The encoder element to use.
    fn video_encoder(&self) -> &'static str {
        let nv = gst::ElementFactory::find("nvh264enc").is_some();
        match self.encoder.as_str() {
            "nvh264" => "nvh264enc",
            "auto" if nv && monteur_kernels::cuda::cuda_available() => "nvh264enc",
            _ => "x264enc",
        }
    }
}

/// What a render did.
#[derive(Debug, Clone, Serialize)]
pub struct RenderReport {
    pub encoder: &'static str,
    pub frames: u64,
    pub audio_samples: u64,
    pub ranges: usize,
    /// Decode runs, each started by one seek.
    pub seeks: usize,
    /// Frames repeated and samples of silence inserted where the decoder gave
    /// none (0 for well-formed input).
    pub repeated_frames: u64,
    pub silence_samples: u64,
    pub elapsed_s: f64,
}

/// Samples of silence `avenc_aac` puts before the first real one. mp4mux
/// (1.22) writes no edit list for them, so every player would hear the edit
/// 21 ms late (measured: +21.4 ms on every segment, constant); the router
/// starts the audio this many samples in instead, and the track still ends
/// exactly with the picture.
const AAC_PRIMING: u64 = 1024;

/// Ranges as runs of plan indices decoded by one seek each.
fn runs(plan: &CutPlan, gap_frames: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for r in &plan.ranges {
        match out.last_mut() {
            Some(last) if r.start_frame <= last.1 + gap_frames => last.1 = r.end_frame,
            _ => out.push((r.start_frame, r.end_frame)),
        }
    }
    out
}

/// Sample index of the start of frame `f`.
fn sample_at(f: u64, plan: &CutPlan, rate: u32) -> u64 {
    let r = plan.rate;
    // f * den / num seconds * rate samples, rounded, in integers.
    let num = u128::from(f) * u128::from(r.den) * u128::from(rate);
    let den = u128::from(r.num);
    ((num + den / 2) / den) as u64
}

/// Where each range's audio comes from and goes to, in samples.
#[derive(Debug, Clone, Copy)]
struct AudioSpan {
    src: u64,
    out: u64,
    len: u64,
}

fn audio_spans(plan: &CutPlan, rate: u32) -> Vec<AudioSpan> {
    let mut out_frame = 0;
    plan.ranges
        .iter()
        .map(|r| {
            let out = sample_at(out_frame, plan, rate);
            out_frame += r.frames();
            AudioSpan {
                src: sample_at(r.start_frame, plan, rate),
                out,
                len: sample_at(out_frame, plan, rate) - out,
            }
        })
        .collect()
}

/// Routes one decoded stream into its encoder, retimed to the edit (a
/// render has one router for video and one for audio; the fields of the
/// other stream stay unused).
struct Router {
    plan: CutPlan,
    spans: Vec<AudioSpan>,
    audio_rate: u32,
    channels: usize,
    video_src: gst_app::AppSrc,
    audio_src: Option<gst_app::AppSrc>,
    video_caps_set: bool,
    next_frame: u64,
    last_frame: Option<gst::Buffer>,
    /// How far the decoder got in the source: the last frame routed into
    /// the edit (video), the end of the last buffer (audio).
    last_source_s: Option<f64>,
    next_sample: u64,
    repeated: u64,
    silence: u64,
    error: Option<PipelineError>,
}

impl Router {
    fn frame_duration(&self) -> gst::ClockTime {
        let r = self.plan.rate;
        gst::ClockTime::from_nseconds(
            (1_000_000_000u128 * u128::from(r.den) / u128::from(r.num)) as u64,
        )
    }

    fn frame_pts(&self, i: u64) -> gst::ClockTime {
        let r = self.plan.rate;
        gst::ClockTime::from_nseconds(
            (u128::from(i) * 1_000_000_000 * u128::from(r.den) / u128::from(r.num)) as u64,
        )
    }

    fn push_frame(&mut self, buffer: &gst::Buffer, index: u64) -> Result<(), PipelineError> {
        let mut out = buffer.copy();
        {
            let b = out.make_mut();
            b.set_pts(self.frame_pts(index));
            b.set_dts(gst::ClockTime::NONE);
            b.set_duration(self.frame_duration());
        }
        self.video_src
            .push_buffer(out)
            .map_err(|e| PipelineError::Graph(format!("video encoder refused a frame: {e:?}")))?;
        self.next_frame = index + 1;
        Ok(())
    }

    fn on_video(&mut self, sample: &gst::Sample) -> Result<(), PipelineError> {
        let Some(buffer) = sample.buffer_owned() else {
            return Ok(());
        };
        if !self.video_caps_set {
            let Some(caps) = sample.caps() else {
                return Err(PipelineError::Graph("decoded video without caps".into()));
            };
            let mut caps = caps.to_owned();
            let r = self.plan.rate;
            caps.make_mut()
                .set("framerate", gst::Fraction::new(r.num as i32, r.den as i32));
            self.video_src.set_caps(Some(&caps));
            self.video_caps_set = true;
        }
        let Some(t) = stream_time(sample) else {
            return Ok(());
        };
        let src_frame = (t.as_secs_f64() * self.plan.rate.fps()).round() as u64;
        let Some(index) = self.plan.edit_frame(src_frame) else {
            return Ok(());
        };
        if index < self.next_frame {
            return Ok(());
        }
        // A hole (a frame the decoder did not give): hold the last picture.
        while self.next_frame < index {
            let fill = self.last_frame.clone().unwrap_or_else(|| buffer.clone());
            self.push_frame(&fill, self.next_frame)?;
            self.repeated += 1;
        }
        self.push_frame(&buffer, index)?;
        self.last_frame = Some(buffer);
        self.last_source_s = Some(t.as_secs_f64());
        Ok(())
    }

    fn push_audio(&mut self, samples: &[f32], at: u64) -> Result<(), PipelineError> {
        let Some(src) = &self.audio_src else {
            return Ok(());
        };
        if samples.is_empty() {
            return Ok(());
        }
        let frames = (samples.len() / self.channels) as u64;
        self.next_sample = at + frames;
        // The encoder's priming comes first in the file and nothing trims it
        // (see AAC_PRIMING), so the edit's first samples make way for it.
        if at + frames <= AAC_PRIMING {
            return Ok(());
        }
        let cut = AAC_PRIMING.saturating_sub(at);
        let samples = &samples[cut as usize * self.channels..];
        let (at, frames) = (at + cut - AAC_PRIMING, frames - cut);
        let mut bytes = Vec::with_capacity(samples.len() * 4);
        for s in samples {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        {
            let b = buffer.make_mut();
            let rate = u128::from(self.audio_rate);
            b.set_pts(gst::ClockTime::from_nseconds(
                (u128::from(at) * 1_000_000_000 / rate) as u64,
            ));
            b.set_duration(gst::ClockTime::from_nseconds(
                (u128::from(frames) * 1_000_000_000 / rate) as u64,
            ));
        }
        src.push_buffer(buffer)
            .map_err(|e| PipelineError::Graph(format!("audio encoder refused samples: {e:?}")))?;
        Ok(())
    }

    fn push_silence(&mut self, until: u64) -> Result<(), PipelineError> {
        while self.next_sample < until {
            let n = (until - self.next_sample).min(u64::from(self.audio_rate) / 10) as usize;
            self.silence += n as u64;
            let zeros = vec![0f32; n * self.channels];
            self.push_audio(&zeros, self.next_sample)?;
        }
        Ok(())
    }

    fn on_audio(&mut self, sample: &gst::Sample) -> Result<(), PipelineError> {
        let (Some(buffer), Some(t)) = (sample.buffer(), stream_time(sample)) else {
            return Ok(());
        };
        let map = buffer
            .map_readable()
            .map_err(|_| PipelineError::Graph("unreadable audio buffer".into()))?;
        let data: Vec<f32> = map
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        drop(map);
        let ch = self.channels;
        let n = (data.len() / ch) as u64;
        let end = t.as_secs_f64() + n as f64 / f64::from(self.audio_rate);
        self.last_source_s = Some(self.last_source_s.map_or(end, |l| l.max(end)));
        let rate = u128::from(self.audio_rate);
        let s0 = ((t.as_nanos() * rate + 500_000_000) / 1_000_000_000) as u64;
        for i in 0..self.spans.len() {
            let span = self.spans[i];
            let (a, b) = (s0.max(span.src), (s0 + n).min(span.src + span.len));
            if a >= b {
                continue;
            }
            let out_a = span.out + (a - span.src);
            let out_b = span.out + (b - span.src);
            if out_b <= self.next_sample {
                continue;
            }
            let skip = self.next_sample.saturating_sub(out_a);
            let (a, out_a) = (a + skip, out_a + skip);
            // Audio the decoder skipped inside a range becomes silence.
            self.push_silence(out_a)?;
            let from = ((a - s0) as usize) * ch;
            let to = ((b - s0) as usize) * ch;
            self.push_audio(&data[from..to], out_a)?;
        }
        Ok(())
    }

    /// Silence up to the start of edit frame `index` (audio router), never
    /// past the plan's end.
    fn silence_until_frame(&mut self, index: u64) -> Result<(), PipelineError> {
        if self.audio_src.is_none() {
            return Ok(());
        }
        let index = index.min(self.plan.kept_frames);
        self.push_silence(sample_at(index, &self.plan, self.audio_rate))
    }

    /// The edit frame that the audio routed so far reaches (audio router).
    fn edit_frame_at_sample(&self) -> u64 {
        let r = self.plan.rate;
        let num = u128::from(self.next_sample) * u128::from(r.num);
        let den = u128::from(self.audio_rate) * u128::from(r.den);
        (num / den.max(1)) as u64
    }

    /// Holds the last picture up to (not including) edit frame `index`
    /// (video router), never past the plan's end.
    fn hold_until(&mut self, index: u64) -> Result<(), PipelineError> {
        let index = index.min(self.plan.kept_frames);
        let Some(last) = self.last_frame.clone() else {
            return Ok(());
        };
        while self.next_frame < index {
            self.push_frame(&last, self.next_frame)?;
            self.repeated += 1;
        }
        Ok(())
    }

    /// Pads both streams to the plan's exact length.
    fn finish(&mut self) -> Result<(), PipelineError> {
        let total = self.plan.kept_frames;
        if let Some(last) = self.last_frame.clone() {
            while self.next_frame < total {
                self.push_frame(&last, self.next_frame)?;
                self.repeated += 1;
            }
        }
        if self.audio_src.is_some() {
            let end = sample_at(total, &self.plan, self.audio_rate);
            self.push_silence(end)?;
        }
        Ok(())
    }
}

/// `[render] burn_style`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BurnStyle {
    Plain,
    Karaoke,
}

/// Colour of the word being spoken in karaoke burn-in.
const HIGHLIGHT: &str = "#FFD400";

fn markup_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One buffer from `start` to `end` on the source's timeline, retimed to the
/// edit; `None` when too little of it is kept to show.
fn retimed(text: String, start: f64, end: f64, plan: &CutPlan) -> Option<gst::Buffer> {
    // Past the last kept range is the end of the edit.
    let (a, b) = (
        plan.edit_time(start)?,
        plan.edit_time(end).unwrap_or(plan.kept_s),
    );
    if b - a < 0.02 {
        return None;
    }
    let mut buffer = gst::Buffer::from_slice(text.into_bytes());
    if let Some(m) = buffer.get_mut() {
        m.set_pts(gst::ClockTime::from_nseconds((a * 1e9) as u64));
        m.set_duration(gst::ClockTime::from_nseconds(((b - a) * 1e9) as u64));
    }
    Some(buffer)
}

/// Pango markup for burning in karaoke style: each cue split at its words'
/// start times, each piece showing the cue with the word being spoken in
/// the highlight colour (before the first word, none is).
fn karaoke_buffers(cues: &[Cue], plan: &CutPlan) -> Vec<gst::Buffer> {
    let mut out = Vec::new();
    for c in cues {
        let words: Vec<Vec<&str>> = c
            .lines
            .iter()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let count: usize = words.iter().map(Vec::len).sum();
        let markup = |lit: Option<usize>| -> String {
            let mut k = 0;
            words
                .iter()
                .map(|line| {
                    line.iter()
                        .map(|w| {
                            let text = markup_escape(w);
                            let on = lit == Some(k);
                            k += 1;
                            if on {
                                format!("<span foreground=\"{HIGHLIGHT}\">{text}</span>")
                            } else {
                                text
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        if c.words.len() != count || count == 0 {
            out.extend(retimed(markup(None), c.start_s, c.end_s, plan));
            continue;
        }
        let mut marks: Vec<f64> = vec![c.start_s];
        marks.extend(c.words.iter().map(|w| w.start_s.clamp(c.start_s, c.end_s)));
        marks.push(c.end_s);
        for i in 1..marks.len() {
            marks[i] = marks[i].max(marks[i - 1]);
        }
        // Piece 0: before the first word; piece k + 1: word k spoken.
        for piece in 0..=count {
            let lit = piece.checked_sub(1);
            out.extend(retimed(markup(lit), marks[piece], marks[piece + 1], plan));
        }
    }
    out
}

/// Cue text and times on the edit's timeline, for muxing and burning in.
fn cue_buffers(cues: &[Cue], plan: &CutPlan) -> Vec<gst::Buffer> {
    let mut out = Vec::new();
    for c in cues {
        // A cue over a removed stretch shows only over what is kept of it.
        let (Some(a), Some(b)) = (plan.edit_time(c.start_s), plan.edit_time(c.end_s)) else {
            continue;
        };
        if b - a < 0.1 {
            continue;
        }
        let mut buffer = gst::Buffer::from_slice(c.lines.join("\n").into_bytes());
        if let Some(m) = buffer.get_mut() {
            m.set_pts(gst::ClockTime::from_nseconds((a * 1e9) as u64));
            m.set_duration(gst::ClockTime::from_nseconds(((b - a) * 1e9) as u64));
        }
        out.push(buffer);
    }
    out
}

fn text_src(name: &str, format: &str) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .name(name)
        .caps(
            &gst::Caps::builder("text/x-raw")
                .field("format", format)
                .build(),
        )
        .format(gst::Format::Time)
        .build()
}

/// Queues every cue and the end of the track. Only once the pipeline runs:
/// an appsrc forgets an end-of-stream given before it starts, and the muxer
/// would then wait for more text forever.
fn feed_text(src: &gst_app::AppSrc, cues: &[gst::Buffer]) -> Result<(), PipelineError> {
    for b in cues {
        src.push_buffer(b.clone())
            .map_err(|e| PipelineError::Graph(format!("caption track refused a cue: {e:?}")))?;
    }
    src.end_of_stream()
        .map_err(|e| PipelineError::Graph(format!("caption track: {e:?}")))?;
    Ok(())
}

struct Encoder {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: Option<gst_app::AppSrc>,
    /// Caption tracks (burned, muxed), each with the buffers it carries.
    text: Vec<(gst_app::AppSrc, Vec<gst::Buffer>)>,
    name: &'static str,
}

fn build_encoder(
    out: &Path,
    plan: &CutPlan,
    with_audio: bool,
    cues: &[Cue],
    s: &RenderSettings,
) -> Result<Encoder, PipelineError> {
    let pipeline = gst::Pipeline::with_name("render-encode");
    // Bounded queues in time: raw video is large (3 MB a 1080p frame), so a
    // third of a second (more than x264's lookahead at these presets); audio
    // is small and may run ahead while the muxer interleaves.
    let video_queue = 330_000_000u64;
    let queue_time = 3_000_000_000u64;
    let video = gst_app::AppSrc::builder()
        .name("video")
        .format(gst::Format::Time)
        .block(true)
        .max_time(gst::ClockTime::from_nseconds(video_queue))
        .max_bytes(0)
        .max_buffers(0)
        .build();
    let name = s.video_encoder();
    let encoder = make(name)?;
    let key_frames = (s.keyframe_s * plan.rate.fps()).round().max(1.0) as u32;
    if name == "x264enc" {
        encoder.set_property_from_str("speed-preset", &s.x264_preset);
        encoder.set_property_from_str("pass", "qual");
        encoder.set_property("quantizer", s.quality);
        encoder.set_property("key-int-max", key_frames);
    } else {
        encoder.set_property("gop-size", key_frames as i32);
    }
    let mux = make("mp4mux")?;
    mux.set_property("faststart", true);
    // With faststart the muxer parks the media data in a file of its own
    // until the end; left unset it goes to the system's temp folder, a disk.
    // Beside the output it stays in the job's (RAM-backed) scratch folder
    // and goes with it.
    mux.set_property("faststart-file", out.with_extension("mdat.partial"));
    let sink = gst::ElementFactory::make("filesink")
        .property("location", out.to_string_lossy().as_ref())
        .build()?;
    let convert = make("videoconvert")?;
    let mut texts = Vec::new();
    pipeline.add_many([video.upcast_ref(), &convert, &encoder, &mux, &sink])?;
    if s.burn_captions && !cues.is_empty() {
        let overlay = make("textoverlay")?;
        overlay.set_property("wait-text", false);
        overlay.set_property_from_str("valignment", "bottom");
        overlay.set_property_from_str("halignment", "center");
        overlay.set_property("font-desc", "Sans 20");
        overlay.set_property("shaded-background", true);
        let (format, buffers) = match s.burn_style {
            BurnStyle::Plain => ("utf8", cue_buffers(cues, plan)),
            BurnStyle::Karaoke => ("pango-markup", karaoke_buffers(cues, plan)),
        };
        let text = text_src("burn", format);
        texts.push((text.clone(), buffers));
        pipeline.add_many([overlay.clone(), text.clone().upcast()])?;
        gst::Element::link_many([video.upcast_ref(), &overlay, &convert, &encoder])?;
        let text_pad = overlay
            .static_pad("text_sink")
            .ok_or_else(|| PipelineError::Graph("textoverlay has no text pad".into()))?;
        text.static_pad("src")
            .ok_or_else(|| PipelineError::Graph("appsrc has no pad".into()))?
            .link(&text_pad)
            .map_err(|e| PipelineError::Graph(format!("{e:?}")))?;
    } else {
        gst::Element::link_many([video.upcast_ref(), &convert, &encoder])?;
    }
    encoder.link(&mux)?;
    mux.link(&sink)?;
    let audio = if with_audio {
        let src = gst_app::AppSrc::builder()
            .name("audio")
            .caps(
                &gst::Caps::builder("audio/x-raw")
                    .field("format", "F32LE")
                    .field("layout", "interleaved")
                    .field("rate", s.audio_rate as i32)
                    .field("channels", 2i32)
                    .build(),
            )
            .format(gst::Format::Time)
            .block(true)
            .max_time(gst::ClockTime::from_nseconds(queue_time))
            .max_bytes(0)
            .max_buffers(0)
            .build();
        let convert = make("audioconvert")?;
        let aac = make("avenc_aac")?;
        aac.set_property(
            "bitrate",
            i32::try_from(s.audio_bitrate_kbps * 1000).unwrap_or(160_000),
        );
        pipeline.add_many([src.upcast_ref(), &convert, &aac])?;
        gst::Element::link_many([src.upcast_ref(), &convert, &aac, &mux])?;
        Some(src)
    } else {
        None
    };
    if !cues.is_empty() {
        let text = text_src("subtitles", "utf8");
        texts.push((text.clone(), cue_buffers(cues, plan)));
        pipeline.add(&text)?;
        // Asked for by name: linking by caps lets the muxer hand out an audio pad.
        let pad = mux
            .request_pad_simple("subtitle_%u")
            .ok_or_else(|| PipelineError::Graph("mp4mux has no subtitle pad".into()))?;
        text.static_pad("src")
            .ok_or_else(|| PipelineError::Graph("appsrc has no pad".into()))?
            .link(&pad)
            .map_err(|e| PipelineError::Graph(format!("subtitle track: {e:?}")))?;
    }
    Ok(Encoder {
        pipeline,
        video,
        audio,
        text: texts,
        name,
    })
}

/// Renders `plan` of `input` into `out` (an `.mp4`, written through a
/// temporary file so a failed render leaves nothing behind). `cues` are on
/// the source's timeline; they are retimed to the edit, muxed as a subtitle
/// track and, when the settings ask, burned in.
///
/// `on_progress` gets the share of the edit rendered (0 to 1) about ten
/// times a second; `cancel` stops the render within a tick and leaves
/// nothing behind.
#[allow(clippy::too_many_arguments)]
pub fn render(
    input: &Input,
    info: &MediaInfo,
    plan: &CutPlan,
    cues: &[Cue],
    settings: &RenderSettings,
    out: &Path,
    cancel: &Cancel,
    on_progress: &mut dyn FnMut(f64),
) -> Result<RenderReport, PipelineError> {
    let started = Instant::now();
    let problems = plan.problems();
    if !problems.is_empty() {
        return Err(PipelineError::Graph(format!(
            "invalid cut plan: {}",
            problems.join("; ")
        )));
    }
    let video_info = info.primary_video().ok_or(PipelineError::NoVideo)?;
    if plan.kept_frames == 0 {
        return Err(PipelineError::Decode(
            "the cut plan keeps nothing: no render".into(),
        ));
    }
    let with_audio = !info.audio.is_empty();
    let tmp = out.with_extension("mp4.partial");
    let enc = build_encoder(&tmp, plan, with_audio, cues, settings)?;

    // One router per stream, each behind its own lock: a stream waiting on a
    // full encoder queue must never hold up the other, which the muxer needs
    // to drain that queue.
    let make_router = |video: bool| Router {
        plan: plan.clone(),
        spans: audio_spans(plan, settings.audio_rate),
        audio_rate: settings.audio_rate,
        channels: 2,
        video_src: enc.video.clone(),
        audio_src: if video { None } else { enc.audio.clone() },
        video_caps_set: false,
        next_frame: 0,
        last_frame: None,
        last_source_s: None,
        next_sample: 0,
        repeated: 0,
        silence: 0,
        error: None,
    };
    let routers = [
        Arc::new(Mutex::new(make_router(true))),
        Arc::new(Mutex::new(make_router(false))),
    ];
    let activity = Arc::new(AtomicU64::new(0));

    let (r_video, r_audio) = (Arc::clone(&routers[0]), Arc::clone(&routers[1]));
    let (a_video, a_audio) = (Arc::clone(&activity), Arc::clone(&activity));
    let audio_rate = settings.audio_rate as i32;
    let (c_video, c_audio) = (cancel.clone(), cancel.clone());
    // Set when the video of the current run has ended: from then on the
    // audio drives the picture (the last frame held), or the muxer, waiting
    // for video to interleave, would never take the audio of a file whose
    // video ends seconds before its sound, and the decode would block.
    let video_ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ended_v, ended_a) = (Arc::clone(&video_ended), Arc::clone(&video_ended));
    // And the other way round: once the audio of the run has ended (a file
    // whose sound stops before its picture), the picture drives the sound,
    // silence up to each routed frame, or the muxer would wait for audio
    // that never comes while the video backs up to the demuxer.
    let audio_ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (silent_v, silent_a) = (Arc::clone(&audio_ended), Arc::clone(&audio_ended));
    let (held, voiced) = (Arc::clone(&r_video), Arc::clone(&r_audio));
    let orientation = video_info.orientation;
    let video: graph::Attach = Box::new(move |pipeline, pad| {
        let (r, a) = (Arc::clone(&r_video), Arc::clone(&a_video));
        let (ended, silent) = (Arc::clone(&ended_v), Arc::clone(&silent_v));
        let voiced = Arc::clone(&voiced);
        video_branch(
            pipeline,
            pad,
            orientation,
            &c_video,
            move |sample| {
                a.fetch_add(1, Ordering::Relaxed);
                route(&r, |r| r.on_video(&sample))?;
                if silent.load(Ordering::SeqCst) {
                    // One lock at a time: the video router's, then the audio's.
                    let upto = lock(&r).next_frame;
                    route(&voiced, |s| s.silence_until_frame(upto))?;
                }
                Ok(())
            },
            move || ended.store(true, Ordering::SeqCst),
        )
    });
    let audio: graph::Attach = Box::new(move |pipeline, pad| {
        let (r, a) = (Arc::clone(&r_audio), Arc::clone(&a_audio));
        let (ended, held) = (Arc::clone(&ended_a), Arc::clone(&held));
        let silent = Arc::clone(&silent_a);
        audio_branch(
            pipeline,
            pad,
            audio_rate,
            &c_audio,
            move |sample| {
                a.fetch_add(1, Ordering::Relaxed);
                route(&r, |r| r.on_audio(&sample))?;
                if ended.load(Ordering::SeqCst) {
                    // One lock at a time: the audio router's, then the video's.
                    let upto = lock(&r).edit_frame_at_sample();
                    route(&held, |v| v.hold_until(upto))?;
                }
                Ok(())
            },
            move || silent.store(true, Ordering::SeqCst),
        )
    });
    let decode = graph::decode_graph(
        "render-decode",
        input,
        Branches {
            video: Some((video_info.stream_id.clone(), video)),
            audio: with_audio.then_some(audio),
            extent: graph::Extent::default(),
        },
    )?;

    let outcome = drive(
        &decode,
        &enc,
        plan,
        settings,
        &routers,
        &activity,
        [&video_ended, &audio_ended],
        cancel,
        on_progress,
    );
    // The encoder goes first: a decoder thread blocked pushing into a full
    // encoder queue is released by it (its push fails as flushing), and only
    // then can the decoder stop.
    let _ = enc.pipeline.set_state(gst::State::Null);
    let _ = decode.set_state(gst::State::Null);
    let _ = std::fs::remove_file(out.with_extension("mdat.partial"));
    // Nothing is moved into place for a job that was stopped meanwhile.
    let outcome = outcome.and_then(|()| cancel.check());
    let report = outcome.map(|()| {
        let (v, a) = (lock(&routers[0]), lock(&routers[1]));
        RenderReport {
            encoder: enc.name,
            frames: v.next_frame,
            audio_samples: if with_audio { a.next_sample } else { 0 },
            ranges: plan.ranges.len(),
            seeks: runs(plan, plan.rate.frames_in(settings.seek_gap_s)).len(),
            repeated_frames: v.repeated,
            silence_samples: a.silence,
            elapsed_s: started.elapsed().as_secs_f64(),
        }
    });
    match report {
        Ok(report) => {
            std::fs::rename(&tmp, out).map_err(|e| {
                PipelineError::Graph(format!("cannot move the render into place: {e}"))
            })?;
            info!(
                frames = report.frames,
                ranges = report.ranges,
                seeks = report.seeks,
                encoder = report.encoder,
                elapsed_s = report.elapsed_s,
                "rendered"
            );
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Hands a sample to a router, keeping the first error for the driver.
fn route(
    router: &Mutex<Router>,
    f: impl FnOnce(&mut Router) -> Result<(), PipelineError>,
) -> Result<(), gst::FlowError> {
    let mut r = lock(router);
    if r.error.is_none()
        && let Err(e) = f(&mut r)
    {
        r.error = Some(e);
    }
    Ok(())
}

fn video_branch(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    orientation: crate::Orientation,
    cancel: &Cancel,
    on_sample: impl Fn(gst::Sample) -> Result<(), gst::FlowError> + Send + Sync + 'static,
    on_eos: impl Fn() + Send + Sync + 'static,
) -> Result<(), PipelineError> {
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .build();
    // The picture is turned, deinterlaced and tone-mapped before the
    // router, so the encoder, the burned-in captions and every player see
    // it upright and progressive, in SDR.
    let decoded = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let mut chain = vec![make("queue")?];
    chain.extend(crate::upright::front(&decoded, orientation)?);
    chain.push(make("videoconvert")?);
    chain.push(graph::appsink_with_eos(&caps, 4, cancel, on_sample, on_eos));
    graph::link_chain(pipeline, pad, &chain)
}

fn audio_branch(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    rate: i32,
    cancel: &Cancel,
    on_sample: impl Fn(gst::Sample) -> Result<(), gst::FlowError> + Send + Sync + 'static,
    on_eos: impl Fn() + Send + Sync + 'static,
) -> Result<(), PipelineError> {
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("layout", "interleaved")
        .field("rate", rate)
        .field("channels", 2i32)
        .build();
    let chain = [
        make("queue")?,
        graph::downmix(pad, 2)?,
        make("audioresample")?,
        graph::appsink_with_eos(&caps, 16, cancel, on_sample, on_eos),
    ];
    graph::link_chain(pipeline, pad, &chain)
}

#[allow(clippy::too_many_arguments)]
fn drive(
    decode: &gst::Pipeline,
    enc: &Encoder,
    plan: &CutPlan,
    settings: &RenderSettings,
    routers: &[Arc<Mutex<Router>>; 2],
    activity: &Arc<AtomicU64>,
    [video_ended, audio_ended]: [&std::sync::atomic::AtomicBool; 2],
    cancel: &Cancel,
    on_progress: &mut dyn FnMut(f64),
) -> Result<(), PipelineError> {
    let stall = Duration::from_secs_f64(settings.stall_timeout_s.max(1.0));
    let bus = decode
        .bus()
        .ok_or_else(|| PipelineError::Graph("pipeline has no bus".into()))?;
    let enc_bus = enc
        .pipeline
        .bus()
        .ok_or_else(|| PipelineError::Graph("pipeline has no bus".into()))?;
    let watch = Watch {
        cancel,
        stall,
        activity: &|| activity.load(Ordering::Relaxed),
        encoder: Some(&enc_bus),
    };
    let total = plan.kept_frames.max(1) as f64;
    // Never waits for the router: its lock is held by a streaming thread
    // while it pushes into the encoder, which may block, and the watcher
    // must keep ticking to see a stall or a cancel.
    let mut tick = || {
        if let Ok(r) = routers[0].try_lock() {
            on_progress(r.next_frame as f64 / total);
        }
    };
    graph::start(&enc.pipeline, gst::State::Playing)?;
    for (t, buffers) in &enc.text {
        feed_text(t, buffers)?;
    }
    graph::start(decode, gst::State::Paused)?;
    watch.until(&bus, gst::MessageType::AsyncDone, &mut tick)?;
    let gap = plan.rate.frames_in(settings.seek_gap_s);
    for (i, (a, b)) in runs(plan, gap).into_iter().enumerate() {
        // Half a frame either side: the seek lands on frame `a` however the
        // container rounded its timestamps, and the router trims exactly.
        let half = plan.rate.seconds(1) / 2.0;
        let start = (plan.rate.seconds(a) - half).max(0.0);
        let stop = plan.rate.seconds(b) + half;
        debug!(run = i, start_s = start, stop_s = stop, "seeking");
        video_ended.store(false, Ordering::SeqCst);
        audio_ended.store(false, Ordering::SeqCst);
        decode
            .seek(
                1.0,
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::SeekType::Set,
                gst::ClockTime::from_nseconds((start * 1e9) as u64),
                gst::SeekType::Set,
                gst::ClockTime::from_nseconds((stop * 1e9) as u64),
            )
            .map_err(|_| PipelineError::Decode("the input refused a seek".into()))?;
        if i == 0 {
            watch.until(&bus, gst::MessageType::AsyncDone, &mut tick)?;
            graph::start(decode, gst::State::Playing)?;
        }
        watch.until(&bus, gst::MessageType::Eos, &mut tick)?;
        for r in routers {
            if let Some(e) = lock(r).error.take() {
                return Err(e);
            }
        }
    }
    let _ = decode.set_state(gst::State::Null);
    {
        if lock(&routers[0]).last_source_s.is_none() {
            return Err(PipelineError::Decode(
                "the video stream produced no frames in the kept ranges".into(),
            ));
        }
        // A cut upload decodes only its start: the frames the plan wants
        // past that would all be repeats of the last one. Where decoding got
        // to is the later of the two streams (a file whose video ends before
        // its audio is not cut), as in the analysis.
        let frame = plan.rate.seconds(1);
        let decoded = routers
            .iter()
            .filter_map(|r| lock(r).last_source_s)
            .fold(0.0f64, f64::max);
        let needed = plan
            .ranges
            .last()
            .map(|r| plan.rate.seconds(r.end_frame))
            .unwrap_or(0.0);
        graph::check_complete(
            Duration::from_secs_f64(decoded + frame),
            Some(Duration::from_secs_f64(needed)),
        )?;
    }
    for r in routers {
        let mut r = lock(r);
        if let Some(e) = r.error.take() {
            return Err(e);
        }
        r.finish()?;
    }
    let eos = |src: &gst_app::AppSrc| {
        src.end_of_stream()
            .map_err(|e| PipelineError::Graph(format!("{e:?}")))
    };
    eos(&enc.video)?;
    if let Some(a) = &enc.audio {
        eos(a)?;
    }
    let flushing = Watch {
        cancel,
        stall: stall.max(Duration::from_secs(600)),
        activity: &|| 0,
        encoder: None,
    };
    // Whatever fails now fails in the encoder: ours, not the input's.
    flushing
        .until(&enc_bus, gst::MessageType::Eos, &mut tick)
        .map_err(|e| match e {
            PipelineError::Decode(m) | PipelineError::MissingCodec(m) => {
                PipelineError::Graph(format!("encoding failed: {m}"))
            }
            other => other,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cutplan::{CutMode, Rate, Reason};

    fn plan(rate: Rate, ranges: &[(u64, u64)]) -> CutPlan {
        CutPlan::new(
            CutMode::Silence,
            rate,
            10_000,
            ranges
                .iter()
                .map(|&(a, b)| (a, b, Reason::Loud, false))
                .collect(),
        )
    }

    #[test]
    fn audio_spans_tile_the_edit_and_match_each_range() {
        let rate = Rate {
            num: 30000,
            den: 1001,
        };
        let p = plan(rate, &[(10, 25), (40, 41), (100, 400)]);
        let spans = audio_spans(&p, 48_000);
        let mut out = 0;
        let mut frames = 0;
        for (s, r) in spans.iter().zip(&p.ranges) {
            assert_eq!(s.out, out, "spans are contiguous");
            out += s.len;
            // Each span's length is its range's duration to within a sample.
            let secs = r.frames() as f64 * 1001.0 / 30000.0;
            assert!((s.len as f64 - secs * 48_000.0).abs() <= 1.0);
            // And it starts where its first frame starts, to within a sample.
            assert!((s.src as f64 - r.start_s * 48_000.0).abs() <= 0.5 + 1e-6);
            frames += r.frames();
        }
        assert_eq!(out, sample_at(frames, &p, 48_000));
    }

    #[test]
    fn close_ranges_share_a_run() {
        let p = plan(Rate { num: 30, den: 1 }, &[(0, 10), (30, 40), (200, 210)]);
        assert_eq!(runs(&p, 60), vec![(0, 40), (200, 210)]);
        assert_eq!(runs(&p, 0).len(), 3);
    }

    #[test]
    fn settings_are_checked() {
        assert!(RenderSettings::default().problems().is_empty());
        let bad = RenderSettings {
            x264_preset: "warp".into(),
            quality: 0,
            ..RenderSettings::default()
        };
        assert_eq!(bad.problems().len(), 2);
    }
}
