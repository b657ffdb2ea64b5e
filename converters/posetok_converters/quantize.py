"""Reduced-precision variants of the fp32 graphs, ONNX and TFLite.

Every scheme leaves the codebook step (``graphs.FLOAT_SCOPES``) in float32:
the squared-L2 scores, the argmin and the codebook gather. Quantization
touches the Mixer layers only. The reduced precisions store the codebook
itself as float16, turned back into float32 at load (``onnx_codebook_fp16``,
``tflite_codebook_fp16``); training leaves the codes float16-representable.

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
  int8   static int8 weights and activations (A8W8), calibrated.
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

from .graphs import FLOAT_SCOPES

# -- descriptions recorded in the manifest (one per format/precision) --------
SCHEMES = {
    ("onnx", "fp32"): "float32 weights and activations",
    ("onnx", "fp16"): "float16 weights (codebook included) cast to float32 at load; float32 activations",
    ("onnx", "int8w"): "int8 weights (symmetric, per output channel) restored to float32 by Cast+Mul at load; "
                       "float32 activations; keypoint-mixing matrices (~4% of the weights) kept float32; "
                       "codebook stored as float16, cast to float32 at load",
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


def _fp16_storage(model: onnx.ModelProto, codebook_only: bool) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    codebook = _float_only_inputs(out)
    casts = [_store_as_fp16(init) for init in out.graph.initializer
             if init.data_type == TensorProto.FLOAT and _numel(init) > 1
             and (init.name in codebook or not codebook_only)]
    _prepend_nodes(out, casts)
    return out


def onnx_fp16_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """float32 initializers (codebook included) -> float16 + a Cast back to float32."""
    return _fp16_storage(model, codebook_only=False)


def onnx_codebook_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """The codebook stored as float16 and cast back to float32 at load; the
    distances, argmin and gather still run in float32. Per-token codebooks
    (M*V*D floats, in the encoder and again in the decoder) would otherwise be
    a large fixed share of a reduced-precision file. Training leaves the codes
    float16-representable (``VectorQuantizer.round_to_float16``), so this is
    lossless for them; an older checkpoint's codes move by < 2^-11 relative
    (measured on the previous shared-codebook model: 0.05% of token ids)."""
    return _fp16_storage(model, codebook_only=True)


def keypoint_mixing_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMuls whose weight has a keypoint dimension: the token-mixing MLPs and
    the keypoint<->token maps. They hold ~4% of the weights but, measured on
    the shipped model, cause most of the tokens weight-only int8 flips
    (int8w keeps 96.8% of tokens with them in int8, 99.1% with them in float)."""
    inits = _initializers(model)
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and node_scope(n) is None and n.input[1] in inits
            and NUM_KEYPOINTS in list(inits[n.input[1]].dims)]


def onnx_int8_weights(model: onnx.ModelProto, float_keypoint_mixing: bool = True) -> onnx.ModelProto:
    """MatMul weights [K, N] -> int8 per output channel (axis 1), restored by Cast + Mul.

    Not DequantizeLinear: onnxruntime fuses DequantizeLinear -> MatMul into
    MatMulNBits, which quantizes the activations to int8 at run time (measured:
    97.0% vs 98.0% tokens kept on the quick model). Cast + Mul of constants is
    folded once at session start, so the MatMuls run in float32 on weights
    that are exactly the int8 values times their scales.
    """
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
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        new_inits = [numpy_helper.from_array(q, name + "__int8"),
                     numpy_helper.from_array(scale.astype(np.float32)[None, :], name + "__scale")]
        restore += [helper.make_node("Cast", [new_inits[0].name], [name + "__float"], to=TensorProto.FLOAT,
                                     name=f"int8w_cast/{name}"),
                    helper.make_node("Mul", [name + "__float", new_inits[1].name], [name],
                                     name=f"int8w_scale/{name}")]
        replaced[name] = new_inits
    kept = [init for init in out.graph.initializer if init.name not in replaced]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    for new_inits in replaced.values():
        out.graph.initializer.extend(new_inits)
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
    # The first MatMul (2 coordinates -> features: int8 input rounding is 0.25 px)
    # and the last (features -> code vector, right before the argmin) stay
    # float32: 576 weights in all, and on the full-size model they lift the
    # int8 encoder from 95.9% to 97.1% of tokens kept (each alone: +0.45%/+0.7%).
    float_first_last: bool = True
    extra_float_nodes: tuple[str, ...] = ()  # node names kept float besides the codebook step

    def describe(self) -> str:
        method = self.calibrate_method + (f" {self.percentile}" if self.calibrate_method == "Percentile" else "")
        parts = [f"static QDQ S8S8 (onnxruntime.quantization), {method} calibration",
                 "per-channel int8 weights" if self.per_channel else "per-tensor int8 weights",
                 ("symmetric" if self.activation_symmetric else "asymmetric") + " per-tensor int8 activations",
                 "quantized ops: " + ", ".join(self.op_types or ("all supported",)) + "; other ops float32",
                 "biases, LayerNorm parameters and the codebook stored as float16"]
        if self.float_first_last:
            parts.append("first and last MatMul (input embedding, output projection) kept float32")
        if self.extra_float_nodes:
            parts.append("kept float: " + ", ".join(self.extra_float_nodes))
        return "; ".join(parts)


def edge_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of the first and last MatMul outside the codebook step (nodes are in topological order)."""
    names = [n.name for n in model.graph.node if n.op_type == "MatMul" and node_scope(n) is None]
    return sorted({names[0], names[-1]}) if names else []


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
    if settings.float_first_last:
        exclude += edge_matmuls(model)
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
    float_first_last: bool = True  # as OnnxStaticInt8.float_first_last

    def describe(self) -> str:
        acts = "symmetric" if self.activation_symmetric else "asymmetric"
        text = (f"static A8W8 (ai-edge-quantizer, exact min/max calibration): int8 per-channel weights and {acts} "
                f"per-tensor int8 activations on {self.ops}; other ops float32")
        if self.float_first_last:
            text += "; first and last FULLY_CONNECTED (input embedding, output projection) kept float32"
        return text


def tflite_recipe(precision: str, int8: TfliteStaticInt8 = TfliteStaticInt8(),
                  float_ops: tuple[str, ...] = ()) -> list[dict]:
    """ai-edge-quantizer recipe for one precision; the float scopes come last so they win.

    ``float_ops``: output tensor names of further ops to keep float.
    """
    if precision == "fp16":
        rule = {"regex": ".*", "operation": "FULLY_CONNECTED", "algorithm_key": "float_casting",
                "op_config": {"weight_tensor_config": _weight_config(16, dtype="FLOAT"),
                              "compute_precision": "FLOAT", "explicit_dequantize": True}}
    elif precision == "int8w":
        rule = {"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize",
                "op_config": {"weight_tensor_config": _weight_config(8),
                              "compute_precision": "FLOAT", "explicit_dequantize": True}}
    elif precision == "int8":
        rule = {"regex": ".*", "operation": int8.ops, "algorithm_key": "min_max_uniform_quantize",
                "op_config": {"activation_tensor_config": _weight_config(8, symmetric=int8.activation_symmetric,
                                                                         granularity="TENSORWISE"),
                              "weight_tensor_config": _weight_config(8),
                              "compute_precision": "INTEGER", "explicit_dequantize": False}}
    else:
        raise ValueError(f"no TFLite quantization recipe for precision {precision!r}")
    keep = [{"regex": "^" + re.escape(name) + ";$", "operation": "*", "algorithm_key": "no_quantize",
             "op_config": {}} for name in float_ops]
    return [rule, _no_quantize_float_scopes()] + keep


def _running_min_max(qsv: dict, new: dict) -> dict:
    if not qsv:
        return new
    return {"min": np.minimum(qsv["min"], new["min"]), "max": np.maximum(qsv["max"], new["max"])}


def tflite_calibrate(float_model: bytes, calibration: np.ndarray, int8: TfliteStaticInt8 = TfliteStaticInt8()) -> dict:
    """Min/max of the int8 recipe's activations over all of ``calibration``.

    ai-edge-quantizer's default merges batches by a moving average (0.95), so
    its ranges depend on the batch size: the batch-1 graph saw narrower ranges
    than the batch-64 one and, measured, agreed with it on only 75% of tokens.
    The exact running min/max gives every batch variant the same ranges.
    """
    from ai_edge_quantizer import calibrator, quantizer as aeq

    q = aeq.Quantizer(bytearray(float_model), tflite_recipe("int8", int8, _tflite_float_ops(float_model, "int8", int8)))
    batch = _tflite_input_batch(float_model)
    usable = len(calibration) - len(calibration) % batch
    if usable == 0:
        raise ValueError(f"calibration set ({len(calibration)}) is smaller than the model batch {batch}")
    input_name = _tflite_signature_input(float_model)
    samples = [{input_name: calibration[i:i + batch]} for i in range(0, usable, batch)]
    cal = calibrator.Calibrator(bytearray(float_model), num_threads=1, qsv_update_func=_running_min_max)
    cal.calibrate({"serving_default": samples}, q._recipe_manager)  # the recipe picks which tensors to observe
    return cal.get_model_qsvs()


def tflite_quantize(float_model: bytes, precision: str, calibration: Optional[np.ndarray] = None,
                    int8: TfliteStaticInt8 = TfliteStaticInt8()) -> bytes:
    """Quantize a float32 .tflite flatbuffer; ``int8`` needs ``calibration`` data."""
    from ai_edge_quantizer import quantizer as aeq

    q = aeq.Quantizer(bytearray(float_model), tflite_recipe(precision, int8,
                                                             _tflite_float_ops(float_model, precision, int8)))
    ranges = None
    if q.need_calibration:
        if calibration is None:
            raise ValueError(f"{precision} TFLite quantization needs calibration data")
        ranges = tflite_calibrate(float_model, calibration, int8)
    return bytes(q.quantize(ranges, enable_progress_bar=False, enable_progress_report=False).quantized_model)


# The lookup ops whose constant operand is the codebook (per-token codebooks:
# the distances are a BATCH_MATMUL, whose batched graphs broadcast the
# codebook first, and the decoder's gather an EMBEDDING_LOOKUP).
_TFLITE_CODEBOOK_OPS = ("BATCH_MATMUL", "BROADCAST_TO", "EMBEDDING_LOOKUP", "GATHER")
_TFLITE_FLOAT32, _TFLITE_FLOAT16, _TFLITE_DEQUANTIZE = 0, 1, 6


def tflite_codebook_fp16(model: bytes) -> bytes:
    """The codebook stored as float16 and turned back into float32 by a
    DEQUANTIZE op at the start of the graph (the TFLite form of float16
    weights); the lookup itself computes in float32. ai-edge-quantizer has no
    float casting for BATCH_MATMUL, so this edits the flatbuffer directly."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    graph = obj.subgraphs[0]
    codebooks = []
    for op in graph.operators:
        if flatbuffer_utils.opcode_to_name(obj, op.opcodeIndex) not in _TFLITE_CODEBOOK_OPS:
            continue
        for index in op.inputs:
            tensor = graph.tensors[index]
            data = obj.buffers[tensor.buffer].data
            if tensor.type == _TFLITE_FLOAT32 and data is not None and len(tensor.shape) >= 2 \
                    and index not in codebooks:
                codebooks.append(int(index))
    if not codebooks:
        return model
    opcode = next((i for i, c in enumerate(obj.operatorCodes)
                   if flatbuffer_utils.get_builtin_code_from_operator_code(c) == _TFLITE_DEQUANTIZE), None)
    if opcode is None:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = _TFLITE_DEQUANTIZE
        code.version = 3  # float16 input
        obj.operatorCodes.append(code)
        opcode = len(obj.operatorCodes) - 1
    dequantize = []
    for index in codebooks:
        tensor = graph.tensors[index]
        values = np.frombuffer(bytes(bytearray(obj.buffers[tensor.buffer].data)), dtype=np.float32)
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(values.astype(np.float16).tobytes(), dtype=np.uint8)
        obj.buffers.append(buffer)
        half = schema.TensorT()
        half.name = (tensor.name or b"codebook") + b"_fp16"
        half.shape = list(tensor.shape)
        half.type = _TFLITE_FLOAT16
        half.buffer = len(obj.buffers) - 1
        graph.tensors.append(half)
        if sum(t.buffer == tensor.buffer for t in graph.tensors) == 1:
            obj.buffers[tensor.buffer].data = None  # nothing else reads it: drop the float32 bytes
        tensor.buffer = 0  # buffer 0 is the empty one: the tensor is now computed
        op = schema.OperatorT()
        op.opcodeIndex = opcode
        op.inputs = [len(graph.tensors) - 1]
        op.outputs = [index]
        dequantize.append(op)
    graph.operators = dequantize + list(graph.operators)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def _tflite_interpreter(model: bytes):
    from ai_edge_litert.interpreter import Interpreter
    return Interpreter(model_content=bytes(model), num_threads=1)


def _tflite_input_batch(model: bytes) -> int:
    return int(_tflite_interpreter(model).get_input_details()[0]["shape"][0])


def _tflite_float_ops(model: bytes, precision: str, int8: TfliteStaticInt8) -> tuple[str, ...]:
    """Output tensor names of the FULLY_CONNECTED ops a precision keeps float (codebook step aside).

    The last one (the projection onto the code vectors, right before the
    lookup) stays float in every reduced precision: in some batch variants the
    converter folds the lookup's reshape into it and names its output after
    the lookup's scope, which the float-scope rule then keeps float; keeping
    it float everywhere gives every batch variant the same layers (384
    weights). int8 keeps the first one float too; int8w the keypoint-mixing
    ones (see ``keypoint_mixing_matmuls``)."""
    interp = _tflite_interpreter(model)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    # An op belongs to the codebook step when its weight does (the output name may not tell).
    fcs = [op for op in interp._get_ops_details()  # no public API lists the ops
           if op["op_name"] == "FULLY_CONNECTED"
           and not re.search(_FLOAT_SCOPE_REGEX, tensors[op["inputs"][1]]["name"])]
    if not fcs:
        return ()
    chosen = [fcs[-1]]
    if precision == "int8" and int8.float_first_last:
        chosen.append(fcs[0])
    elif precision == "int8w":
        chosen += [op for op in fcs if NUM_KEYPOINTS in list(tensors[op["inputs"][1]]["shape"])]
    return tuple(dict.fromkeys(tensors[op["outputs"][0]]["name"] for op in chosen))


def _tflite_signature_input(model: bytes) -> str:
    sig = _tflite_interpreter(model).get_signature_list()["serving_default"]
    return sig["inputs"][0]


def tflite_op_summary(model: bytes) -> dict[str, int]:
    """Op name -> count, for reports and tests."""
    interp = _tflite_interpreter(model)
    counts: dict[str, int] = {}
    for op in interp._get_ops_details():  # no public API lists the ops
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts
