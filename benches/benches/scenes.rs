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
use std::process::{Command, ExitCode};

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

struct Timed {
    wall_s: f64,
    rss_mib: f64,
    stdout: String,
    stderr: String,
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

/// Runs a command under /usr/bin/time, best wall time of `RUNS`.
fn timed(program: &str, args: &[String]) -> Result<Timed, String> {
    let mut best: Option<Timed> = None;
    for _ in 0..RUNS {
        let out = Command::new("/usr/bin/time")
            .args(["-f", "MONTEUR_TIME %e %M", program])
            .args(args)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(format!("{program} failed: {stderr}"));
        }
        let line = stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("MONTEUR_TIME "))
            .ok_or("no timing line")?;
        let mut it = line.split_whitespace();
        let wall_s: f64 = it
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or("bad wall time")?;
        let rss_kb: f64 = it.next().and_then(|v| v.parse().ok()).ok_or("bad rss")?;
        let t = Timed {
            wall_s,
            rss_mib: rss_kb / 1024.0,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        };
        if best.as_ref().is_none_or(|b| t.wall_s < b.wall_s) {
            best = Some(t);
        }
    }
    best.ok_or_else(|| "no run".into())
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

fn monteur_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MONTEUR_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("monteur"))
        .ok_or("cannot locate the target directory")?;
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} missing: run `cargo build --release --bin monteur` first",
            bin.display()
        ))
    }
}

fn peers_python() -> PathBuf {
    let cache = std::env::var_os("MONTEUR_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/monteur")))
        .unwrap_or_default();
    cache.join("pytools/bin/python")
}

fn run() -> Result<(), String> {
    let monteur = monteur_bin()?;
    let python = peers_python();
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
        let fps = |t: &Timed| clip.frames as f64 / t.wall_s;

        let limit = timed(
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
        let ours = timed(
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

        let mut peers: Vec<(String, Timed, Scores)> = Vec::new();
        for which in ["adaptive", "content"] {
            let t = timed(
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
        let t = timed(
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
        let row = |name: &str, t: &Timed, cuts: Option<f64>, gradual: Option<f64>| {
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
