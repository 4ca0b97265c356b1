//! `monteur process --tasks autocut,render` end to end: auto-editor's example
//! clip (silence mode against auto-editor's own result, speech mode against
//! an independent voice-activity pass), the timeline exports read back by
//! the editors' libraries (opentimelineio, pycmx), and a 30-segment render of
//! a clip with a flash and a beep every second, measured for drift.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use monteur_models::{Runtime, VoiceActivity};
use monteur_pipelines::captions::{CaptionSettings, speech_regions};
use monteur_tests::{assets, audio, avsync, fixtures};
use serde_json::Value;

fn process(input: &Path, out: &Path, tasks: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_monteur"));
    cmd.args([
        "process",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--tasks",
        tasks,
    ])
    .env_remove("MONTEUR_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = cmd.output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    run
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn ranges(plan: &Value) -> Vec<(i64, i64)> {
    plan["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["start_frame"].as_i64().unwrap(),
                r["end_frame"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn python() -> PathBuf {
    let p = monteur_tests::cache_dir().join("pytools/bin/python");
    assert!(p.is_file(), "{} missing: run scripts/setup.sh", p.display());
    p
}

/// Stream durations and frame count of `file`, as ffprobe reads them.
fn probe_streams(file: &Path) -> Vec<Value> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_type,codec_name,duration,nb_read_frames,start_time",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"].as_array().unwrap().clone()
}

fn stream<'a>(streams: &'a [Value], kind: &str) -> &'a Value {
    streams
        .iter()
        .find(|s| s["codec_type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} stream in {streams:?}"))
}

fn num(v: &Value) -> f64 {
    v.as_str()
        .map(|s| s.parse().unwrap())
        .or_else(|| v.as_f64())
        .unwrap()
}

/// The render is exactly the plan long: every video frame of it, and audio
/// to within one frame (AAC pads its last packet).
fn assert_render_matches_plan(out: &Path, plan: &Value) {
    let kept = plan["kept_frames"].as_i64().unwrap();
    let fps = plan["rate"]["num"].as_f64().unwrap() / plan["rate"]["den"].as_f64().unwrap();
    let streams = probe_streams(&out.join("render.mp4"));
    let video = stream(&streams, "video");
    let frames = num(&video["nb_read_frames"]) as i64;
    assert!(
        (frames - kept).abs() <= 1,
        "render has {frames} frames, plan {kept}"
    );
    let audio = stream(&streams, "audio");
    let audio_s = num(&audio["duration"]);
    let plan_s = kept as f64 / fps;
    assert!(
        (audio_s - plan_s).abs() <= 1.0 / fps,
        "audio {audio_s} s, plan {plan_s} s"
    );
}

#[test]
fn silence_mode_matches_auto_editor_and_every_export_reads_back() {
    let input = fixtures::path("autocut/example.mp4");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    process(&input, out, "autocut,render", &[]);
    let plan = read_json(&out.join("cutplan.json"));
    let kept_s = plan["kept_s"].as_f64().unwrap();
    eprintln!(
        "silence mode keeps {kept_s:.3} s (auto-editor: 17.60 s) in {} ranges",
        plan["ranges"].as_array().unwrap().len()
    );
    assert!(
        (kept_s - 17.60).abs() <= 0.05 * 17.60,
        "kept {kept_s} s, auto-editor keeps 17.60 s"
    );
    let want = ranges(&plan);

    // The editors' own libraries read the exports back.
    let read = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/read_timelines.py"))
        .arg(out)
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let got: Value = serde_json::from_slice(&read.stdout).unwrap();
    for kind in ["Video", "Audio"] {
        let clips: Vec<(i64, i64)> = got["otio"]["tracks"][kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let s = c["start"].as_i64().unwrap();
                (s, s + c["frames"].as_i64().unwrap())
            })
            .collect();
        assert_eq!(clips, want, "OTIO {kind} track");
    }
    let otio_s = got["otio"]["duration_s"].as_f64().unwrap();
    assert!((otio_s - kept_s).abs() < 1e-6, "OTIO duration {otio_s}");
    let url = got["otio"]["tracks"]["Video"][0]["url"].as_str().unwrap();
    assert!(
        url.starts_with("file://") && url.ends_with("example.mp4"),
        "{url}"
    );

    let events = got["edl"]["events"].as_array().unwrap();
    let edl: Vec<(i64, i64)> = events
        .iter()
        .map(|e| (e["start"].as_i64().unwrap(), e["end"].as_i64().unwrap()))
        .collect();
    assert_eq!(edl, want, "EDL source ranges (pycmx)");
    let mut record = 0;
    for e in events {
        assert_eq!(e["record_in"].as_i64().unwrap(), record);
        record = e["record_out"].as_i64().unwrap();
        assert_eq!(e["clip"], "example.mp4");
        assert_eq!(e["video"], true);
    }
    assert_eq!(record, plan["kept_frames"].as_i64().unwrap());

    let fcp: Vec<(i64, i64)> = got["fcpxml"]["clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = c["start"].as_f64().unwrap() as i64;
            (s, s + c["frames"].as_f64().unwrap() as i64)
        })
        .collect();
    assert_eq!(fcp, want, "FCPXML asset-clips");

    assert_render_matches_plan(out, &plan);
}

