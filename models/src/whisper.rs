//! Whisper speech recognition: the ONNX encoder/decoder pair made at setup
//! time from the CTranslate2 export (`scripts/models/whisper_to_onnx.py`),
//! greedy decoding with Whisper's token suppression and timestamp rules, and
//! detokenisation from the model's byte-level BPE vocabulary.
//!
//! One call transcribes one 30 s window of log-mel features (`kernels::mel`)
//! into segments with times relative to the window's start.

use std::path::Path;

use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;

use crate::{ModelError, Runtime};

const NAME: &str = "whisper";
/// Longest token sequence Whisper's decoder accepts, prompt included.
const MAX_TOKENS: usize = 224;
const AUDIO_CTX: usize = 1500;
const N_MELS: usize = 80;
const N_FRAMES: usize = 3000;
const SECONDS_PER_TIMESTAMP: f32 = 0.02;
/// Whisper lets the first timestamp be at most 1 s into the window.
const MAX_INITIAL_TIMESTAMP_STEPS: u32 = 50;

/// A piece of transcript between two timestamps, times in seconds from the
/// window's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_s: f32,
    pub end_s: f32,
    pub text: String,
}

/// A loaded Whisper model.
#[derive(Debug)]
pub struct Whisper {
    encoder: Session,
    decoder: Session,
    /// Each token's bytes (byte-level BPE decoded).
    vocab: Vec<Vec<u8>>,
    eot: u32,
    sot: u32,
    no_timestamps: u32,
    timestamp_begin: u32,
    /// `<|transcribe|>` and the language tokens (`("fr", id)`), for
    /// multilingual models; empty for English-only ones.
    transcribe: Option<u32>,
    languages: Vec<(String, u32)>,
    suppress: Vec<u32>,
    suppress_begin: Vec<u32>,
    layers: usize,
    d_model: usize,
}

fn load_err(reason: impl std::fmt::Display) -> ModelError {
    ModelError::Load {
        model: NAME.into(),
        reason: reason.to_string(),
    }
}

fn run_err(e: ort::Error) -> ModelError {
    ModelError::Inference {
        model: NAME,
        reason: e.to_string(),
    }
}

/// GPT-2's byte-to-character table, inverted: the vocabulary file spells each
/// byte as a printable character.
fn unicode_to_byte() -> std::collections::HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(u32::from('¡')..=u32::from('¬'))
        .chain(u32::from('®')..=u32::from('ÿ'))
        .collect();
    let mut chars = printable.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    printable
        .iter()
        .zip(&chars)
        .filter_map(|(&b, &c)| Some((char::from_u32(c)?, b as u8)))
        .collect()
}

impl Whisper {
    /// Loads `dir` as laid out by scripts/setup.sh: `vocabulary.txt` beside an
    /// `onnx/` folder holding `encoder.onnx`, `decoder.onnx` and `whisper.json`.
    pub fn load(runtime: &Runtime, dir: &Path, threads: usize) -> Result<Self, ModelError> {
        let onnx = dir.join("onnx");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(onnx.join("whisper.json")).map_err(load_err)?)
                .map_err(load_err)?;
        let ids = |key: &str| -> Vec<u32> {
            meta[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_u64())
                        .map(|v| v as u32)
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = std::fs::read_to_string(dir.join("vocabulary.txt")).map_err(load_err)?;
        let table = unicode_to_byte();
        let words: Vec<&str> = text.lines().collect();
        let vocab: Vec<Vec<u8>> = words
            .iter()
            .map(|w| {
                if w.starts_with("<|") && w.ends_with("|>") {
                    Vec::new()
                } else {
                    w.chars().filter_map(|c| table.get(&c).copied()).collect()
                }
            })
            .collect();
        let find = |token: &str| {
            words
                .iter()
                .position(|w| *w == token)
                .map(|p| p as u32)
                .ok_or_else(|| load_err(format!("{token} missing from the vocabulary")))
        };
        let model = Self {
            encoder: runtime.accelerated_session(&onnx.join("encoder.onnx"), threads)?,
            decoder: runtime.accelerated_session(&onnx.join("decoder.onnx"), threads)?,
            eot: find("<|endoftext|>")?,
            sot: find("<|startoftranscript|>")?,
            no_timestamps: find("<|notimestamps|>")?,
            timestamp_begin: find("<|0.00|>")?,
            transcribe: None,
            languages: Vec::new(),
            suppress: ids("suppress_ids"),
            suppress_begin: ids("suppress_ids_begin"),
            layers: meta["layers"]
                .as_u64()
                .ok_or_else(|| load_err("whisper.json: no layers"))? as usize,
            d_model: meta["d_model"]
                .as_u64()
                .ok_or_else(|| load_err("whisper.json: no d_model"))? as usize,
            vocab,
        };
        let mut model = model;
        // Whisper's own rule: multilingual vocabularies have 51865 tokens or more.
        if model.vocab.len() >= 51_865 {
            model.transcribe = Some(find("<|transcribe|>")?);
            model.languages = ids("lang_ids")
                .into_iter()
                .filter_map(|id| {
                    let w = words.get(id as usize)?;
                    let code = w.strip_prefix("<|")?.strip_suffix("|>")?;
                    Some((code.to_string(), id))
                })
                .collect();
            if model.languages.is_empty() {
                return Err(load_err("multilingual vocabulary without language tokens"));
            }
        }
        Ok(model)
    }

