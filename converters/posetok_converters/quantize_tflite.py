"""Reduced-precision variants of the fp32 TFLite graphs, through ai-edge-quantizer recipes.

As in ``quantize_onnx`` the codebook step (``graphs.FLOAT_SCOPES``) stays
float32 and quantization touches the Mixer layers only; the codebook's own
int8 storage is a flatbuffer edit (``tflite_flatbuffer.tflite_codebook_int8``).
  fp16   float16 weights (float casting), float32 compute.
  int8w  per-channel int8 weights, explicitly dequantized, float32 compute.
  int8   static int8 weights and activations (A8W8), calibrated; weight
         scales per tensor except in the keypoint-mixing layers
         (``TfliteStaticInt8.per_channel_weights``).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

import numpy as np

from . import compat
from .graphs import FLOAT_SCOPE_REGEX, OUTSIDE_MIXER_TEXT, mixes_keypoints, outside_mixer


def _no_quantize_float_scopes() -> dict:
    return {"regex": f".*({FLOAT_SCOPE_REGEX}).*", "operation": "*", "algorithm_key": "no_quantize",
            "op_config": {}}


def _weight_config(num_bits: int, dtype: str = "INT", symmetric: bool = True,
                   granularity: str = "CHANNELWISE") -> dict:
    return {"num_bits": num_bits, "symmetric": symmetric, "granularity": granularity, "dtype": dtype}


@dataclasses.dataclass(frozen=True)
class TfliteStaticInt8:
    """Settings of ai-edge-quantizer's static A8W8 recipe for the ``int8`` row.

    ``ops``: the TFLite ops that get int8 weights and activations. Matrix
    multiplies (FULLY_CONNECTED) only by default (the estimator adds CONV_2D):
    with "*" the quantizer also turns the graph input and the LayerNorm
    arithmetic (MEAN, RSQRT...) into int8, which breaks the float32 input
    contract.
    """
    ops: tuple[str, ...] = ("FULLY_CONNECTED",)
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
        if isinstance(self.ops, str) or not self.ops:
            raise ValueError(f"ops must be a non-empty tuple of TFLite op names, got {self.ops!r}")
        if self.per_channel_weights not in ("all", "keypoint_mixing", "none"):
            raise ValueError(f"per_channel_weights must be all, keypoint_mixing or none, "
                             f"got {self.per_channel_weights!r}")

    def describe(self) -> str:
        acts = "symmetric" if self.activation_symmetric else "asymmetric"
        weights = {"all": "per-channel", "none": "per-tensor",
                   "keypoint_mixing": "per-tensor (per-channel in the keypoint/token-mixing layers)"}[
            self.per_channel_weights]
        text = (f"static A8W8 (ai-edge-quantizer, exact min/max calibration): {weights} int8 weights and {acts} "
                f"per-tensor int8 activations on {', '.join(self.ops)}; other ops float32")
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
        rules = [{"regex": ".*", "operation": op, "algorithm_key": "float_casting",
                  "op_config": {"weight_tensor_config": _weight_config(16, dtype="FLOAT"),
                                "compute_precision": "FLOAT", "explicit_dequantize": True}}
                 for op in ("FULLY_CONNECTED", "CONV_2D")]
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
        rules = [{"regex": ".*", "operation": op, "algorithm_key": "min_max_uniform_quantize",
                  "op_config": int8_config(default)} for op in int8.ops]
        for op in int8.ops:
            rules += by_name(channelwise_ops, "min_max_uniform_quantize", int8_config("CHANNELWISE"), op)
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

    The recipe's per-op calibration walks every op and tensor in Python for
    each batch, which for a batch-1 graph (one batch per sample) took half a
    minute per graph. So it runs on the first batch only, to learn which
    tensors need ranges and in what form; the ranges themselves are the
    interpreter's own min/max over every batch (the profiler-based
    calibrator), cast to that form. The quantized files are the same bytes
    either way (``tests/host/test_quantize_tflite.py``).
    """
    from ai_edge_quantizer import calibrator

    samples = _calibration_batches(float_model, calibration)
    recipe = compat.recipe_manager(quantizer)
    profiler = getattr(calibrator.CalibrationMode, "CALIBRATION_PROFILER_BASED", None)
    wanted = _per_op_ranges(float_model, samples if profiler is None else samples[:1], recipe)
    if profiler is None:
        return wanted
    fast = calibrator.Calibrator(bytearray(float_model), num_threads=1, mode=profiler,
                                 qsv_update_func=_running_min_max)
    fast.calibrate({"serving_default": samples}, recipe)
    stats = fast.get_model_qsvs()
    if any(name not in stats or np.size(qsv["min"]) != 1 or np.size(qsv["max"]) != 1
           for name, qsv in wanted.items()):
        return _per_op_ranges(float_model, samples, recipe)  # per-channel ranges: only the per-op pass has them
    return {name: {**qsv, **{key: np.asarray(stats[name][key]).reshape(np.shape(qsv[key])).astype(qsv[key].dtype)
                             for key in ("min", "max")}}
            for name, qsv in wanted.items()}


