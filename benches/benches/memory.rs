//! Peak memory against input length, in one run: `monteur process --tasks
//! scenes,captions,autocut` on a 2-minute input and on the same input
//! repeated to 60 minutes (and optionally longer), each its own process under
//! `/usr/bin/time`. The bar (issue 15): peak RSS within 10% between 2 and 60
//! minutes, so a three-hour recording needs what a short clip needs.
//!
//! The input is real speech (every pocketsphinx-testdata utterance, a second
//! of silence between them, looped) over 640x360 30 fps video with a shot
//! change every 8 s; the long one is the short one's packets repeated
//! (`ffmpeg -stream_loop`, no re-encode), so both hold the same kind of
//! content. The scene detector is the kernel one: TransNetV2 on the CPU reads
//! 60 frames a second, an hour of 30 fps video would take half an hour; the
//! per-frame data both detectors keep is the same but for the model's two
//! predictions (16 bytes a frame).
//!
//! Run: `cargo build --release --bin monteur && cargo bench -p
//! monteur-benches --bench memory` (`MONTEUR_MEMORY_MINUTES=2,60,180` to add
//! lengths).

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use monteur_benches::timing;
use monteur_tests::{audio, wer};

fn main() -> ExitCode {
    monteur_benches::finish(run())
}

/// The 2-minute clip: speech over changing pictures.
fn base_clip(dir: &Path) -> Result<PathBuf, String> {
    let out = dir.join("talk-2min-360p.mp4");
    if out.is_file() {
        return Ok(out);
    }
    let (speech, _) = wer::pocketsphinx_joined(dir)?;
    let speech = speech.to_string_lossy().into_owned();
    let tmp = dir.join("talk-2min-360p.tmp.mp4");
    let tmp_s = tmp.to_string_lossy().into_owned();
    // Fifteen 8 s shots of four kinds of picture.
    let sources = [
        "testsrc2=size=640x360:rate=30:duration=8",
        "smptehdbars=size=640x360:rate=30:duration=8",
        "mandelbrot=size=640x360:rate=30,trim=duration=8",
        "colorchart=rate=30:patch_size=64x64,scale=640:360,setsar=1,trim=duration=8",
    ];
    let mut graph = String::new();
    for i in 0..15 {
        graph.push_str(&format!(
            "{},format=yuv420p,setpts=PTS-STARTPTS[v{i}];",
            sources[i % sources.len()]
        ));
    }
    for i in 0..15 {
        graph.push_str(&format!("[v{i}]"));
    }
    graph.push_str("concat=n=15:v=1[v]");
    audio::run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-filter_complex",
            &graph,
            "-stream_loop",
            "-1",
            "-i",
            &speech,
            "-map",
            "[v]",
            "-map",
            "0:a",
            "-t",
            "120",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-ar",
            "48000",
            &tmp_s,
        ],
    )?;
    std::fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// `base` repeated to `minutes` (a multiple of 2), packets copied.
fn repeated(base: &Path, minutes: u32) -> Result<PathBuf, String> {
    if minutes <= 2 {
        return Ok(base.to_path_buf());
    }
    let out = base.with_file_name(format!("talk-{minutes}min-360p.mp4"));
    if out.is_file() {
        return Ok(out);
    }
    let tmp = out.with_extension("tmp.mp4");
    let loops = (minutes / 2 - 1).to_string();
    audio::run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-stream_loop",
            &loops,
            "-i",
            &base.to_string_lossy(),
            "-c",
            "copy",
            &tmp.to_string_lossy(),
        ],
    )?;
    std::fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn run() -> Result<(), String> {
    let monteur = monteur_benches::monteur_bin()?;
    let minutes: Vec<u32> = std::env::var("MONTEUR_MEMORY_MINUTES")
        .unwrap_or_else(|_| "2,60".into())
        .split(',')
        .map(|m| m.trim().parse::<u32>().map_err(|e| format!("{m}: {e}")))
        .collect::<Result<_, _>>()?;
    let dir = monteur_benches::cache_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let base = base_clip(&dir)?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = work.path().join("memory.toml");
    std::fs::write(&config, "[scenes]\ndetector = \"kernel\"\n").map_err(|e| e.to_string())?;
    println!("| input | wall s | peak RSS MiB | vs 2 min | words | cues |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut first: Option<f64> = None;
    let mut worst: f64 = 0.0;
    for &m in &minutes {
        let input = repeated(&base, m)?;
        let out = work.path().join(format!("out-{m}"));
        let args: Vec<String> = vec![
            "--config".into(),
            config.to_string_lossy().into_owned(),
            "process".into(),
            input.to_string_lossy().into_owned(),
            "--out".into(),
            out.to_string_lossy().into_owned(),
            "--tasks".into(),
            "scenes,captions,autocut".into(),
        ];
        let t = timing::process(1, &monteur.to_string_lossy(), &args)?;
        let transcript: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join("transcript.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let words: usize = transcript["segments"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|s| s["words"].as_array().map_or(0, Vec::len))
                    .sum()
            })
            .unwrap_or(0);
        let cues = std::fs::read_to_string(out.join("captions.srt"))
            .map(|s| s.split("\n\n").filter(|b| !b.trim().is_empty()).count())
            .unwrap_or(0);
        let base_rss = *first.get_or_insert(t.rss_mib);
        let ratio = t.rss_mib / base_rss;
        worst = worst.max((ratio - 1.0).abs());
        println!(
            "| {m} min | {:.1} | {:.0} | {:.3}x | {words} | {cues} |",
            t.wall_s, t.rss_mib, ratio
        );
    }
    println!(
        "\nlargest difference from the 2-minute input: {:.1}% (bar: 10%)",
        worst * 100.0
    );
    Ok(())
}
