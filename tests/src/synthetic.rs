//! Synthetic clips with exact answers, made with ffmpeg's lavfi sources and
//! cached outside the repository (`$MONTEUR_CACHE/synthetic`).
//!
//! Every clip is a sequence of shots from different generators, joined by hard
//! cuts (`concat`), linear fades (`fade`) or a crossfade (`xfade`), so the
//! ground truth follows from the recipe to the frame.

use std::path::PathBuf;
use std::process::Command;

/// A labelled transition: `[start, end)` in decoded frames; a cut has
/// `start == end`, the first frame of the new shot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truth {
    pub kind: &'static str,
    pub start: u64,
    pub end: u64,
}

/// A clip recipe and its answers.
#[derive(Debug, Clone)]
pub struct Clip {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u64,
    pub truth: Vec<Truth>,
    recipe: Recipe,
}

#[derive(Debug, Clone)]
enum Recipe {
    /// An ffmpeg filter graph whose output pad is `[v]`.
    Filter(String),
    /// Clips joined end to end without re-encoding.
    Concat(Vec<Clip>),
}

/// Shot generators: visibly different content, each with its own motion.
const SHOTS: [&str; 5] = [
    "testsrc2",
    "mandelbrot",
    "smptehdbars",
    "life=mold=10:ratio=0.3:death_color=#203060:life_color=#e0c040",
    "gradients=speed=0.05",
];

fn source(i: usize, w: u32, h: u32, fps: u32, secs: u32) -> String {
    let s = SHOTS[i % SHOTS.len()];
    let sep = if s.contains('=') { ":" } else { "=" };
    format!(
        "{s}{sep}size={w}x{h}:rate={fps},trim=duration={secs},setpts=PTS-STARTPTS,format=yuv420p"
    )
}

fn cut(frame: u64) -> Truth {
    Truth {
        kind: "cut",
        start: frame,
        end: frame,
    }
}

impl Clip {
    fn filter(
        name: &'static str,
        w: u32,
        h: u32,
        fps: u32,
        secs: u32,
        graph: String,
        truth: Vec<Truth>,
    ) -> Self {
        Self {
            name,
            width: w,
            height: h,
            fps,
            frames: u64::from(secs * fps),
            truth,
            recipe: Recipe::Filter(graph),
        }
    }

    /// `shots` shots of `secs` seconds joined by hard cuts.
    pub fn cuts(name: &'static str, w: u32, h: u32, fps: u32, shots: usize, secs: u32) -> Self {
        let mut graph = String::new();
        for i in 0..shots {
            graph.push_str(&format!("{}[s{i}];", source(i, w, h, fps, secs)));
        }
        for i in 0..shots {
            graph.push_str(&format!("[s{i}]"));
        }
        graph.push_str(&format!("concat=n={shots}:v=1[v]"));
        let truth = (1..shots)
            .map(|i| cut(u64::from(i as u32 * secs * fps)))
            .collect();
        Self::filter(name, w, h, fps, shots as u32 * secs, graph, truth)
    }

    /// Two shots joined by a dissolve (an `xfade` crossfade) of `dur` seconds.
    pub fn dissolve(
        name: &'static str,
        w: u32,
        h: u32,
        fps: u32,
        first: u32,
        dur: u32,
        second: u32,
    ) -> Self {
        let graph = format!(
            "{}[a];{}[b];[a][b]xfade=transition=fade:duration={dur}:offset={first}[v]",
            source(0, w, h, fps, first + dur),
            source(1, w, h, fps, dur + second),
        );
        let (s, e) = (u64::from(first * fps), u64::from((first + dur) * fps));
        let truth = vec![Truth {
            kind: "dissolve",
            start: s,
            end: e,
        }];
        Self::filter(name, w, h, fps, first + dur + second, graph, truth)
    }

    /// A shot fading out to black over `dur` seconds, then the next fading in
    /// from black over `dur` seconds: linear ramps from ffmpeg's `fade`.
    pub fn fade_through_black(
        name: &'static str,
        w: u32,
        h: u32,
        fps: u32,
        first: u32,
        dur: u32,
        second: u32,
    ) -> Self {
        let graph = format!(
            "{},fade=t=out:st={first}:d={dur}[a];{},fade=t=in:st=0:d={dur}[b];[a][b]concat=n=2:v=1[v]",
            source(0, w, h, fps, first + dur),
            source(1, w, h, fps, dur + second),
        );
        let (s, m) = (u64::from(first * fps), u64::from((first + dur) * fps));
        let e = m + u64::from(dur * fps);
        let truth = vec![
            Truth {
                kind: "fade_out",
                start: s,
                end: m,
            },
            Truth {
                kind: "fade_in",
                start: m,
                end: e,
            },
        ];
        Self::filter(name, w, h, fps, first + 2 * dur + second, graph, truth)
    }

