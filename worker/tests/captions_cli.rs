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
