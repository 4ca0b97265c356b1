//! The word-timing evaluation set: recordings laid out at known offsets in
//! silence, so the true start of a word is known to the sample.
//!
//! - Tuning split: `espeak-a`, 24 single words in espeak-ng's default English
//!   voice at 160 words/min, pauses of 0.3 to 1.1 s.
//! - Held-out split (never tuned on):
//!   - `espeak-b`: 24 other words, another voice (`en-us+f3`) at 135
//!     words/min, other pauses;
//!   - `alsa`: the 8 speaker-test phrases of alsa-utils ("Front Left" ...),
//!     a real voice; the first word of each is timed;
//!   - `pocketsphinx`: the 10 pocketsphinx-testdata utterances (read
//!     sentences and card names, real speakers); the first word of each is
//!     timed.
//!
//! A recording's start is where its sound first reaches a fixed fraction of
//! full scale (1% for the synthetic voices, which are silent between words,
//! 3% for the real ones, over their background noise): `sox silence`.

use std::path::{Path, PathBuf};

use crate::audio::{self, seconds, silence};

/// One evaluation file and its truth: `(word, start_s)` in order.
#[derive(Debug, Clone)]
pub struct WordClip {
    pub name: &'static str,
    pub wav: PathBuf,
    pub truth: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Tuning,
    HeldOut,
}

const LIST_A: [&str; 24] = [
    "apple", "river", "yellow", "window", "garden", "music", "pencil", "tiger", "market", "doctor",
    "orange", "silver", "bottle", "planet", "candle", "monkey", "letter", "basket", "rabbit",
    "kitchen", "button", "dragon", "jacket", "lemon",
];
const LIST_B: [&str; 24] = [
    "forest", "camera", "thunder", "pillow", "engine", "saddle", "tomato", "ladder", "violin",
    "harbor", "pepper", "blanket", "mirror", "turtle", "coffee", "wagon", "desert", "hammer",
    "puzzle", "rocket", "salmon", "tunnel", "falcon", "velvet",
];

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Recordings (already trimmed) joined with pauses: `(first word, file)`
/// each, `pause(i)` seconds after recording `i`, 0.5 s before the first.
fn lay_out(
    dir: &Path,
    name: &str,
    parts: &[(String, PathBuf)],
    pause: impl Fn(usize) -> f64,
) -> Result<(PathBuf, Vec<(String, f64)>), String> {
    let lead = dir.join(format!("{name}-lead.wav"));
    silence(&lead, 0.5)?;
    let mut files = vec![s(&lead).to_string()];
    let mut truth = Vec::new();
    let mut t = seconds(&lead)?;
    for (i, (word, wav)) in parts.iter().enumerate() {
        truth.push((word.clone(), t));
        t += seconds(wav)?;
        let gap = dir.join(format!("{name}-gap-{i}.wav"));
        silence(&gap, pause(i))?;
        t += seconds(&gap)?;
        files.push(s(wav).to_string());
        files.push(s(&gap).to_string());
    }
    let out = dir.join(format!("{name}.wav"));
    files.push(s(&out).to_string());
    audio::run("sox", &files.iter().map(String::as_str).collect::<Vec<_>>())?;
    Ok((out, truth))
}

fn spoken(
    dir: &Path,
    name: &'static str,
    words: &[&str],
    voice: &str,
    speed: u32,
    pause: impl Fn(usize) -> f64,
) -> Result<WordClip, String> {
    let mut parts = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let word = dir.join(format!("{name}-{i}.wav"));
        audio::speak(w, voice, speed, &word, Some("1%"))?;
        parts.push((w.to_string(), word));
    }
    let (wav, truth) = lay_out(dir, name, &parts, pause)?;
    Ok(WordClip { name, wav, truth })
}

