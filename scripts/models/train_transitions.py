#!/usr/bin/env python3
"""Trains the learned networks of pipelines/src/scenes/learned.rs: the
transition proposer and the cut head.

Reads the per-frame feature rows and truth that
`scene-eval --split training --dump DIR` writes for the training pool
(`sceneset::training_set`: tuning-side seeds that neither the tuning clips
nor the held-out clips use), fits one hidden layer of ReLUs with a logistic
output by full-batch Adam in numpy, and writes the weights as JSON.

    ~/.cache/monteur/pytools/bin/python scripts/models/train_transitions.py DIR \
        pipelines/src/scenes/transitions.json
    ~/.cache/monteur/pytools/bin/python scripts/models/train_transitions.py --cuts DIR \
        pipelines/src/scenes/cuts.json

The second form trains the cut head (learned.rs's `cut_features`) on the
same clips. `--fold I/K` (before DIR) trains without the clips whose seed
is I modulo K, for `scene-eval --fold I/K --weights` to score on them.

Deterministic (fixed seed, no threads involved): the same dump gives the
same weights. A pool decoded afresh differs in the last bits (its feature
means by about 2e-6), which training amplifies into different weights, so
the committed JSON is the artifact, not a reproducible build output. Prints, for one fold of clips left out of training, the
per-frame ROC AUC and the share of transitions with a frame above 0.5, as a
check that the network learned something that carries over; the proposal
threshold itself is set later, on the tuning clips, by scene-eval.
"""

import json
import pathlib
import sys

import numpy as np

HIDDEN = 16
STEPS = 3000
LEARNING_RATE = 0.01
L2 = 1e-4
# Frames this close to a span's edge, or to a cut, are left out of the loss:
# which of them belong to the transition is a matter of a frame or two of
# labelling, not of what the network should learn.
EDGE = 2


def labels(truth, n):
    y = np.zeros(n, dtype=np.float32)
    w = np.ones(n, dtype=np.float32)
    spans = sorted((t["start"], t["end"], t["kind"]) for t in truth)
    for i, (s, e, kind) in enumerate(spans):
        if kind == "cut":
            w[max(0, s - EDGE) : min(n, s + EDGE + 1)] = 0.0
            continue
        y[s:e] = 1.0
        # A fade out and the fade in that follows: the black between them
        # is part of the transition.
        if kind == "fade_out" and i + 1 < len(spans) and spans[i + 1][2] == "fade_in":
            y[e : spans[i + 1][0]] = 1.0
    for s, e, kind in spans:
        if kind == "cut":
            continue
        w[max(0, s - EDGE) : s] = 0.0
        w[e : min(n, e + EDGE)] = 0.0
    return y, w


def cut_labels(truth, n):
    """The cut head: 1 on the first frame of each new shot. Its neighbours
    are left out of the loss (a frame either way is a labelling matter, and
    the scorer allows it); every other frame, those inside gradual
    transitions included, is a 0: a three-frame slide is not a cut."""
    y = np.zeros(n, dtype=np.float32)
    w = np.ones(n, dtype=np.float32)
    w[0] = 0.0
    for t in truth:
        if t["kind"] != "cut" or t["start"] >= n:
            continue
        s = t["start"]
        w[max(0, s - 1) : min(n, s + 2)] = 0.0
        y[s] = 1.0
        w[s] = 1.0
    return y, w


# Per head: the suffix of its feature rows, their width (learned.rs's
# FEATURES and CUT_FEATURES) and its labels.
HEADS = {
    "transition": (".f32", 37, labels),
    "cut": (".cut.f32", 14, cut_labels),
}


def load(directory, head):
    suffix, width, label = HEADS[head]
    clips = []
    for meta in sorted(pathlib.Path(directory).glob("*.json")):
        info = json.loads(meta.read_text())
        rows = np.fromfile(meta.with_suffix(suffix), dtype="<f4")
        if rows.size == 0:
            continue
        if rows.size % width:
            raise SystemExit(f"{meta}: {rows.size} values is not a whole number of rows")
        x = rows.reshape(-1, width)
        y, w = label(info["truth"], x.shape[0])
        clips.append((info["name"], x, y, w, info["truth"]))
    return clips


def seed(name):
    """A generated clip's seed: the first number in its name."""
    return next(int(p) for p in name.split("-") if p.isdigit())


