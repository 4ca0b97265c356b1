//! Whisper speech recognition: the ONNX encoder/decoder pair made at setup
//! time from the CTranslate2 export (`scripts/models/whisper_to_onnx.py`),
//! greedy or beam-search decoding with Whisper's token suppression and
//! timestamp rules, word timings from the alignment heads' cross-attention,
//! and detokenisation from the model's byte-level BPE vocabulary.
//!
//! A window is 30 s of log-mel features (`kernels::mel`): [`Whisper::encode`]
//! runs the encoder once, [`Whisper::decode`] reads tokens from it,
//! [`Whisper::window`] cuts them into segments and says where the next
//! window starts, and [`Whisper::align`] times each word. Times are relative
//! to the window's start; the caller owns the seeking loop.

use std::path::Path;

use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;

use monteur_kernels::align;

use crate::{ModelError, Runtime, Tensors};

const NAME: &str = "whisper";
/// Longest token sequence Whisper's decoder accepts, prompt included.
const MAX_TOKENS: usize = 224;
const AUDIO_CTX: usize = 1500;
const N_MELS: usize = 80;
const N_FRAMES: usize = 3000;
const SECONDS_PER_TIMESTAMP: f32 = 0.02;
/// Whisper lets the first timestamp be at most 1 s into the window.
const MAX_INITIAL_TIMESTAMP_STEPS: u32 = 50;
/// Log-mel frames per second, and per timestamp step (the encoder halves
/// the frame rate).
const SECONDS_PER_FRAME: f32 = 0.01;
const FRAMES_PER_TIMESTAMP: usize = 2;
/// Whisper's median filter over the alignment heads' attention, in frames.
const MEDIAN_FILTER_WIDTH: usize = 7;
/// Languages written without spaces between words: a word is a character.
const NO_SPACE_LANGUAGES: [&str; 6] = ["zh", "ja", "th", "lo", "my", "yue"];
/// Punctuation that belongs to the next word, and to the previous one
/// (Whisper's defaults).
const PREPEND_PUNCTUATION: &str = "\"'\u{201c}\u{bf}([{-";
const APPEND_PUNCTUATION: &str =
    "\"'.\u{3002},\u{ff0c}!\u{ff01}?\u{ff1f}:\u{ff1a}\u{201d})]}\u{3001}";

/// One encoded window: the cross-attention keys and values every decoder
/// step reads, and the prompt (`<|startoftranscript|>`, then language and
/// task on a multilingual model).
#[derive(Debug)]
pub struct Encoded {
    cross: Vec<(String, Tensor<f32>)>,
    prompt: Vec<u32>,
    /// The window's language code (`en` for an English-only model).
    pub language: String,
}

/// How to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// 1 is greedy; faster-whisper's default is a beam of 5.
    pub beam_size: usize,
    /// Text the model reads as what came before (Whisper's `initial_prompt`,
    /// from [`Whisper::tokenize`]): it steers spelling and style, e.g. a
    /// prompt with "um" and "uh" in it makes the model write the fillers it
    /// hears instead of leaving them out.
    pub context: Vec<u32>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            beam_size: 1,
            context: Vec::new(),
        }
    }
}

/// One window's decoded tokens (timestamps included, prompt and
/// `<|endoftext|>` not) and the figures Whisper judges a window by.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub tokens: Vec<u32>,
    /// Mean log-probability per token, end of text included.
    pub avg_logprob: f32,
    /// Probability of `<|nospeech|>` at the start: high on silence or noise.
    pub no_speech_prob: f32,
}

/// A decoded window cut into segments.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub segments: Vec<WindowSegment>,
    /// Frames (100 per second) the next window starts after this one's start.
    pub seek_frames: usize,
}

/// A segment of a window: its timestamps and its text tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSegment {
    pub start_s: f32,
    pub end_s: f32,
    pub tokens: Vec<u32>,
}

