#!/usr/bin/env python3
"""Prints what the cross chain can do on this machine: host and emulated
interpreters, the QEMU version and CPU, the hello-NEON result from both
toolchains, and the runtime versions inside the emulated Python."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CROSS = REPO / "cross"


def sh(cmd, **kw) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        raise SystemExit(f"chain report: {' '.join(map(str, cmd))} failed:\n{out.stdout}{out.stderr}")
    return out.stdout.strip()


def hello_neon(toolchain: str) -> str:
    build = REPO / "build" / f"hello-neon-{toolchain}"
    sh(["cmake", "-S", CROSS / "hello-neon", "-B", build,
        f"-DCMAKE_TOOLCHAIN_FILE={CROSS / f'toolchain-aarch64-{toolchain}.cmake'}"])
    sh(["cmake", "--build", build])
    return sh([CROSS / "qemu-run", build / "hello_neon"])


def main() -> None:
    cpu = os.environ.get("POSETOK_QEMU_CPU", "cortex-a76")
    guest = sh([CROSS / "qemu-python", "-c",
                "import platform, sys, numpy, onnxruntime, ai_edge_litert; "
                "print(platform.machine(), platform.python_version(), numpy.__version__, "
                "onnxruntime.__version__, __import__('importlib.metadata').metadata.version('ai-edge-litert'))"])
    machine, pyver, np_ver, ort_ver, litert_ver = guest.split()
    rows = [
        ("host interpreter", f"{platform.machine()} CPython {platform.python_version()} ({sys.executable})"),
        ("qemu-aarch64", sh(["qemu-aarch64", "--version"]).splitlines()[0] + f", -cpu {cpu}"),
        ("emulated interpreter", f"{machine} CPython {pyver} (cross/qemu-python)"),
        ("  numpy", np_ver), ("  onnxruntime", ort_ver), ("  ai-edge-litert", litert_ver),
        ("hello-NEON (gcc)", hello_neon("gcc")),
        ("hello-NEON (clang)", hello_neon("clang")),
    ]
    width = max(len(k) for k, _ in rows)
    print("posetok cross chain")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
