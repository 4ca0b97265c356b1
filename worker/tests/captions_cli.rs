//! `monteur process --tasks captions` on audio with known content: speech with
//! known words, silence and noise (which must give no cue at all), and every
//! cue read back from the SRT file and checked against the subtitle rules.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn run(input: &Path, out: &Path) -> Value {
    let run = Command::new(env!("CARGO_BIN_EXE_monteur"))
        .args([
            "process",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--tasks",
            "captions",
        ])
        .env_remove("MONTEUR_CONFIG")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

fn tool(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?} failed");
}

struct Cue {
    start: f64,
    end: f64,
    lines: Vec<String>,
}

fn seconds(ts: &str) -> f64 {
    let (hms, ms) = ts.trim().split_once(',').unwrap();
    let p: Vec<f64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    p[0] * 3600.0 + p[1] * 60.0 + p[2] + ms.parse::<f64>().unwrap() / 1000.0
}

fn parse_srt(text: &str) -> Vec<Cue> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut lines = block.lines();
            lines.next().unwrap().parse::<usize>().unwrap();
            let (a, b) = lines.next().unwrap().split_once(" --> ").unwrap();
            Cue {
                start: seconds(a),
                end: seconds(b),
                lines: lines.map(String::from).collect(),
            }
        })
        .collect()
}

/// The broadcast rules, checked independently of the code that built the cues
/// (SRT keeps milliseconds, hence the 1 ms slack).
fn assert_rules(cues: &[Cue]) {
    let gap = 2.0 / 25.0;
    for (i, c) in cues.iter().enumerate() {
        let d = c.end - c.start;
        assert!(
            !c.lines.is_empty() && c.lines.len() <= 2,
            "cue {i}: {} lines",
            c.lines.len()
        );
        for l in &c.lines {
            assert!(
                l.chars().count() <= 42,
                "cue {i}: {} chars: {l}",
                l.chars().count()
            );
        }
        assert!(
            (5.0 / 6.0 - 0.001..=7.001).contains(&d),
            "cue {i}: {d:.3} s on screen"
        );
        let chars = c.lines.iter().map(|l| l.chars().count()).sum::<usize>() + c.lines.len() - 1;
        assert!(
            chars as f64 / d <= 17.0 + 0.02,
            "cue {i}: {:.1} chars/s",
            chars as f64 / d
        );
        if i > 0 {
            assert!(
                c.start >= cues[i - 1].end + gap - 0.001,
                "cue {i} starts too soon after cue {}",
                i - 1
            );
        }
    }
}

fn words(t: &str) -> Vec<String> {
    t.to_lowercase()
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn spoken_sentences_become_readable_cues() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    let text = "The weather was cold and grey this morning. We walked to the station and waited for the train. \
                It arrived late, so we bought coffee and talked about the long journey ahead of us.";
    tool(
        "espeak-ng",
        &["-s", "150", "-w", wav.to_str().unwrap(), text],
    );
    let out = dir.path().join("out");
    let report = run(&wav, &out);
    assert_eq!(report["tasks"][0]["status"], "done", "{report}");
    let srt = std::fs::read_to_string(out.join("captions.srt")).unwrap();
    let vtt = std::fs::read_to_string(out.join("captions.vtt")).unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n"));
    let cues = parse_srt(&srt);
    assert!(cues.len() >= 3, "{srt}");
    assert_eq!(report["cues"].as_u64(), Some(cues.len() as u64));
    assert_rules(&cues);
    let heard: Vec<String> = words(
        &cues
            .iter()
            .flat_map(|c| c.lines.clone())
            .collect::<Vec<_>>()
            .join(" "),
    );
    let said = words(text);
    let found = said.iter().filter(|w| heard.contains(w)).count();
    assert!(
        found as f64 >= 0.85 * said.len() as f64,
        "heard only {found}/{} words: {}",
        said.len(),
        heard.join(" ")
    );
}

