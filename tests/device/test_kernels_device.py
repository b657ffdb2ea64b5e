"""posetok.kernels inside the emulated aarch64 Python: the NEON paths against
the scalar references of the same library (the sweep the host suite runs
against numpy), against what the x86_64 host library computed for the same
inputs, and against OpenCV's aarch64 build as an extra oracle."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import posetok.kernels as K


def _load_cases():
    path = Path(__file__).resolve().parents[1] / "host" / "test_kernels_cases.py"
    spec = importlib.util.spec_from_file_location("kernel_cases", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cases = _load_cases()


def test_device_library_dispatches_to_neon():
    assert K.library_path().parent.name == "aarch64", K.library_path()
    assert K.isa() == "neon" and K.have_neon()


def test_neon_equals_ref_for_every_small_size():
    count = 0
    for label, name, args, kwargs in cases.sweep_cases():
        fn = getattr(K, name)
        ref, neon = fn(*args, **kwargs, impl="ref"), fn(*args, **kwargs, impl="neon")
        np.testing.assert_array_equal(neon, ref, err_msg=label)
        count += 1
    assert count > 67 * 9 * 10


@pytest.mark.parametrize("w, h", [(640, 480), (1920, 1080)])
def test_neon_equals_ref_on_camera_frames(w, h):
    rng = np.random.default_rng(w)
    img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    chroma = rng.integers(0, 256, (h // 2, w // 2, 2), dtype=np.uint8)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    calls = [(K.gaussian3x3, (img,), {"border": b, "border_value": 9}) for b in K.BORDERS]
    calls += [(K.nv21_to_rgb888, (img, chroma), {}), (K.nv12_to_rgb888, (img, chroma), {"full_range": True}),
              (K.downscale_uv2x2, (chroma,), {}), (K.resize_bilinear, (rgb, (w * 2 // 3, h * 2 // 3)), {}),
              (K.resize_bilinear, (img, (224, 224)), {}),
              (K.normalize, (rgb, (123.675, 116.28, 103.53), (0.0171, 0.0175, 0.0174)), {})]
    for fn, args, kwargs in calls:
        np.testing.assert_array_equal(fn(*args, **kwargs, impl="neon"), fn(*args, **kwargs, impl="ref"),
                                      err_msg=f"{fn.__name__} {w}x{h} {kwargs}")


def test_conv2d_neon_within_1e5_of_ref():
    rng = np.random.default_rng(3)
    for (cin, cout, h, w, k, stride, pad) in [(3, 8, 31, 45, 3, 1, 1), (2, 5, 9, 67, 5, 2, 2),
                                              (1, 1, 1, 1, 1, 1, 0), (4, 3, 17, 16, 3, 3, 0),
                                              (3, 6, 8, 70, 7, 1, 3), (3, 4, 64, 64, 3, 2, 1)]:
        x = rng.standard_normal((cin, h, w)).astype(np.float32)
        wt = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
        b = rng.standard_normal(cout).astype(np.float32)
        ref = K.conv2d(x, wt, b, stride=stride, padding=pad, impl="ref")
        neon = K.conv2d(x, wt, b, stride=stride, padding=pad, impl="neon")
        err = float(np.abs(neon - ref).max())
        assert err <= 1e-5 * float(np.abs(ref).max()), (cin, cout, h, w, k, stride, pad, err)


def test_same_results_as_the_host(host_result):
    saved = np.load(host_result(cases.RESULTS_FILE))
    inputs = {k[3:]: saved[k] for k in saved.files if k.startswith("in_")}
    outputs = cases.kernel_outputs(inputs)
    assert sorted(outputs) == sorted(k[4:] for k in saved.files if k.startswith("out_"))
    for name, got in outputs.items():
        host = saved[f"out_{name}"]
        assert got.shape == host.shape, name
        if name.startswith("conv"):
            err = float(np.abs(got - host).max())
            assert err <= 1e-5 * float(np.abs(host).max()), f"{name}: aarch64 vs x86_64 differ by {err}"
        else:  # integers, and normalize (same IEEE operations on both ISAs)
            np.testing.assert_array_equal(got, host, err_msg=f"{name}: aarch64 != x86_64")


@pytest.fixture(scope="module")
def cv2():
    import cv2  # part of the emulated Python's site (opencv-python-headless): required, not optional
    cv2.setNumThreads(1)
    return cv2


def test_opencv_gaussian_is_bit_exact(cv2):
    rng = np.random.default_rng(11)
    borders = {"reflect_101": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE,
               "constant": cv2.BORDER_CONSTANT}
    for (w, h) in [(1920, 1080), (67, 9), (17, 3), (16, 16), (31, 2)]:
        img = rng.integers(0, 256, (h, w), dtype=np.uint8)
        for border, cv_border in borders.items():
            want = cv2.GaussianBlur(img, (3, 3), 0, borderType=cv_border)
            np.testing.assert_array_equal(K.gaussian3x3(img, border=border), want,
                                          err_msg=f"{border} {w}x{h}")


def test_opencv_nv21_and_resize_agree_within_rounding(cv2):
    rng = np.random.default_rng(12)
    h, w = 480, 640
    y = rng.integers(16, 236, (h, w), dtype=np.uint8)
    vu = rng.integers(16, 241, (h // 2, w // 2, 2), dtype=np.uint8)
    yuv = np.concatenate([y, vu.reshape(h // 2, w)], axis=0)
    err = np.abs(K.nv21_to_rgb888(y, vu).astype(int) - cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_NV21)).max()
    print(f"nv21 vs cv2.COLOR_YUV2RGB_NV21: max {err} LSB")
    assert err <= 2
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    for size in [(224, 224), (1000, 700), (427, 320)]:
        got = K.resize_bilinear(rgb, size).astype(int)
        err = np.abs(got - cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)).max()
        print(f"resize {size} vs cv2 INTER_LINEAR: max {err} LSB")
        assert err <= 3


# ---- the one-pass crop kernels ---------------------------------------------------

def _crop_boxes(w, h, ow, oh):
    """As in tests/host/test_kernels_crop.py: odd coordinates, both corners
    over the edges, smaller than the output, wholly outside, the whole frame."""
    return [(1, 1, w - 3, h - 2), (-3, -2, w // 2 + 1, h // 2 + 3), (w // 2 - 1, h // 2 + 1, w, h),
            (3, 1, ow // 3 + 1, oh // 2 + 1), (w + 5, -h - 3, 7, 5), (0, 0, w, h)]


def test_crop_neon_equals_ref_for_every_small_output_size():
    rng = np.random.default_rng(19)
    count = 0
    for oh in range(1, 10):
        for ow in range(1, 68):
            w, h = 2 * (ow // 2 + 7), 2 * (oh + 3)
            y = rng.integers(0, 256, (h, w), dtype=np.uint8)
            vu = rng.integers(0, 256, (h // 2, w // 2, 2), dtype=np.uint8)
            rgb = rng.integers(0, 256, (h, w - 1, 3), dtype=np.uint8)
            for k, box in enumerate(_crop_boxes(w, h, ow, oh)):
                fn = K.crop_nv12 if (ow + k) % 2 else K.crop_nv21
                ch = 1 if k % 3 == 2 else 3
                kw = dict(mean=(1.5, 2.5, 200.0)[:ch], scale=(0.5, 1 / 3, 0.01)[:ch], channels=ch,
                          full_range=bool((oh + k) % 2), u8=True)
                ref, neon = fn(y, vu, box, (ow, oh), **kw, impl="ref"), fn(y, vu, box, (ow, oh), **kw, impl="neon")
                np.testing.assert_array_equal(neon[1], ref[1], err_msg=f"{fn.__name__} {box} {ow}x{oh} {kw}")
                np.testing.assert_array_equal(neon[0], ref[0])
                img = rgb if k % 2 else np.ascontiguousarray(rgb[..., 0])
                np.testing.assert_array_equal(K.crop_image(img, box, (ow, oh), mean=3, scale=2, impl="neon"),
                                              K.crop_image(img, box, (ow, oh), mean=3, scale=2, impl="ref"))
                count += 1
    assert count == 67 * 9 * 6


@pytest.mark.parametrize("w, h, box, size", [(640, 480, (96, 16, 448, 448), (64, 64)),
                                             (1920, 1080, (420, 0, 1080, 1080), (64, 64)),
                                             (1920, 1080, (-100, -60, 2200, 1300), (96, 54))])
def test_crop_neon_equals_ref_and_numpy_on_camera_frames(w, h, box, size):
    from posetok.kernels import numpy_ref as R
    rng = np.random.default_rng(w + box[0])
    y = rng.integers(0, 256, (h, w), dtype=np.uint8)
    vu = rng.integers(0, 256, (h // 2, w // 2, 2), dtype=np.uint8)
    mean, scale = (123.675, 116.28, 103.53), (1 / 58.395, 1 / 57.12, 1 / 57.375)
    neon = K.crop_nv21(y, vu, box, size, mean=mean, scale=scale, u8=True, impl="neon")
    for want in (K.crop_nv21(y, vu, box, size, mean=mean, scale=scale, u8=True, impl="ref"),
                 R.crop_nv21(y, vu, box, size, mean=mean, scale=scale, u8=True)):
        np.testing.assert_array_equal(neon[1], want[1])
        np.testing.assert_array_equal(neon[0], want[0])


def test_crop_agrees_with_opencv_inter_area(cv2):
    rng = np.random.default_rng(13)
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = np.stack([(xx // 3) % 256, (yy // 2) % 256, ((xx + yy) // 5) % 256], -1).astype(np.uint8)
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    for name, img, limit in (("smooth", smooth, 1), ("noise", noise, 2)):
        for (x0, y0, side, out) in [(96, 16, 448, 64), (0, 0, 480, 64), (101, 33, 300, 37)]:
            got = K.crop_image(img, (x0, y0, side, side), (out, out), mean=0, scale=1, u8=True)[1].astype(int)
            want = cv2.resize(img[y0:y0 + side, x0:x0 + side], (out, out), interpolation=cv2.INTER_AREA)
            err = np.abs(got - want).max()
            print(f"crop_image {name} {side}->{out} vs cv2 INTER_AREA: max {err} LSB")
            assert err <= limit, (name, side, out, err)
    # NV21: in-gamut frame, averaged YUV then converted vs cvtColor then INTER_AREA
    y = rng.integers(60, 180, (h, w), dtype=np.uint8)
    vu = rng.integers(110, 146, (h // 2, w // 2, 2), dtype=np.uint8)
    yuv = np.concatenate([y, vu.reshape(h // 2, w)], axis=0)
    rgb = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_NV21)[16:464, 96:544]
    want = cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA)
    err = np.abs(K.crop_nv21(y, vu, (96, 16, 448, 448), u8=True)[1].astype(int) - want).max()
    print(f"crop_nv21 vs cvtColor + INTER_AREA: max {err} LSB")
    assert err <= 3