fn recorded(
    dir: &Path,
    name: &'static str,
    sources: &[(String, PathBuf)],
    pause: impl Fn(usize) -> f64,
) -> Result<WordClip, String> {
    let mut parts = Vec::new();
    for (i, (first, src)) in sources.iter().enumerate() {
        let wav = dir.join(format!("{name}-{i}.wav"));
        audio::convert(src, &wav, Some("3%"))?;
        parts.push((first.clone(), wav));
    }
    let (wav, truth) = lay_out(dir, name, &parts, pause)?;
    Ok(WordClip { name, wav, truth })
}

/// Builds (in `dir`) and returns the clips of a split. The held-out split
/// needs alsa-utils and pocketsphinx-testdata (scripts/setup.sh).
pub fn clips(split: Split, dir: &Path) -> Result<Vec<WordClip>, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    match split {
        Split::Tuning => Ok(vec![spoken(dir, "espeak-a", &LIST_A, "en", 160, |i| {
            0.3 + 0.1 * ((i * 7) % 9) as f64
        })?]),
        Split::HeldOut => {
            let b = spoken(dir, "espeak-b", &LIST_B, "en-us+f3", 135, |i| {
                0.35 + 0.1 * ((i * 5) % 8) as f64
            })?;
            let alsa_dir = Path::new("/usr/share/sounds/alsa");
            let alsa: Vec<(String, PathBuf)> = [
                "Front_Left",
                "Front_Center",
                "Front_Right",
                "Side_Right",
                "Rear_Right",
                "Rear_Center",
                "Rear_Left",
                "Side_Left",
            ]
            .iter()
            .map(|n| {
                let first = n.split('_').next().unwrap_or_default().to_lowercase();
                (first, alsa_dir.join(format!("{n}.wav")))
            })
            .collect();
            if alsa.iter().any(|(_, p)| !p.is_file()) {
                return Err("alsa-utils' sounds are missing (scripts/setup.sh)".into());
            }
            let alsa = recorded(dir, "alsa", &alsa, |i| 0.6 + 0.1 * ((i * 3) % 8) as f64)?;
            let ps: Vec<(String, PathBuf)> = crate::wer::pocketsphinx_set()
                .into_iter()
                .map(|(wav, text)| {
                    let first = text
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_lowercase();
                    (first, wav)
                })
                .collect();
            if ps.is_empty() {
                return Err("pocketsphinx-testdata is missing (scripts/setup.sh)".into());
            }
            let ps = recorded(dir, "pocketsphinx", &ps, |i| {
                0.5 + 0.1 * ((i * 3) % 6) as f64
            })?;
            Ok(vec![b, alsa, ps])
        }
    }
}

/// A word as compared: lower case, letters and digits only, small numbers
/// spelled out (Whisper writes "10 of clubs" for "ten of clubs").
pub fn key(word: &str) -> String {
    let k: String = word
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    const NUMBERS: [&str; 11] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    k.parse::<usize>()
        .ok()
        .and_then(|n| NUMBERS.get(n))
        .map_or(k, |n| n.to_string())
}

/// For each true word, the start error of the heard word with the same key
/// nearest in time (within 1 s); `None` when none was heard there.
pub fn start_errors(truth: &[(String, f64)], heard: &[(String, f64)]) -> Vec<Option<f64>> {
    truth
        .iter()
        .map(|(w, t)| {
            let k = key(w);
            heard
                .iter()
                .filter(|(h, ht)| key(h) == k && (ht - t).abs() <= 1.0)
                .map(|(_, ht)| ht - t)
                .min_by(|a, b| a.abs().total_cmp(&b.abs()))
        })
        .collect()
}

/// Median and 95th percentile (nearest rank) of absolute errors.
pub fn median_p95(errors: &[f64]) -> (f64, f64) {
    let mut e: Vec<f64> = errors.iter().map(|x| x.abs()).collect();
    if e.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    e.sort_by(f64::total_cmp);
    let rank = |q: f64| e[((q * e.len() as f64).ceil() as usize).clamp(1, e.len()) - 1];
    let n = e.len();
    let median = if n % 2 == 1 {
        e[n / 2]
    } else {
        (e[n / 2 - 1] + e[n / 2]) / 2.0
    };
    (median, rank(0.95))
}