#[test]
fn silence_and_noise_give_no_cues() {
    let dir = tempfile::tempdir().unwrap();
    for (name, synth) in [
        ("silence", vec!["trim", "0", "30"]),
        ("noise", vec!["synth", "30", "whitenoise", "vol", "0.5"]),
    ] {
        let wav = dir.path().join(format!("{name}.wav"));
        let mut args = vec!["-n", "-r", "16000", "-c", "1", wav.to_str().unwrap()];
        args.extend(synth);
        tool("sox", &args);
        let out = dir.path().join(name);
        let report = run(&wav, &out);
        assert_eq!(report["tasks"][0]["status"], "done", "{name}: {report}");
        assert_eq!(report["cues"], 0, "{name}: cues over no speech");
        assert_eq!(
            std::fs::read_to_string(out.join("captions.srt")).unwrap(),
            "",
            "{name}"
        );
    }
}

/// Word starts of a `monteur process --tasks captions` run, from its
/// `transcript.json`.
fn heard_words(out: &Path) -> Vec<(String, f64)> {
    let t: Value =
        serde_json::from_slice(&std::fs::read(out.join("transcript.json")).unwrap()).unwrap();
    assert_eq!(t["version"], 1);
    assert_eq!(t["language"], "en");
    let heard: Vec<(String, f64, f64)> = t["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["words"].as_array().unwrap().clone())
        .map(|w| {
            (
                w["text"].as_str().unwrap().to_string(),
                w["start_s"].as_f64().unwrap(),
                w["end_s"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(
        heard
            .windows(2)
            .all(|w| w[0].1 <= w[1].1 && w[0].1 <= w[0].2),
        "{heard:?}"
    );
    heard.into_iter().map(|(w, a, _)| (w, a)).collect()
}

#[test]
fn word_times_land_on_the_words_and_reach_every_caption_format() {
    use monteur_tests::wordset::{self, Split};
    let dir = tempfile::tempdir().unwrap();
    let cache = monteur_tests::cache_dir().join("test-wordset");
    // Issue 15's bar on each split: |start error| median <= 40 ms and 95th
    // percentile <= 120 ms over the words timed, at least 75% of them timed.
    let mut last_out = None;
    for split in [Split::Tuning, Split::HeldOut] {
        let mut errors = Vec::new();
        let mut total = 0;
        for clip in wordset::clips(split, &cache).unwrap() {
            let out = dir.path().join(clip.name);
            let report = run(&clip.wav, &out);
            assert_eq!(report["tasks"][0]["status"], "done", "{report}");
            let heard = heard_words(&out);
            let e: Vec<f64> = wordset::start_errors(&clip.truth, &heard)
                .into_iter()
                .flatten()
                .collect();
            let (m, p) = wordset::median_p95(&e);
            eprintln!(
                "{}: {} of {} words timed, median {:.0} ms, p95 {:.0} ms",
                clip.name,
                e.len(),
                clip.truth.len(),
                m * 1000.0,
                p * 1000.0
            );
            total += clip.truth.len();
            errors.extend(e);
            last_out = Some((out, heard.len()));
        }
        let (median, p95) = wordset::median_p95(&errors);
        assert!(errors.len() * 4 >= total * 3, "{split:?}: {errors:?}");
        assert!(median <= 0.040, "{split:?}: median {median}");
        assert!(p95 <= 0.120, "{split:?}: p95 {p95}");
    }
    let (out, words) = last_out.unwrap();

    // The word-level files open in the libraries users have, with every
    // word's timestamp tag and \k timing in them.
    let python = monteur_tests::cache_dir().join("pytools/bin/python");
    let check = r#"
import sys, webvtt, pysubs2
vtt = list(webvtt.read(sys.argv[1]))
tags = sum(c.raw_text.count("<c>") for c in vtt)
subs = pysubs2.load(sys.argv[2])
k = sum(e.text.count("\\k") for e in subs.events)
assert len(vtt) == len(subs.events) > 0, (len(vtt), len(subs.events))
print(tags, k)
"#;
    let run = Command::new(&python)
        .args(["-c", check])
        .arg(out.join("captions.words.vtt"))
        .arg(out.join("captions.ass"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let counts: Vec<usize> = String::from_utf8_lossy(&run.stdout)
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    // One <c> per word on screen and at least one \k per word.
    assert_eq!(counts[0], words, "{counts:?}");
    assert!(counts[1] >= words, "{counts:?}");
}
