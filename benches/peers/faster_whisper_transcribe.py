"""Transcribes one file with faster-whisper (the peer) and prints JSON.

Usage: faster_whisper_transcribe.py CT2_MODEL_DIR FILE THREADS [BEAM]

Same weights as monteur (the CTranslate2 export it converts), same thread
count, float32, Silero voice activity filtering, greedy decoding unless BEAM
is given (faster-whisper's own default is 5), and word timestamps (as
monteur's captions task computes them): the configuration closest to
monteur's captions path. Prints the text and every word with its times.
"""
import json
import sys

from faster_whisper import WhisperModel


def main() -> None:
    model_dir, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    beam = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    model = WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=threads, num_workers=1)
    segments, _ = model.transcribe(
        path,
        beam_size=beam,
        temperature=0.0,
        vad_filter=True,
        condition_on_previous_text=False,
        language="en",
        word_timestamps=True,
    )
    segments = list(segments)
    words = [
        {"word": w.word.strip(), "start": w.start, "end": w.end, "p": w.probability}
        for s in segments
        for w in (s.words or [])
    ]
    print(json.dumps({"text": " ".join(s.text.strip() for s in segments), "words": words}))


if __name__ == "__main__":
    main()