    /// Whether the model takes a language (multilingual) or is English-only.
    pub fn is_multilingual(&self) -> bool {
        self.transcribe.is_some()
    }

    /// The language codes a multilingual model knows (`en`, `fr`, ...).
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.languages.iter().map(|(c, _)| c.as_str())
    }

    /// Transcribes one window: `mel` is `80 x 3000` log-mel values. A
    /// multilingual model transcribes in `language` (a code such as `fr`), or
    /// in the language it detects when `None`; an English-only model accepts
    /// `None` or `en`.
    pub fn transcribe(
        &mut self,
        mel: &[f32],
        language: Option<&str>,
    ) -> Result<Vec<Segment>, ModelError> {
        self.transcribe_until(mel, language, &|| false)
    }

    /// [`Self::transcribe`], giving up with [`ModelError::Interrupted`] when
    /// `stop` says so: it is asked before the encoder and before every
    /// decoder step (a window can take seconds of decoder steps on a CPU).
    pub fn transcribe_until(
        &mut self,
        mel: &[f32],
        language: Option<&str>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Segment>, ModelError> {
        if stop() {
            return Err(ModelError::Interrupted(NAME));
        }
        if mel.len() != N_MELS * N_FRAMES {
            return Err(ModelError::Inference {
                model: NAME,
                reason: format!(
                    "expected {} log-mel values, got {}",
                    N_MELS * N_FRAMES,
                    mel.len()
                ),
            });
        }
        let input =
            Tensor::from_array(([1usize, N_MELS, N_FRAMES], mel.to_vec())).map_err(run_err)?;
        let outputs = self
            .encoder
            .run(ort::inputs!["mel" => input])
            .map_err(run_err)?;
        // Each decoder layer's keys and values, under the decoder's input names.
        let mut cross: Vec<(String, Tensor<f32>)> = Vec::with_capacity(2 * self.layers);
        for i in 0..self.layers {
            for kv in ["k", "v"] {
                let name = format!("cross_{kv}_{i}");
                let value = outputs.get(&name).ok_or_else(|| ModelError::Inference {
                    model: NAME,
                    reason: format!("encoder has no output {name} (re-run scripts/setup.sh)"),
                })?;
                let (shape, data) = value.try_extract_tensor::<f32>().map_err(run_err)?;
                let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
                if dims.iter().product::<usize>() != AUDIO_CTX * self.d_model {
                    return Err(ModelError::Inference {
                        model: NAME,
                        reason: format!("{name} has shape {dims:?}"),
                    });
                }
                cross.push((
                    name,
                    Tensor::from_array((dims, data.to_vec())).map_err(run_err)?,
                ));
            }
        }
        drop(outputs);

        let prompt = match (self.transcribe, language) {
            (None, None | Some("en")) => vec![self.sot],
            (None, Some(other)) => {
                return Err(ModelError::Inference {
                    model: NAME,
                    reason: format!("English-only model asked for language `{other}`"),
                });
            }
            (Some(transcribe), language) => {
                let lang = match language {
                    Some(code) => self
                        .languages
                        .iter()
                        .find(|(c, _)| c == code)
                        .map(|(_, id)| *id)
                        .ok_or_else(|| ModelError::Inference {
                            model: NAME,
                            reason: format!("unknown language `{code}`"),
                        })?,
                    None => self.detect(&cross)?,
                };
                vec![self.sot, lang, transcribe]
            }
        };
        let mut tokens = prompt.clone();
        let mut cached = 0usize;
        let mut self_k: Vec<f32> = Vec::new();
        let mut self_v: Vec<f32> = Vec::new();
        let mut logits = Vec::new();
        while tokens.len() < MAX_TOKENS {
            if stop() {
                return Err(ModelError::Interrupted(NAME));
            }
            // The prompt goes in one call; then one new token per step.
            let fresh: Vec<i64> = tokens[cached..].iter().map(|&t| i64::from(t)).collect();
            let cache_shape = [self.layers, 1, cached, self.d_model];
            let step = Tensor::from_array(([1usize, fresh.len()], fresh)).map_err(run_err)?;
            let offset = Tensor::from_array(((), vec![cached as i64])).map_err(run_err)?;
            let sk =
                Tensor::from_array((cache_shape, std::mem::take(&mut self_k))).map_err(run_err)?;
            let sv =
                Tensor::from_array((cache_shape, std::mem::take(&mut self_v))).map_err(run_err)?;
            let out = self
                .decoder
                .run(decoder_inputs(step, offset, sk, sv, &cross))
                .map_err(run_err)?;
            let (shape, l) = out["logits"].try_extract_tensor::<f32>().map_err(run_err)?;
            let vocab = shape.last().copied().unwrap_or(0) as usize;
            logits.clear();
            logits.extend_from_slice(&l[l.len() - vocab..]);
            self_k = out["self_k_out"]
                .try_extract_tensor::<f32>()
                .map_err(run_err)?
                .1
                .to_vec();
            self_v = out["self_v_out"]
                .try_extract_tensor::<f32>()
                .map_err(run_err)?
                .1
                .to_vec();
            drop(out);
            cached = tokens.len();
            self.apply_rules(&tokens[prompt.len()..], &mut logits);
            let next = argmax(&logits);
            if next == self.eot {
                break;
            }
            tokens.push(next);
        }
        Ok(self.segments(&tokens[prompt.len()..]))
    }

    /// The most likely language token for this window (Whisper's language
    /// detection: one decoder step after `<|startoftranscript|>`).
    fn detect(&mut self, cross: &[(String, Tensor<f32>)]) -> Result<u32, ModelError> {
        let empty = [self.layers, 1, 0, self.d_model];
        let out = self
            .decoder
            .run(decoder_inputs(
                Tensor::from_array(([1usize, 1], vec![i64::from(self.sot)])).map_err(run_err)?,
                Tensor::from_array(((), vec![0i64])).map_err(run_err)?,
                Tensor::from_array((empty, Vec::<f32>::new())).map_err(run_err)?,
                Tensor::from_array((empty, Vec::<f32>::new())).map_err(run_err)?,
                cross,
            ))
            .map_err(run_err)?;
        let (_, l) = out["logits"].try_extract_tensor::<f32>().map_err(run_err)?;
        self.languages
            .iter()
            .max_by(|a, b| l[a.1 as usize].total_cmp(&l[b.1 as usize]))
            .map(|(_, id)| *id)
            .ok_or_else(|| ModelError::Inference {
                model: NAME,
                reason: "no language tokens".into(),
            })
    }

    /// Whisper's suppression and timestamp rules, applied to one step's logits.
    fn apply_rules(&self, sampled: &[u32], logits: &mut [f32]) {
        let ts = self.timestamp_begin as usize;
        let neg = f32::NEG_INFINITY;
        for &t in &self.suppress {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = neg;
            }
        }
        logits[self.no_timestamps as usize] = neg;
        if sampled.is_empty() {
            for &t in &self.suppress_begin {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = neg;
                }
            }
            // The transcript starts with a timestamp, at most 1 s in.
            logits[..ts].fill(neg);
            let last_allowed = ts + MAX_INITIAL_TIMESTAMP_STEPS as usize;
            if last_allowed + 1 < logits.len() {
                logits[last_allowed + 1..].fill(neg);
            }
            return;
        }
        let is_ts = |t: u32| t >= self.timestamp_begin;
        let last_ts = sampled.last().is_some_and(|&t| is_ts(t));
        let penultimate_ts = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
        if last_ts {
            if penultimate_ts {
                // A pair just closed: text must follow.
                logits[ts..].fill(neg);
            } else {
                // A segment just ended: another timestamp or the end.
                logits[..self.eot as usize].fill(neg);
            }
        }
        // Timestamps never go back in time.
        if let Some(&last) = sampled.iter().rev().find(|&&t| is_ts(t)) {
            let floor = if last_ts && !penultimate_ts {
                last
            } else {
                last + 1
            };
            let end = (floor as usize).min(logits.len());
            logits[ts..end].fill(neg);
        }
        // When timestamps are jointly likelier than any text token, take one.
        let log_sum_ts = log_sum_exp(&logits[ts..]);
        let max_text = logits[..ts].iter().cloned().fold(neg, f32::max);
        let log_z = log_sum_exp(logits);
        if log_sum_ts - log_z > max_text - log_z {
            logits[..ts].fill(neg);
        }
    }

    fn segments(&self, sampled: &[u32]) -> Vec<Segment> {
        let mut out = Vec::new();
        let mut start: Option<u32> = None;
        let mut text: Vec<u8> = Vec::new();
        for &t in sampled {
            if t >= self.timestamp_begin {
                let step = t - self.timestamp_begin;
                match start {
                    None => start = Some(step),
                    Some(s) => {
                        let words = String::from_utf8_lossy(&text).trim().to_string();
                        if !words.is_empty() {
                            out.push(Segment {
                                start_s: s as f32 * SECONDS_PER_TIMESTAMP,
                                end_s: step as f32 * SECONDS_PER_TIMESTAMP,
                                text: words,
                            });
                        }
                        text.clear();
                        start = None;
                    }
                }
            } else if let Some(bytes) = self.vocab.get(t as usize) {
                text.extend_from_slice(bytes);
            }
        }
        // Text after the last timestamp (a window cut mid-segment).
        let words = String::from_utf8_lossy(&text).trim().to_string();
        if let (Some(s), false) = (start, words.is_empty()) {
            out.push(Segment {
                start_s: s as f32 * SECONDS_PER_TIMESTAMP,
                end_s: 30.0,
                text: words,
            });
        }
        out
    }
}

/// One decoder call's inputs: the new tokens, their position, the self
/// attention cache, and the window's cross-attention keys and values (by
/// reference: they are the same for every step).
fn decoder_inputs<'a>(
    tokens: Tensor<i64>,
    offset: Tensor<i64>,
    self_k: Tensor<f32>,
    self_v: Tensor<f32>,
    cross: &'a [(String, Tensor<f32>)],
) -> Vec<(String, SessionInputValue<'a>)> {
    let mut inputs: Vec<(String, SessionInputValue<'a>)> = vec![
        ("tokens".into(), tokens.into()),
        ("offset".into(), offset.into()),
        ("self_k".into(), self_k.into()),
        ("self_v".into(), self_v.into()),
    ];
    inputs.extend(cross.iter().map(|(n, t)| (n.clone(), t.into())));
    inputs
}

fn argmax(x: &[f32]) -> u32 {
    x.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0 as u32
}

fn log_sum_exp(x: &[f32]) -> f32 {
    let max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + x.iter().map(|&v| (v - max).exp()).sum::<f32>().ln()
}
