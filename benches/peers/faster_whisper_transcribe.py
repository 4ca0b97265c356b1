"""Transcribes one file with faster-whisper (the peer) and prints JSON.

Usage: faster_whisper_transcribe.py CT2_MODEL_DIR FILE THREADS

Same weights as monteur (the CTranslate2 export it converts), same thread
count, greedy decoding, float32, and Silero voice activity filtering: the
configuration closest to monteur's captions path.
"""
import json
import sys

from faster_whisper import WhisperModel


def main() -> None:
    model_dir, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=threads, num_workers=1)
    segments, _ = model.transcribe(
        path, beam_size=1, temperature=0.0, vad_filter=True, condition_on_previous_text=False, language="en"
    )
    print(json.dumps({"text": " ".join(s.text.strip() for s in segments)}))


if __name__ == "__main__":
    main()
