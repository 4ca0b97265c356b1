//! `monteur process` as tools outside the repository run it: the real binary on
//! the shared fixtures, checked against their known answers.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use monteur_tests::fixtures;
use serde_json::Value;

/// Runs the binary, failing the test if it has not finished within `limit`.
fn monteur(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_monteur"))
        .args(args)
        .env_remove("MONTEUR_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("monteur {args:?} hung: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn process(input: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "process",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    monteur(&args, Duration::from_secs(180))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn cut_frames(scenes: &Value) -> Vec<i64> {
    scenes["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "cut")
        .map(|t| t["start_frame"].as_i64().unwrap())
        .collect()
}

/// The contract's invariants: scenes and gradual transitions together cover
/// every frame once, in order; times rise; a cut starts the scene after it.
fn assert_contract(doc: &Value) {
    let frames = doc["source"]["frames"].as_i64().unwrap();
    assert!(frames > 0);
    for key in ["duration_s", "fps"] {
        assert!(doc["source"][key].as_f64().unwrap() > 0.0, "source.{key}");
    }
    let mut spans: Vec<(i64, i64, String)> = Vec::new();
    let scenes = doc["scenes"].as_array().unwrap();
    for (i, s) in scenes.iter().enumerate() {
        assert_eq!(s["index"].as_i64().unwrap(), i as i64);
        let (a, b) = (s["start_s"].as_f64().unwrap(), s["end_s"].as_f64().unwrap());
        assert!(b > a, "scene times out of order: {s}");
        spans.push((
            s["start_frame"].as_i64().unwrap(),
            s["end_frame"].as_i64().unwrap(),
            "scene".into(),
        ));
    }
    for t in doc["transitions"].as_array().unwrap() {
        let kind = t["kind"].as_str().unwrap().to_string();
        assert!(
            ["cut", "fade_in", "fade_out", "dissolve"].contains(&kind.as_str()),
            "{t}"
        );
        let (a, b) = (
            t["start_frame"].as_i64().unwrap(),
            t["end_frame"].as_i64().unwrap(),
        );
        if kind == "cut" {
            assert_eq!(a, b, "a cut spans no frames");
            assert!(
                scenes.iter().any(|s| s["start_frame"].as_i64() == Some(a)),
                "no scene starts at cut {a}"
            );
        } else {
            assert!(b > a, "empty gradual transition {t}");
            spans.push((a, b, kind));
        }
        assert!(t["score"].as_f64().unwrap() > 0.0);
    }
    spans.sort();
    let mut next = 0;
    for (a, b, what) in &spans {
        assert_eq!(*a, next, "{what} at {a} leaves a gap or overlap before it");
        assert!(b > a, "empty {what} at {a}");
        next = *b;
    }
    assert_eq!(
        next, frames,
        "scenes and transitions do not cover every frame"
    );
}

fn near(got: &[i64], want: &[i64], tolerance: i64) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| (g - w).abs() <= tolerance)
}

#[test]
fn testvideo_cuts_at_30_and_180() {
    let out = tempfile::tempdir().unwrap();
    let input = fixtures::path("scenes/pyscenedetect/testvideo.mp4");
    let run = process(&input, out.path(), &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let doc = read_json(&out.path().join("scenes.json"));
    assert_contract(&doc);
    let cuts = cut_frames(&doc);
    assert!(near(&cuts, &[30, 180], 1), "cuts {cuts:?}");
    assert_eq!(doc["source"]["frames"], 720);
    assert_eq!(doc["source"]["width"], 1280);
    assert_eq!(doc["source"]["height"], 720);
    assert!((doc["source"]["fps"].as_f64().unwrap() - 29.97).abs() < 0.01);
    // Cut at frame 30 of a 30000/1001 stream: 1.001 s.
    let t = doc["transitions"][0]["start_s"].as_f64().unwrap();
    assert!((t - 30.0 * 1001.0 / 30000.0).abs() < 0.04, "cut time {t}");
}

#[test]
fn counter_has_no_cut() {
    let out = tempfile::tempdir().unwrap();
    let run = process(
        &fixtures::path("scenes/pyscenedetect/counter.mp4"),
        out.path(),
        &["--tasks", "scenes"],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let doc = read_json(&out.path().join("scenes.json"));
    assert_contract(&doc);
    assert_eq!(cut_frames(&doc), Vec::<i64>::new());
    assert_eq!(doc["source"]["frames"], 30);
}

#[test]
fn variable_frame_rate_cuts_are_decoded_frame_indices() {
    let out = tempfile::tempdir().unwrap();
    let run = process(
        &fixtures::path("scenes/pyscenedetect/goldeneye-vfr-drop3.mp4"),
        out.path(),
        &[],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let doc = read_json(&out.path().join("scenes.json"));
    assert_contract(&doc);
    let cuts = cut_frames(&doc);
    assert!(near(&cuts, &[60, 141], 1), "cuts {cuts:?}");
}

/// Every odd input either works or is refused for a named reason; never a
/// panic, a hang or a vague failure.
#[test]
fn every_odd_input_succeeds_or_fails_specifically() {
    // file, expected: Ok(frames) for analysed video, Err(()) for skipped (no video)
    let expected: &[(&str, Option<i64>)] = &[
        ("SAR-2by3.mp4", Some(60)),
        ("test_yuv422p.mp4", Some(60)),
        ("testsrc-hevc.mp4", Some(60)),
        ("testsrc.mkv", Some(60)),
        ("mov_text.mp4", Some(40)),
        ("webvtt.mkv", Some(40)),
        ("h264-png.mp4", Some(60)),
        ("aac.m4a", None),
        ("mono.mp3", None),
    ];
    let dir = fixtures::path("inputs");
    let mut seen: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "LICENSE")
        .collect();
    seen.sort();
    let mut listed: Vec<String> = expected.iter().map(|e| e.0.to_string()).collect();
    listed.sort();
    assert_eq!(seen, listed, "fixtures/inputs changed: update this table");

    for (name, frames) in expected {
        let out = tempfile::tempdir().unwrap();
        let run = process(&dir.join(name), out.path(), &[]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{name}: {stderr}");
        let report = read_json(&out.path().join("report.json"));
        let task = &report["tasks"][0];
        assert_eq!(task["task"], "scenes", "{name}");
        match frames {
            Some(n) => {
                assert_eq!(task["status"], "done", "{name}: {task}");
                let doc = read_json(&out.path().join("scenes.json"));
                assert_contract(&doc);
                assert_eq!(doc["source"]["frames"].as_i64(), Some(*n), "{name}");
                assert_eq!(
                    cut_frames(&doc),
                    Vec::<i64>::new(),
                    "{name}: a test pattern has no cut"
                );
                // The render (default tasks) plays the cut plan, or the whole
                // source when there is no audio to plan from.
                let render = report["tasks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["task"] == "render")
                    .unwrap();
                assert_eq!(render["status"], "done", "{name}: {render}");
                let rendered = report["render"]["frames"].as_i64().unwrap();
                let plan = out.path().join("cutplan.json");
                let want = if plan.exists() {
                    read_json(&plan)["kept_frames"].as_i64().unwrap()
                } else {
                    *n
                };
                assert!(
                    (rendered - want).abs() <= 1,
                    "{name}: rendered {rendered} of {want}"
                );
                assert!(out.path().join("render.mp4").is_file(), "{name}");
            }
            None => {
                assert_eq!(task["status"], "skipped", "{name}: {task}");
                assert_eq!(task["reason"], "input has no video stream", "{name}");
                assert!(!out.path().join("scenes.json").exists(), "{name}");
            }
        }
    }
}

fn assert_one_line_failure(run: &Output, needle: &str) {
    assert_eq!(run.status.code(), Some(1), "exit status {:?}", run.status);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("monteur: error: "), "stderr: {stderr}");
    assert!(last.contains(needle), "expected `{needle}` in: {last}");
}

#[test]
fn refuses_non_media_and_missing_input_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n".repeat(100)).unwrap();
    let garbage = dir.path().join("noise.mp4");
    std::fs::write(
        &garbage,
        (0..65536u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let out = dir.path().join("out");

    assert_one_line_failure(&process(&text, &out, &[]), "not a media file");
    assert_one_line_failure(&process(&garbage, &out, &[]), "not a media file");
    assert_one_line_failure(
        &process(&dir.path().join("absent.mp4"), &out, &[]),
        "not found",
    );
    assert!(!out.join("scenes.json").exists());
}

#[test]
fn truncated_video_is_refused_not_hung() {
    // The first half of a real MP4 whose index (moov) sits at the end: no
    // stream can be found, and it must say so rather than hang.
    let src = std::fs::read(fixtures::path("scenes/pyscenedetect/testvideo.mp4")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &src[..src.len() / 2]).unwrap();
    let run = process(&cut, &dir.path().join("out"), &[]);
    assert_one_line_failure(&run, "not a media file");
}

#[test]
fn unknown_tasks_are_usage_errors() {
    let out = tempfile::tempdir().unwrap();
    let input = fixtures::path("inputs/testsrc.mkv");
    for (tasks, needle) in [("scnes", "unknown task"), ("scenes,,rendr", "unknown task")] {
        let run = process(&input, out.path(), &["--tasks", tasks]);
        assert_eq!(run.status.code(), Some(2), "--tasks {tasks}");
        assert!(
            String::from_utf8_lossy(&run.stderr).contains(needle),
            "--tasks {tasks}"
        );
    }
}

#[test]
fn a_cut_upload_is_flagged_not_silently_analysed() {
    // The first tenth of the bytes of a clip whose index sits at its start:
    // the container still says 42.45 s, about 3.4 s of it decodes.
    let src = std::fs::read(fixtures::path("autocut/example.mp4")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &src[..src.len() / 10]).unwrap();
    let out = dir.path().join("out");
    let run = process(&cut, &out, &["--tasks", "scenes,autocut"]);
    assert_one_line_failure(&run, "input is truncated");
    assert!(!out.join("scenes.json").exists() && !out.join("report.json").exists());
    // Asked for, what it holds is analysed, and the report says so.
    let run = process(&cut, &out, &["--tasks", "scenes", "--allow-truncated"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = read_json(&out.join("report.json"));
    let notes = report["notes"].to_string();
    assert!(notes.contains("truncated"), "{report}");
    assert!(read_json(&out.join("scenes.json"))["source"]["frames"].as_i64() > Some(50));
}

#[test]
fn a_file_whose_video_ends_before_its_audio_is_not_truncated() {
    // 2 s of picture, 5 s of sound: the container says 5 s. Nothing is cut:
    // scenes (which decodes only the video) and the render (which must hold
    // the last picture for 3 s) both run.
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("short-video.mp4");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=25:duration=2")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=5"])
        .args(["-c:v", "libx264", "-c:a", "aac"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(made.success());
    let out = dir.path().join("out");
    let run = process(&clip, &out, &["--tasks", "scenes,render"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["notes"], serde_json::json!([]), "{report}");
    assert_eq!(read_json(&out.join("scenes.json"))["source"]["frames"], 50);
    assert!(
        report["render"]["repeated_frames"].as_u64() >= Some(70),
        "{report}"
    );
}
