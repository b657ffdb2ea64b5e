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

import pytest

# Every test in these modules exports (a bundle, or the tiny ONNX/TFLite models).
EXPORT_MODULES = {"test_export_bundle.py", "test_device_bundle.py", "test_tiny_models.py"}
# Module fixtures that export or train: a test using one is an export test.
EXPORT_FIXTURES = {"exported", "quick_checkpoint", "device_bundle", "tiny", "quick_run"}
# Fixtures taking more than 5 s to set up (88 s for quick_run's training,
# 81 s for evaluating the shipped model on 10 000 poses, on the busy 2-core host).
SLOW_FIXTURES = {"exported", "quick_checkpoint", "device_bundle", "quick_run", "shipped"}
# Tests whose own call takes more than 5 s.
SLOW_TESTS = {
    # evaluates every committed rate-distortion model on the broad evaluation set
    "test_rate_distortion.py::test_rate_distortion_command_reports_every_budget",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.name
        fixtures = set(getattr(item, "fixturenames", ()))
        if module in EXPORT_MODULES or fixtures & EXPORT_FIXTURES:
            item.add_marker(pytest.mark.export)
        if "qemu" in item.name.lower():  # test_cross.py::test_qemu_*, test_kernels.py::test_qemu_instruction_counts_*
            item.add_marker(pytest.mark.qemu)
        if fixtures & SLOW_FIXTURES or f"{module}::{getattr(item, 'originalname', item.name)}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
