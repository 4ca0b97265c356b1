//! Scene detection side by side, in one run, on the same files:
//!
//! - bare GStreamer decode + scale to the analysis size (`gst-launch-1.0`):
//!   the most any analysis at that size can reach on this machine;
//! - `monteur process --tasks scenes` (release build);
//! - PySceneDetect 0.7 AdaptiveDetector and ContentDetector (defaults);
//! - ffmpeg's `scdet` filter (defaults).
//!
//! Every tool runs as its own process under `/usr/bin/time`, so wall time and
//! peak RSS are measured the same way for all. Cuts are scored with monteur's
//! own evaluation code against the same ground truth (±1 frame); gradual
//! transitions only monteur reports.
//!
//! Run: `cargo build --release --bin monteur && cargo bench -p monteur-benches --bench scenes`
//! (needs the peers from scripts/setup.sh).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use monteur_benches::timing;
use monteur_pipelines::ScenesDocument;
use monteur_pipelines::scenes::eval::{Labeled, Scores, evaluate};
use monteur_pipelines::scenes::{Transition, TransitionKind};
use monteur_tests::{fixtures, synthetic};

const RUNS: usize = 2;

struct Clip {
    label: String,
    path: PathBuf,
    frames: u64,
    fps: f64,
    truth: Vec<Labeled>,
}

fn main() -> ExitCode {
    monteur_benches::finish(run())
}

fn kind(name: &str) -> Result<TransitionKind, String> {
    serde_json::from_value(serde_json::Value::String(name.into())).map_err(|e| e.to_string())
}

fn clips() -> Result<Vec<Clip>, String> {
    let mixed = synthetic::mixed(1920, 1080);
    let truth = mixed
        .truth
        .iter()
        .map(|t| {
            Ok(Labeled {
                kind: kind(t.kind)?,
                start: t.start,
                end: t.end,
            })
        })
        .collect::<Result<_, String>>()?;
    let labels: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/labels/testvideo.mp4.json"),
        )
        .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    Ok(vec![
        Clip {
            label: "1080p25 H.264, synthetic mix (29 s: cuts, fades, dissolve, fast pan, flashes)"
                .into(),
            path: mixed.path()?,
            frames: mixed.frames,
            fps: f64::from(mixed.fps),
            truth,
        },
        Clip {
            label: "720p29.97 H.264, testvideo.mp4 (24 s real footage, refined labels)".into(),
            path: fixtures::path("scenes/pyscenedetect/testvideo.mp4"),
            frames: 720,
            fps: 30000.0 / 1001.0,
            truth: serde_json::from_value(labels["transitions"].clone())
                .map_err(|e| e.to_string())?,
        },
    ])
}

fn cuts_at(frames: impl IntoIterator<Item = u64>) -> Vec<Transition> {
    frames
        .into_iter()
        .map(|f| Transition {
            kind: TransitionKind::Cut,
            start_frame: f,
            end_frame: f,
            start_s: 0.0,
            end_s: 0.0,
            score: 1.0,
        })
        .collect()
}

fn run() -> Result<(), String> {
    let monteur = monteur_benches::monteur_bin()?;
    let python = monteur_benches::cache_dir().join("pytools/bin/python");
    if !python.is_file() {
        return Err(format!(
            "{} missing: run scripts/setup.sh",
            python.display()
        ));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/pyscenedetect_cuts.py");
    let out = std::env::temp_dir().join(format!("monteur-scenes-bench-{}", std::process::id()));
    println!("best of {RUNS} runs per tool; wall time includes process start; 2 cores\n");
    for clip in clips()? {
        let path = clip.path.to_string_lossy().into_owned();
        println!("### {}\n", clip.label);
        println!(
            "| tool | frames/s | vs decode+scale | vs PySceneDetect Adaptive | peak RSS MiB | cut F1 | gradual F1 |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let fps = |t: &timing::Timed| clip.frames as f64 / t.wall_s;

        let limit = timing::process(
            RUNS,
            "gst-launch-1.0",
            &[
                "-q",
                "filesrc",
                &format!("location={path}"),
                "!",
                "decodebin",
                "!",
                "videoscale",
                "!",
                "video/x-raw,width=320,pixel-aspect-ratio=1/1",
                "!",
                "videoconvert",
                "!",
                "video/x-raw,format=GRAY8",
                "!",
                "fakesink",
                "sync=false",
            ]
            .map(String::from),
        )?;
        let ours = timing::process(
            RUNS,
            &monteur.to_string_lossy(),
            &[
                "process".into(),
                path.clone(),
                "--out".into(),
                out.to_string_lossy().into_owned(),
                "--tasks".into(),
                "scenes".into(),
            ],
        )?;
        let doc: ScenesDocument = serde_json::from_slice(
            &std::fs::read(out.join("scenes.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        if doc.source.frames != clip.frames {
            return Err(format!(
                "monteur decoded {} frames, expected {}",
                doc.source.frames, clip.frames
            ));
        }
        let ours_scores = evaluate(&doc.transitions, &clip.truth, 1);

        let mut peers: Vec<(String, timing::Timed, Scores)> = Vec::new();
        for which in ["adaptive", "content"] {
            let t = timing::process(
                RUNS,
                &python.to_string_lossy(),
                &[
                    script.to_string_lossy().into_owned(),
                    path.clone(),
                    which.into(),
                ],
            )?;
            let v: serde_json::Value =
                serde_json::from_str(t.stdout.trim()).map_err(|e| e.to_string())?;
            let cuts: Vec<u64> = v["cuts"]
                .as_array()
                .ok_or("no cuts")?
                .iter()
                .filter_map(|c| c.as_u64())
                .collect();
            let s = evaluate(&cuts_at(cuts), &clip.truth, 1);
            peers.push((format!("PySceneDetect 0.7.2 {which}"), t, s));
        }
        let t = timing::process(
            RUNS,
            "ffmpeg",
            &[
                "-hide_banner",
                "-nostats",
                "-i",
                &path,
                "-vf",
                "scdet",
                "-f",
                "null",
                "-",
            ]
            .map(String::from),
        )?;
        let cuts: Vec<u64> = t
            .stderr
            .lines()
            .filter_map(|l| l.split("lavfi.scd.time: ").nth(1))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .map(|s| (s * clip.fps).round() as u64)
            .collect();
        let s = evaluate(&cuts_at(cuts), &clip.truth, 1);
        peers.push(("ffmpeg 5.1 scdet".into(), t, s));

        let adaptive = fps(&peers[0].1);
        let row = |name: &str, t: &timing::Timed, cuts: Option<f64>, gradual: Option<f64>| {
            println!(
                "| {name} | {:.1} | {:.2}x | {:.2}x | {:.0} | {} | {} |",
                fps(t),
                fps(t) / fps(&limit),
                fps(t) / adaptive,
                t.rss_mib,
                cuts.map(|f| format!("{f:.3}"))
                    .unwrap_or_else(|| "—".into()),
                gradual
                    .map(|f| format!("{f:.3}"))
                    .unwrap_or_else(|| "not reported".into()),
            );
        };
        row(
            "gst-launch decode + scale 320 + GRAY8 (limit)",
            &limit,
            None,
            None,
        );
        row(
            "**monteur process, CPU**",
            &ours,
            Some(ours_scores.cuts.f1()),
            Some(ours_scores.gradual.f1()),
        );
        for (name, t, s) in &peers {
            row(name, t, Some(s.cuts.f1()), None);
        }
        println!();
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}
