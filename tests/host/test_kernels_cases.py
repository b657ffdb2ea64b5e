"""Kernel cases shared by the host suite (tests/host/test_kernels.py) and the
device suite (tests/device/test_kernels_device.py, which loads this file by
path): the size sweep and the fixed inputs whose outputs the host saves for
the device to compare with. No tests here."""
from __future__ import annotations

from typing import Iterator, Tuple

import numpy as np

import posetok.kernels as K

WIDTHS, HEIGHTS = range(1, 68), range(1, 10)
RESULTS_FILE = "kernels.npz"

# (label, function name in posetok.kernels / numpy_ref, positional args, keyword args)
Case = Tuple[str, str, tuple, dict]


def size_cases(w: int, h: int, rng: np.random.Generator) -> Iterator[Case]:
    """Every integer kernel and option at one size (the 2x2 kernel only at even sizes)."""
    img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    for border in K.BORDERS:
        yield f"gaussian {border} {w}x{h}", "gaussian3x3", (img,), {"border": border, "border_value": 77}
    chroma = rng.integers(0, 256, ((h + 1) // 2, (w + 1) // 2, 2), dtype=np.uint8)
    for full in (False, True):
        yield f"nv21 full={full} {w}x{h}", "nv21_to_rgb888", (img, chroma), {"full_range": full}
        yield f"nv12 full={full} {w}x{h}", "nv12_to_rgb888", (img, chroma), {"full_range": full}
    if w % 2 == 0 and h % 2 == 0:
        yield f"uv2x2 {w}x{h}", "downscale_uv2x2", (rng.integers(0, 256, (h, w, 2), dtype=np.uint8),), {}
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    for size in ((max(1, w * 2 // 3), max(1, h // 2)), (2 * w + 1, 3 * h)):
        yield f"resize c3 {w}x{h}->{size}", "resize_bilinear", (rgb, size), {}
        yield f"resize c1 {w}x{h}->{size}", "resize_bilinear", (img, size), {}
    yield f"normalize c3 {w}x{h}", "normalize", (rgb, (1.5, 2.5, 200.0), (0.5, 1 / 3, 0.01)), {}
    # the NEON version has three paths: means that are multiples of 2^-16 (above),
    # of 2^-23, and any other
    yield f"normalize q23 c3 {w}x{h}", "normalize", (rgb, (1.1, 99.9, 255.99), (0.5, -1 / 3, 0.01)), {}
    yield f"normalize generic c3 {w}x{h}", "normalize", (rgb, (0.1, 99.9, 300.0), (0.5, -1 / 3, 0.01)), {}


def sweep_cases(seed: int = 1) -> Iterator[Case]:
    rng = np.random.default_rng(seed)
    for h in HEIGHTS:
        for w in WIDTHS:
            yield from size_cases(w, h, rng)


def fixed_inputs() -> dict:
    """Seeded inputs the device suite feeds the aarch64 library (saved with the
    outputs, so the device does not depend on generating the same numbers)."""
    rng = np.random.default_rng(2024)
    h, w = 53, 83  # odd sizes: vector bodies, tails and borders all matter
    return {
        "y": rng.integers(0, 256, (h, w), dtype=np.uint8),
        "chroma": rng.integers(0, 256, ((h + 1) // 2, (w + 1) // 2, 2), dtype=np.uint8),
        "uv": rng.integers(0, 256, (h - 1, w - 1, 2), dtype=np.uint8),
        "rgb": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "x": rng.standard_normal((3, 29, 41)).astype(np.float32),
        "weight": rng.standard_normal((6, 3, 3, 3)).astype(np.float32),
        "bias": rng.standard_normal(6).astype(np.float32),
        "mean": np.array([123.675, 116.28, 103.53], np.float32),
        "scale": np.array([1 / 58.395, 1 / 57.12, 1 / 57.375], np.float32),
    }


def kernel_outputs(i: dict, impl: str = "auto") -> dict:
    """Every kernel (and option) on the fixed inputs."""
    out = {}
    for full in (False, True):
        out[f"nv21_full{int(full)}"] = K.nv21_to_rgb888(i["y"], i["chroma"], full_range=full, impl=impl)
        out[f"nv12_full{int(full)}"] = K.nv12_to_rgb888(i["y"], i["chroma"], full_range=full, impl=impl)
    out["uv2x2"] = K.downscale_uv2x2(i["uv"], impl=impl)
    for border in K.BORDERS:
        out[f"gaussian_{border}"] = K.gaussian3x3(i["y"], border=border, border_value=200, impl=impl)
    out["resize_c1_down"] = K.resize_bilinear(i["y"], (37, 21), impl=impl)
    out["resize_c3_down"] = K.resize_bilinear(i["rgb"], (37, 21), impl=impl)
    out["resize_c3_up"] = K.resize_bilinear(i["rgb"], (150, 101), impl=impl)
    out["conv_s1p1"] = K.conv2d(i["x"], i["weight"], i["bias"], stride=1, padding=1, impl=impl)
    out["conv_s2p0"] = K.conv2d(i["x"], i["weight"], None, stride=2, padding=0, impl=impl)
    out["normalize"] = K.normalize(i["rgb"], i["mean"], i["scale"], impl=impl)
    out["normalize_q23"] = K.normalize(i["rgb"], i["mean"] + np.float32(0.1), i["scale"], impl=impl)
    out["normalize_generic"] = K.normalize(i["rgb"], i["mean"] / np.float32(1000), i["scale"], impl=impl)
    return out