/// Mono f32 samples of `input` at `rate`, decoded by ffmpeg (not by our graph).
fn ffmpeg_audio(input: &Path, rate: u32) -> Vec<f32> {
    monteur_tests::uploads::audio(input, 0, None, rate).unwrap()
}

#[test]
fn speech_mode_clips_no_word() {
    let input = fixtures::path("autocut/example.mp4");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    process(
        &input,
        out,
        "autocut",
        &[
            ("MONTEUR_AUTOCUT__MODE", "speech"),
            ("MONTEUR_MODELS__ASSETS", assets::dir().to_str().unwrap()),
        ],
    );
    let plan = read_json(&out.join("cutplan.json"));
    assert_eq!(plan["mode"], "speech");
    let kept: Vec<(f64, f64)> = plan["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["start_s"].as_f64().unwrap(), r["end_s"].as_f64().unwrap()))
        .collect();
    assert!(!kept.is_empty());
    let inside = |a: f64, b: f64, slack: f64| {
        kept.iter()
            .any(|&(s, e)| s <= a + slack + 1e-9 && e + slack + 1e-9 >= b)
    };
    // The spans the plan was built from, each inside a kept range.
    let spans = plan["speech"].as_array().unwrap();
    assert!(!spans.is_empty());
    for s in spans {
        let (a, b) = (s[0].as_f64().unwrap(), s[1].as_f64().unwrap());
        assert!(
            inside(a, b, 0.0),
            "speech {a:.2}-{b:.2} s is clipped by {kept:?}"
        );
    }
    // And an independent voice-activity pass over ffmpeg's decode of the
    // audio: its speech (with the same settings) lies inside the kept ranges
    // too, within 50 ms (a quarter of the margin) for the other resampler.
    let runtime = Runtime::load(&assets::onnxruntime()).unwrap();
    let mut vad =
        VoiceActivity::load(&runtime, &assets::dir().join("models/silero_vad.onnx")).unwrap();
    let probs = vad.probabilities(&ffmpeg_audio(&input, 16_000)).unwrap();
    let settings = CaptionSettings {
        min_silence_s: 0.3,
        speech_pad_s: 0.0,
        ..CaptionSettings::default()
    };
    let independent = speech_regions(&probs, &settings);
    assert!(!independent.is_empty());
    for (a, b) in &independent {
        assert!(
            inside(*a, *b, 0.05),
            "independently detected speech {a:.2}-{b:.2} s is clipped by {kept:?}"
        );
    }
    eprintln!(
        "speech mode keeps {:.2} s in {} ranges; {} speech spans, all inside",
        plan["kept_s"].as_f64().unwrap(),
        kept.len(),
        independent.len()
    );
}

/// A clip with a white frame and a 1 kHz beep at 0.5 s + k for k in 0..30,
/// black and silent in between: silence mode keeps 30 segments, each holding
/// one flash and its beep.
fn flash_beep_clip(dir: &Path) -> PathBuf {
    let path = dir.join("flash-beep.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=320x240:r=30:d=30.5",
            "-f",
            "lavfi",
            "-i",
            "aevalsrc='if(gte(t,0.5)*lt(mod(t-0.5,1),0.1),0.5*sin(2*PI*1000*t),0)':s=48000:d=30.5",
            "-vf",
            "drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='eq(mod(n,30),15)'",
            "-c:v",
            "libx264",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-shortest",
        ])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

#[test]
fn thirty_segment_render_keeps_sound_on_picture() {
    let dir = tempfile::tempdir().unwrap();
    let input = flash_beep_clip(dir.path());
    let out = dir.path().join("out");
    process(&input, &out, "autocut,render", &[]);
    let plan = read_json(&out.join("cutplan.json"));
    assert_eq!(plan["ranges"].as_array().unwrap().len(), 30, "{plan}");
    assert_render_matches_plan(&out, &plan);

    let render = out.join("render.mp4");
    let runs = avsync::flash_runs(&render).unwrap();
    // A constant-rate source: every flash one frame, none repeated.
    assert!(runs.iter().all(|(a, b)| a == b), "flash runs {runs:?}");
    let flashes: Vec<usize> = runs.iter().map(|r| r.0).collect();
    let onsets = avsync::beep_onsets(&render).unwrap();
    assert_eq!(flashes.len(), 30, "flash frames {flashes:?}");
    assert_eq!(onsets.len(), 30, "beep onsets {onsets:?}");
    let frame = 1.0 / 30.0;
    let offsets: Vec<f64> = flashes
        .iter()
        .zip(&onsets)
        .map(|(&f, &t)| t - f as f64 * frame)
        .collect();
    let last = *offsets.last().unwrap();
    eprintln!(
        "A/V offset: first {:+.1} ms, last (segment 30) {:+.1} ms, worst {:+.1} ms",
        offsets[0] * 1000.0,
        last * 1000.0,
        offsets
            .iter()
            .cloned()
            .fold(0.0, |a: f64, b| if b.abs() > a.abs() { b } else { a })
            * 1000.0
    );
    for (i, o) in offsets.iter().enumerate() {
        assert!(
            o.abs() <= frame,
            "segment {}: sound {o:+.4} s off picture",
            i + 1
        );
    }
}

/// Mean luma of the top and bottom eighths of the frame at `t` seconds.
fn band_luma(file: &Path, t: f64) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{t}"), "-i"])
        .arg(file)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale=64:64",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.len() == 64 * 64);
    let mean = |rows: std::ops::Range<usize>| {
        let n = rows.len() * 64;
        out.stdout[rows.start * 64..rows.end * 64]
            .iter()
            .map(|&p| f64::from(p))
            .sum::<f64>()
            / n as f64
    };
    (mean(0..8), mean(56..64))
}

