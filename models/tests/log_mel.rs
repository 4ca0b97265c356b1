//! The log-mel kernel (`kernels::mel`, CPU reference) against the reference
//! preprocessor shipped as ONNX (`whisper80.onnx` from the onnx-asr wheel),
//! run through the real ONNX Runtime, on real speech and on edge cases.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use monteur_kernels::mel::{N_MELS, WINDOW_FRAMES, WINDOW_SAMPLES};
use monteur_kernels::{Backend, CpuBackend};
use monteur_models::{Runtime, Tensors};
use monteur_tests::assets;
use ort::value::Tensor;

fn reference(runtime: &Runtime, audio: &[f32]) -> Vec<f32> {
    let mut session = runtime
        .session(
            &assets::dir().join("models/whisper80.onnx"),
            1,
            Tensors::Released,
        )
        .unwrap();
    let wave = Tensor::from_array(([1usize, audio.len()], audio.to_vec())).unwrap();
    let lens = Tensor::from_array(([1usize], vec![audio.len() as i64])).unwrap();
    let out = session
        .run(ort::inputs!["waveforms" => wave, "waveforms_lens" => lens])
        .unwrap();
    let (shape, data) = out["features"].try_extract_tensor::<f32>().unwrap();
    assert_eq!(shape.to_vec(), vec![1, N_MELS as i64, WINDOW_FRAMES as i64]);
    data.to_vec()
}

fn speech() -> Vec<f32> {
    let mut r = hound::WavReader::open(
        "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
    )
    .unwrap();
    r.samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}

#[test]
fn cpu_log_mel_matches_the_onnx_reference() {
    let runtime = Runtime::load(&assets::onnxruntime()).unwrap();
    let mut cpu = CpuBackend::new();
    let tone: Vec<f32> = (0..16000 * 5)
        .map(|i| (i as f32 * 0.25).sin() * 0.3)
        .collect();
    for (name, audio) in [
        ("speech", speech()),
        ("tone", tone),
        ("near silence", vec![1e-6; 16000]),
    ] {
        let expected = reference(&runtime, &audio);
        let mut window = audio.clone();
        window.resize(WINDOW_SAMPLES, 0.0);
        let mut got = Vec::new();
        cpu.log_mel(&window, &mut got).unwrap();
        let diffs: Vec<f32> = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let worst = diffs.iter().cloned().fold(0.0, f32::max);
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        // Both sides are float32. The reference itself is up to 5.1e-3 (mean
        // 2.6e-5) away from an exact float64 computation on the tone, in the
        // leakage bands just above the max-8 floor (measured with numpy). A
        // wrong window, filter or padding shows as 0.1..1.
        assert!(
            worst < 1e-2 && mean < 2e-4,
            "{name}: differs from the reference by up to {worst}, mean {mean}"
        );
        eprintln!("{name}: max {worst:.2e}, mean {mean:.2e}");
    }
}