def _calibration_batches(float_model: bytes, calibration: np.ndarray) -> list[dict]:
    """``calibration`` cut into the graph's fixed batch size (a remainder is left out), as signature inputs."""
    interp = tflite_interpreter(float_model)
    batch = int(interp.get_input_details()[0]["shape"][0])
    usable = len(calibration) - len(calibration) % batch
    if usable == 0:
        raise ValueError(f"calibration set ({len(calibration)}) is smaller than the model batch {batch}")
    input_name = interp.get_signature_list()["serving_default"]["inputs"][0]
    return [{input_name: calibration[i:i + batch]} for i in range(0, usable, batch)]


def _per_op_ranges(float_model: bytes, samples: list[dict], recipe) -> dict:
    """The recipe's own calibration: each quantized op's tensors, running min/max over ``samples``."""
    from ai_edge_quantizer import calibrator

    cal = calibrator.Calibrator(bytearray(float_model), num_threads=1, qsv_update_func=_running_min_max)
    cal.calibrate({"serving_default": samples}, recipe)  # the recipe picks the tensors
    return cal.get_model_qsvs()


def _tflite_model_recipe(float_model: bytes, precision: str, int8: TfliteStaticInt8) -> list[dict]:
    interp = tflite_interpreter(float_model)
    fcs, renamed_float = _tflite_fully_connected(interp)
    channelwise = _tflite_channelwise_ops(fcs, int8) if precision == "int8" else ()
    reads_ids = np.issubdtype(interp.get_input_details()[0]["dtype"], np.integer)
    return tflite_recipe(precision, int8, _tflite_float_ops(fcs, precision, int8, reads_ids) + renamed_float,
                         channelwise)


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


def tflite_interpreter(model: bytes):
    from ai_edge_litert.interpreter import Interpreter
    return Interpreter(model_content=bytes(model), num_threads=1)


def _tflite_fully_connected(interp) -> tuple[list[tuple[str, list[int]]], tuple[str, ...]]:
    """The FULLY_CONNECTED ops, in graph order: (output tensor name, weight shape) of those outside the float-only
    scopes, and the output names of those inside whose output does not carry the scope's name.

    An op belongs to a float-only scope when its weight does: the float-scope rule of the recipe matches output
    names, and the converter names a graph output after the signature, so the op writing it (the estimator's
    soft-decoder layer that writes ``keypoints``) must be kept float by name."""
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    outside, renamed = [], []
    for op in compat.tflite_ops(interp):
        if op["op_name"] != "FULLY_CONNECTED":
            continue
        name, weight = tensors[op["outputs"][0]]["name"], tensors[op["inputs"][1]]
        if not re.search(FLOAT_SCOPE_REGEX, weight["name"]):
            outside.append((name, list(weight["shape"])))
        elif not re.search(FLOAT_SCOPE_REGEX, name):
            renamed.append(name)
    return outside, tuple(renamed)


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
    interp = tflite_interpreter(model)
    counts: dict[str, int] = {}
    for op in compat.tflite_ops(interp):
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts
