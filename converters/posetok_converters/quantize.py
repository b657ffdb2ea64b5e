"""Reduced-precision variants of the fp32 graphs, ONNX and TFLite.

Every scheme leaves the codebook step (``graphs.FLOAT_SCOPES``) in float32:
the squared-L2 scores, the argmin and the codebook gather. Quantization
touches the Mixer layers only. The reduced precisions store the codebook
itself as int8 codes times one scale, turned back into the same float32 values
at load (``onnx_codebook_int8``, ``tflite_codebook_int8``); training leaves the
codes on that grid.

ONNX (from the fp32 ModelProto, whose float-only nodes carry the scope name
as a ``<scope>/`` prefix, see ``mark_float_nodes``):
  fp16   float16 initializers, cast to float32 on load (activations stay fp32:
         onnxruntime's CPU provider has few fp16 kernels).
  int8w  per-output-channel symmetric int8 MatMul weights, Cast+Mul back to
         float32 (folded at session start); activations float32.
  int8   static QDQ from onnxruntime.quantization: S8S8, per-channel weights,
         calibrated activations on the MatMuls (settings in ``OnnxStaticInt8``);
         biases and LayerNorm parameters stored as float16 (``slim_qdq``).
TFLite (from the fp32 flatbuffer, through ai-edge-quantizer recipes):
  fp16   float16 weights (float casting), float32 compute.
  int8w  per-channel int8 weights, explicitly dequantized, float32 compute.
  int8   static int8 weights and activations (A8W8), calibrated; weight
         scales per tensor except in the keypoint-mixing layers
         (``TfliteStaticInt8.per_channel_weights``).
"""
from __future__ import annotations

import dataclasses
import re
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from posetok.skeleton import NUM_KEYPOINTS

from .graphs import FLOAT_SCOPES, outside_mixer
from .model import codebook_int8_grid

# -- descriptions recorded in the manifest (one per format/precision) --------
SCHEMES = {
    ("onnx", "fp32"): "float32 weights and activations",
    ("onnx", "fp16"): "float16 weights cast to float32 at load; float32 activations",
    ("onnx", "int8w"): "int8 weights (symmetric, per output channel) restored to float32 by Cast+Mul at load; "
                       "float32 activations; keypoint-mixing matrices (~4% of the weights) kept float32",
    ("tflite", "fp32"): "float32 weights and activations",
    ("tflite", "fp16"): "float16 weights (ai-edge-quantizer float casting); float32 compute; "
                        "last layer of each graph kept float32",
    ("tflite", "int8w"): "int8 weights (per channel) explicitly dequantized; float32 compute "
                         "(ai-edge-quantizer weight-only); keypoint-mixing matrices (~4% of the weights) "
                         "and the last layer of each graph kept float32",
}


# ============================================================================
# ONNX
# ============================================================================

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


def mixes_keypoints(weight_shape) -> bool:
    """A weight with a keypoint dimension: the token-mixing MLPs and the
    keypoint<->token maps (~4% of the weights)."""
    return NUM_KEYPOINTS in list(weight_shape)


def keypoint_mixing_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMuls whose weight has a keypoint dimension: the token-mixing MLPs and
    the keypoint<->token maps. They hold ~4% of the weights but, measured on
    the shipped model, cause most of the tokens weight-only int8 flips
    (int8w keeps 96.8% of tokens with them in int8, 99.1% with them in float)."""
    inits = _initializers(model)
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and node_scope(n) is None and n.input[1] in inits
            and mixes_keypoints(inits[n.input[1]].dims)]


def onnx_int8_weights(model: onnx.ModelProto, float_keypoint_mixing: bool = True) -> onnx.ModelProto:
    """MatMul weights [K, N] -> int8 per output channel (axis 1), restored by
    Cast + Mul (``_int8_restore``): the MatMuls run in float32 on weights that
    are exactly the int8 values times their scales."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = _initializers(out)
    keep = _float_only_inputs(out)
    skip = set(keypoint_mixing_matmuls(out)) if float_keypoint_mixing else set()
    restore, replaced = [], {}
    for node in out.graph.node:
        if node.op_type != "MatMul" or node_scope(node) is not None or node.name in skip:
            continue
        name = node.input[1]
        if name not in inits or name in keep or name in replaced:
            continue
        w = numpy_helper.to_array(inits[name]).astype(np.float32)
        if w.ndim != 2:
            continue
        scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0
        q = np.clip(np.rint(w / scale), -127, 127)
        replaced[name], nodes = _int8_restore(name, q, scale.astype(np.float32)[None, :], "int8w")
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


OUTSIDE_MIXER_TEXT = ("layers outside the Mixer blocks (coordinate embedding or head, keypoint<->token map, "
                      "code projection) kept float32")


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
      at load (folded once by onnxruntime). Measured on the full-size model:
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


# ============================================================================
# TFLite
# ============================================================================

_FLOAT_SCOPE_REGEX = "|".join(FLOAT_SCOPES)


def _no_quantize_float_scopes() -> dict:
    return {"regex": f".*({_FLOAT_SCOPE_REGEX}).*", "operation": "*", "algorithm_key": "no_quantize",
            "op_config": {}}


def _weight_config(num_bits: int, dtype: str = "INT", symmetric: bool = True,
                   granularity: str = "CHANNELWISE") -> dict:
    return {"num_bits": num_bits, "symmetric": symmetric, "granularity": granularity, "dtype": dtype}


@dataclasses.dataclass(frozen=True)
class TfliteStaticInt8:
    """Settings of ai-edge-quantizer's static A8W8 recipe for the ``int8`` row.

    ``ops``: the TFLite ops that get int8 weights and activations. Matrix
    multiplies (FULLY_CONNECTED) only by default: with "*" the quantizer also
    turns the graph input and the LayerNorm arithmetic (MEAN, RSQRT...) into
    int8, which breaks the float32 input contract.
    """
    ops: str = "FULLY_CONNECTED"
    activation_symmetric: bool = False
    float_outside_mixer: bool = True  # as OnnxStaticInt8.float_outside_mixer
    # Weight scales: "all" per output channel, "none" one per tensor, or
    # "keypoint_mixing": per channel only in the FULLY_CONNECTEDs that mix
    # keypoints (weights with a 13-wide dimension, ~4% of the weights, where
    # one scale per tensor costs the most tokens). TFLite stores a scale and an int64
    # zero point for every output channel of every weight and bias, 24 bytes a
    # channel: per channel everywhere measured 27 KB of each int8 file.
    per_channel_weights: str = "keypoint_mixing"

    def __post_init__(self):
        if self.per_channel_weights not in ("all", "keypoint_mixing", "none"):
            raise ValueError(f"per_channel_weights must be all, keypoint_mixing or none, "
                             f"got {self.per_channel_weights!r}")

    def describe(self) -> str:
        acts = "symmetric" if self.activation_symmetric else "asymmetric"
        weights = {"all": "per-channel", "none": "per-tensor",
                   "keypoint_mixing": "per-tensor (per-channel in the keypoint/token-mixing layers)"}[
            self.per_channel_weights]
        text = (f"static A8W8 (ai-edge-quantizer, exact min/max calibration): {weights} int8 weights and {acts} "
                f"per-tensor int8 activations on {self.ops}; other ops float32")
        if self.float_outside_mixer:
            text += "; " + OUTSIDE_MIXER_TEXT
        return text


def tflite_recipe(precision: str, int8: TfliteStaticInt8 = TfliteStaticInt8(),
                  float_ops: tuple[str, ...] = (), channelwise_ops: tuple[str, ...] = ()) -> list[dict]:
    """ai-edge-quantizer recipe for one precision; later rules win, so the float scopes come last.

    ``float_ops``: output tensor names of further ops to keep float;
    ``channelwise_ops``: of int8 ops with per-channel weight scales.
    """
    def by_name(names, algorithm, op_config, operation="*"):
        return [{"regex": "^" + re.escape(name) + ";$", "operation": operation, "algorithm_key": algorithm,
                 "op_config": op_config} for name in names]

    if precision == "fp16":
        rules = [{"regex": ".*", "operation": "FULLY_CONNECTED", "algorithm_key": "float_casting",
                  "op_config": {"weight_tensor_config": _weight_config(16, dtype="FLOAT"),
                                "compute_precision": "FLOAT", "explicit_dequantize": True}}]
    elif precision == "int8w":
        rules = [{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize",
                  "op_config": {"weight_tensor_config": _weight_config(8),
                                "compute_precision": "FLOAT", "explicit_dequantize": True}}]
    elif precision == "int8":
        def int8_config(granularity: str) -> dict:
            return {"activation_tensor_config": _weight_config(8, symmetric=int8.activation_symmetric,
                                                               granularity="TENSORWISE"),
                    "weight_tensor_config": _weight_config(8, granularity=granularity),
                    "compute_precision": "INTEGER", "explicit_dequantize": False}
        default = "CHANNELWISE" if int8.per_channel_weights == "all" else "TENSORWISE"
        rules = [{"regex": ".*", "operation": int8.ops, "algorithm_key": "min_max_uniform_quantize",
                  "op_config": int8_config(default)}]
        rules += by_name(channelwise_ops, "min_max_uniform_quantize", int8_config("CHANNELWISE"), int8.ops)
    else:
        raise ValueError(f"no TFLite quantization recipe for precision {precision!r}")
    return rules + [_no_quantize_float_scopes()] + by_name(float_ops, "no_quantize", {})


def _running_min_max(qsv: dict, new: dict) -> dict:
    if not qsv:
        return new
    return {"min": np.minimum(qsv["min"], new["min"]), "max": np.maximum(qsv["max"], new["max"])}


def tflite_calibrate(float_model: bytes, calibration: np.ndarray, quantizer) -> dict:
    """Min/max over all of ``calibration`` of the activations that ``quantizer``'s
    recipe (an ai_edge_quantizer Quantizer of ``float_model``) quantizes.

    ai-edge-quantizer's default merges batches by a moving average (0.95), so
    its ranges depend on the batch size: the batch-1 graph saw narrower ranges
    than the batch-64 one and, measured, agreed with it on only 75% of tokens.
    The exact running min/max gives every batch variant the same ranges.
    """
    from ai_edge_quantizer import calibrator

    interp = _tflite_interpreter(float_model)
    batch = int(interp.get_input_details()[0]["shape"][0])
    usable = len(calibration) - len(calibration) % batch
    if usable == 0:
        raise ValueError(f"calibration set ({len(calibration)}) is smaller than the model batch {batch}")
    input_name = interp.get_signature_list()["serving_default"]["inputs"][0]
    samples = [{input_name: calibration[i:i + batch]} for i in range(0, usable, batch)]
    cal = calibrator.Calibrator(bytearray(float_model), num_threads=1, qsv_update_func=_running_min_max)
    cal.calibrate({"serving_default": samples}, quantizer._recipe_manager)  # the recipe picks the tensors
    return cal.get_model_qsvs()


def _tflite_model_recipe(float_model: bytes, precision: str, int8: TfliteStaticInt8) -> list[dict]:
    interp = _tflite_interpreter(float_model)
    fcs = _tflite_fully_connected(interp)
    channelwise = _tflite_channelwise_ops(fcs, int8) if precision == "int8" else ()
    reads_ids = np.issubdtype(interp.get_input_details()[0]["dtype"], np.integer)
    return tflite_recipe(precision, int8, _tflite_float_ops(fcs, precision, int8, reads_ids), channelwise)


def tflite_quantize(float_model: bytes, precision: str, calibration: Optional[np.ndarray] = None,
                    int8: TfliteStaticInt8 = TfliteStaticInt8()) -> bytes:
    """Quantize a float32 .tflite flatbuffer; ``int8`` needs ``calibration`` data."""
    from ai_edge_quantizer import quantizer as aeq

    q = aeq.Quantizer(bytearray(float_model), _tflite_model_recipe(float_model, precision, int8))
    ranges = None
    if q.need_calibration:
        if calibration is None:
            raise ValueError(f"{precision} TFLite quantization needs calibration data")
        ranges = tflite_calibrate(float_model, calibration, q)
    return bytes(q.quantize(ranges, enable_progress_bar=False, enable_progress_report=False).quantized_model)


# The lookup ops whose constant operand is the codebook (per-token codebooks:
# the distances are a BATCH_MATMUL, whose batched graphs broadcast the
# codebook first; a shared codebook: a FULLY_CONNECTED whose weight is in the
# lookup's scope; the decoder's gather: an EMBEDDING_LOOKUP).
_TFLITE_CODEBOOK_OPS = ("BATCH_MATMUL", "BROADCAST_TO", "EMBEDDING_LOOKUP", "GATHER", "FULLY_CONNECTED")
_TFLITE_FLOAT32, _TFLITE_INT32, _TFLITE_INT8 = 0, 2, 9


