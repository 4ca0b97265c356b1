//! Render throughput against the machine's own encoder limit, in one run: a
//! `gst-launch-1.0` pipeline that decodes the same file and encodes every
//! frame with the same encoder settings (x264 veryfast, constant quality 21,
//! 2 s keyframes, AAC 160 kb/s, mp4mux with fast start), against
//! `monteur render` playing a cut plan that keeps every frame (the same
//! frames, so the ratio is the cost of monteur's routing and retiming), and a
//! 30-segment plan (half the frames, 30 seeks or run-throughs) for scale.
//!
//! Each tool is its own process under `/usr/bin/time`; best of 2.
//!
//! Run: `cargo build --release --bin monteur && cargo bench -p monteur-benches --bench render`

#![allow(clippy::print_stdout)]

use std::path::Path;
use std::process::{Command, ExitCode};

use monteur_benches::timing;
use serde_json::json;

const RUNS: usize = 2;
const FPS: u64 = 30;
const SECONDS: u64 = 30;

fn main() -> ExitCode {
    monteur_benches::finish(run())
}

/// 1080p30 with a moving pattern and a tone: 30 s, made once.
fn clip(dir: &Path) -> Result<std::path::PathBuf, String> {
    let path = dir.join("render-1080p30.mp4");
    if path.is_file() {
        return Ok(path);
    }
    let tmp = dir.join("render-1080p30.tmp.mp4");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size=1920x1080:rate={FPS}:duration={SECONDS}"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={SECONDS}"
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "fast",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ac",
            "2",
            "-shortest",
        ])
        .arg(&tmp)
        .status()
        .map_err(|e| e.to_string())?
        .success();
    if !ok {
        return Err("ffmpeg could not make the bench clip".into());
    }
    std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    Ok(path)
}

fn plan(ranges: &[(u64, u64)]) -> serde_json::Value {
    let total = FPS * SECONDS;
    let kept: u64 = ranges.iter().map(|(a, b)| b - a).sum();
    json!({
        "schema": "monteur.cutplan.v1",
        "mode": "silence",
        "rate": {"num": FPS, "den": 1},
        "source_frames": total,
        "source_s": SECONDS as f64,
        "ranges": ranges.iter().map(|&(a, b)| json!({
            "start_frame": a, "end_frame": b,
            "start_s": a as f64 / FPS as f64, "end_s": b as f64 / FPS as f64,
            "reason": "loud",
        })).collect::<Vec<_>>(),
        "kept_frames": kept,
        "kept_s": kept as f64 / FPS as f64,
    })
}

fn run() -> Result<(), String> {
    let monteur = monteur_benches::monteur_bin()?;
    let dir = monteur_benches::cache_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let input = clip(&dir)?;
    let work = std::env::temp_dir().join(format!("monteur-render-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let total = FPS * SECONDS;

    let gst_out = work.join("gst.mp4");
    let gst_args: Vec<String> = format!(
        "-q filesrc location={} ! decodebin name=d \
         d. ! queue ! videoconvert ! x264enc speed-preset=veryfast pass=qual quantizer=21 key-int-max=60 ! mp4mux faststart=true name=m ! filesink location={} \
         d. ! queue ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 ! avenc_aac bitrate=160000 ! m.",
        input.display(),
        gst_out.display()
    )
    .split_whitespace()
    .map(String::from)
    .collect();
    let gst = timing::process(RUNS, "gst-launch-1.0", &gst_args)?;

    let mut rows = Vec::new();
    let cases: [(&str, Vec<(u64, u64)>); 2] = [
        ("every frame (1 range)", vec![(0, total)]),
        (
            "30 segments (15 of every 30 frames)",
            (0..30).map(|k| (k * 30 + 8, k * 30 + 23)).collect(),
        ),
    ];
    for (name, ranges) in cases {
        let plan_file = work.join("plan.json");
        std::fs::write(&plan_file, plan(&ranges).to_string()).map_err(|e| e.to_string())?;
        let out = work.join("render.mp4");
        let frames: u64 = ranges.iter().map(|(a, b)| b - a).sum();
        let t = timing::process(
            RUNS,
            &monteur.to_string_lossy(),
            &[
                "render".into(),
                input.to_string_lossy().into_owned(),
                "--plan".into(),
                plan_file.to_string_lossy().into_owned(),
                "--out".into(),
                out.to_string_lossy().into_owned(),
            ],
        )?;
        rows.push((name, frames, t));
    }
    let _ = std::fs::remove_dir_all(&work);

    let gst_fps = total as f64 / gst.wall_s;
    println!(
        "input: 1920x1080 H.264 + AAC, {SECONDS} s at {FPS} fps; best of {RUNS}; x264 veryfast q21, AAC 160k\n"
    );
    println!("| render | frames out | wall s | frames/s | vs gst-launch | peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| gst-launch-1.0 decode → x264enc/avenc_aac → mp4mux (every frame) | {total} | {:.2} | {gst_fps:.1} | 1.00× | {:.0} |",
        gst.wall_s, gst.rss_mib
    );
    for (name, frames, t) in rows {
        let fps = frames as f64 / t.wall_s;
        println!(
            "| monteur render, {name} | {frames} | {:.2} | {fps:.1} | {:.2}× | {:.0} |",
            t.wall_s,
            fps / gst_fps,
            t.rss_mib
        );
    }
    Ok(())
}
