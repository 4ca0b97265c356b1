//! Whisper tiny.en through ONNX Runtime on real read speech with reference
//! transcripts (Debian's pocketsphinx-testdata): word error rate and sane
//! timestamps.

// Test-only file: a failed unwrap is the test failure we want to see.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use monteur_kernels::mel::WINDOW_SAMPLES;
use monteur_kernels::{Backend, CpuBackend};
use monteur_models::{Runtime, Whisper};
use monteur_tests::{assets, audio, wer};

/// ONNX Runtime allows one environment per process, and the tests of this
/// binary run on threads of one process: they share it.
fn runtime() -> &'static Runtime {
    static RUNTIME: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::load(&assets::onnxruntime()).unwrap())
}

fn read_wav(path: &Path) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).unwrap();
    assert_eq!(r.spec().sample_rate, 16_000);
    r.samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}

#[test]
fn transcribes_read_speech() {
    let a = assets::dir();
    let runtime = runtime();
    let mut whisper = Whisper::load(runtime, &a.join("models/whisper-tiny.en"), 2).unwrap();
    let mut cpu = CpuBackend::new();
    let (mut errs, mut total) = (0, 0);
    for (wav, text) in wer::pocketsphinx_set() {
        let reference = wer::normalize(&text);
        let mut audio = read_wav(&wav);
        let seconds = audio.len() as f32 / 16_000.0;
        audio.resize(WINDOW_SAMPLES, 0.0);
        let mut mel = Vec::new();
        cpu.log_mel(&audio, &mut mel).unwrap();
        let segments = whisper.transcribe(&mel, None).unwrap();
        let id = wav.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!segments.is_empty(), "{id}: nothing transcribed");
        let mut last = 0.0;
        for s in &segments {
            assert!(
                s.start_s >= last && s.end_s > s.start_s,
                "{id}: bad times {segments:?}"
            );
            assert!(
                s.end_s <= seconds + 1.0,
                "{id}: segment past the audio ({seconds} s): {s:?}"
            );
            last = s.end_s;
        }
        let hyp = wer::normalize(
            &segments
                .iter()
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );
        let e = wer::word_errors(&hyp, &reference);
        eprintln!("{id}: {e}/{} errors: {}", reference.len(), hyp.join(" "));
        errs += e;
        total += reference.len();
    }
    let rate = errs as f64 / total as f64;
    eprintln!(
        "pocketsphinx-testdata WER {:.1}% ({errs}/{total})",
        rate * 100.0
    );
    assert!(total > 50, "too few reference words");
    assert!(rate <= 0.10, "word error rate {:.1}%", rate * 100.0);
}

fn speak(lang: &str, text: &str, dir: &Path) -> Vec<f32> {
    let wav = dir.join("speech.wav");
    audio::speak(text, lang, 140, &wav, None).unwrap();
    read_wav(&wav)
}

#[test]
fn multilingual_base_transcribes_french_and_detects_it() {
    let a = assets::dir();
    let runtime = runtime();
    let mut whisper = Whisper::load(runtime, &a.join("models/whisper-base"), 2).unwrap();
    assert!(whisper.is_multilingual());
    assert!(whisper.languages().any(|l| l == "fr"));
    let dir = tempfile::tempdir().unwrap();
    let said =
        "Bonjour à tous. Aujourd'hui nous allons parler du montage vidéo et de la musique du film.";
    let mut audio = speak("fr", said, dir.path());
    audio.resize(WINDOW_SAMPLES, 0.0);
    let mut mel = Vec::new();
    CpuBackend::new().log_mel(&audio, &mut mel).unwrap();
    let reference = wer::normalize(said);
    let text: Vec<String> = whisper
        .transcribe(&mel, Some("fr"))
        .unwrap()
        .into_iter()
        .map(|s| s.text)
        .collect();
    let heard = wer::normalize(&text.join(" "));
    let found = reference.iter().filter(|w| heard.contains(w)).count();
    eprintln!("fr: {} ({found}/{} words)", text.join(" "), reference.len());
    assert!(
        found * 10 >= reference.len() * 7,
        "French not recognisable: {}",
        text.join(" ")
    );
    // Detection runs, but espeak's synthetic French is no fair judge of it:
    // CTranslate2's own detect_language on this very audio ranks pl (0.21),
    // cs (0.13), then fr (0.11); monteur's detection follows the same rule.
    let detected = whisper.transcribe(&mel, None).unwrap();
    eprintln!("auto: {detected:?}");
    // An English-only model refuses another language rather than guessing.
    let mut english = Whisper::load(runtime, &a.join("models/whisper-tiny.en"), 1).unwrap();
    assert!(english.transcribe(&mel, Some("fr")).is_err());
}

#[test]
fn tokenize_matches_gpt2_and_round_trips() {
    let a = assets::dir();
    let runtime = runtime();
    let whisper = Whisper::load(runtime, &a.join("models/whisper-tiny.en"), 1).unwrap();
    // GPT-2's ids, which Whisper's English vocabulary keeps.
    assert_eq!(whisper.tokenize(" Hello world"), vec![18435, 995]);
    assert_eq!(whisper.tokenize("Hello"), vec![15496]);
    for text in [
        "Umm, let me think like, hmm... Okay, here's what I'm, like, thinking.",
        "It's 2026: naïve café  prices rose 12.5%  (again)!\nNew line.",
        "don't we'll they've I'd",
    ] {
        let tokens = whisper.tokenize(text);
        assert!(tokens.len() < text.len(), "{text}: {tokens:?}");
        assert_eq!(whisper.text(&tokens), text.trim(), "{tokens:?}");
    }
}
