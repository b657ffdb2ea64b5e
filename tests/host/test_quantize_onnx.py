"""Weight-only int8 (``int8w``) on a hand-built graph: Conv and MatMul weights
become int8 values per output channel times a float32 scale, restored by
Cast + Mul, and the graph computes what the float one does within the
rounding of those weights."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from posetok_converters.quantize_onnx import onnx_int8_weights


def conv_matmul_graph(rng: np.random.Generator) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """X [1,3,8,8] -> Conv 3x3 (5 channels, stride 2) -> Flatten -> MatMul [80, 7] -> Y [1, 7]."""
    conv_w = rng.normal(0.0, 1.0, (5, 3, 3, 3)).astype(np.float32)
    conv_w[2] *= 0.01                    # a quiet channel: its own scale, not the loud channels'
    mm_w = rng.normal(0.0, 1.0, (80, 7)).astype(np.float32)
    mm_w[:, 4] *= 100.0
    nodes = [helper.make_node("Conv", ["X", "conv_w"], ["c"], name="conv", strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["c"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "mm_w"], ["Y"], name="matmul")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 7])],
                              [numpy_helper.from_array(conv_w, "conv_w"), numpy_helper.from_array(mm_w, "mm_w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model, conv_w, mm_w


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x})[0]


def test_int8w_stores_conv_and_matmul_weights_per_output_channel():
    rng = np.random.default_rng(3)
    model, conv_w, mm_w = conv_matmul_graph(rng)
    quantized = onnx_int8_weights(model, float_keypoint_mixing=False)
    onnx.checker.check_model(quantized)
    inits = {i.name: numpy_helper.to_array(i) for i in quantized.graph.initializer}
    assert sorted(inits) == ["conv_w__int8", "conv_w__scale", "mm_w__int8", "mm_w__scale"]
    for name, w, axis in (("conv_w", conv_w, 0), ("mm_w", mm_w, 1)):
        q, scale = inits[f"{name}__int8"], inits[f"{name}__scale"]
        assert q.dtype == np.int8 and q.shape == w.shape and np.abs(q).max() == 127
        assert scale.dtype == np.float32 and scale.size == w.shape[axis] and scale.shape[axis] == w.shape[axis]
        restored = q.astype(np.float32) * scale
        # each channel rounds to its own step: the quiet conv channel and the loud matmul column keep
        # their error within half of their own step
        assert (np.abs(restored - w) <= 0.5 * scale + 1e-7).all(), name
    # the quantized graph is the float graph on the restored weights (Cast + Mul at load, nothing else)
    on_restored = onnx.ModelProto()
    on_restored.CopyFrom(model)
    for init in on_restored.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(inits[f"{init.name}__int8"].astype(np.float32)
                                              * inits[f"{init.name}__scale"], init.name))
    x = rng.normal(0.0, 1.0, (1, 3, 8, 8)).astype(np.float32)
    got, want, original = run(quantized, x), run(on_restored, x), run(model, x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)
    assert not np.allclose(got, original, rtol=1e-6, atol=1e-4)          # the weights did change


def test_int8w_leaves_weights_it_cannot_quantize_per_channel_float():
    """A Conv weight that is a graph input, not an initializer, stays as it is."""
    rng = np.random.default_rng(4)
    model, _, _ = conv_matmul_graph(rng)
    conv_w = [i for i in model.graph.initializer if i.name == "conv_w"][0]
    model.graph.input.append(helper.make_tensor_value_info("conv_w", TensorProto.FLOAT, list(conv_w.dims)))
    model.graph.initializer.remove(conv_w)
    quantized = onnx_int8_weights(model, float_keypoint_mixing=False)
    assert sorted(i.name for i in quantized.graph.initializer) == ["mm_w__int8", "mm_w__scale"]
