"""posetok.kernels.crop_nv21 / crop_nv12 / crop_image on the host (x86_64
library = the scalar reference): parity with the numpy transcription for
every output size 1..67 x 1..9 and camera frames, accuracy against the exact
real-valued area mean, the outside-the-frame rule, and argument errors. The
NEON == reference sweep runs in the C tests and the device suite."""
from __future__ import annotations

import numpy as np
import pytest

import posetok.kernels as K
from posetok.kernels import numpy_ref as R

MEAN, SCALE = (123.675, 116.28, 103.53), (1 / 58.395, 1 / 57.12, 1 / 57.375)


def boxes(w: int, h: int, ow: int, oh: int):
    """Inside at odd coordinates, over the top-left and bottom-right edges,
    smaller than the output, wholly outside, the whole frame."""
    return [(1, 1, w - 3, h - 2), (-3, -2, w // 2 + 1, h // 2 + 3), (w // 2 - 1, h // 2 + 1, w, h),
            (3, 1, ow // 3 + 1, oh // 2 + 1), (w + 5, -h - 3, 7, 5), (0, 0, w, h)]


def frame(rng, w, h):
    return (rng.integers(0, 256, (h, w), dtype=np.uint8),
            rng.integers(0, 256, (h // 2, w // 2, 2), dtype=np.uint8))


def test_crop_matches_the_numpy_spec_for_every_small_output_size():
    rng = np.random.default_rng(17)
    count = 0
    for oh in range(1, 10):
        for ow in range(1, 68):
            w, h = 2 * (ow // 2 + 7), 2 * (oh + 3)
            y, vu = frame(rng, w, h)
            rgb = rng.integers(0, 256, (h, w - 1, 3), dtype=np.uint8)
            for k, box in enumerate(boxes(w, h, ow, oh)):
                fn = (K.crop_nv12, R.crop_nv12) if (ow + k) % 2 else (K.crop_nv21, R.crop_nv21)
                ch = 1 if k % 3 == 2 else 3
                kw = dict(mean=MEAN[:ch], scale=SCALE[:ch], channels=ch, full_range=bool((oh + k) % 2), u8=True)
                got, want = fn[0](y, vu, box, (ow, oh), **kw), fn[1](y, vu, box, (ow, oh), **kw)
                np.testing.assert_array_equal(got[1], want[1], err_msg=f"{fn[0].__name__} {box} {ow}x{oh} {kw}")
                np.testing.assert_array_equal(got[0], want[0])
                img = rgb if k % 2 else np.ascontiguousarray(rgb[..., 1])
                got = K.crop_image(img, box, (ow, oh), mean=7.5, scale=0.5)
                np.testing.assert_array_equal(got, R.crop_image(img, box, (ow, oh), mean=7.5, scale=0.5),
                                              err_msg=f"crop_image {img.shape} {box} {ow}x{oh}")
                count += 1
    assert count == 67 * 9 * 6


@pytest.mark.parametrize("w, h, box, size", [(640, 480, (96, 16, 448, 448), (64, 64)),
                                             (640, 480, (-51, 301, 333, 250), (67, 9)),
                                             (1920, 1080, (420, 0, 1080, 1080), (64, 64)),
                                             (1920, 1080, (1501, 777, 511, 405), (192, 256))])
def test_crop_matches_the_numpy_spec_on_camera_frames(w, h, box, size):
    rng = np.random.default_rng(w + box[0])
    y, vu = frame(rng, w, h)
    for fn, ref in ((K.crop_nv21, R.crop_nv21), (K.crop_nv12, R.crop_nv12)):
        got = fn(y, vu, box, size, mean=MEAN, scale=SCALE, u8=True)
        want = ref(y, vu, box, size, mean=MEAN, scale=SCALE, u8=True)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])
    assert got[0].shape == (3, size[1], size[0]) and got[0].dtype == np.float32
    assert got[1].shape == (size[1], size[0], 3) and got[1].dtype == np.uint8


def test_area_mean_within_2_lsb_of_the_exact_mean():
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, (131, 97, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:131, 0:97]
    smooth = np.stack([(xx * 2.5) % 256, (yy * 1.9) % 256, (xx + yy) % 256], -1).astype(np.uint8)
    worst = {}
    for name, img in (("noise", noise), ("smooth", smooth)):
        for box, size in [((0, 0, 97, 131), (64, 64)), ((-10, 5, 30, 200), (7, 3)), ((3, 4, 5, 6), (11, 13)),
                          ((1, 2, 90, 120), (13, 17))]:
            got = K.crop_image(img, box, size, mean=0, scale=1, u8=True)[1]
            err = np.abs(got - R.crop_area_float(img, box, size, 0.0)).max()
            worst[name] = max(worst.get(name, 0.0), float(err))
    print(f"area filter: max |Q8 weights - exact area mean| {worst}")
    assert worst["noise"] <= 2.0 and worst["smooth"] <= 0.75


def test_average_then_convert_is_close_to_convert_then_average():
    # in-gamut colours (no per-pixel clamping): the documented choice costs only rounding
    rng = np.random.default_rng(8)
    h, w = 96, 128
    y = rng.integers(60, 180, (h, w), dtype=np.uint8)
    vu = rng.integers(110, 146, (h // 2, w // 2, 2), dtype=np.uint8)
    box, size = (5, 3, 112, 84), (16, 12)
    got = K.crop_nv21(y, vu, box, size, u8=True)[1].astype(float)
    per_pixel = K.nv21_to_rgb888(y, vu)
    exact = R.crop_area_float(per_pixel, box, size, 0.0)
    err = np.abs(got - exact).max()
    print(f"average YUV then convert vs convert then average: max {err:.2f} LSB")
    assert err <= 2.5


def test_outside_the_frame_reads_black():
    y = np.full((8, 8), 100, np.uint8)
    vu = np.full((4, 4, 2), 128, np.uint8)
    for full, grey in ((False, 98), (True, 100)):
        inside = K.crop_nv21(y, vu, (1, 1, 5, 3), (4, 2), full_range=full, u8=True)[1]
        assert np.all(inside == grey)
        outside = K.crop_nv21(y, vu, (100, -50, 3, 3), (2, 1), full_range=full, u8=True)[1]
        assert np.all(outside == 0)
    # half the box left of the frame: luma (100 + 16) / 2 = 58 -> grey 49
    half = K.crop_nv21(y, vu, (-8, 0, 16, 8), (1, 1), channels=1, u8=True)[1]
    assert half[0, 0, 0] == 49
    rgb = np.full((4, 4, 3), 200, np.uint8)
    assert np.all(K.crop_image(rgb, (-4, 0, 8, 4), (2, 1), mean=0, scale=1) == [[[0, 200]]] * 3)


def test_f32_is_normalize_of_the_u8_output_bit_for_bit():
    rng = np.random.default_rng(3)
    y, vu = frame(rng, 64, 48)
    f, img = K.crop_nv12(y, vu, (7, 3, 41, 37), (19, 11), mean=MEAN, scale=SCALE, u8=True)
    np.testing.assert_array_equal(f, K.normalize(img, MEAN, SCALE))
    grey = K.crop_nv21(y, vu, (7, 3, 41, 37), (19, 11), channels=1)
    assert grey.shape == (1, 11, 19)


def test_area_keeps_a_thin_limb_that_bilinear_loses():
    # a 1-px line at x = 100 in a 448-px box scaled to 64: area keeps its mean in every
    # row, bilinear taps (today's chain) miss it entirely
    img = np.zeros((448, 448), np.uint8)
    img[:, 100] = 255
    area = K.crop_image(img, (0, 0, 448, 448), (64, 64), mean=0, scale=1, u8=True)[1][..., 0]
    bilinear = K.resize_bilinear(img, (64, 64))
    assert area.sum(axis=1).min() == area.sum(axis=1).max() and area[:, 14].min() == 37  # 255/7 = 36.4, Q8 weight 37
    assert bilinear.max() == 0


def test_crop_accepts_strided_views():
    rng = np.random.default_rng(4)
    big = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)
    view = big[10:90, 7:111]
    np.testing.assert_array_equal(K.crop_image(view, (3, 2, 50, 60), (9, 9), mean=0, scale=1),
                                  R.crop_image(np.ascontiguousarray(view), (3, 2, 50, 60), (9, 9), mean=0, scale=1))


@pytest.mark.parametrize("kwargs, match", [
    (dict(box=(0, 0, 0, 4)), "box width and height"),
    (dict(box=(0, 0, 4)), "box must be"),
    (dict(box=(0.5, 0, 4, 4)), "box must be"),
    (dict(box=(0, 0, 1 << 17, 4)), "box is too large"),
    (dict(size=(0, 4)), "size must be"),
    (dict(size=64), "size must be"),
    (dict(mean=(1, 2)), "mean must have 3"),
    (dict(scale="x"), "scale must be"),
    (dict(channels=2), "channels must be"),
    (dict(full_range=1), "full_range must be"),
    (dict(u8="yes"), "u8 must be"),
    (dict(impl="gpu"), "impl must be"),
])
def test_crop_nv21_argument_errors(kwargs, match):
    y, vu = np.zeros((8, 8), np.uint8), np.zeros((4, 4, 2), np.uint8)
    args = dict(box=(0, 0, 4, 4))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        K.crop_nv21(y, vu, **args)


def test_crop_frame_errors():
    with pytest.raises(ValueError, match="even height and width"):
        K.crop_nv21(np.zeros((7, 8), np.uint8), np.zeros((4, 4, 2), np.uint8), (0, 0, 2, 2))
    with pytest.raises(ValueError, match="vu must have shape"):
        K.crop_nv21(np.zeros((8, 8), np.uint8), np.zeros((4, 3, 2), np.uint8), (0, 0, 2, 2))
    with pytest.raises(ValueError, match="y must have dtype uint8"):
        K.crop_nv12(np.zeros((8, 8), np.float32), np.zeros((4, 4, 2), np.uint8), (0, 0, 2, 2))
    with pytest.raises(ValueError, match="img must have 1 or 3 channels"):
        K.crop_image(np.zeros((8, 8, 4), np.uint8), (0, 0, 2, 2), mean=0, scale=1)
    with pytest.raises(K.KernelError, match="built without NEON"):
        K.crop_image(np.zeros((8, 8), np.uint8), (0, 0, 2, 2), mean=0, scale=1, impl="neon")
