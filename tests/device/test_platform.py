"""The emulated aarch64 Python itself: architecture, the CPU QEMU presents,
and child processes (which need the host-side wrapper as sys.executable)."""
from __future__ import annotations

import multiprocessing
import os
import platform
import subprocess
import sys


def test_interpreter_is_aarch64():
    assert platform.machine() == "aarch64"
    assert sys.version_info[:2] == (3, 11)


def test_cpu_is_a_cortex_a_without_sve():
    # -cpu cortex-a76 (or a72): an ARM implementer, and none of the SVE/SME
    # features QEMU's default "max" CPU would advertise.
    cpuinfo = open("/proc/cpuinfo").read()
    assert "CPU implementer\t: 0x41" in cpuinfo, cpuinfo[:400]
    features = {f for line in cpuinfo.splitlines() if line.startswith("Features") for f in line.split(":")[1].split()}
    assert "asimd" in features
    assert not features & {"sve", "sve2", "sme"}, sorted(features & {"sve", "sve2", "sme"})
    expected_part = {"cortex-a76": "0xd0b", "cortex-a72": "0xd08", "cortex-a53": "0xd03"}.get(
        os.environ.get("POSETOK_QEMU_CPU", ""))
    if expected_part:
        assert f"CPU part\t: {expected_part}" in cpuinfo


def test_subprocess_runs_the_emulated_interpreter():
    out = subprocess.run([sys.executable, "-c", "import platform; print(platform.machine())"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "aarch64"


def _square(x):
    return x * x


def test_multiprocessing_spawn_works():
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.map(_square, [1, 2, 3]) == [1, 4, 9]


def test_onnxruntime_import_is_quiet_about_the_cpu():
    # QEMU 7.2 passed the host's x86 /proc/cpuinfo through and onnxruntime's
    # cpuinfo logged 'Unknown CPU vendor' (or crashed). Import it in a child
    # so its start-up messages are captured.
    out = subprocess.run([sys.executable, "-c", "import onnxruntime; print(onnxruntime.get_device())"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "CPU"
    assert "Unknown CPU vendor" not in out.stderr, out.stderr
