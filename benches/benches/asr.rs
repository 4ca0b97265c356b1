//! Speech recognition side by side, in one run, on the same file and the same
//! Whisper tiny.en weights: monteur's captions path (`monteur process --tasks
//! captions`: ONNX Runtime, VAD, greedy decoding) and faster-whisper 1.2.1
//! (CTranslate2, VAD, greedy), both on 2 threads, float32.
//!
//! The input joins every pocketsphinx-testdata utterance (read speech and card
//! names, real human speakers) with a second of silence between them; each tool
//! runs once per repetition as its own process under `/usr/bin/time`, so the
//! wall time includes loading the model, for both. WER uses one normaliser
//! (`monteur_tests::wer`) for both.
//!
//! Then each utterance alone, once per tool: WER per file, so a gain on the
//! joined file cannot hide a loss on one speaker.
//!
//! Run: `scripts/bench-peers.sh && cargo build --release --bin monteur &&
//! cargo bench -p monteur-benches --bench asr`

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use monteur_benches::timing;
use monteur_tests::{audio, wer};

const RUNS: usize = 3;
const THREADS: &str = "2";

fn main() -> ExitCode {
    monteur_benches::finish(run())
}

/// One wav with every utterance, and the concatenated reference.
fn joined() -> Result<(PathBuf, String, f64), String> {
    let (out, reference) = wer::pocketsphinx_joined(&monteur_benches::cache_dir().join("bench"))?;
    let seconds = audio::seconds(&out)?;
    Ok((out, reference, seconds))
}

fn srt_text(srt: &str) -> String {
    srt.split("\n\n")
        .flat_map(|block| block.lines().skip(2))
        .collect::<Vec<_>>()
        .join(" ")
}

fn run() -> Result<(), String> {
    let monteur = monteur_benches::monteur_bin()?;
    let python = monteur_benches::cache_dir().join("asr-peer/bin/python");
    if !python.is_file() {
        return Err("faster-whisper missing: run scripts/bench-peers.sh".into());
    }
    let model = monteur_benches::cache_dir().join("assets/models/whisper-tiny.en");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/faster_whisper_transcribe.py");
    let (wav, reference, seconds) = joined()?;
    let reference = wer::normalize(&reference);
    let out = std::env::temp_dir().join(format!("monteur-asr-bench-{}", std::process::id()));
    let wav_s = wav.to_string_lossy().into_owned();

    let ours = timing::process(
        RUNS,
        &monteur.to_string_lossy(),
        &[
            "process".into(),
            wav_s.clone(),
            "--out".into(),
            out.to_string_lossy().into_owned(),
            "--tasks".into(),
            "captions".into(),
        ],
    )?;
    let srt = std::fs::read_to_string(out.join("captions.srt")).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&out);
    let peer = timing::process(
        RUNS,
        &python.to_string_lossy(),
        &[
            script.to_string_lossy().into_owned(),
            model.to_string_lossy().into_owned(),
            wav_s,
            THREADS.into(),
        ],
    )?;
    let peer_text: serde_json::Value =
        serde_json::from_str(peer.stdout.trim()).map_err(|e| e.to_string())?;

    println!(
        "input: {} utterances of pocketsphinx-testdata joined, {seconds:.1} s of audio, {} reference words",
        wer::pocketsphinx_set().len(),
        reference.len()
    );
    println!("best of {RUNS} runs; wall time includes loading the model; {THREADS} threads\n");
    println!("| system | WER | real-time factor | vs faster-whisper | peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|");
    let row = |name: &str, t: &timing::Timed, text: &str| {
        let hyp = wer::normalize(text);
        let e = wer::word_errors(&hyp, &reference);
        println!(
            "| {name} | {:.1}% ({e}/{}) | {:.3} | {:.2}x | {:.0} |",
            100.0 * e as f64 / reference.len() as f64,
            reference.len(),
            t.wall_s / seconds,
            peer.wall_s / t.wall_s,
            t.rss_mib
        );
    };
    row(
        "**monteur captions** (ORT, VAD, greedy)",
        &ours,
        &srt_text(&srt),
    );
    row(
        "faster-whisper 1.2.1 (CTranslate2, VAD, greedy)",
        &peer,
        peer_text["text"].as_str().unwrap_or(""),
    );

    println!("\nper file (one run each):\n");
    println!("| file | words | monteur WER | faster-whisper WER |");
    println!("|---|---:|---:|---:|");
    for (file, text) in wer::pocketsphinx_set() {
        let reference = wer::normalize(&text);
        let file_s = file.to_string_lossy().into_owned();
        let out = std::env::temp_dir().join(format!("monteur-asr-file-{}", std::process::id()));
        let ours = timing::process(
            1,
            &monteur.to_string_lossy(),
            &[
                "process".into(),
                file_s.clone(),
                "--out".into(),
                out.to_string_lossy().into_owned(),
                "--tasks".into(),
                "captions".into(),
            ],
        )?;
        drop(ours);
        let srt = std::fs::read_to_string(out.join("captions.srt")).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&out);
        let theirs = timing::process(
            1,
            &python.to_string_lossy(),
            &[
                script.to_string_lossy().into_owned(),
                model.to_string_lossy().into_owned(),
                file_s,
                THREADS.into(),
            ],
        )?;
        let their_text: serde_json::Value =
            serde_json::from_str(theirs.stdout.trim()).map_err(|e| e.to_string())?;
        let pct = |hyp: &str| {
            let e = wer::word_errors(&wer::normalize(hyp), &reference);
            format!(
                "{:.1}% ({e})",
                100.0 * e as f64 / reference.len().max(1) as f64
            )
        };
        println!(
            "| {} | {} | {} | {} |",
            file.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            reference.len(),
            pct(&srt_text(&srt)),
            pct(their_text["text"].as_str().unwrap_or("")),
        );
    }
    Ok(())
}
