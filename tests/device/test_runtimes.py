"""The tiny MLP saved by tests/host/test_tiny_models.py, run here on aarch64
with onnxruntime and LiteRT: the numbers must match the host's."""
from __future__ import annotations

import os

import numpy as np
import pytest

from posetok.backends import litert_interpreter_class


def test_onnxruntime_on_aarch64_matches_host(host_result):
    import onnxruntime as ort
    saved = np.load(host_result("tiny/onnx_host.npz"))
    sess = ort.InferenceSession(str(host_result("tiny/tiny_mlp.onnx")), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": saved["x"]})[0]
    # float results may differ in the last bits between x86 and aarch64 builds
    np.testing.assert_allclose(y, saved["y"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, saved["reference"], rtol=1e-5, atol=1e-5)


@pytest.mark.litert
def test_litert_distribution_is_the_one_under_test():
    _, distribution = litert_interpreter_class()
    expected = os.environ.get("POSETOK_EXPECT_LITERT")
    if expected is None:
        pytest.fail("POSETOK_EXPECT_LITERT is not set: run the device suite with make device-test")
    assert distribution == expected


@pytest.mark.litert
def test_litert_on_aarch64_matches_host(host_result):
    Interpreter, distribution = litert_interpreter_class()
    saved = np.load(host_result("tiny/tflite_host.npz"))
    interp = Interpreter(model_path=str(host_result("tiny/tiny_mlp.tflite")))
    interp.allocate_tensors()
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.set_tensor(inp["index"], saved["x"])
    interp.invoke()
    y = interp.get_tensor(outp["index"])
    np.testing.assert_allclose(y, saved["y"], rtol=1e-5, atol=1e-6, err_msg=distribution)
    np.testing.assert_allclose(y, saved["reference"], rtol=1e-5, atol=1e-5, err_msg=distribution)
