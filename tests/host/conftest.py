"""Markers for subsets of the host suite, applied here so the test modules
stay free of bookkeeping (the markers are registered in pyproject.toml):

  export  exports a bundle or trains a model (torch, litert-torch, converters)
  qemu    runs aarch64 code under qemu-aarch64
  slow    more than about 5 s on a 2-core host, measured with --durations=0
          (a module fixture's cost counts for every test that uses it, since
          selecting one such test pays for the fixture)

`make check` runs -m "not slow and not qemu and not export"; `make host-test`
runs everything.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

# Every test in these modules exports (a bundle, or the tiny ONNX/TFLite models).
EXPORT_MODULES = {"test_export_bundle.py", "test_device_bundle.py", "test_tiny_models.py", "test_quantize_tflite.py"}
# Module fixtures that export or train: a test using one is an export test.
EXPORT_FIXTURES = {"exported", "quick_checkpoint", "device_bundle", "tiny", "quick_run", "estimator_bundle"}
# Fixtures taking more than 5 s to set up (88 s for quick_run's training,
# 81 s for evaluating the shipped model on 10 000 poses, about 40 s for estimator_bundle, 16 s to convert
# encoder_batch1 to TFLite, on the busy 2-core host).
SLOW_FIXTURES = {"exported", "quick_checkpoint", "device_bundle", "quick_run", "shipped", "estimator_bundle",
                 "encoder_batch1"}
# Every test in these modules shares a real tritonserver the module starts (about 3 s up, 3 s down).
SLOW_MODULES = {"test_serving.py", "test_serving_estimator.py", "test_triton_repository.py"}
# Tests whose own call takes more than 5 s.
SLOW_TESTS = {
    # evaluates every committed rate-distortion model on the broad evaluation set
    "test_rate_distortion.py::test_rate_distortion_command_reports_every_budget",
    # builds the ASan+UBSan kernels and reruns the kernel hostile tests on them (about 30 s)
    "test_hostile_inputs.py::test_kernels_hostile_under_asan",
    # fit a batch of rendered frames (80 steps); train a quick estimator and evaluate it
    "test_estimator.py::test_the_token_head_learns_through_the_frozen_decoder",
    "test_estimator.py::test_quick_training_runs_and_round_trips",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.name
        fixtures = set(getattr(item, "fixturenames", ()))
        if module in EXPORT_MODULES or fixtures & EXPORT_FIXTURES:
            item.add_marker(pytest.mark.export)
        if "qemu" in item.name.lower():  # test_cross.py::test_qemu_*, test_kernels.py::test_qemu_instruction_counts_*
            item.add_marker(pytest.mark.qemu)
        slow_setup = module in SLOW_MODULES or fixtures & SLOW_FIXTURES
        if slow_setup or f"{module}::{getattr(item, 'originalname', item.name)}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def estimator_bundle(tmp_path_factory):
    """(bundle folder, the trained torch estimator): an estimator trained 8 steps beside the shipped
    tokenizer, exported as fp32 ONNX; shared by the estimator runtime and serving tests."""
    from posetok_converters.checkpoint import load_checkpoint
    from posetok_converters.estimator import EstimatorConfig
    from posetok_converters.estimator_train import EstimatorTrainConfig, train_estimator
    from posetok_converters.export import ExportOptions, export_bundle
    tok, _ = load_checkpoint(None)
    model, _ = train_estimator(EstimatorConfig(), EstimatorTrainConfig(steps=8, batch_size=16, workers=0), tok)
    root = tmp_path_factory.mktemp("est") / "bundle"
    export_bundle(root, None, ExportOptions(formats=("onnx",), precisions=("fp32",), parity=False,
                                            parity_poses=256), force=True, estimator=model, progress=lambda _: None)
    return root, model


DEVICE_PARITY_POSES = 500  # the tokenizer's parity rows (the decoder search makes all 10,000 cost minutes per row)


@pytest.fixture(scope="session")
def device_bundle(host_results_dir):
    """build/host-results/bundle: the shipped tokenizer and estimator in fp32 and int8, ONNX and TFLite (batches 1
    and 64), with parity rows, exported by the `posetok export` command. The host suite saves what this host's
    runtimes make of it (test_device_bundle.py, test_device_estimator.py) and the device suite runs the same files
    on aarch64; test_estimator_export.py reads its TFLite estimator files."""
    bundle = host_results_dir / "bundle"
    out = subprocess.run([sys.executable, "-m", "posetok", "export", "--out", str(bundle), "--precisions",
                          "fp32,int8", "--parity-poses", str(DEVICE_PARITY_POSES), "--force"],
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return bundle
