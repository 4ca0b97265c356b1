//! Silero VAD through the real ONNX Runtime library on real speech.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use monteur_models::vad::{SAMPLE_RATE, WINDOW};
use monteur_models::{Runtime, VoiceActivity};
use monteur_tests::assets;

/// One ONNX Runtime environment per process: the tests run in parallel
/// threads and share it.
fn runtime() -> &'static Runtime {
    static RUNTIME: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::load(&assets::onnxruntime()).unwrap())
}

fn detector() -> VoiceActivity {
    let a = assets::dir();
    VoiceActivity::load(runtime(), &a.join("models/silero_vad.onnx")).unwrap()
}

fn read_wav(path: &str) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).unwrap();
    assert_eq!(r.spec().sample_rate, SAMPLE_RATE);
    assert_eq!(r.spec().channels, 1);
    r.samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}

#[test]
fn silence_is_not_speech() {
    let mut vad = detector();
    let p = vad
        .probabilities(&vec![0.0; SAMPLE_RATE as usize * 3])
        .unwrap();
    assert_eq!(p.len(), (SAMPLE_RATE as usize * 3).div_ceil(WINDOW));
    let max = p.iter().cloned().fold(0.0, f32::max);
    assert!(max < 0.1, "silence scored {max}");
}

#[test]
fn real_speech_is_mostly_speech_and_quiet_padding_is_not() {
    let speech = read_wav(
        "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
    );
    let mut vad = detector();
    let p = vad.probabilities(&speech).unwrap();
    let voiced = p.iter().filter(|&&x| x > 0.5).count() as f32 / p.len() as f32;
    assert!(
        voiced > 0.5,
        "only {voiced:.2} of a read sentence scored as speech"
    );

    // One second of silence after it: the detector must come back down.
    vad.reset();
    let mut padded = speech.clone();
    padded.extend(std::iter::repeat_n(0.0, SAMPLE_RATE as usize));
    let p = vad.probabilities(&padded).unwrap();
    let tail = &p[p.len() - 10..];
    assert!(
        tail.iter().all(|&x| x < 0.2),
        "still 'speech' in trailing silence: {tail:?}"
    );
}