#[test]
fn captions_are_retimed_muxed_and_burned_in() {
    let input = fixtures::path("autocut/example.mp4");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    process(
        &input,
        out,
        "captions,autocut,render",
        &[
            ("MONTEUR_RENDER__BURN_CAPTIONS", "true"),
            ("MONTEUR_MODELS__ASSETS", assets::dir().to_str().unwrap()),
        ],
    );
    let render = out.join("render.mp4");
    let streams = probe_streams(&render);
    let subs = stream(&streams, "subtitle");
    assert_eq!(subs["codec_name"], "mov_text");
    // The muxed track, read back by ffmpeg, holds the first cue's words at
    // the start of the edit (the clip's speech starts in the first range).
    let srt = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&render)
        .args(["-map", "0:s:0", "-f", "srt", "-"])
        .output()
        .unwrap();
    let muxed = String::from_utf8_lossy(&srt.stdout).into_owned();
    let source = std::fs::read_to_string(out.join("captions.srt")).unwrap();
    let first_words: String = source.lines().nth(2).unwrap().chars().take(20).collect();
    assert!(
        muxed.contains(&first_words),
        "{first_words:?} not in {muxed}"
    );
    let plan = read_json(&out.join("cutplan.json"));
    let end_s = plan["kept_s"].as_f64().unwrap();
    for line in muxed.lines().filter(|l| l.contains(" --> ")) {
        let (_, b) = line.split_once(" --> ").unwrap();
        let p: Vec<f64> = b
            .replace(',', ".")
            .split(':')
            .map(|x| x.parse().unwrap())
            .collect();
        let t = p[0] * 3600.0 + p[1] * 60.0 + p[2];
        assert!(
            t <= end_s + 1e-3,
            "cue ends at {t} s, after the edit ({end_s} s)"
        );
    }
    // Burned in: the flat background's bottom band now holds the shaded
    // caption box, the top band does not.
    let (top, bottom) = band_luma(&render, 2.0);
    assert!(
        (top - bottom).abs() > 20.0,
        "no caption drawn at 2 s: top {top:.0}, bottom {bottom:.0}"
    );
}

