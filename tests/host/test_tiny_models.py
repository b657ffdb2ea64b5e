"""A tiny two-layer MLP as ONNX and TFLite: the host runtimes must match a
numpy reference, and the files plus host outputs are saved for the device
suite, which runs the same files under QEMU aarch64 and compares."""
from __future__ import annotations

import numpy as np
import pytest

IN, HIDDEN, OUT, BATCH = 8, 16, 4, 5


def tiny_weights():
    rng = np.random.default_rng(1234)
    return {
        "w1": rng.standard_normal((IN, HIDDEN)).astype(np.float32) * 0.5,
        "b1": rng.standard_normal(HIDDEN).astype(np.float32) * 0.1,
        "w2": rng.standard_normal((HIDDEN, OUT)).astype(np.float32) * 0.5,
        "b2": rng.standard_normal(OUT).astype(np.float32) * 0.1,
        "x": rng.standard_normal((BATCH, IN)).astype(np.float32),
    }


def numpy_mlp(p, x):
    return np.maximum(x @ p["w1"] + p["b1"], 0.0) @ p["w2"] + p["b2"]


def build_onnx(p, path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    init = [numpy_helper.from_array(p[k], k) for k in ("w1", "b1", "w2", "b2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["y0"]),
             helper.make_node("Add", ["y0", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "tiny_mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", IN])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", OUT])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by older onnxruntime builds on boards
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build_tflite(p, path):
    import litert_torch
    import torch
    mlp = torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, OUT)).eval()
    with torch.no_grad():
        mlp[0].weight.copy_(torch.from_numpy(p["w1"].T.copy()))
        mlp[0].bias.copy_(torch.from_numpy(p["b1"]))
        mlp[2].weight.copy_(torch.from_numpy(p["w2"].T.copy()))
        mlp[2].bias.copy_(torch.from_numpy(p["b2"]))
    litert_torch.convert(mlp, (torch.from_numpy(p["x"]),)).export(str(path))


@pytest.fixture(scope="module")
def tiny(host_results_dir):
    out = host_results_dir / "tiny"
    out.mkdir(exist_ok=True)
    p = tiny_weights()
    build_onnx(p, out / "tiny_mlp.onnx")
    build_tflite(p, out / "tiny_mlp.tflite")
    return out, p


def test_onnxruntime_matches_numpy_and_saves_host_output(tiny):
    import onnxruntime as ort
    out, p = tiny
    sess = ort.InferenceSession(str(out / "tiny_mlp.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": p["x"]})[0]
    np.testing.assert_allclose(y, numpy_mlp(p, p["x"]), rtol=1e-5, atol=1e-5)
    np.savez(out / "onnx_host.npz", x=p["x"], y=y, reference=numpy_mlp(p, p["x"]))


def test_litert_matches_numpy_and_saves_host_output(tiny):
    from ai_edge_litert.interpreter import Interpreter
    out, p = tiny
    interp = Interpreter(model_path=str(out / "tiny_mlp.tflite"))
    interp.allocate_tensors()
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    assert tuple(inp["shape"]) == (BATCH, IN)
    interp.set_tensor(inp["index"], p["x"])
    interp.invoke()
    y = interp.get_tensor(outp["index"])
    np.testing.assert_allclose(y, numpy_mlp(p, p["x"]), rtol=1e-5, atol=1e-5)
    np.savez(out / "tflite_host.npz", x=p["x"], y=y, reference=numpy_mlp(p, p["x"]))


def test_litert_session_calls_from_several_threads_take_turns(tiny):
    """One interpreter holds one set of tensors; unguarded, threads' set/invoke/get interleave (LiteRT raises
    "There is at least 1 reference to internal data", or a thread reads another's outputs)."""
    from concurrent.futures import ThreadPoolExecutor

    from posetok.backends import LiteRTSession
    out, p = tiny
    session = LiteRTSession(out / "tiny_mlp.tflite")
    inputs = [np.random.default_rng(k).standard_normal((BATCH, IN)).astype(np.float32) for k in range(8)]

    def many(k):
        return [float(np.abs(session.run(inputs[k]) - numpy_mlp(p, inputs[k])).max()) for _ in range(300)]
    with ThreadPoolExecutor(8) as pool:
        worst = max(max(errors) for errors in pool.map(many, range(8)))
    assert worst < 1e-4
