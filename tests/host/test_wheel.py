"""cross/build_wheel.py: what goes into the device and host wheels."""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("build_wheel", REPO / "cross" / "build_wheel.py")
build_wheel = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_wheel)

AARCH64_LIB = REPO / "build" / "aarch64-gcc" / "libposetok_kernels.so"
HOST_LIB = REPO / "build" / "host" / "libposetok_kernels.so"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    for lib in (AARCH64_LIB, HOST_LIB):
        if not lib.is_file():
            pytest.fail(f"{lib} is missing: build the kernels first (make kernels-host kernels-aarch64)")
    out = tmp_path_factory.mktemp("dist")
    return (build_wheel.build("aarch64", AARCH64_LIB, out, with_converters=False),
            build_wheel.build("x86_64", HOST_LIB, out, with_converters=True))


def read(wheel):
    with zipfile.ZipFile(wheel) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_device_wheel_is_runtime_only_with_the_neon_library(wheels):
    device, _ = wheels
    assert device.name == "posetok-0.1.0-py3-none-manylinux_2_17_aarch64.whl"
    files = read(device)
    assert "posetok/tokenizer.py" in files and "posetok/kernels/__init__.py" in files
    assert files["posetok/lib/aarch64/libposetok_kernels.so"][:20] == AARCH64_LIB.read_bytes()[:20]
    assert not any(n.startswith("posetok_converters/") or "/x86_64/" in n or "__pycache__" in n for n in files)
    meta = files["posetok-0.1.0.dist-info/METADATA"].decode()
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert "Requires-Dist: numpy>=1.23" in requires
    assert not any("torch" in r or "onnx>=" in r for r in requires), requires
    assert {"onnxruntime", "litert", "tflite"} == {line.split(": ")[1] for line in meta.splitlines()
                                                 if line.startswith("Provides-Extra:")}
    assert "posetok = posetok.cli:main" in files["posetok-0.1.0.dist-info/entry_points.txt"].decode()


def test_record_hashes_match_and_the_build_is_reproducible(wheels, tmp_path):
    device, _ = wheels
    files = read(device)
    for line in files["posetok-0.1.0.dist-info/RECORD"].decode().splitlines():
        name, digest, size = line.split(",")
        if name.endswith("RECORD"):
            continue
        data = files[name]
        assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert int(size) == len(data)
    again = build_wheel.build("aarch64", AARCH64_LIB, tmp_path, with_converters=False)
    assert again.read_bytes() == device.read_bytes()


def test_host_wheel_carries_the_converters(wheels):
    _, host = wheels
    files = read(host)
    assert host.name.endswith("manylinux_2_17_x86_64.whl")
    assert "posetok_converters/export.py" in files and "posetok/lib/x86_64/libposetok_kernels.so" in files
    assert "Provides-Extra: convert" in files["posetok-0.1.0.dist-info/METADATA"].decode()


def test_missing_library_is_named(tmp_path):
    with pytest.raises(SystemExit, match="kernel library .*nope.so not found"):
        build_wheel.build("aarch64", tmp_path / "nope.so", tmp_path, with_converters=False)