/// `speech` under a generated picture (`lavfi`), H.264 + AAC, in `clip`;
/// `extra` sets the length (`-shortest`, `-t`...).
fn with_picture(speech: &Path, picture: &str, extra: &[&str], clip: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", picture])
        .arg("-i")
        .arg(speech)
        .args(extra)
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
        .arg(clip)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Talk with fillers planted at known times: fragments of a script spoken
/// one by one (espeak-ng) with an "um" or "uh" between some of them, over a
/// test picture. Returns the clip, the filler spans (s) and both scripts.
fn planted_fillers(dir: &Path) -> (PathBuf, Vec<(f64, f64)>, String, String) {
    let pieces = [
        ("So we went to the", false),
        ("um", true),
        ("market yesterday.", false),
        ("We bought some", false),
        ("um", true),
        ("apples and pears.", false),
        ("Then", false),
        ("um", true),
        ("we walked home", false),
        ("um", true),
        ("together.", false),
    ];
    let gap = dir.join("gap.wav");
    audio::silence(&gap, 0.2).unwrap();
    let gap_s = audio::seconds(&gap).unwrap();
    let mut parts = vec![gap.clone()];
    let mut t = gap_s;
    let mut fillers = Vec::new();
    for (i, (text, filler)) in pieces.iter().enumerate() {
        let wav = dir.join(format!("piece-{i}.wav"));
        audio::speak(text, "en", 150, &wav, Some("1%")).unwrap();
        let d = audio::seconds(&wav).unwrap();
        if *filler {
            fillers.push((t, t + d));
        }
        t += d + gap_s;
        parts.push(wav);
        parts.push(gap.clone());
    }
    let speech = dir.join("speech.wav");
    audio::join(
        &parts.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
        &speech,
    )
    .unwrap();
    let clip = dir.join("talk.mp4");
    with_picture(&speech, "testsrc2=s=320x240:r=30", &["-shortest"], &clip);
    let full: Vec<&str> = pieces.iter().map(|p| p.0).collect();
    let clean: Vec<&str> = pieces.iter().filter(|p| !p.1).map(|p| p.0).collect();
    (clip, fillers, full.join(" "), clean.join(" "))
}

fn transcript_text(out: &Path) -> String {
    let t = read_json(&out.join("transcript.json"));
    t["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The grey frame at `t` s of `file` (accurate seek), `w`×`h`.
fn grey_frame(file: &Path, t: f64) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{t:.4}"), "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x.abs_diff(y)))
        .sum::<f64>()
        / a.len().max(1) as f64
}

/// Where each kept range starts in the render, checked on both streams: the
/// render's first frame of the range is the source's frame at the range's
/// start (not one before or after), and its sound just after the cut lines
/// up with the source's sound there. Returns each cut's audio lag (s).
fn av_offsets_at_cuts(source: &Path, render: &Path, plan: &Value) -> Vec<f64> {
    let fps = plan["rate"]["num"].as_f64().unwrap() / plan["rate"]["den"].as_f64().unwrap();
    let rate = 16_000usize;
    let src_audio = ffmpeg_audio(source, rate as u32);
    let out_audio = ffmpeg_audio(render, rate as u32);
    let mut edit_frames = 0i64;
    let mut lags = Vec::new();
    for r in plan["ranges"].as_array().unwrap() {
        let (a, b) = (
            r["start_frame"].as_i64().unwrap(),
            r["end_frame"].as_i64().unwrap(),
        );
        let edit_s = edit_frames as f64 / fps;
        edit_frames += b - a;
        if b - a < 10 {
            continue;
        }
        // Picture: the render's frame matches source frame `a` best.
        let shown = grey_frame(render, edit_s + 0.5 / fps);
        let diffs: Vec<(i64, f64)> = (-2..=2)
            .filter(|d| a + d >= 0)
            .map(|d| {
                let f = grey_frame(source, (a + d) as f64 / fps + 0.5 / fps);
                (d, mean_abs_diff(&shown, &f))
            })
            .collect();
        let best = diffs.iter().min_by(|x, y| x.1.total_cmp(&y.1)).unwrap();
        assert_eq!(
            best.0, 0,
            "range at frame {a}: picture off by {} frames {diffs:?}",
            best.0
        );
        // Sound: 0.25 s after the cut, cross-correlated with the source
        // around the range's start, +-20 ms.
        let (from, len) = (((edit_s + 0.02) * rate as f64) as usize, rate / 4);
        let src_from = ((a as f64 / fps + 0.02) * rate as f64) as i64;
        let Some(piece) = out_audio.get(from..from + len) else {
            continue;
        };
        let energy: f32 = piece.iter().map(|x| x * x).sum();
        if energy < 1e-3 {
            continue; // a cut in silence says nothing about alignment
        }
        let max_lag = (rate / 50) as i64;
        let corr = |lag: i64| -> f64 {
            let start = src_from + lag;
            if start < 0 {
                return f64::NEG_INFINITY;
            }
            let Some(src) = src_audio.get(start as usize..start as usize + len) else {
                return f64::NEG_INFINITY;
            };
            let dot: f64 = piece.iter().zip(src).map(|(x, y)| f64::from(x * y)).sum();
            let n: f64 =
                src.iter().map(|y| f64::from(y * y)).sum::<f64>().sqrt() * f64::from(energy).sqrt();
            dot / n.max(1e-12)
        };
        let lag = (-max_lag..=max_lag)
            .max_by(|&x, &y| corr(x).total_cmp(&corr(y)))
            .unwrap();
        assert!(
            corr(lag) > 0.8,
            "range at frame {a}: sound not found (corr {})",
            corr(lag)
        );
        lags.push(lag as f64 / rate as f64);
    }
    lags
}

