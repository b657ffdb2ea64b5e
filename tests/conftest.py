"""Shared by the host suite (tests/host) and the device suite (tests/device).

The host suite saves reference outputs under HOST_RESULTS; the device suite,
running inside the emulated aarch64 Python, loads them and compares, so the
same inputs are proven to give the same numbers on both architectures.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HOST_RESULTS = Path(os.environ.get("POSETOK_HOST_RESULTS", REPO / "build" / "host-results"))


def pytest_report_header(config):
    lines = [f"posetok: machine {platform.machine()}, host results in {HOST_RESULTS}"]
    if platform.machine() == "aarch64" and os.environ.get("POSETOK_QEMU_CPU"):
        lines.append(f"posetok: emulated CPU (qemu-aarch64 -cpu) {os.environ['POSETOK_QEMU_CPU']}")
    return lines


@pytest.fixture(scope="session")
def host_results_dir() -> Path:
    """Where the host suite writes results for the device suite to compare with."""
    HOST_RESULTS.mkdir(parents=True, exist_ok=True)
    return HOST_RESULTS


@pytest.fixture(scope="session")
def host_result():
    """Path of one saved host result; fails (never skips) when it is missing."""
    def find(relative: str) -> Path:
        path = HOST_RESULTS / relative
        if not path.exists():
            pytest.fail(f"host result {path} is missing: run the host suite first (make host-test)")
        return path
    return find
