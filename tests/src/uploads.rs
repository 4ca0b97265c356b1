//! Footage people actually upload, made at test time with ffmpeg from real
//! footage and real speech: phone orientations (all eight display
//! matrices), HLG and PQ 10-bit HEVC, interlaced PAL (top and bottom field
//! first), 5.1, dual-track and 96 kHz audio. Each [`Clip`] comes with the
//! ffmpeg filter that gives its upright, progressive, SDR picture, so a
//! render can be checked against ffmpeg's own decode.
//!
//! The recipes are fixed here; the tools are Debian 12's (ffmpeg 5.1 with
//! libx264, libx265, zimg), pinned by the distribution release.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixtures;

/// Seconds of footage in each clip.
pub const SECONDS: f64 = 4.0;
/// Frame rate of the progressive clips.
pub const FPS: u32 = 25;
/// The stored picture of the progressive clips.
pub const STORED: (u32, u32) = (640, 360);

/// The real speech every clip carries (16 kHz mono, about 7 s).
pub fn speech() -> PathBuf {
    PathBuf::from(
        "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
    )
}

/// Where the picture comes from: the leaf shot of PySceneDetect's
/// `testvideo.mp4` (real footage, no cut between 1 s and 6 s).
fn footage() -> PathBuf {
    fixtures::path("scenes/pyscenedetect/testvideo.mp4")
}

/// One corpus clip.
#[derive(Debug, Clone)]
pub struct Clip {
    pub name: String,
    pub path: PathBuf,
    /// The `-vf` chain that makes ffmpeg show the clip upright, progressive
    /// and in SDR BT.709 (applied with `-noautorotate`: ffmpeg 5.1 reads
    /// mirrored display matrices as rotations, so the transform is spelled
    /// out rather than left to its auto-rotation).
    pub upright: String,
    /// Display size.
    pub display: (u32, u32),
    /// Frames the clip holds at its frame rate.
    pub frames: u32,
}

/// A QuickTime display matrix's linear part `[a b; c d]` (a stored point
/// `(x, y)` is shown at `(a·x + c·y, b·x + d·y)`), with the ffmpeg filter
/// that does the same to the pixels, by `image-orientation` name.
pub const ORIENTATIONS: [(&str, [i32; 4], &str); 8] = [
    ("rotate-0", [1, 0, 0, 1], "null"),
    ("rotate-90", [0, 1, -1, 0], "transpose=clock"),
    ("rotate-180", [-1, 0, 0, -1], "hflip,vflip"),
    ("rotate-270", [0, -1, 1, 0], "transpose=cclock"),
    ("flip-rotate-0", [-1, 0, 0, 1], "hflip"),
    ("flip-rotate-90", [0, -1, -1, 0], "transpose=clock_flip"),
    ("flip-rotate-180", [1, 0, 0, -1], "vflip"),
    ("flip-rotate-270", [0, 1, 1, 0], "transpose=cclock_flip"),
];

