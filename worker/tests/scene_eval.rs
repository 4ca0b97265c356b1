//! Scene detection against ground truth: the shared fixtures with known (or
//! refined, `docs/labels/`) answers and synthetic clips whose transitions are
//! known to the frame, run through the real `monteur process` binary.
//!
//! This is the acceptance bar of the scene detector: hard-cut F1 at least 0.98
//! (±1 frame), gradual-transition F1 at least 0.85 (overlap, right kind), and
//! nothing at all in clips that hold one shot (a counter, a fast pan, flashes).

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use monteur_pipelines::ScenesDocument;
use monteur_pipelines::scenes::TransitionKind;
use monteur_pipelines::scenes::eval::{Labeled, Scores, evaluate};
use monteur_tests::{fixtures, synthetic};

struct Case {
    name: String,
    path: PathBuf,
    truth: Vec<Labeled>,
}

fn kind(name: &str) -> TransitionKind {
    serde_json::from_value(serde_json::Value::String(name.into())).unwrap()
}

fn cut(frame: u64) -> Labeled {
    Labeled {
        kind: TransitionKind::Cut,
        start: frame,
        end: frame,
    }
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = synthetic::full_set()
        .into_iter()
        .map(|clip| Case {
            name: format!("synthetic {} {}x{}", clip.name, clip.width, clip.height),
            path: clip.path().unwrap(),
            truth: clip
                .truth
                .iter()
                .map(|t| Labeled {
                    kind: kind(t.kind),
                    start: t.start,
                    end: t.end,
                })
                .collect(),
        })
        .collect();
    let labels: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/labels/testvideo.mp4.json"),
        )
        .unwrap(),
    )
    .unwrap();
    cases.push(Case {
        name: "fixture testvideo.mp4 (refined labels)".into(),
        path: fixtures::path("scenes/pyscenedetect/testvideo.mp4"),
        truth: serde_json::from_value(labels["transitions"].clone()).unwrap(),
    });
    cases.push(Case {
        name: "fixture goldeneye-vfr-drop3.mp4".into(),
        path: fixtures::path("scenes/pyscenedetect/goldeneye-vfr-drop3.mp4"),
        truth: vec![cut(60), cut(141)],
    });
    cases.push(Case {
        name: "fixture counter.mp4".into(),
        path: fixtures::path("scenes/pyscenedetect/counter.mp4"),
        truth: vec![],
    });
    cases
}

fn detect(path: &Path) -> ScenesDocument {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_monteur"))
        .args([
            "process",
            path.to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
            "--tasks",
            "scenes",
        ])
        .env_remove("MONTEUR_CONFIG")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.path().join("scenes.json")).unwrap()).unwrap()
}

#[test]
fn scene_detection_meets_its_acceptance_bar() {
    let mut total = Scores::default();
    let mut report = String::from("\nclip | cuts hit/fa/miss | gradual hit/fa/miss\n");
    for case in cases() {
        let doc = detect(&case.path);
        if case.truth.is_empty() {
            assert!(
                doc.transitions.is_empty(),
                "{}: found {:?} in a single shot",
                case.name,
                doc.transitions
            );
        }
        let s = evaluate(&doc.transitions, &case.truth, 1);
        report.push_str(&format!(
            "{} | {}/{}/{} | {}/{}/{}\n",
            case.name,
            s.cuts.hits,
            s.cuts.false_alarms,
            s.cuts.misses,
            s.gradual.hits,
            s.gradual.false_alarms,
            s.gradual.misses
        ));
        total.add(s);
    }
    report.push_str(&format!(
        "TOTAL cuts P {:.3} R {:.3} F1 {:.3} | gradual P {:.3} R {:.3} F1 {:.3}\n",
        total.cuts.precision(),
        total.cuts.recall(),
        total.cuts.f1(),
        total.gradual.precision(),
        total.gradual.recall(),
        total.gradual.f1()
    ));
    eprintln!("{report}");
    assert!(
        total.cuts.hits >= 10 && total.gradual.hits >= 8,
        "too few labelled transitions to judge:{report}"
    );
    assert!(total.cuts.f1() >= 0.98, "hard-cut F1 below 0.98:{report}");
    assert!(total.gradual.f1() >= 0.85, "gradual F1 below 0.85:{report}");
}
