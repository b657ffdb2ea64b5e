"""The image -> pose estimator on aarch64, through the installed wheel's
PoseEstimator and crop_nv21 kernel, against what the host made of the same
bundle and the same NV21 frames (tests/host/test_device_estimator.py), and the
frame -> pose pipeline benchmark on the device."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from posetok import PoseEstimator
from posetok.skeleton import FRAME_SIZE
from test_tokenizer_device import tflite_runtime_int8


def _load_host_module():
    path = Path(__file__).resolve().parents[1] / "host" / "test_device_estimator.py"
    spec = importlib.util.spec_from_file_location("device_estimator_host", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


host = _load_host_module()   # the frames' layout and run_frames: the very calls the host made
litert = pytest.mark.litert
COMBOS = [pytest.param("onnxruntime", "fp32"), pytest.param("onnxruntime", "int8"),
          pytest.param("litert", "fp32", marks=litert), pytest.param("litert", "int8", marks=litert)]
# fp32 on aarch64 vs x86_64 (onnxruntime 1.32 and ai-edge-litert 1.4, QEMU cortex-a76), 12 frames of 96 x 96 px with
# their person boxes, shipped estimator: every token id and refine box equal, keypoints within 2.3e-05 frame px (mean
# 2.7e-06 to 2.8e-06), scores within 5.1e-07, presence within 1.8e-07 (the graphs' float sums run in another order);
# the tolerances leave orders of magnitude.
FP32_KEYPOINT_PX = 0.01
FP32_SCORE = 1e-4
FP32_PRESENCE = 1e-4        # a logistic of the scores' logs: it moves by about the scores' relative difference
# int8: onnxruntime's int8 kernels round differently on x86 (u8s8) and ARM (SDOT), so its ids and keypoints on the
# board may differ a little from the host's int8 ones, while ai-edge-litert 1.4 matches them; the measured figures for
# the shipped weights are in README "Known limits" (-s -k int8_within prints them). Bound: the host's int8-vs-fp32
# distance plus INT8_MARGIN_PX (model-frame px), at most INT8_ID_FLIPS of the token ids differing from the host's int8
# ids. The ids of one int8 rounding against another's flip where the classifier's flat probabilities nearly tie, and
# the share moves with the weights (none with run 12's and the shipped ones, 3.9-12 % with runs 9, 13, 14 and the
# mean of 14 and 16 on these 12 frames), so the floor only catches ids gone to random (255 in 256 would differ); the
# keypoint bounds hold the precision.
INT8_MARGIN_PX = 0.25
INT8_ID_FLIPS = 0.25
# tflite-runtime 2.14 rounds int8 differently from ai-edge-litert (test_tokenizer_device.tflite_runtime_int8), and the
# estimator's token probabilities are flat (a soft decode of many near-tied codes): about half of the argmax ids
# differ from the host's int8 ids (the host's own int8 ids differ from its fp32 ones about as often, the manifest's
# parity rows) and the keypoints move by a fraction of a model px, while the MPJPE against the true poses stays near
# the host's (README "Known limits"). Such a board is held, like every int8 file, to its error against the truth (at
# most INT8_MARGIN_PX above the host's int8), its ids to a floor that catches ids at random (255 in 256 would differ).
TFLITE_RUNTIME_ID_FLIPS = 0.75


@pytest.fixture(scope="module")
def saved(host_result):
    return np.load(host_result(host.RESULTS))


@pytest.fixture(scope="module")
def device_runs(saved, host_result):
    """What this machine makes of the saved frames, per (backend, precision) the host saved."""
    runs = {}

    def run(backend: str, precision: str) -> dict:
        if f"{backend}/{precision}" not in list(saved["combos"]):
            pytest.skip(f"the host saved no {backend} {precision} estimator results (the bundle has no such file)")
        if (backend, precision) not in runs:
            with PoseEstimator.from_bundle(host_result("bundle"), backend=backend, precision=precision) as est:
                runs[(backend, precision)] = host.run_frames(est, saved["y"], saved["vu"], saved["person_boxes"])
        return runs[(backend, precision)]
    return run


def model_px(saved, distance_frame_px: np.ndarray) -> np.ndarray:
    """Frame-pixel distances [n, ...] in 64-px model-frame pixels (each frame's box side / 64 per pixel)."""
    scale = FRAME_SIZE / saved["boxes"][:, 2].astype(np.float32)
    return distance_frame_px * scale.reshape((-1,) + (1,) * (distance_frame_px.ndim - 1))


@pytest.mark.parametrize("backend, precision", [c for c in COMBOS if "fp32" in c.values])
def test_fp32_same_token_ids_and_keypoints_as_the_host(saved, device_runs, backend, precision):
    got = device_runs(backend, precision)
    key = f"{backend}_{precision}"
    ids_equal = float((got["box_token_ids"] == saved[f"{key}_box_token_ids"]).mean())
    diff = np.abs(got["box_keypoints"] - saved[f"{key}_box_keypoints"])
    score_diff = float(np.abs(got["box_scores"] - saved[f"{key}_box_scores"]).max())
    presence_diff = float(np.abs(got["box_presence"] - saved[f"{key}_box_presence"]).max())
    print(f"{key}, box given: token ids equal {ids_equal:.4f}; keypoints |aarch64 - x86_64| max {diff.max():.2e} "
          f"mean {diff.mean():.2e} frame px; scores max {score_diff:.2e}; presence max {presence_diff:.2e}")
    assert ids_equal == 1.0, f"{key}: {ids_equal:.4f} of token ids equal the host's"
    assert diff.max() <= FP32_KEYPOINT_PX, f"{key}: keypoints differ from the host's by {diff.max()} px"
    assert score_diff <= FP32_SCORE, f"{key}: scores differ from the host's by {score_diff}"
    assert presence_diff <= FP32_PRESENCE, f"{key}: presence differs from the host's by {presence_diff}"
    # no box: the coarse pass's keypoints set the refine box, so the same keypoints give the same box
    same_box = (got["search_boxes"] == saved[f"{key}_search_boxes"]).all(axis=1)
    search_diff = np.abs(got["search_keypoints"] - saved[f"{key}_search_keypoints"])[same_box]
    print(f"{key}, no box: {int(same_box.sum())}/{len(same_box)} refine boxes equal the host's; keypoints "
          f"max {search_diff.max():.2e} frame px")
    assert same_box.all(), f"{key}: refine boxes differ from the host's in frames {np.flatnonzero(~same_box)}"
    assert search_diff.max() <= FP32_KEYPOINT_PX
    assert (got["search_token_ids"] == saved[f"{key}_search_token_ids"]).all()


@pytest.mark.parametrize("backend, precision", [c for c in COMBOS if "int8" in c.values])
def test_int8_within_the_measured_bound_of_fp32(saved, device_runs, backend, precision):
    got = device_runs(backend, precision)
    key = f"{backend}_{precision}"

    def model_px_from(keypoints: np.ndarray, reference: np.ndarray) -> np.ndarray:
        return model_px(saved, np.linalg.norm(keypoints - reference, axis=-1))

    fp32 = saved[f"{backend}_fp32_box_keypoints"]
    device_vs_fp32 = float(model_px_from(got["box_keypoints"], fp32).mean())
    host_vs_fp32 = float(saved[f"{backend}_int8_vs_fp32_model_px"])
    vs_host = model_px_from(got["box_keypoints"], saved[f"{key}_box_keypoints"])
    flips = float((got["box_token_ids"] != saved[f"{key}_box_token_ids"]).mean())
    device_error = float(model_px_from(got["box_keypoints"], saved["truth_frame_px"]).mean())
    host_error = float(model_px_from(saved[f"{key}_box_keypoints"], saved["truth_frame_px"]).mean())
    print(f"{key}: vs the host's fp32 {device_vs_fp32:.4f} model px (host int8 {host_vs_fp32:.4f}); vs the "
          f"host's int8 max {vs_host.max():.4f} mean {vs_host.mean():.4f} model px; token ids differing {flips:.4f}; "
          f"MPJPE {device_error:.4f} model px (host int8 {host_error:.4f})")
    if tflite_runtime_int8(backend, precision):
        # another int8 rounding, so other keypoints: judged, like every int8 file, by the error against the truth
        assert device_error <= host_error + INT8_MARGIN_PX, \
            f"{key}: MPJPE {device_error} model px on aarch64, {host_error} with the host's int8"
        assert flips <= TFLITE_RUNTIME_ID_FLIPS, f"{key}: {flips:.4f} of token ids differ from the host's int8 ids"
        return
    assert device_vs_fp32 <= host_vs_fp32 + INT8_MARGIN_PX, \
        f"{key}: {device_vs_fp32} model px from fp32 on aarch64, {host_vs_fp32} on the host"
    assert flips <= INT8_ID_FLIPS, f"{key}: {flips:.4f} of token ids differ from the host's int8 ids"
    assert vs_host.mean() <= INT8_MARGIN_PX, f"{key}: int8 keypoints {vs_host.mean()} model px from the host's"


def test_pipeline_bench_runs_on_the_device(host_result, capsys):
    from posetok.bench_cli import main as bench_main
    assert bench_main([str(host_result("bundle")), "--pipeline", "--backend", "onnxruntime", "--frame", "320x240",
                       "--iterations", "3", "--warmup", "1", "--num-threads", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == "pipeline" and result["machine"] == "aarch64" and result["emulated_cpu"]
    assert [r["precision"] for r in result["rows"]] == ["fp32", "int8"]
    for row in result["rows"]:
        print(json.dumps({k: row[k] for k in ("precision", "preprocess_p50_us", "estimator_p50_us",
                                             "decoder_p50_us", "total_p50_us", "search_p50_us",
                                             "flip_test_p50_us", "shift_test_p50_us")}))
        assert row["box"] == [48, 8, 224, 224] and row["files"][0] == f"estimator.{row['precision']}.onnx"
        assert 0 < row["preprocess_p50_us"] < row["total_p50_us"] and 0 < row["estimator_p50_us"]
        assert row["decoder_p50_us"] > 0 and row["search_p50_us"] > row["estimator_p50_us"]
        assert row["flip_test_p50_us"] > row["preprocess_p50_us"] + row["estimator_p50_us"]
        assert row["shift_test_p50_us"] > 2 * row["preprocess_p50_us"] + row["estimator_p50_us"]
