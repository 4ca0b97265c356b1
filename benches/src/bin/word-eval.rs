//! Scores word start times on the word-timing set (`monteur_tests::wordset`),
//! clip by clip: monteur (`monteur process --tasks captions`, its
//! `transcript.json`) and, with `--peer`, faster-whisper's word timestamps on
//! the same file and the same weights (`scripts/bench-peers.sh`).
//!
//! ```text
//! word-eval [--split tuning|held-out|all] [--peer]
//! ```
//! Settings under test go in the environment (`MONTEUR_CAPTIONS__...`), as
//! for any `monteur process`. Tune on `--split tuning`; the held-out split is
//! for the final figures only.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::process::{Command, ExitCode};

use monteur_tests::wordset::{self, Split, WordClip};

fn main() -> ExitCode {
    monteur_benches::finish(run())
}

fn monteur_words(bin: &Path, clip: &WordClip) -> Result<Vec<(String, f64)>, String> {
    let out = std::env::temp_dir().join(format!("monteur-word-eval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(bin)
        .arg("process")
        .arg(&clip.wav)
        .arg("--out")
        .arg(&out)
        .args(["--tasks", "captions"])
        .env("MONTEUR_LOG__LEVEL", "warn")
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("monteur failed on {}", clip.name));
    }
    let t: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("transcript.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&out);
    Ok(t["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["words"].as_array().cloned().unwrap_or_default())
        .map(|w| {
            (
                w["text"].as_str().unwrap_or_default().to_string(),
                w["start_s"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect())
}

fn peer_words(clip: &WordClip) -> Result<Vec<(String, f64)>, String> {
    let python = monteur_benches::cache_dir().join("asr-peer/bin/python");
    if !python.is_file() {
        return Err("faster-whisper missing: run scripts/bench-peers.sh".into());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/faster_whisper_transcribe.py");
    let model = monteur_benches::cache_dir().join("assets/models/whisper-tiny.en");
    let out = Command::new(python)
        .arg(script)
        .arg(model)
        .arg(&clip.wav)
        .arg("2")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(v["words"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            (
                w["word"].as_str().unwrap_or_default().to_string(),
                w["start"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect())
}

/// One table row; returns the matched errors for pooling.
fn row(tool: &str, clip: &WordClip, heard: &[(String, f64)]) -> Vec<f64> {
    let errors: Vec<f64> = wordset::start_errors(&clip.truth, heard)
        .into_iter()
        .flatten()
        .collect();
    let (median, p95) = wordset::median_p95(&errors);
    let bias = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
    println!(
        "| {} | {tool} | {}/{} | {:.0} | {:.0} | {:+.0} |",
        clip.name,
        errors.len(),
        clip.truth.len(),
        median * 1000.0,
        p95 * 1000.0,
        bias * 1000.0
    );
    errors
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args
        .iter()
        .position(|a| a == "--split")
        .and_then(|i| args.get(i + 1))
        .map_or("tuning", String::as_str);
    let peer = args.iter().any(|a| a == "--peer");
    let splits = match split {
        "tuning" => vec![Split::Tuning],
        "held-out" => vec![Split::HeldOut],
        "all" => vec![Split::Tuning, Split::HeldOut],
        other => return Err(format!("--split tuning|held-out|all, not {other}")),
    };
    let bin = monteur_benches::monteur_bin()?;
    let dir = monteur_benches::cache_dir().join("bench/wordset");
    println!("| clip | tool | words timed | median ms | p95 ms | mean signed ms |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut pools: Vec<(&str, Vec<f64>, Vec<f64>)> = Vec::new();
    for s in splits {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for clip in &wordset::clips(s, &dir)? {
            ours.extend(row("monteur", clip, &monteur_words(&bin, clip)?));
            if peer {
                theirs.extend(row("faster-whisper", clip, &peer_words(clip)?));
            }
        }
        let name = if s == Split::Tuning {
            "tuning"
        } else {
            "held-out"
        };
        pools.push((name, ours, theirs));
    }
    for (name, ours, theirs) in &pools {
        for (tool, e) in [("monteur", ours), ("faster-whisper", theirs)] {
            if e.is_empty() {
                continue;
            }
            let (m, p) = wordset::median_p95(e);
            println!(
                "| **{name}, pooled** | {tool} | {} | {:.0} | {:.0} | |",
                e.len(),
                m * 1000.0,
                p * 1000.0
            );
        }
    }
    Ok(())
}