def fit(x, y, w, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-6] = 1.0
    z = (x - mean) / std
    d = z.shape[1]
    w1 = rng.normal(0, np.sqrt(2.0 / d), (HIDDEN, d)).astype(np.float64)
    b1 = np.zeros(HIDDEN)
    w2 = rng.normal(0, np.sqrt(1.0 / HIDDEN), HIDDEN)
    b2 = 0.0
    # Balance the classes: transitions are a minority of frames.
    pos = (y * w).sum()
    neg = ((1 - y) * w).sum()
    sw = w * np.where(y > 0, neg / max(pos, 1.0), 1.0)
    sw = sw / sw.sum()
    params = [w1, b1, w2, np.array([b2])]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, STEPS + 1):
        w1, b1, w2, b2v = params
        h_pre = z @ w1.T + b1
        h = np.maximum(h_pre, 0)
        logit = h @ w2 + b2v[0]
        p = 1 / (1 + np.exp(-logit))
        g_logit = (p - y) * sw
        g_w2 = h.T @ g_logit + L2 * w2
        g_b2 = np.array([g_logit.sum()])
        g_h = np.outer(g_logit, w2) * (h_pre > 0)
        g_w1 = g_h.T @ z + L2 * w1
        g_b1 = g_h.sum(axis=0)
        grads = [g_w1, g_b1, g_w2, g_b2]
        for i, (p_, g) in enumerate(zip(params, grads)):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            mh = m[i] / (1 - beta1**step)
            vh = v[i] / (1 - beta2**step)
            params[i] = p_ - LEARNING_RATE * mh / (np.sqrt(vh) + eps)
    w1, b1, w2, b2v = params
    return {
        "mean": mean.tolist(),
        "std": std.tolist(),
        "w1": w1.tolist(),
        "b1": b1.tolist(),
        "w2": w2.tolist(),
        "b2": float(b2v[0]),
    }


def predict(net, x):
    z = (x - np.array(net["mean"])) / np.array(net["std"])
    h = np.maximum(z @ np.array(net["w1"]).T + np.array(net["b1"]), 0)
    return 1 / (1 + np.exp(-(h @ np.array(net["w2"]) + net["b2"])))


def auc(p, y):
    order = np.argsort(p)
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    pos = y > 0
    npos, nneg = pos.sum(), (~pos).sum()
    if npos == 0 or nneg == 0:
        return float("nan")
    return float((ranks[pos].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def stack(clips):
    x = np.concatenate([c[1] for c in clips])
    y = np.concatenate([c[2] for c in clips])
    w = np.concatenate([c[3] for c in clips])
    return x.astype(np.float64), y.astype(np.float64), w.astype(np.float64)


def main():
    args = sys.argv[1:]
    head, fold = "transition", None
    while args[:1] in (["--cuts"], ["--fold"]):
        if args[0] == "--cuts":
            head, args = "cut", args[1:]
        else:
            i, k = (int(v) for v in args[1].split("/"))
            fold, args = (i, k), args[2:]
    if len(args) != 2:
        raise SystemExit(__doc__)
    clips = load(args[0], head)
    if len(clips) < 10:
        raise SystemExit(f"{len(clips)} clips in {args[0]}: dump the training pool first")
    # The clips whose seed is I modulo K are left out: with --fold, for
    # `scene-eval --fold I/K --weights` to score the network on; without,
    # the first fifth, to check the fit carries over before fitting on all.
    i, k = fold or (0, 5)
    check = [c for c in clips if seed(c[0]) % k == i]
    train = [c for c in clips if seed(c[0]) % k != i]
    net = fit(*stack(train))
    x, y, w = stack(check)
    p = predict(net, x)
    keep = w > 0
    found = total = 0
    for _, xc, _, _, truth in check:
        pc = predict(net, xc.astype(np.float64))
        for t in truth:
            if (t["kind"] == "cut") != (head == "cut"):
                continue
            total += 1
            span = slice(max(0, t["start"] - 1), t["start"] + 2) if head == "cut" else slice(
                t["start"], max(t["end"], t["start"] + 1)
            )
            found += bool((pc[span] >= 0.5).any())
    print(
        f"{head} head, left-out fold: {len(check)} clips, frame AUC {auc(p[keep], y[keep]):.3f}, "
        f"{'cuts' if head == 'cut' else 'gradual transitions'} with a frame >= 0.5: "
        f"{found}/{total}, other frames >= 0.5: {((p >= 0.5) & (y == 0) & keep).mean():.4f}"
    )
    if not fold:
        net = fit(*stack(clips))
    pathlib.Path(args[1]).write_text(json.dumps(net, separators=(",", ":")) + "\n")
    print(f"trained on {len(train) if fold else len(clips)} clips -> {args[1]}")


if __name__ == "__main__":
    main()