fn ffmpeg(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .map_err(|e| format!("ffmpeg: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ffmpeg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Footage and speech into `dst`: `vf` on the picture, `extra` output
/// options (codecs, tags), speech as stereo 48 kHz AAC unless `extra` maps
/// audio itself.
fn encode(dst: &Path, vf: &str, extra: &[&str]) -> Result<(), String> {
    let (footage, speech) = (footage(), speech());
    let secs = SECONDS.to_string();
    let mut args = vec![
        "-ss",
        "1.2",
        "-t",
        &secs,
        "-i",
        s(&footage),
        "-i",
        s(&speech),
        "-vf",
        vf,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-t", &secs, s(dst)]);
    ffmpeg(&args)
}

const H264: [&str; 8] = [
    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "25",
];
const STEREO_AAC: [&str; 10] = [
    "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-ac", "2", "-ar", "48000",
];

fn progressive_vf() -> String {
    format!("scale={}:{},fps={FPS},setsar=1", STORED.0, STORED.1)
}

/// Rewrites the display matrix of the first `tkhd` (the video track of the
/// files made here) in place, as phones write it.
pub fn set_display_matrix(file: &Path, [a, b, c, d]: [i32; 4]) -> Result<(), String> {
    let mut data = std::fs::read(file).map_err(|e| e.to_string())?;
    let moov = find_box(&data, 0, data.len(), b"moov").ok_or("no moov box")?;
    let trak = find_box(&data, moov.0, moov.1, b"trak").ok_or("no trak box")?;
    let (body, _) = find_box(&data, trak.0, trak.1, b"tkhd").ok_or("no tkhd box")?;
    let version = data[body];
    let matrix = body + if version == 1 { 36 } else { 24 } + 16;
    let words = [a << 16, b << 16, 0, c << 16, d << 16, 0, 0, 0, 1 << 30];
    for (i, w) in words.iter().enumerate() {
        data[matrix + 4 * i..matrix + 4 * i + 4].copy_from_slice(&w.to_be_bytes());
    }
    std::fs::write(file, data).map_err(|e| e.to_string())
}

/// The body (start, end) of the first `kind` box among the boxes of
/// `data[from..to]` (32-bit sizes: the files made here are small).
fn find_box(data: &[u8], from: usize, to: usize, kind: &[u8; 4]) -> Option<(usize, usize)> {
    let mut at = from;
    while at + 8 <= to {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().ok()?) as usize;
        if len < 8 || at + len > to {
            return None;
        }
        if &data[at + 4..at + 8] == kind {
            return Some((at + 8, at + len));
        }
        at += len;
    }
    None
}

/// The eight orientations of one phone-style clip (stored 640x360).
pub fn orientations(dir: &Path) -> Result<Vec<Clip>, String> {
    let base = dir.join("stored.mp4");
    let mut extra = H264.to_vec();
    extra.extend_from_slice(&STEREO_AAC);
    encode(&base, &progressive_vf(), &extra)?;
    let mut clips = Vec::new();
    for (name, matrix, filter) in ORIENTATIONS {
        let path = dir.join(format!("{name}.mp4"));
        std::fs::copy(&base, &path).map_err(|e| e.to_string())?;
        set_display_matrix(&path, matrix)?;
        let sideways = matrix[0] == 0;
        clips.push(Clip {
            name: name.into(),
            path,
            upright: filter.into(),
            display: if sideways {
                (STORED.1, STORED.0)
            } else {
                STORED
            },
            frames: (SECONDS * f64::from(FPS)) as u32,
        });
    }
    Ok(clips)
}

/// The filter chain ffmpeg users tone-map HDR with (zimg's conversions and
/// the Hable curve).
pub const TONE_MAP: &str = "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,\
     tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p";

/// HLG and PQ 10-bit HEVC, graded from the SDR footage the way a
/// conversion would (SDR white at 203 cd/m² for PQ, BT.2408).
pub fn hdr(dir: &Path) -> Result<Vec<Clip>, String> {
    let mut clips = Vec::new();
    for (name, trc, npl) in [("hlg", "arib-std-b67", ""), ("pq", "smpte2084", ":npl=203")] {
        let path = dir.join(format!("{name}.mp4"));
        let vf = format!(
            "{},zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t={trc}:m=bt2020nc:p=bt2020:r=tv{npl},\
             format=yuv420p10le",
            progressive_vf()
        );
        let params =
            format!("log-level=error:colorprim=bt2020:transfer={trc}:colormatrix=bt2020nc");
        let mut extra = vec![
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            &params,
            "-color_primaries",
            "bt2020",
            "-color_trc",
            trc,
            "-colorspace",
            "bt2020nc",
            "-tag:v",
            "hvc1",
        ];
        extra.extend_from_slice(&STEREO_AAC);
        encode(&path, &vf, &extra)?;
        clips.push(Clip {
            name: name.into(),
            path,
            upright: TONE_MAP.into(),
            display: STORED,
            frames: (SECONDS * f64::from(FPS)) as u32,
        });
    }
    Ok(clips)
}

/// PAL 576i25 H.264, top and bottom field first, from a 50p pan across the
/// footage (each field its own moment, so the picture combs wherever it
/// moves).
pub fn interlaced(dir: &Path) -> Result<Vec<Clip>, String> {
    let mut clips = Vec::new();
    for (name, order) in [("tff", "tff"), ("bff", "bff")] {
        let path = dir.join(format!("interlaced-{name}.mp4"));
        let vf = format!(
            "scale=1280:720,fps=50,crop=720:576:x='min(t*150,560)':y=72,setsar=1,\
             interlace=scan={order}"
        );
        let x264 = format!("{order}=1");
        let mut extra = H264.to_vec();
        extra.extend_from_slice(&["-flags", "+ildct+ilme", "-x264-params", &x264]);
        extra.extend_from_slice(&STEREO_AAC);
        encode(&path, &vf, &extra)?;
        clips.push(Clip {
            name: format!("interlaced-{name}"),
            path,
            // One frame per frame, parity from the stream: the documented
            // choice on both sides.
            upright: "yadif=mode=send_frame:parity=auto".into(),
            display: (720, 576),
            frames: (SECONDS * 25.0) as u32,
        });
    }
    Ok(clips)
}

/// Audio layouts: 5.1 with the speech in the centre channel only (and a
/// 50 Hz hum in the LFE, which a downmix drops), two tracks (speech first,
/// a 1 kHz commentary tone second), and 96 kHz stereo.
pub fn audio_layouts(dir: &Path) -> Result<Vec<Clip>, String> {
    let footage = footage();
    let speech = speech();
    let secs = SECONDS.to_string();
    let vf = progressive_vf();
    let clip = |name: &str| Clip {
        name: name.into(),
        path: dir.join(format!("{name}.mp4")),
        upright: "null".into(),
        display: STORED,
        frames: (SECONDS * f64::from(FPS)) as u32,
    };
    let surround = clip("surround-5.1");
    let hum = "sine=frequency=50:sample_rate=48000";
    let mut args = vec![
        "-ss",
        "1.2",
        "-t",
        &secs,
        "-i",
        s(&footage),
        "-i",
        s(&speech),
        "-f",
        "lavfi",
        "-i",
        hum,
        "-filter_complex",
        "[1:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=mono[sp];\
         [2:a]aformat=sample_fmts=fltp:channel_layouts=mono[hum];\
         [sp][hum]amerge=inputs=2,pan=5.1|FC=c0|LFE=0.5*c1[a]",
        "-map",
        "0:v",
        "-map",
        "[a]",
        "-vf",
        &vf,
    ];
    args.extend_from_slice(&H264);
    args.extend_from_slice(&[
        "-c:a",
        "aac",
        "-b:a",
        "384k",
        "-t",
        &secs,
        s(&surround.path),
    ]);
    ffmpeg(&args)?;

    let dual = clip("dual-track");
    let tone = "sine=frequency=1000:sample_rate=48000";
    let mut args = vec![
        "-ss",
        "1.2",
        "-t",
        &secs,
        "-i",
        s(&footage),
        "-i",
        s(&speech),
        "-f",
        "lavfi",
        "-i",
        tone,
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "2:a",
        "-vf",
        &vf,
    ];
    args.extend_from_slice(&H264);
    args.extend_from_slice(&["-c:a", "aac", "-ac", "2", "-ar", "48000", "-t", &secs]);
    args.push(s(&dual.path));
    ffmpeg(&args)?;

    let hi = clip("audio-96k");
    let mut extra = H264.to_vec();
    extra.extend_from_slice(&[
        "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-ac", "2", "-ar", "96000",
    ]);
    encode(&hi.path, &vf, &extra)?;
    Ok(vec![surround, dual, hi])
}

/// Frame `index` of `file` as packed yuv420p at `w`×`h`, through `vf`
/// (`null` for none), decoded by ffmpeg without auto-rotation.
pub fn frame(file: &Path, vf: &str, index: u32, (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
    let chain = format!("{vf},select=eq(n\\,{index}),scale={w}:{h}:flags=bicubic,format=yuv420p");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-noautorotate", "-i", s(file), "-vf", &chain])
        .args(["-frames:v", "1", "-f", "rawvideo", "-"])
        .output()
        .map_err(|e| e.to_string())?;
    let want = (w * h + 2 * w.div_ceil(2) * h.div_ceil(2)) as usize;
    if !out.status.success() || out.stdout.len() != want {
        return Err(format!(
            "frame {index} of {}: {} bytes, {}",
            file.display(),
            out.stdout.len(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// SSIM of two packed yuv420p frames, ffmpeg's way: 8×8 windows every 4
/// samples per plane, planes weighted by their sample counts.
pub fn ssim(a: &[u8], b: &[u8], (w, h): (u32, u32)) -> f64 {
    let (w, h) = (w as usize, h as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let planes = [(0, w, h), (w * h, cw, ch), (w * h + cw * ch, cw, ch)];
    let (mut total, mut weight) = (0.0, 0.0);
    for (off, pw, ph) in planes {
        let n = (pw * ph) as f64;
        total += plane_ssim(&a[off..off + pw * ph], &b[off..off + pw * ph], pw, ph) * n;
        weight += n;
    }
    total / weight
}

fn plane_ssim(a: &[u8], b: &[u8], w: usize, h: usize) -> f64 {
    const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
    const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);
    let (mut sum, mut count) = (0.0, 0usize);
    for y in (0..h.saturating_sub(7)).step_by(4) {
        for x in (0..w.saturating_sub(7)).step_by(4) {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for yy in y..y + 8 {
                for xx in x..x + 8 {
                    let (p, q) = (f64::from(a[yy * w + xx]), f64::from(b[yy * w + xx]));
                    sa += p;
                    sb += q;
                    saa += p * p;
                    sbb += q * q;
                    sab += p * q;
                }
            }
            let n = 64.0;
            let (ma, mb) = (sa / n, sb / n);
            let (va, vb) = (saa / n - ma * ma, sbb / n - mb * mb);
            let cov = sab / n - ma * mb;
            sum += ((2.0 * ma * mb + C1) * (2.0 * cov + C2))
                / ((ma * ma + mb * mb + C1) * (va + vb + C2));
            count += 1;
        }
    }
    if count == 0 { 1.0 } else { sum / count as f64 }
}

/// Mono f32 samples of channel `channel` (or the mean of all when `None`)
/// of `file`'s audio track `track` at `rate`, decoded by ffmpeg.
pub fn audio(
    file: &Path,
    track: usize,
    channel: Option<usize>,
    rate: u32,
) -> Result<Vec<f32>, String> {
    let map = format!("0:a:{track}");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-i", s(file), "-map", &map]);
    let pan;
    if let Some(c) = channel {
        pan = format!("pan=mono|c0=c{c}");
        cmd.args(["-af", &pan]);
    } else {
        cmd.args(["-ac", "1"]);
    }
    let rate = rate.to_string();
    let out = cmd
        .args(["-ar", &rate, "-f", "f32le", "-"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}