    /// One shot panning fast across a large moving pattern: no transition.
    pub fn fast_pan(name: &'static str, w: u32, h: u32, fps: u32, secs: u32) -> Self {
        // Back and forth across twice the frame width every 2.5 s (about 40 px
        // a frame at 640 wide, 25 fps), bobbing vertically: fast, continuous
        // motion with no jump.
        let graph = format!(
            "testsrc2=size={}x{}:rate={fps},trim=duration={secs},crop={w}:{h}:x='{}*abs(1-mod(t*0.8,2))':y='{}*abs(sin(t*2))',format=yuv420p[v]",
            w * 3,
            h * 3,
            w * 2,
            h * 2
        );
        Self::filter(name, w, h, fps, secs, graph, Vec::new())
    }

    /// One shot with two-frame white flashes (photo flashes): no transition.
    pub fn flashes(name: &'static str, w: u32, h: u32, fps: u32, secs: u32) -> Self {
        let graph = format!(
            "{},eq=brightness=0.6:enable='between(n,{a},{b})+between(n,{c},{d})'[v]",
            source(1, w, h, fps, secs),
            a = fps,
            b = fps + 1,
            c = fps * 2 + fps / 2,
            d = fps * 2 + fps / 2 + 1,
        );
        Self::filter(name, w, h, fps, secs, graph, Vec::new())
    }

    /// `parts` (same size and rate) one after the other. Each junction is a
    /// hard cut: consecutive parts end and start on different content.
    pub fn concat(name: &'static str, parts: Vec<Clip>) -> Self {
        let (width, height, fps) = parts
            .first()
            .map(|p| (p.width, p.height, p.fps))
            .unwrap_or((0, 0, 1));
        let mut truth = Vec::new();
        let mut offset = 0u64;
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                truth.push(cut(offset));
            }
            truth.extend(p.truth.iter().map(|t| Truth {
                kind: t.kind,
                start: t.start + offset,
                end: t.end + offset,
            }));
            offset += p.frames;
        }
        Self {
            name,
            width,
            height,
            fps,
            frames: offset,
            truth,
            recipe: Recipe::Concat(parts),
        }
    }

    /// The clip's file, made on first use.
    pub fn path(&self) -> Result<PathBuf, String> {
        let dir = cache_dir();
        // The recipe's hash keeps clips of one name but different recipes apart.
        let path = dir.join(format!(
            "{}-{}x{}-{}fps-{:016x}.mp4",
            self.name,
            self.width,
            self.height,
            self.fps,
            fnv1a(format!("{:?}", self.recipe).as_bytes())
        ));
        if path.is_file() {
            return Ok(path);
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = dir.join(format!(".{}-{}.tmp.mp4", self.name, std::process::id()));
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-y"]);
        match &self.recipe {
            Recipe::Filter(graph) => {
                cmd.args(["-filter_complex", graph, "-map", "[v]"]).args([
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                ]);
            }
            Recipe::Concat(parts) => {
                let list = dir.join(format!(".{}-{}.txt", self.name, std::process::id()));
                let mut text = String::new();
                for p in parts {
                    text.push_str(&format!("file '{}'\n", p.path()?.display()));
                }
                std::fs::write(&list, text).map_err(|e| e.to_string())?;
                cmd.args(["-f", "concat", "-safe", "0", "-i"])
                    .arg(&list)
                    .args(["-c", "copy"]);
            }
        }
        let status = cmd.arg(&tmp).status().map_err(|e| format!("ffmpeg: {e}"))?;
        if !status.success() {
            return Err(format!("ffmpeg failed making {}: {status}", self.name));
        }
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
        Ok(path)
    }
}

/// FNV-1a: a stable hash (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn cache_dir() -> PathBuf {
    crate::cache_dir().join("synthetic")
}

/// The small evaluation set: every kind of transition and the two classic
/// false-positive traps, at 640x360 so CI makes and decodes it in seconds.
pub fn small_set() -> Vec<Clip> {
    vec![
        Clip::cuts("cuts", 640, 360, 25, 5, 2),
        Clip::fade_through_black("fades", 640, 360, 25, 2, 1, 2),
        Clip::dissolve("dissolve", 640, 360, 25, 2, 1, 2),
        Clip::fast_pan("fast-pan", 640, 360, 25, 4),
        Clip::flashes("flashes", 640, 360, 25, 4),
    ]
}

/// The small set plus 1080p clips, so the detector is checked at the size most
/// footage arrives in (analysis frames are scaled, but compression noise and
/// scaling differ).
pub fn full_set() -> Vec<Clip> {
    let mut set = small_set();
    set.push(Clip::cuts("cuts", 1920, 1080, 25, 3, 2));
    set.push(Clip::fade_through_black("fades", 1920, 1080, 25, 1, 1, 1));
    set.push(Clip::dissolve("dissolve", 1920, 1080, 25, 1, 1, 1));
    set
}

/// The benchmark clip: every part of the small set at `w`x`h`, joined (29 s).
pub fn mixed(w: u32, h: u32) -> Clip {
    Clip::concat(
        "mixed",
        vec![
            Clip::cuts("cuts", w, h, 25, 5, 2),
            Clip::fade_through_black("fades", w, h, 25, 2, 1, 2),
            Clip::dissolve("dissolve", w, h, 25, 2, 1, 2),
            Clip::fast_pan("fast-pan", w, h, 25, 4),
            Clip::flashes("flashes", w, h, 25, 4),
        ],
    )
}
