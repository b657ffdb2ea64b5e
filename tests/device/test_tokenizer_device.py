"""The exported default model on aarch64, through the installed wheel's
PoseTokenizer, against what the host made of the same files and poses
(tests/host/test_device_bundle.py)."""
from __future__ import annotations

import numpy as np
import pytest

from posetok import PoseTokenizer

litert = pytest.mark.litert
COMBOS = [pytest.param("onnxruntime", "fp32"), pytest.param("onnxruntime", "int8"),
          pytest.param("litert", "fp32", marks=litert), pytest.param("litert", "int8", marks=litert)]


@pytest.mark.parametrize("backend, precision", COMBOS)
def test_same_tokens_and_keypoints_as_the_host(host_result, backend, precision):
    saved = np.load(host_result(f"tokens_{backend}_{precision}.npz"))
    with PoseTokenizer.from_bundle(host_result("bundle"), backend=backend, precision=precision) as tok:
        ids = tok.encode(saved["poses"])
        decoded_from_host_ids = tok.decode(saved["ids"])
    agreement = float((ids == saved["ids"]).mean())
    print(f"{backend}/{precision}: token agreement with the host {agreement:.5f} over {ids.size} tokens")
    assert agreement >= 0.999, f"{backend}/{precision}: only {agreement:.5f} of token ids match the host"
    diff = np.abs(decoded_from_host_ids - saved["keypoints"])
    err, mean_err = float(diff.max()), float(diff.mean())
    print(f"{backend}/{precision}: decoder |aarch64 - x86_64| max {err:.2e} px, mean {mean_err:.2e} px")
    if precision == "fp32":
        assert err <= 1e-4, f"fp32 decoder differs from the host by {err} px"
    else:
        # onnxruntime's int8 GEMMs differ between x86 (u8s8) and ARM (SDOT)
        # in intermediate rounding: rare values move by up to a few tenths of
        # a pixel (the int8 decoder's own error vs torch is up to 1.6 px).
        assert err <= 1.0 and mean_err <= 0.005, f"int8 decoder differs from the host: max {err}, mean {mean_err} px"


def test_bench_runs_on_the_device(host_result, capsys):
    import json

    from posetok.bench_cli import main as bench_main
    assert bench_main([str(host_result("bundle")), "--backend", "onnxruntime", "--precision", "int8",
                       "--batch", "4", "--iterations", "5", "--warmup", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["machine"] == "aarch64" and result["emulated_cpu"]
    assert (result["backend"], result["precision"], result["batch"]) == ("onnxruntime", "int8", 4)
    assert 0 < result["p50_us"] <= result["p99_us"] and result["peak_rss_mb"] > 10
