"""Reduced-precision variants of the fp32 ONNX graphs.

Every scheme leaves the codebook step (``graphs.FLOAT_SCOPES``) in float32:
the squared-L2 scores, the argmin and the codebook gather. Quantization
touches the Mixer layers only. The reduced precisions store the codebook
itself as int8 codes times one scale, turned back into the same float32 values
at load (``onnx_codebook_int8``); training leaves the codes on that grid.

From the fp32 ModelProto, whose float-only nodes carry the scope name as a
``<scope>/`` prefix (see ``mark_float_nodes``):
  fp16   float16 initializers, cast to float32 on load (activations stay fp32:
         onnxruntime's CPU provider has few fp16 kernels).
  int8w  per-output-channel symmetric int8 MatMul and Conv weights, Cast+Mul back to
         float32 (folded at session start); activations float32.
  int8   static QDQ from onnxruntime.quantization: S8S8, per-channel weights,
         calibrated activations on the MatMuls (settings in ``OnnxStaticInt8``);
         biases and LayerNorm parameters stored as float16 (``slim_qdq``).
The TFLite side is ``quantize_tflite`` (recipes) and ``tflite_flatbuffer`` (codebook).
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .graphs import FLOAT_SCOPES, OUTSIDE_MIXER_TEXT, mixes_keypoints, outside_mixer
from .model import codebook_int8_grid


def node_scope(node: onnx.NodeProto) -> Optional[str]:
    """The float-only scope a node belongs to, from its name prefix or export metadata."""
    prefix = node.name.split("/", 1)[0]
    if prefix in FLOAT_SCOPES:
        return prefix
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = [s.strip(" '\"") for s in prop.value.strip("[]").split(",")]
            for scope in scopes:
                if scope in FLOAT_SCOPES:
                    return scope
    return None


def mark_float_nodes(model: onnx.ModelProto) -> list[str]:
    """Prefix float-only nodes' names with their scope, drop export metadata.

    The exporter's metadata (stack traces with host paths) is what tells us
    the scope; once the names carry it the metadata is only dead weight.
    Returns the float-only node names.
    """
    marked = []
    for node in model.graph.node:
        scope = node_scope(node)
        if scope is not None and not node.name.startswith(scope + "/"):
            node.name = f"{scope}/{node.name}"
        if scope is not None:
            marked.append(node.name)
        del node.metadata_props[:]
        node.doc_string = ""
    del model.metadata_props[:]
    del model.graph.metadata_props[:]  # torch.export's program signature, ~10 KB of text
    model.graph.doc_string = ""
    return marked


def float_node_names(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node if node_scope(n) is not None]


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {init.name: init for init in model.graph.initializer}


def _float_only_inputs(model: onnx.ModelProto) -> set[str]:
    """Initializers read by a float-only node (the codebook tensors)."""
    names = set()
    for node in model.graph.node:
        if node_scope(node) is not None:
            names.update(node.input)
    return names


def onnx_fp16_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """float32 initializers -> float16 + a Cast back to float32 (the codebook
    aside: ``onnx_codebook_int8`` stores it)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    codebook = _float_only_inputs(out)
    casts = [_store_as_fp16(init) for init in out.graph.initializer
             if init.data_type == TensorProto.FLOAT and _numel(init) > 1 and init.name not in codebook]
    _prepend_nodes(out, casts)
    return out