class _FlatbufferEditor:
    """Appends tensors, constants and ops to subgraph 0 of a TFLite object model."""

    def __init__(self, obj):
        from ai_edge_litert import schema_py_generated as schema
        self.schema, self.obj, self.graph = schema, obj, obj.subgraphs[0]

    def constant(self, name: bytes, values: np.ndarray, tensor_type: int, quantization=None) -> int:
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), dtype=np.uint8)
        self.obj.buffers.append(buffer)
        return self.tensor(name, list(values.shape), tensor_type, len(self.obj.buffers) - 1, quantization)

    def tensor(self, name: bytes, shape: list, tensor_type: int, buffer: int = 0, quantization=None) -> int:
        tensor = self.schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = name, shape, tensor_type, buffer
        tensor.quantization = quantization
        self.graph.tensors.append(tensor)
        return len(self.graph.tensors) - 1

    def op(self, builtin: int, inputs: list, outputs: list, options_type: int = 0, options=None,
           version: int = 1):
        """An operator (to be placed by the caller); its opcode is reused or added with ``version``."""
        from ai_edge_litert.tools import flatbuffer_utils
        index = next((i for i, c in enumerate(self.obj.operatorCodes)
                      if flatbuffer_utils.get_builtin_code_from_operator_code(c) == builtin), None)
        if index is not None:
            code = self.obj.operatorCodes[index]
            code.version = max(code.version, version)
        else:
            code = self.schema.OperatorCodeT()
            code.builtinCode = code.deprecatedBuiltinCode = builtin
            code.version = version
            self.obj.operatorCodes.append(code)
            index = len(self.obj.operatorCodes) - 1
        op = self.schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = index, inputs, outputs
        op.builtinOptionsType, op.builtinOptions = options_type, options
        return op

    def values(self, index: int) -> np.ndarray:
        tensor = self.graph.tensors[index]
        data = bytes(bytearray(self.obj.buffers[tensor.buffer].data))
        return np.frombuffer(data, dtype=np.float32).reshape(tensor.shape)

    def make_computed(self, index: int) -> None:
        """Tensor ``index`` loses its constant data and becomes an op output."""
        tensor = self.graph.tensors[index]
        if sum(t.buffer == tensor.buffer for t in self.graph.tensors) == 1:
            self.obj.buffers[tensor.buffer].data = None  # nothing else reads it: drop the bytes
        tensor.buffer = 0  # buffer 0 is the empty one


def tflite_codebook_int8(model: bytes) -> bytes:
    """The codebook stored as int8 codes with one scale and turned back into
    float32 by a DEQUANTIZE op at the start of the graph; the lookup computes in
    float32 on exactly the checkpoint's codes (see ``onnx_codebook_int8``).

    The converter folds the encoder's squared code norms into a float32
    constant as large as half the float32 codebook; it is replaced by
    MUL + SUM + RESHAPE of the dequantized codebook (run once per invocation,
    M*V*D multiply-adds; float32 sums that may differ from the folded ones in
    the last bit), found by its values. ai-edge-quantizer cannot
    quantize a BATCH_MATMUL constant, so this edits the flatbuffer directly.
    A codebook off the int8 grid (an older checkpoint) stays float32."""
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    edit = _FlatbufferEditor(obj)
    schema, graph = edit.schema, edit.graph
    codebooks = []
    for op in graph.operators:
        op_name = flatbuffer_utils.opcode_to_name(obj, op.opcodeIndex)
        if op_name not in _TFLITE_CODEBOOK_OPS:
            continue
        for index in op.inputs:
            tensor = graph.tensors[index]
            in_scope = re.search(_FLOAT_SCOPE_REGEX, (tensor.name or b"").decode(errors="replace"))
            if op_name == "FULLY_CONNECTED" and not in_scope:
                continue  # a Mixer layer kept float, not the codebook
            if tensor.type == _TFLITE_FLOAT32 and obj.buffers[tensor.buffer].data is not None \
                    and len(tensor.shape) >= 2 and index not in codebooks:
                codebooks.append(int(index))
    constants = [i for i, t in enumerate(graph.tensors)
                 if t.type == _TFLITE_FLOAT32 and obj.buffers[t.buffer].data is not None and i not in codebooks]
    first_ops = []
    for index in codebooks:
        values = edit.values(index)
        grid = codebook_int8_grid(values)
        if grid is None:
            continue
        q, scale = grid
        name = graph.tensors[index].name or b"codebook"
        params = schema.QuantizationParametersT()
        params.scale, params.zeroPoint, params.quantizedDimension = [scale], [0], 0
        stored = edit.constant(name + b"_int8", q, _TFLITE_INT8, params)
        norms = _folded_squared_norms(edit, values, constants)
        edit.make_computed(index)
        first_ops.append(edit.op(schema.BuiltinOperator.DEQUANTIZE, [stored], [index], version=2))  # int8 input
        if norms is not None:
            norms_index, axis = norms
            shape = list(graph.tensors[norms_index].shape)
            summed_shape = [n for a, n in enumerate(values.shape) if a != axis]
            squares = edit.tensor(name + b"_squared", list(values.shape), _TFLITE_FLOAT32)
            summed = edit.tensor(name + b"_norms", summed_shape, _TFLITE_FLOAT32)
            axis_const = edit.constant(name + b"_norm_axis", np.array([axis], np.int32), _TFLITE_INT32)
            shape_const = edit.constant(name + b"_norm_shape", np.array(shape, np.int32), _TFLITE_INT32)
            mul, reducer, reshape = schema.MulOptionsT(), schema.ReducerOptionsT(), schema.ReshapeOptionsT()
            reducer.keepDims, reshape.newShape = False, shape
            edit.make_computed(norms_index)
            constants.remove(norms_index)
            first_ops += [edit.op(schema.BuiltinOperator.MUL, [index, index], [squares],
                                  schema.BuiltinOptions.MulOptions, mul),
                          edit.op(schema.BuiltinOperator.SUM, [squares, axis_const], [summed],
                                  schema.BuiltinOptions.ReducerOptions, reducer),
                          edit.op(schema.BuiltinOperator.RESHAPE, [summed, shape_const], [norms_index],
                                  schema.BuiltinOptions.ReshapeOptions, reshape)]
    if not first_ops:
        return model
    graph.operators = first_ops + list(graph.operators)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def _folded_squared_norms(edit: _FlatbufferEditor, codebook: np.ndarray,
                          constants: list[int]) -> Optional[tuple[int, int]]:
    """(tensor index, summed axis) of the float32 constant holding the codes'
    squared norms, or None (the decoder has none)."""
    for axis in range(codebook.ndim):
        norms = (codebook.astype(np.float64) ** 2).sum(axis=axis).ravel()
        for index in constants:
            values = edit.values(index).ravel()
            if values.size == norms.size and np.allclose(values, norms, rtol=1e-5, atol=0.0):
                return index, axis
    return None


