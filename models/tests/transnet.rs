//! TransNetV2 through ONNX Runtime against the predictions of the PyTorch
//! reference (`data/transnetv2_reference.json`, made by
//! `scripts/models/verify_transnetv2.py`) on the clip shipped in the same
//! wheel, decoded to 48×27 RGB by the same ffmpeg command.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use monteur_models::Runtime;
use monteur_models::transnet::{FRAME_BYTES, TransNet};
use monteur_tests::assets;

/// One ONNX Runtime environment per process: the tests share it.
fn runtime() -> &'static Runtime {
    static RUNTIME: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::load(&assets::onnxruntime()).unwrap())
}

fn reference() -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/transnetv2_reference.json"
        ))
        .unwrap(),
    )
    .unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("frames");
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&file).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn onnx_predictions_match_pytorch() {
    let reference = reference();
    let video = assets::dir().join("models/transnetv2/test.mp4");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&video)
        .args([
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "48x27", "pipe:",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = out.stdout;
    assert_eq!(
        frames.len() / FRAME_BYTES,
        reference["frames"].as_u64().unwrap() as usize
    );
    // The same input bytes as the reference run, or the comparison means
    // nothing (another ffmpeg build may scale differently).
    assert_eq!(
        sha256(&frames),
        reference["frames_rgb24_sha256"].as_str().unwrap()
    );

    // A prefix whose length is not a multiple of the stride exercises the end
    // padding; predictions of the last window see padded frames where the
    // reference saw real ones, so only frames before it are compared.
    let (prefix, compared) = (1037, 1000);
    let mut model = TransNet::load(
        runtime(),
        &assets::dir().join("models/transnetv2/transnetv2.onnx"),
        2,
    )
    .unwrap();
    let got = model.predict(&frames[..prefix * FRAME_BYTES], 4).unwrap();
    assert_eq!(got.len(), prefix);
    let expected: Vec<f32> = reference["single_frame"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let worst = got[..compared]
        .iter()
        .zip(&expected)
        .map(|(g, e)| (g.single_frame - e).abs())
        .fold(0.0f32, f32::max);
    eprintln!("max |onnx - pytorch| over {compared} frames: {worst:e}");
    // The reference JSON rounds to 6 decimals.
    assert!(worst < 2e-5, "max abs difference {worst}");
    let above = |v: &[f32]| -> Vec<usize> {
        v.iter()
            .enumerate()
            .filter(|(_, p)| **p > 0.5)
            .map(|(i, _)| i)
            .collect()
    };
    let got_single: Vec<f32> = got[..compared].iter().map(|p| p.single_frame).collect();
    assert_eq!(above(&got_single), above(&expected[..compared]));
    assert!(
        above(&got_single).len() >= 15,
        "too few boundaries to judge"
    );
    // The many-hot head covers transitions: high on the frames the
    // single-frame head fires on, low where it is quiet.
    let mean = |v: Vec<f32>| v.iter().sum::<f32>() / v.len().max(1) as f32;
    let at_boundaries = mean(
        above(&got_single)
            .iter()
            .map(|&i| got[i].many_hot)
            .collect(),
    );
    let quiet = mean(
        got[..compared]
            .iter()
            .filter(|p| p.single_frame < 0.01)
            .map(|p| p.many_hot)
            .collect(),
    );
    assert!(
        at_boundaries > 0.5 && quiet < 0.1,
        "many_hot {at_boundaries} at boundaries, {quiet} elsewhere"
    );
}

#[test]
fn short_and_empty_inputs() {
    let mut model = TransNet::load(
        runtime(),
        &assets::dir().join("models/transnetv2/transnetv2.onnx"),
        1,
    )
    .unwrap();
    assert!(model.predict(&[], 2).unwrap().is_empty());
    let one = vec![128u8; FRAME_BYTES];
    let p = model.predict(&one, 2).unwrap();
    assert_eq!(p.len(), 1);
    assert!(p[0].single_frame < 0.5, "a single grey frame: {:?}", p[0]);
    assert!(model.run_windows(&one).is_err(), "half a window is refused");
}