def onnx_codebook_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """The codebook stored as int8 codes and one scale, restored to float32 by
    Cast + Mul at load; the distances, argmin and gather still run in float32,
    on exactly the checkpoint's values (training snaps the codes onto such a
    grid, ``VectorQuantizer.snap_to_int8_grid``). Per-token codebooks (M*V*D
    floats, in the encoder and again in the decoder) would otherwise be a
    large fixed share of a reduced-precision file. A codebook off the grid (an
    older checkpoint) stays float32."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    codebook = _float_only_inputs(out)
    replaced, restore = {}, []
    for init in out.graph.initializer:
        if init.name not in codebook or init.data_type != TensorProto.FLOAT or _numel(init) <= 1:
            continue
        grid = codebook_int8_grid(numpy_helper.to_array(init))
        if grid is None:
            continue
        q, scale = grid
        replaced[init.name], nodes = _int8_restore(init.name, q, np.float32(scale), "codebook_int8")
        restore += nodes
    _replace_initializers(out, replaced)
    _prepend_nodes(out, restore)
    return out


def _int8_restore(name: str, q: np.ndarray, scale: np.ndarray, scope: str) -> tuple[list, list]:
    """Initializers (int8 values, float32 scale) and the Cast + Mul nodes that
    compute the float32 tensor ``name`` = values * scale at load.

    Not DequantizeLinear: onnxruntime fuses DequantizeLinear -> MatMul into
    MatMulNBits, which quantizes the activations to int8 at run time (measured:
    97.0% vs 98.0% tokens kept on the quick model). Cast + Mul of constants is
    folded once at session start."""
    inits = [numpy_helper.from_array(q.astype(np.int8), name + "__int8"),
             numpy_helper.from_array(np.asarray(scale, dtype=np.float32), name + "__scale")]
    nodes = [helper.make_node("Cast", [inits[0].name], [name + "__float"], to=TensorProto.FLOAT,
                              name=f"{scope}_cast/{name}"),
             helper.make_node("Mul", [name + "__float", inits[1].name], [name], name=f"{scope}_scale/{name}")]
    return inits, nodes


def _replace_initializers(model: onnx.ModelProto, replaced: dict[str, list]) -> None:
    """Drop the initializers named in ``replaced`` and add their replacements."""
    kept = [init for init in model.graph.initializer if init.name not in replaced]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    for new_inits in replaced.values():
        model.graph.initializer.extend(new_inits)


def keypoint_mixing_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMuls whose weight has a keypoint dimension: the token-mixing MLPs and
    the keypoint<->token maps. They hold ~4% of the weights but, measured on
    the shipped model, cause most of the tokens weight-only int8 flips
    (int8w keeps 96.8% of tokens with them in int8, 99.1% with them in float)."""
    inits = _initializers(model)
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and node_scope(n) is None and n.input[1] in inits
            and mixes_keypoints(inits[n.input[1]].dims)]


# Weight input and its output-channel axis, per op: MatMul [K, N] (axis 1), Conv [O, I, kh, kw] (axis 0).
_INT8W_OUTPUT_AXIS = {"MatMul": 1, "Conv": 0}


def onnx_int8_weights(model: onnx.ModelProto, float_keypoint_mixing: bool = True) -> onnx.ModelProto:
    """MatMul and Conv weights -> int8 per output channel, restored by Cast +
    Mul (``_int8_restore``): the layers run in float32 on weights that are
    exactly the int8 values times their scales."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = _initializers(out)
    keep = _float_only_inputs(out)
    skip = set(keypoint_mixing_matmuls(out)) if float_keypoint_mixing else set()
    restore, replaced = [], {}
    for node in out.graph.node:
        axis = _INT8W_OUTPUT_AXIS.get(node.op_type)
        if axis is None or node_scope(node) is not None or node.name in skip:
            continue
        name = node.input[1]
        if name not in inits or name in keep or name in replaced:
            continue
        w = numpy_helper.to_array(inits[name]).astype(np.float32)
        if w.ndim != (2 if node.op_type == "MatMul" else 4):
            continue
        others = tuple(d for d in range(w.ndim) if d != axis)
        scale = np.maximum(np.abs(w).max(axis=others, keepdims=True), 1e-12) / 127.0
        q = np.clip(np.rint(w / scale), -127, 127)
        replaced[name], nodes = _int8_restore(name, q, scale.astype(np.float32), "int8w")
        restore += nodes
    _replace_initializers(out, replaced)
    _prepend_nodes(out, restore)
    return out


def _numel(init: onnx.TensorProto) -> int:
    return int(np.prod(init.dims)) if init.dims else 1


def _store_as_fp16(init: onnx.TensorProto) -> onnx.NodeProto:
    """Turn a float32 initializer into float16 in place (renamed) and return
    the Cast node that restores the original float32 name at load time."""
    half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__fp16")
    cast = helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=f"cast_fp16/{init.name}")
    init.CopyFrom(half)
    return cast


def _prepend_nodes(model: onnx.ModelProto, nodes: list) -> None:
    rest = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes + rest)


@dataclasses.dataclass(frozen=True)
class OnnxStaticInt8:
    """Settings of onnxruntime's static quantizer for the ``int8`` row."""
    # Percentile 99.99 kept 0.2% more tokens than MinMax on two trained models
    # (0.9590 vs 0.9571, 0.9371 vs 0.9347); symmetric activations lost 0.3-1.4%.
    calibrate_method: str = "Percentile"   # MinMax | Entropy | Percentile | Distribution
    per_channel: bool = True
    activation_symmetric: bool = False     # True: zero point 0
    # Quantizing only the MatMuls keeps the elementwise ops (bias Add, GELU,
    # LayerNorm) in float between them. Measured on quick-preset models: 93.6%
    # of tokens kept vs 91.2% with every supported op quantized, and a smaller file.
    op_types: tuple[str, ...] = ("MatMul",)
    percentile: float = 99.99              # only for calibrate_method="Percentile"
    # The layers outside the Mixer blocks stay float32 (``outside_mixer``): the
    # coordinate layer and, at the token end, the keypoint<->token map and the
    # code projection; ~1.2k weights per graph. See ``outside_mixer`` for why.
    float_outside_mixer: bool = True
    extra_float_nodes: tuple[str, ...] = ()  # node names kept float besides the codebook step

    def describe(self) -> str:
        method = self.calibrate_method + (f" {self.percentile}" if self.calibrate_method == "Percentile" else "")
        parts = [f"static QDQ S8S8 (onnxruntime.quantization), {method} calibration",
                 "per-channel int8 weights" if self.per_channel else "per-tensor int8 weights",
                 ("symmetric" if self.activation_symmetric else "asymmetric") + " per-tensor int8 activations",
                 "quantized ops: " + ", ".join(self.op_types or ("all supported",)) + "; other ops float32",
                 "biases and LayerNorm parameters stored as float16"]
        if self.float_outside_mixer:
            parts.append(OUTSIDE_MIXER_TEXT)
        if self.extra_float_nodes:
            parts.append("kept float: " + ", ".join(self.extra_float_nodes))
        return "; ".join(parts)