def _tflite_interpreter(model: bytes):
    from ai_edge_litert.interpreter import Interpreter
    return Interpreter(model_content=bytes(model), num_threads=1)


def _tflite_fully_connected(interp) -> list[tuple[str, list[int]]]:
    """(output tensor name, weight shape) of the FULLY_CONNECTED ops outside the
    codebook step, in graph order. An op belongs to the codebook step when its
    weight does (the output name may not tell)."""
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    return [(tensors[op["outputs"][0]]["name"], list(tensors[op["inputs"][1]]["shape"]))
            for op in interp._get_ops_details()  # no public API lists the ops
            if op["op_name"] == "FULLY_CONNECTED"
            and not re.search(_FLOAT_SCOPE_REGEX, tensors[op["inputs"][1]]["name"])]


def _tflite_float_ops(fcs: list[tuple[str, list[int]]], precision: str, int8: TfliteStaticInt8,
                      reads_token_ids: bool) -> tuple[str, ...]:
    """Output tensor names of the FULLY_CONNECTED ops a precision keeps float (codebook step aside).

    The last one (the projection onto the code vectors, right before the
    lookup) stays float in every reduced precision: in some batch variants the
    converter folds the lookup's reshape into it and names its output after
    the lookup's scope, which the float-scope rule then keeps float; keeping
    it float everywhere gives every batch variant the same layers (384
    weights). int8 keeps every layer outside the Mixer blocks float
    (``outside_mixer``); int8w the keypoint-mixing ones (see
    ``keypoint_mixing_matmuls``)."""
    if not fcs:
        return ()
    names = [name for name, _ in fcs]
    chosen = [names[-1]]
    if precision == "int8" and int8.float_outside_mixer:
        chosen += outside_mixer(names, reads_token_ids)
    elif precision == "int8w":
        chosen += [name for name, shape in fcs if mixes_keypoints(shape)]
    return tuple(dict.fromkeys(chosen))


def _tflite_channelwise_ops(fcs: list[tuple[str, list[int]]], int8: TfliteStaticInt8) -> tuple[str, ...]:
    """Output tensor names of the int8 FULLY_CONNECTED ops that get per-channel weight scales."""
    if int8.per_channel_weights != "keypoint_mixing":
        return ()
    return tuple(name for name, shape in fcs if mixes_keypoints(shape))


def tflite_op_summary(model: bytes) -> dict[str, int]:
    """Op name -> count, for reports and tests."""
    interp = _tflite_interpreter(model)
    counts: dict[str, int] = {}
    for op in interp._get_ops_details():  # no public API lists the ops
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts
