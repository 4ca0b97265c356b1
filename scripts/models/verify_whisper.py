"""Checks a converted Whisper ONNX pair against CTranslate2 on real speech.

Dev-time evidence for scripts/models/whisper_to_onnx.py (CTranslate2 is not
needed at run time): encoder output and, step by step through the key/value
cache, the decoder's logits for the tokens CTranslate2 itself generates.

Usage: verify_whisper.py CT2_MODEL_DIR ONNX_DIR WAV_16K_MONO
Needs: numpy, onnxruntime, ctranslate2.
"""
import sys
import wave

import ctranslate2
import numpy as np
import onnxruntime as ort

SR, NFFT, HOP, NMELS, N = 16000, 400, 160, 80, 480000


def hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    fsp, minlog = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    return np.where(f >= minlog, minlog / fsp + np.log(np.maximum(f, 1e-10) / minlog) / logstep, f / fsp)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    fsp, minlog = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    return np.where(m >= minlog / fsp, minlog * np.exp(logstep * (m - minlog / fsp)), fsp * m)


def logmel(x):
    """Whisper's log-mel in float64: the definition kernels/src/mel.rs follows."""
    freqs = np.linspace(0, SR / 2, NFFT // 2 + 1)
    hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SR / 2), NMELS + 2))
    ramps = hz[:, None] - freqs[None, :]
    fb = np.zeros((NMELS, NFFT // 2 + 1))
    for i in range(NMELS):
        fb[i] = np.maximum(0, np.minimum(-ramps[i] / (hz[i + 1] - hz[i]), ramps[i + 2] / (hz[i + 2] - hz[i + 1])))
    fb *= (2.0 / (hz[2:] - hz[:NMELS]))[:, None]
    x = np.pad(x, (0, N - len(x))) if len(x) < N else x[:N]
    xp = np.pad(x, (NFFT // 2, NFFT // 2), mode="reflect")
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(NFFT) / NFFT)
    frames = np.lib.stride_tricks.sliding_window_view(xp, NFFT)[::HOP][:-1]
    mel = fb @ (np.abs(np.fft.rfft(frames * win, axis=1)) ** 2).T
    lg = np.log10(np.maximum(mel, 1e-10))
    return (np.maximum(lg, lg.max() - 8.0) + 4.0) / 4.0


def main():
    ct2_dir, onnx_dir, wav_path = sys.argv[1:4]
    w = wave.open(wav_path)
    x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64) / 32768.0
    mel = logmel(x).astype(np.float32)[None]
    enc = ort.InferenceSession(f"{onnx_dir}/encoder.onnx")
    dec = ort.InferenceSession(f"{onnx_dir}/decoder.onnx")
    names = [o.name for o in enc.get_outputs()]
    outs = dict(zip(names, enc.run(None, {"mel": mel})))
    out = outs["encoder_out"]
    # Per-layer cross-attention keys and values, fed back by name.
    cross = {n: v for n, v in outs.items() if n.startswith("cross_")}
    model = ctranslate2.models.Whisper(ct2_dir, device="cpu", compute_type="float32")
    ref = np.array(model.encode(ctranslate2.StorageView.from_array(mel)))
    print(f"encoder: max abs diff {np.abs(ref - out).max():.2e} (output scale {np.abs(ref).max():.1f})")
    vocab = open(f"{ct2_dir}/vocabulary.txt", encoding="utf-8").read().splitlines()
    prompt = [vocab.index("<|startoftranscript|>")]
    if len(vocab) >= 51865:  # multilingual: language and task tokens
        prompt += [vocab.index("<|en|>"), vocab.index("<|transcribe|>")]
    res = model.generate(ctranslate2.StorageView.from_array(mel), [prompt], return_logits_vocab=True, beam_size=1)[0]
    tokens = res.sequences_ids[0]
    n_vocab = dec.get_outputs()[0].shape[-1]
    # One row per step, the end-of-text step included.
    ref_logits = np.array(res.logits[0]).reshape(-1, n_vocab)
    layers, dim = len(cross) // 2, out.shape[-1]
    sk = np.zeros((layers, 1, 0, dim), np.float32)
    sv = sk.copy()
    # The prompt in one call, then one token per cached step.
    feeds = {"tokens": np.array([prompt], np.int64), "offset": np.array(0, np.int64),
             "self_k": sk, "self_v": sv, **cross}
    logits, sk, sv = dec.run(None, feeds)
    seq = prompt + tokens
    worst = 0.0
    for i in range(len(ref_logits)):
        if i > 0:
            pos = len(prompt) - 1 + i
            feeds = {"tokens": np.array([[seq[pos]]], np.int64), "offset": np.array(pos, np.int64),
                     "self_k": sk, "self_v": sv, **cross}
            logits, sk, sv = dec.run(None, feeds)
        r = ref_logits[i][: logits.shape[-1]]
        keep = r > -1e30  # CTranslate2 writes float-lowest into suppressed tokens
        worst = max(worst, float(np.abs(logits[0, -1][keep] - r[keep]).max()))
    print(f"decoder: max abs logit diff {worst:.2e} over {len(ref_logits)} cached steps "
          f"(logit scale {np.abs(ref_logits[ref_logits > -1e30]).max():.1f})")
    if worst > 1e-3:
        raise SystemExit("decoder does not match CTranslate2")


if __name__ == "__main__":
    main()
