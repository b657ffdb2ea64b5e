"""The cross runners from the host side: they pick the emulated CPU on
purpose, find the same sysroot the builder made, and run aarch64 code."""
from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CROSS = REPO / "cross"


def run(cmd, **env):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **env))


def test_shell_runners_and_sysroot_builder_agree_on_the_cache_folder(tmp_path):
    spec = importlib.util.spec_from_file_location("build_sysroot", CROSS / "build_sysroot.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    env = dict(os.environ, POSETOK_CACHE=str(tmp_path))
    env.pop("POSETOK_AARCH64_ROOT", None)
    shell = subprocess.run(["bash", "-c", f". {CROSS / 'aarch64-env.sh'}; echo $POSETOK_AARCH64_ROOT"],
                           capture_output=True, text=True, env=env).stdout.strip()
    python = subprocess.run(["python3", str(CROSS / "build_sysroot.py"), "--print-root"],
                            capture_output=True, text=True, env=env).stdout.strip()
    assert shell == python == str(tmp_path / f"aarch64-{builder.cache_key()}")


def test_qemu_python_emulates_the_cpu_it_is_asked_for():
    code = "import platform; print(platform.machine(), open('/proc/cpuinfo').read().count('CPU part\\t: 0xd08'))"
    out = run([CROSS / "qemu-python", "-c", code], POSETOK_QEMU_CPU="cortex-a72")
    assert out.returncode == 0, out.stderr
    machine, a72_cores = out.stdout.split()
    assert machine == "aarch64" and int(a72_cores) >= 1


def test_qemu_run_runs_the_cross_built_neon_probe():
    binary = REPO / "build" / "hello-neon-clang" / "hello_neon"
    assert binary.is_file(), "build it first: make kernels-ctest"
    out = run([CROSS / "qemu-run", binary])
    assert out.returncode == 0 and "match scalar C" in out.stdout, out.stdout + out.stderr


def test_qemu_run_without_arguments_is_a_usage_error():
    out = run([CROSS / "qemu-run"])
    assert out.returncode == 2 and "usage: qemu-run BIN" in out.stderr
