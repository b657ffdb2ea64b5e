"""cross/build_wheel.py: what goes into the device and host wheels."""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import zipfile
from pathlib import Path

import pytest

import posetok

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("build_wheel", REPO / "cross" / "build_wheel.py")
build_wheel = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_wheel)

AARCH64_LIB = REPO / "build" / "aarch64-gcc" / "libposetok_kernels.so"
HOST_LIB = REPO / "build" / "host" / "libposetok_kernels.so"
VERSION = build_wheel.package_version()
DIST_INFO = f"posetok-{VERSION}.dist-info"
# Host tooling that must stay out of the device wheel (issue #16): the QEMU
# instruction-counting bench and the demo's device driver.
HOST_ONLY = {"posetok/kernels/bench_cli.py": "converters/posetok_converters/kernels_bench.py",
             "posetok/device_demo.py": "cross/device_demo.py"}


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
    assert device.name == f"posetok-{VERSION}-py3-none-manylinux_2_17_aarch64.whl"
    files = read(device)
    assert "posetok/tokenizer.py" in files and "posetok/kernels/__init__.py" in files
    assert files["posetok/lib/aarch64/libposetok_kernels.so"] == AARCH64_LIB.read_bytes()   # the build, unchanged
    assert not any(n.startswith("posetok_converters/") or "/x86_64/" in n or "__pycache__" in n for n in files)
    meta = files[f"{DIST_INFO}/METADATA"].decode()
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert "Requires-Dist: numpy>=1.23" in requires
    assert not any("torch" in r or "onnx>=" in r for r in requires), requires
    assert {"onnxruntime", "litert", "tflite", "signing"} == {line.split(": ")[1] for line in meta.splitlines()
                                                            if line.startswith("Provides-Extra:")}
    assert "posetok = posetok.cli:main" in files[f"{DIST_INFO}/entry_points.txt"].decode()


def test_device_wheel_leaves_out_the_bench_and_the_demo_driver(wheels):
    device, host = wheels
    files = read(device)
    for packaged, moved_to in HOST_ONLY.items():
        assert packaged not in files, f"{packaged} is host tooling: it lives in {moved_to}"
        assert (REPO / moved_to).is_file()
    leaked = [n for n in files if n.endswith("kernels/bench_cli.py")
              or Path(n).name in ("device_demo.py", "kernels_bench.py")]
    assert not leaked, leaked
    assert "posetok/bench_cli.py" in files  # the bundle benchmark is runtime, it stays
    assert "posetok_converters/kernels_bench.py" in read(host)


def test_one_version_source():
    """__version__ in sdk/posetok/__init__.py; pyproject reads it, so does the wheel builder."""
    pyproject = build_wheel.tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "posetok.__version__"}
    assert VERSION == posetok.__version__


def test_record_hashes_match_and_the_build_is_reproducible(wheels, tmp_path):
    device, _ = wheels
    files = read(device)
    for line in files[f"{DIST_INFO}/RECORD"].decode().splitlines():
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
    assert "posetok_converters/export.py" in files
    assert files["posetok/lib/x86_64/libposetok_kernels.so"] == HOST_LIB.read_bytes()
    assert "Provides-Extra: convert" in files[f"{DIST_INFO}/METADATA"].decode()


def test_missing_library_is_named(tmp_path):
    with pytest.raises(SystemExit, match="kernel library .*nope.so not found"):
        build_wheel.build("aarch64", tmp_path / "nope.so", tmp_path, with_converters=False)
