"""The device suite runs against the installed aarch64 wheel: prove it."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

import posetok


def test_posetok_comes_from_the_installed_wheel():
    if os.environ.get("POSETOK_EXPECT_WHEEL") != "1":
        pytest.fail("POSETOK_EXPECT_WHEEL is not set: run the device suite with make device-test")
    site = os.environ["POSETOK_DEVICE_PYTHONPATH"].split(":")[0]
    assert Path(posetok.__file__).resolve().is_relative_to(Path(site).resolve()), posetok.__file__
    lib = Path(posetok.__file__).parent / "lib" / "aarch64" / "libposetok_kernels.so"
    assert lib.is_file(), "the wheel does not carry the aarch64 kernel library"
    assert not (Path(posetok.__file__).parent / "lib" / "x86_64").exists()
    dist_info = next(Path(site).glob("posetok-*.dist-info"))
    assert "manylinux_2_17_aarch64" in (dist_info / "WHEEL").read_text()


def test_wheel_leaves_out_torch_and_the_converters():
    assert importlib.util.find_spec("posetok_converters") is None
    assert importlib.util.find_spec("torch") is None
    import posetok.tokenizer  # noqa: F401  (the whole runtime imports without them)
    assert "torch" not in sys.modules
