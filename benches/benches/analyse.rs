//! Analysis throughput on a 1080p H.264 clip, side by side in one run:
//!
//! - `gst-launch-1.0 filesrc ! decodebin ! fakesink`: bare GStreamer decode,
//!   the limit this machine's decoder sets;
//! - monteur's graph, stopped after decode, then after area-averaging to
//!   analysis size;
//! - monteur's whole `process` path (probe, decode, kernels, detection, JSON).
//!
//! Run: `cargo bench -p monteur-benches --bench analyse` (release profile).
//! Prints a markdown table for docs/BENCHMARKS.md.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::process::ExitCode;

use monteur_benches::timing;
use monteur_kernels::CpuBackend;
use monteur_pipelines::analyse::{AnalyseSettings, Stage};
use monteur_worker::progress::Silent;
use monteur_worker::{Config, Engine, Run, TaskSet};

const RUNS: usize = 3;

fn main() -> ExitCode {
    monteur_benches::finish(run())
}

fn run() -> Result<(), String> {
    // `cargo bench` passes --bench; nothing else to parse.
    // Three 10 s shots (moving test pattern, Mandelbrot zoom, colour bars).
    let clip =
        monteur_tests::synthetic::Clip::cuts("bench-3shots", 1920, 1080, 30, 3, 10).path()?;
    monteur_pipelines::init().map_err(|e| e.to_string())?;
    let input = monteur_pipelines::Input::file(&clip);
    let info = monteur_pipelines::probe(&input, std::time::Duration::from_secs(30))
        .map_err(|e| e.to_string())?;

    let location = format!("location={}", clip.display());
    let gst = timing::best_of_command(
        RUNS,
        "gst-launch-1.0",
        &[
            "-q",
            "filesrc",
            &location,
            "!",
            "decodebin",
            "!",
            "fakesink",
            "sync=false",
        ],
    )
    .ok_or("gst-launch-1.0 failed")?;

    let stage = |stage: Stage| -> Result<(std::time::Duration, u64), String> {
        let settings = AnalyseSettings {
            stage,
            ..AnalyseSettings::default()
        };
        let (t, r) = timing::best_of(RUNS, || {
            monteur_pipelines::analyse(
                &input,
                &info,
                &settings,
                Box::new(CpuBackend::new()),
                None,
                None,
                &monteur_pipelines::Cancel::new(),
                &mut |_| {},
            )
        });
        Ok((t, r.map_err(|e| e.to_string())?.frames))
    };
    let (decode, frames) = stage(Stage::Decode)?;
    let (scale, _) = stage(Stage::Scale)?;

    let out = std::env::temp_dir().join(format!("monteur-bench-{}", std::process::id()));
    let engine = Engine::new(Config::default()).map_err(|e| e.to_string())?;
    let tasks: TaskSet = "scenes".parse().map_err(|e| format!("{e}"))?;
    let run = Run::file(&engine, &clip, &out, tasks);
    let (full, outcome) = timing::best_of(RUNS, || {
        monteur_worker::run_process(&engine, &run, &mut Silent)
    });
    let outcome = outcome.map_err(|e| e.to_string())?;
    let scenes = std::fs::read_to_string(out.join("scenes.json")).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&out);
    if outcome.frames != frames {
        return Err(format!(
            "process saw {} frames, decode {frames}",
            outcome.frames
        ));
    }
    let cuts = scenes.matches("\"kind\": \"cut\"").count();

    let fps = |d: std::time::Duration| frames as f64 / d.as_secs_f64();
    let base = fps(gst);
    println!(
        "clip: {} ({frames} frames, 1920x1080 H.264, cuts found: {cuts} of 2)",
        name(&clip)
    );
    println!("best of {RUNS} runs each, same process, same file\n");
    println!("| pipeline | frames/s | vs bare GStreamer decode |");
    println!("|---|---:|---:|");
    for (label, d) in [
        (
            "gst-launch-1.0 decodebin ! fakesink (peer: bare decode)",
            gst,
        ),
        ("monteur graph, decode only", decode),
        ("monteur graph, decode + area-average to 320", scale),
        (
            "monteur process (decode + area-average + kernels + cuts + JSON)",
            full,
        ),
    ] {
        println!("| {label} | {:.1} | {:.2}x |", fps(d), fps(d) / base);
    }
    Ok(())
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