/// One word's timing in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTiming {
    /// The word with its leading space, punctuation attached.
    pub word: String,
    pub tokens: Vec<u32>,
    pub start_s: f32,
    pub end_s: f32,
    /// Mean probability of its tokens.
    pub probability: f32,
}

#[derive(Debug, Clone)]
struct Beam {
    tokens: Vec<u32>,
    sum_logprob: f32,
}

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
    /// `<|nospeech|>` (`<|nocaptions|>` in older vocabularies).
    no_speech: Option<u32>,
    /// `<|startofprev|>`, which opens a context prompt.
    sot_prev: Option<u32>,
    /// Each ordinary token's bytes to its id: the id is the merge rank, as
    /// in tiktoken, so this is all byte-pair encoding needs.
    ranks: std::collections::HashMap<Vec<u8>, u32>,
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
            encoder: runtime.accelerated_session(
                &onnx.join("encoder.onnx"),
                threads,
                Tensors::Released,
            )?,
            decoder: runtime.accelerated_session(
                &onnx.join("decoder.onnx"),
                threads,
                Tensors::Released,
            )?,
            eot: find("<|endoftext|>")?,
            sot: find("<|startoftranscript|>")?,
            no_timestamps: find("<|notimestamps|>")?,
            timestamp_begin: find("<|0.00|>")?,
            no_speech: find("<|nospeech|>")
                .or_else(|_| find("<|nocaptions|>"))
                .ok(),
            sot_prev: find("<|startofprev|>").ok(),
            ranks: vocab
                .iter()
                .enumerate()
                .filter(|(_, b)| !b.is_empty())
                .map(|(i, b)| (b.clone(), i as u32))
                .collect(),
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
    /// `stop` says so.
    pub fn transcribe_until(
        &mut self,
        mel: &[f32],
        language: Option<&str>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<Segment>, ModelError> {
        let encoded = self.encode(mel, language, stop)?;
        let decoded = self.decode(&encoded, &DecodeOptions::default(), stop)?;
        Ok(self
            .window(&decoded, N_FRAMES)
            .segments
            .into_iter()
            .map(|s| Segment {
                start_s: s.start_s,
                end_s: s.end_s,
                text: self.text(&s.tokens),
            })
            .collect())
    }

    /// Runs the encoder on one window (`mel`: `80 x 3000` log-mel values,
    /// frames past the audio set to 0 as Whisper's `pad_or_trim` leaves them)
    /// and settles the prompt: the language given, or the one detected.
    /// `stop` is asked first, and is how a cancelled job gives up.
    pub fn encode(
        &mut self,
        mel: &[f32],
        language: Option<&str>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Encoded, ModelError> {
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
        let language = match prompt.get(1) {
            Some(&id) => self
                .languages
                .iter()
                .find(|(_, t)| *t == id)
                .map(|(c, _)| c.clone())
                .unwrap_or_default(),
            None => "en".into(),
        };
        Ok(Encoded {
            cross,
            prompt,
            language,
        })
    }

    /// Decodes an encoded window with Whisper's suppression and timestamp
    /// rules: greedy, or a beam search when `options.beam_size > 1`.
    pub fn decode(
        &mut self,
        encoded: &Encoded,
        options: &DecodeOptions,
        stop: &dyn Fn() -> bool,
    ) -> Result<Decoded, ModelError> {
        let beams = options.beam_size.clamp(1, 16);
        // Context first (at most half the decoder's room, the latest part
        // kept, as Whisper does), then the start of transcript.
        let mut full: Vec<u32> = Vec::new();
        if let (Some(prev), false) = (self.sot_prev, options.context.is_empty()) {
            let keep = options.context.len().min(MAX_TOKENS / 2 - 1);
            full.push(prev);
            full.extend_from_slice(&options.context[options.context.len() - keep..]);
        }
        let sot_index = full.len();
        full.extend_from_slice(&encoded.prompt);
        let prompt = &full;
        // Every beam starts from the prompt; one call runs it for all.
        let mut seqs: Vec<Beam> = vec![
            Beam {
                tokens: Vec::new(),
                sum_logprob: 0.0,
            };
            1
        ];
        let mut finished: Vec<Beam> = Vec::new();
        let mut cached = 0usize;
        let mut self_k: Vec<f32> = Vec::new();
        let mut self_v: Vec<f32> = Vec::new();
        let mut no_speech_prob = 0.0f32;
        let mut logits = Vec::new();
        let mut logprobs = Vec::new();
        let mut last_rows = Vec::new();
        while prompt.len() + seqs[0].tokens.len() < MAX_TOKENS + sot_index {
            if stop() {
                return Err(ModelError::Interrupted(NAME));
            }
            let batch = seqs.len();
            // The prompt goes in one call; then one new token per beam per step.
            let fresh: Vec<i64> = seqs
                .iter()
                .flat_map(|b| {
                    prompt
                        .iter()
                        .chain(&b.tokens)
                        .skip(cached)
                        .map(|&t| i64::from(t))
                })
                .collect();
            let width = fresh.len() / batch;
            let cache_shape = [self.layers, batch, cached, self.d_model];
            let step = Tensor::from_array(([batch, width], fresh)).map_err(run_err)?;
            let offset = Tensor::from_array(((), vec![cached as i64])).map_err(run_err)?;
            let sk =
                Tensor::from_array((cache_shape, std::mem::take(&mut self_k))).map_err(run_err)?;
            let sv =
                Tensor::from_array((cache_shape, std::mem::take(&mut self_v))).map_err(run_err)?;
            let out = self
                .decoder
                .run(decoder_inputs(step, offset, sk, sv, &encoded.cross))
                .map_err(run_err)?;
            let (shape, l) = out["logits"].try_extract_tensor::<f32>().map_err(run_err)?;
            let vocab = shape.last().copied().unwrap_or(0) as usize;
            if cached == 0 {
                // Whisper's no-speech probability: the <|nospeech|> token
                // right after <|startoftranscript|>, before any rule applies.
                if let Some(ns) = self.no_speech {
                    let row = &l[sot_index * vocab..(sot_index + 1) * vocab];
                    let z = log_sum_exp(row);
                    no_speech_prob = row.get(ns as usize).map_or(0.0, |&v| (v - z).exp());
                }
            }
            // Each beam's last position, copied out so the session is free.
            last_rows.clear();
            for b in 0..batch {
                last_rows.extend_from_slice(
                    &l[(b * width + width - 1) * vocab..(b * width + width) * vocab],
                );
            }
            let new_k = out["self_k_out"]
                .try_extract_tensor::<f32>()
                .map_err(run_err)?
                .1
                .to_vec();
            let new_v = out["self_v_out"]
                .try_extract_tensor::<f32>()
                .map_err(run_err)?
                .1
                .to_vec();
            drop(out);
            let per_beam = new_k.len() / (self.layers * batch);
            let mut candidates: Vec<(f32, usize, u32)> = Vec::new();
            for (b, beam) in seqs.iter().enumerate() {
                logits.clear();
                logits.extend_from_slice(&last_rows[b * vocab..(b + 1) * vocab]);
                self.apply_rules(&beam.tokens, &mut logits);
                let z = log_sum_exp(&logits);
                logprobs.clear();
                logprobs.extend(logits.iter().map(|&v| v - z));
                if beams == 1 {
                    let t = argmax(&logprobs);
                    candidates.push((beam.sum_logprob + logprobs[t as usize], b, t));
                } else {
                    for t in top_k(&logprobs, beams + 1) {
                        candidates.push((beam.sum_logprob + logprobs[t as usize], b, t));
                    }
                }
            }
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut next: Vec<Beam> = Vec::new();
            let mut origins: Vec<usize> = Vec::new();
            for (score, b, t) in candidates {
                let mut tokens = seqs[b].tokens.clone();
                if t == self.eot {
                    if finished.len() < beams {
                        finished.push(Beam {
                            tokens,
                            sum_logprob: score,
                        });
                    }
                    continue;
                }
                tokens.push(t);
                next.push(Beam {
                    tokens,
                    sum_logprob: score,
                });
                origins.push(b);
                // As Whisper's beam search: endings ranked below the last
                // kept beam are not kept either.
                if next.len() >= beams {
                    break;
                }
            }
            // The cache follows the beams that survived, in their new order.
            if origins.len() == batch && origins.iter().enumerate().all(|(i, &o)| i == o) {
                self_k = new_k;
                self_v = new_v;
            } else {
                self_k = reorder(&new_k, self.layers, batch, per_beam, &origins);
                self_v = reorder(&new_v, self.layers, batch, per_beam, &origins);
            }
            cached = prompt.len() + seqs[0].tokens.len();
            if finished.len() >= beams || next.is_empty() {
                seqs = next;
                break;
            }
            seqs = next;
        }
        // Out of room: the unfinished beams compete too, only to fill the
        // places endings left (as Whisper's beam search finalises).
        if finished.len() < beams {
            let room = beams - finished.len();
            finished.extend(seqs.into_iter().take(room));
        }
        // Scores by mean log-probability (length penalty 1, as faster-whisper
        // asks of CTranslate2), so longer readings are not penalised.
        let best = finished
            .into_iter()
            .max_by(|a, b| {
                let la = a.sum_logprob / (a.tokens.len() + 1) as f32;
                let lb = b.sum_logprob / (b.tokens.len() + 1) as f32;
                la.total_cmp(&lb)
            })
            .unwrap_or(Beam {
                tokens: Vec::new(),
                sum_logprob: 0.0,
            });
        Ok(Decoded {
            avg_logprob: best.sum_logprob / (best.tokens.len() + 1) as f32,
            tokens: best.tokens,
            no_speech_prob,
        })
    }

    /// Splits a decoded window into segments and says how far to seek, by
    /// Whisper's rules (as faster-whisper applies them): text is cut at each
    /// pair of consecutive timestamps; when the window ends inside speech
    /// (text after the last pair), that text is dropped and the next window
    /// starts at the last timestamp, so a word cut by the window's edge is
    /// decoded again whole. `content_frames` is how many of the window's 3000
    /// frames hold audio.
    pub fn window(&self, decoded: &Decoded, content_frames: usize) -> Window {
        let tokens = &decoded.tokens;
        let ts = self.timestamp_begin;
        let is_ts = |t: u32| t >= ts;
        let step = |t: u32| (t - ts) as f32 * SECONDS_PER_TIMESTAMP;
        let content_frames = content_frames.clamp(1, N_FRAMES);
        let single_ending = tokens.len() >= 2
            && !is_ts(tokens[tokens.len() - 2])
            && is_ts(tokens[tokens.len() - 1]);
        let pairs: Vec<usize> = (1..tokens.len())
            .filter(|&i| is_ts(tokens[i]) && is_ts(tokens[i - 1]))
            .collect();
        let text_of = |slice: &[u32]| slice.iter().copied().filter(|&t| !is_ts(t)).collect();
        let mut segments = Vec::new();
        let seek_frames;
        if pairs.is_empty() {
            let end = match tokens.iter().rev().find(|&&t| is_ts(t)) {
                Some(&t) if t != ts => step(t),
                _ => content_frames as f32 * SECONDS_PER_FRAME,
            };
            segments.push(WindowSegment {
                start_s: 0.0,
                end_s: end,
                tokens: text_of(tokens),
            });
            seek_frames = content_frames;
        } else {
            let mut slices = pairs;
            if single_ending {
                slices.push(tokens.len());
            }
            let mut last = 0;
            for &cut in &slices {
                let slice = &tokens[last..cut];
                if let (Some(&a), Some(&b)) = (slice.first(), slice.last())
                    && is_ts(a)
                    && is_ts(b)
                {
                    segments.push(WindowSegment {
                        start_s: step(a),
                        end_s: step(b),
                        tokens: text_of(slice),
                    });
                }
                last = cut;
            }
            seek_frames = if single_ending {
                content_frames
            } else {
                let position = tokens[last - 1].saturating_sub(ts) as usize;
                (position * FRAMES_PER_TIMESTAMP).clamp(1, content_frames)
            };
        }
        segments.retain(|s| s.end_s > s.start_s && !self.text(&s.tokens).is_empty());
        Window {
            segments,
            seek_frames,
        }
    }

    /// The text of some tokens (timestamps and special tokens skipped),
    /// trimmed.
    pub fn text(&self, tokens: &[u32]) -> String {
        let bytes: Vec<u8> = tokens
            .iter()
            .filter(|&&t| t < self.eot)
            .filter_map(|&t| self.vocab.get(t as usize))
            .flatten()
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    /// Word timings for `text` (text tokens, no timestamps) in an encoded
    /// window whose first `content_frames` frames hold audio: Whisper's
    /// cross-attention alignment (one decoder pass over the text, the
    /// alignment heads' attention normalised and median-filtered, a dynamic
    /// time warping path), each word's start and end where the path reaches
    /// its first token and the next word's. Times in seconds from the
    /// window's start; punctuation is merged into the neighbouring word as
    /// Whisper does.
    pub fn align(
        &mut self,
        encoded: &Encoded,
        text: &[u32],
        content_frames: usize,
    ) -> Result<Vec<WordTiming>, ModelError> {
        let text: Vec<u32> = text.iter().copied().filter(|&t| t < self.eot).collect();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let sot_len = encoded.prompt.len();
        let mut seq: Vec<i64> = encoded.prompt.iter().map(|&t| i64::from(t)).collect();
        seq.push(i64::from(self.no_timestamps));
        seq.extend(text.iter().map(|&t| i64::from(t)));
        seq.push(i64::from(self.eot));
        let total = seq.len();
        if total > 2 * MAX_TOKENS {
            return Err(ModelError::Inference {
                model: NAME,
                reason: format!("{} tokens to align in one window", text.len()),
            });
        }
        let empty = [self.layers, 1, 0, self.d_model];
        let out = self
            .decoder
            .run(decoder_inputs(
                Tensor::from_array(([1usize, total], seq)).map_err(run_err)?,
                Tensor::from_array(((), vec![0i64])).map_err(run_err)?,
                Tensor::from_array((empty, Vec::<f32>::new())).map_err(run_err)?,
                Tensor::from_array((empty, Vec::<f32>::new())).map_err(run_err)?,
                &encoded.cross,
            ))
            .map_err(run_err)?;
        let (shape, l) = out["logits"].try_extract_tensor::<f32>().map_err(run_err)?;
        let vocab = shape.last().copied().unwrap_or(0) as usize;
        let eot = self.eot as usize;
        // Each text token's probability, over text tokens only (as Whisper).
        let probs: Vec<f32> = text
            .iter()
            .enumerate()
            .map(|(k, &t)| {
                let row = &l[(sot_len + k) * vocab..(sot_len + k) * vocab + eot];
                let z = log_sum_exp(row);
                row.get(t as usize).map_or(0.0, |&v| (v - z).exp())
            })
            .collect();
        let qk = out.get("align_qk").ok_or_else(|| ModelError::Inference {
            model: NAME,
            reason: "decoder has no align_qk output (re-run scripts/setup.sh)".into(),
        })?;
        let (qshape, data) = qk.try_extract_tensor::<f32>().map_err(run_err)?;
        let heads = qshape.get(1).copied().unwrap_or(0).max(0) as usize;
        let cols = (content_frames.clamp(2, N_FRAMES)) / 2;
        let matrix = align::alignment_matrix(
            &align::HeadScores {
                data,
                heads,
                rows: total,
                stride: AUDIO_CTX,
            },
            cols,
            MEDIAN_FILTER_WIDTH,
        );
        drop(out);
        // Rows for the tokens after the prompt: <|notimestamps|> predicts the
        // first text token, the last text token predicts <|endoftext|>.
        let rows = text.len() + 1;
        let cost: Vec<f32> = matrix[sot_len * cols..(sot_len + rows) * cols]
            .iter()
            .map(|v| -v)
            .collect();
        let path = align::dtw(&cost, rows, cols);
        let starts = align::row_starts(&path, rows);
        let at = |row: usize| starts.get(row).copied().unwrap_or(0) as f32 * SECONDS_PER_TIMESTAMP;
        let mut words: Vec<WordTiming> = Vec::new();
        let mut first = 0usize;
        for (word, n) in self.split_words(&text, &encoded.language) {
            let end = first + n;
            words.push(WordTiming {
                word,
                tokens: text[first..end].to_vec(),
                start_s: at(first),
                end_s: at(end),
                probability: probs[first..end].iter().sum::<f32>() / n.max(1) as f32,
            });
            first = end;
        }
        merge_punctuation(&mut words);
        Ok(words)
    }

    /// Byte-pair encodes `text` into ordinary tokens (GPT-2's pre-split into
    /// words, numbers, punctuation and spaces, then tiktoken's merge of the
    /// lowest-ranked pair until none is in the vocabulary).
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for piece in pre_split(text) {
            let mut parts: Vec<Vec<u8>> = piece.bytes().map(|b| vec![b]).collect();
            loop {
                let best = (0..parts.len().saturating_sub(1))
                    .filter_map(|i| {
                        let joined = [parts[i].as_slice(), parts[i + 1].as_slice()].concat();
                        self.ranks.get(&joined).map(|&r| (r, i))
                    })
                    .min();
                let Some((_, i)) = best else { break };
                let next = parts.remove(i + 1);
                parts[i].extend(next);
            }
            out.extend(parts.iter().filter_map(|p| self.ranks.get(p).copied()));
        }
        out
    }

    /// Whether `language` is written without spaces between words.
    pub fn spaceless(language: &str) -> bool {
        NO_SPACE_LANGUAGES.contains(&language)
    }

    /// Text tokens grouped into words: `(word with its leading space, number
    /// of tokens)`. Tokens are first joined until their bytes are whole
    /// UTF-8 characters; in languages written without spaces each character
    /// group is a word, otherwise a word starts at a space or a punctuation
    /// mark (Whisper's `split_to_word_tokens`).
    pub fn split_words(&self, text: &[u32], language: &str) -> Vec<(String, usize)> {
        let mut pieces: Vec<(String, usize)> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        let mut n = 0usize;
        for &t in text {
            if let Some(b) = self.vocab.get(t as usize) {
                bytes.extend_from_slice(b);
            }
            n += 1;
            if let Ok(s) = std::str::from_utf8(&bytes) {
                pieces.push((s.to_string(), n));
                bytes.clear();
                n = 0;
            }
        }
        if n > 0 {
            pieces.push((String::from_utf8_lossy(&bytes).into_owned(), n));
        }
        if NO_SPACE_LANGUAGES.contains(&language) {
            return pieces;
        }
        let mut words: Vec<(String, usize)> = Vec::new();
        for (piece, n) in pieces {
            let starts_word = piece.starts_with(' ')
                || (piece.trim().chars().count() == 1
                    && piece.trim().chars().all(|c| c.is_ascii_punctuation()));
            match words.last_mut() {
                Some(last) if !starts_word => {
                    last.0.push_str(&piece);
                    last.1 += n;
                }
                _ => words.push((piece, n)),
            }
        }
        words
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

/// The `k` highest entries' indices, best first.
fn top_k(x: &[f32], k: usize) -> Vec<u32> {
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    for (i, &v) in x.iter().enumerate() {
        if v == f32::NEG_INFINITY || (best.len() == k && v <= best[k - 1].0) {
            continue;
        }
        let at = best.partition_point(|&(b, _)| b >= v);
        best.insert(at, (v, i as u32));
        best.truncate(k);
    }
    best.into_iter().map(|(_, i)| i).collect()
}

/// A `[layers, batch, per_beam]` cache with its beams picked by `origins`.
fn reorder(
    cache: &[f32],
    layers: usize,
    batch: usize,
    per_beam: usize,
    origins: &[usize],
) -> Vec<f32> {
    let mut out = Vec::with_capacity(layers * origins.len() * per_beam);
    for l in 0..layers {
        for &b in origins {
            let at = (l * batch + b) * per_beam;
            out.extend_from_slice(&cache[at..at + per_beam]);
        }
    }
    out
}

/// Whisper's punctuation merging: an opening mark joins the word after it,
/// a closing one the word before; times stay the word's own.
fn merge_punctuation(words: &mut Vec<WordTiming>) {
    if words.len() > 1 {
        let mut j = words.len() - 1;
        for i in (0..words.len() - 1).rev() {
            let p = words[i].word.clone();
            if p.starts_with(' ') && !p.trim().is_empty() && PREPEND_PUNCTUATION.contains(p.trim())
            {
                let tokens = std::mem::take(&mut words[i].tokens);
                words[i].word.clear();
                let f = &mut words[j];
                f.word = p + &f.word;
                f.tokens.splice(0..0, tokens);
            } else {
                j = i;
            }
        }
        let mut i = 0;
        for j in 1..words.len() {
            let f = words[j].word.clone();
            if !words[i].word.ends_with(' ')
                && !f.is_empty()
                && APPEND_PUNCTUATION.contains(f.as_str())
            {
                let tokens = std::mem::take(&mut words[j].tokens);
                words[j].word.clear();
                let p = &mut words[i];
                p.word.push_str(&f);
                p.tokens.extend(tokens);
            } else {
                i = j;
            }
        }
    }
    words.retain(|w| !w.word.is_empty());
}

/// GPT-2's pre-tokenisation (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
/// ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`), by hand: contractions, then an
/// optional space and a run of letters, of digits or of other symbols; a
/// run of spaces gives its last space to the word after it.
fn pre_split(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let class = |c: char| {
        if c.is_alphabetic() {
            1
        } else if c.is_numeric() {
            2
        } else if c.is_whitespace() {
            0
        } else {
            3
        }
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let rest: String = chars[i + 1..].iter().take(2).collect();
            let suffix = ["re", "ve", "ll", "s", "t", "m", "d"]
                .into_iter()
                .find(|s| rest.starts_with(s));
            if let Some(s) = suffix {
                out.push(format!("'{s}"));
                i += 1 + s.len();
                continue;
            }
        }
        if c.is_whitespace() {
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            // The last space goes with a following word.
            let end = if j < chars.len() && chars[j - 1] == ' ' && j - 1 > i {
                j - 1
            } else if j < chars.len() && chars[j - 1] == ' ' {
                i
            } else {
                j
            };
            if end > i {
                out.push(chars[i..end].iter().collect());
                i = end;
                continue;
            }
            if j >= chars.len() {
                out.push(chars[i..j].iter().collect());
                break;
            }
        }
        let start = i;
        if chars[i] == ' ' {
            i += 1;
        }
        let Some(&first) = chars.get(i) else {
            out.push(chars[start..].iter().collect());
            break;
        };
        let k = class(first);
        while i < chars.len() && class(chars[i]) == k && k != 0 {
            // A contraction ends a run of letters.
            if chars[i] == '\'' {
                break;
            }
            i += 1;
        }
        if i == start {
            i += 1;
        }
        out.push(chars[start..i].iter().collect());
    }
    out
}