def onnx_outside_mixer(model: onnx.ModelProto) -> list[str]:
    """``outside_mixer`` of an ONNX graph (nodes are in topological order)."""
    names = [n.name for n in model.graph.node if n.op_type == "MatMul" and node_scope(n) is None]
    reads_ids = model.graph.input[0].type.tensor_type.elem_type in (TensorProto.INT32, TensorProto.INT64)
    return outside_mixer(names, reads_ids)


class _ArrayReader:
    """onnxruntime CalibrationDataReader over one input, in fixed-size batches."""

    def __init__(self, input_name: str, data: np.ndarray, batch: int = 64):
        self._batches = iter([{input_name: data[i:i + batch]} for i in range(0, len(data), batch)])

    def get_next(self):
        return next(self._batches, None)


def onnx_int8_static(model: onnx.ModelProto, calibration: np.ndarray,
                     settings: OnnxStaticInt8 = OnnxStaticInt8()) -> onnx.ModelProto:
    """Static A8W8 QDQ of ``model`` calibrated on ``calibration`` (the graph's first input)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationDataReader

    reader_cls = type("Reader", (_ArrayReader, CalibrationDataReader), {})
    input_name = model.graph.input[0].name
    exclude = float_node_names(model) + list(settings.extra_float_nodes)
    if settings.float_outside_mixer:
        exclude += onnx_outside_mixer(model)
    extra = {"ActivationSymmetric": settings.activation_symmetric, "WeightSymmetric": True,
             "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}}
    if settings.calibrate_method == "Percentile":
        extra["CalibPercentile"] = settings.percentile
    with tempfile.TemporaryDirectory(prefix="posetok-quant-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, src)
        quantize_static(str(src), str(dst), reader_cls(input_name, calibration),
                        quant_format=QuantFormat.QDQ, per_channel=settings.per_channel,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=exclude, op_types_to_quantize=list(settings.op_types) or None,
                        calibrate_method=getattr(CalibrationMethod, settings.calibrate_method),
                        extra_options=extra)
        return slim_qdq(onnx.load(dst))


def slim_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Bytes the quantizer leaves that a deployed int8 graph does not need.

    - all-zero zero points of int8 weights (symmetric): optional in
      DequantizeLinear, default 0; dropping them is bit-exact.
    - float32 biases and LayerNorm parameters: stored as float16 and cast back
      at load (folded once by onnxruntime). Measured when introduced (the tokenizer of that time):
      same token agreement (0.9590 vs 0.9590), and with the above the int8 row
      went from 30.4% to 29.2% of the fp32 row's bytes.
    The codebook tensors are never touched.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = _initializers(out)
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and len(node.input) == 3 and node.input[0] in inits \
                and node.input[2] in inits:
            zero_point = numpy_helper.to_array(inits[node.input[2]])
            if zero_point.dtype == np.int8 and not zero_point.any():
                del node.input[2]
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)

    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    casts = []
    for init in graph.initializer:
        users = consumers.get(init.name, [])
        if init.data_type != TensorProto.FLOAT or not init.dims or not users:
            continue
        if all(u.op_type in ("Add", "LayerNormalization") and node_scope(u) is None for u in users):
            casts.append(_store_as_fp16(init))
    _prepend_nodes(out, casts)
    return out