#[test]
fn transcript_mode_removes_every_planted_filler_and_no_word() {
    use monteur_tests::wer;
    let dir = tempfile::tempdir().unwrap();
    let (clip, fillers, full, clean) = planted_fillers(dir.path());
    let out = dir.path().join("out");
    process(
        &clip,
        &out,
        "captions,autocut,render",
        // Whisper base: tiny.en (the default) hears two of the four fillers
        // here and its word times slip by a word around them
        // (docs/BENCHMARKS.md), so a transcript edit needs the larger model.
        &[
            ("MONTEUR_AUTOCUT__MODE", "transcript"),
            ("MONTEUR_MODELS__WHISPER", "models/whisper-base"),
            ("MONTEUR_CAPTIONS__LANGUAGE", "en"),
        ],
    );
    let plan = read_json(&out.join("cutplan.json"));
    assert_eq!(plan["mode"], "transcript", "{plan}");
    assert_render_matches_plan(&out, &plan);
    let kept: Vec<(f64, f64)> = plan["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["start_s"].as_f64().unwrap(), r["end_s"].as_f64().unwrap()))
        .collect();
    let words: Vec<String> = read_json(&out.join("transcript.json"))["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["words"].as_array().unwrap().clone())
        .map(|w| format!("{}[{:.2}-{:.2}]", w["text"], w["start_s"], w["end_s"]))
        .collect();
    eprintln!("planted fillers {fillers:?}\nwords: {}", words.join(" "));
    // Every filler is gone: nothing of its middle 60% is kept.
    for &(a, b) in &fillers {
        let (a, b) = (a + 0.2 * (b - a), b - 0.2 * (b - a));
        assert!(
            kept.iter().all(|&(ka, kb)| kb <= a || ka >= b),
            "filler {a:.2}-{b:.2} kept: {kept:?}"
        );
    }
    let removed = plan["removed"].as_array().unwrap();
    assert!(
        removed.iter().filter(|r| r["kind"] == "filler").count() >= fillers.len(),
        "{removed:?}"
    );
    // The source as heard (with the verbatim prompt transcript mode uses),
    // against the full script; the render re-transcribed the same way,
    // against the script without fillers: no word lost or clipped means no
    // more errors than the source had.
    let source_errors = {
        let hyp = wer::normalize(&transcript_text(&out));
        wer::word_errors(&hyp, &wer::normalize(&full))
    };
    let again = dir.path().join("again");
    process(
        &out.join("render.mp4"),
        &again,
        "captions",
        &[
            (
                "MONTEUR_CAPTIONS__INITIAL_PROMPT",
                monteur_pipelines::captions::VERBATIM_PROMPT,
            ),
            ("MONTEUR_MODELS__WHISPER", "models/whisper-base"),
            ("MONTEUR_CAPTIONS__LANGUAGE", "en"),
        ],
    );
    let heard = transcript_text(&again);
    let render_errors = wer::word_errors(&wer::normalize(&heard), &wer::normalize(&clean));
    eprintln!(
        "source: {source_errors} errors against the full script; render: {render_errors} \
         against the cleaned script: {heard}"
    );
    assert!(render_errors <= source_errors, "{heard}");
    // The render's subtitle track leaves the removed fillers out.
    let subs = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(out.join("render.mp4"))
        .args(["-map", "0:s:0", "-f", "srt", "-"])
        .output()
        .unwrap();
    assert!(subs.status.success());
    let subs = String::from_utf8_lossy(&subs.stdout).to_lowercase();
    assert!(subs.contains("market"), "{subs}");
    assert!(
        !subs
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| w == "um"),
        "{subs}"
    );
    // Sound on picture at every cut: the picture starts on the right frame
    // and the sound within a millisecond of where it should be.
    let lags = av_offsets_at_cuts(&clip, &out.join("render.mp4"), &plan);
    eprintln!(
        "audio lag at the cuts (ms): {:?}",
        lags.iter().map(|l| l * 1000.0).collect::<Vec<_>>()
    );
    assert!(lags.len() >= 3, "{lags:?}");
    assert!(lags.iter().all(|l| l.abs() <= 0.001), "{lags:?}");
}

/// Columns of the yellow pixels (karaoke highlight) of the frame at `t` s.
fn yellow_columns(file: &Path, t: f64, w: usize) -> Vec<usize> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{t:.3}"), "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
        .chunks_exact(3)
        .enumerate()
        .filter(|(_, p)| p[0] > 180 && p[1] > 150 && p[2] < 90)
        .map(|(i, _)| i % w)
        .collect()
}

#[test]
fn karaoke_burn_in_lights_each_word_as_it_is_spoken() {
    let dir = tempfile::tempdir().unwrap();
    let speech = dir.path().join("speech.wav");
    audio::speak("Never drink the liquid nitrogen.", "en", 130, &speech, None).unwrap();
    let clip = dir.path().join("talk.mp4");
    with_picture(
        &speech,
        "color=c=black:s=640x360:r=30:d=4",
        &["-af", "apad", "-t", "4"],
        &clip,
    );
    let render = |style: &str| -> PathBuf {
        let out = dir.path().join(style);
        process(
            &clip,
            &out,
            "captions,render",
            &[
                ("MONTEUR_RENDER__BURN_CAPTIONS", "true"),
                ("MONTEUR_RENDER__BURN_STYLE", style),
            ],
        );
        out
    };
    let karaoke = render("karaoke");
    let words: Vec<(f64, f64)> = read_json(&karaoke.join("transcript.json"))["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["words"].as_array().unwrap().clone())
        .map(|w| (w["start_s"].as_f64().unwrap(), w["end_s"].as_f64().unwrap()))
        .collect();
    assert!(words.len() >= 4, "{words:?}");
    // In the middle of each word, some pixels are the highlight colour, and
    // the highlight moves right as the words go by, going back left only
    // where a new line starts.
    // A word is lit from its start to the next word's: sample the middle of
    // each such stretch long enough to hold a few frames.
    let lit: Vec<(f64, f64)> = words
        .iter()
        .enumerate()
        .map(|(i, &(a, b))| (a, words.get(i + 1).map_or(b, |n| n.0)))
        .filter(|&(a, b)| b - a >= 0.1)
        .collect();
    assert!(lit.len() >= 4, "{words:?}");
    let centres: Vec<f64> = lit
        .iter()
        .map(|&(a, b)| {
            let cols = yellow_columns(&karaoke.join("render.mp4"), (a + b) / 2.0, 640);
            assert!(cols.len() > 20, "no highlight at {:.2} s", (a + b) / 2.0);
            cols.iter().sum::<usize>() as f64 / cols.len() as f64
        })
        .collect();
    let srt = std::fs::read_to_string(karaoke.join("captions.srt")).unwrap();
    let lines = srt
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| b.lines().count() - 2)
        .sum::<usize>();
    assert!(
        centres.windows(2).all(|c| (c[1] - c[0]).abs() > 5.0),
        "two words lit in the same place: {centres:?}"
    );
    let back = centres.windows(2).filter(|c| c[1] < c[0]).count();
    assert!(
        back < lines,
        "highlight does not follow the words ({lines} lines): {centres:?}"
    );
    // Plain burn-in never draws the highlight colour.
    let plain = render("plain");
    let (a, b) = words[1];
    assert!(yellow_columns(&plain.join("render.mp4"), (a + b) / 2.0, 640).is_empty());
}
