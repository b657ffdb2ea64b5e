"""One-pass camera pre-processing (``posetok_crop_area_*`` in the C library):
crop box -> area downscale -> (BT.601) -> u8 and normalized f32 CHW.
Exported by :mod:`posetok.kernels`; formulas in ``kernels/include/posetok_kernels.h``
(section 7)."""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np

from . import _INT_MAX, _array, _check_impl, _floats, _ptr, _row_stride, _u8_image
from .library import _call

MAX_BOX_PX, _MAX_OUT = 1 << 16, 1 << 14
CropResult = Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]


def _box(box) -> Tuple[int, int, int, int]:
    try:
        vals = tuple(box)
    except TypeError:
        raise ValueError(f"box must be (x, y, w, h) integers, got {box!r}") from None
    if len(vals) != 4 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                                 for v in vals):
        raise ValueError(f"box must be (x, y, w, h) integers, got {box!r}")
    x, y, w, h = (int(v) for v in vals)
    if w < 1 or h < 1:
        raise ValueError(f"box width and height must be >= 1, got {box!r}")
    if w > MAX_BOX_PX or h > MAX_BOX_PX or not all(-(1 << 30) < v + d < (1 << 30) for v, d in ((x, 0), (y, 0),
                                                                                          (x, w), (y, h))):
        raise ValueError(f"box is too large (w, h <= {MAX_BOX_PX}, |x|, |y| < 2**30), got {box!r}")
    return x, y, w, h


def _size(size) -> Tuple[int, int]:
    if isinstance(size, (str, bytes, bytearray)):  # b"55" would unpack to (53, 53)
        raise ValueError(f"size must be (width, height), got {size!r}")
    try:
        ow, oh = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height), got {size!r}") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in (ow, oh)) \
            or not (1 <= ow <= _MAX_OUT and 1 <= oh <= _MAX_OUT):
        raise ValueError(f"size must be two integers (width, height) in 1..{_MAX_OUT}, got {size!r}")
    return int(ow), int(oh)


def _per_channel(name: str, values, c: int) -> np.ndarray:
    """c finite float32 values: c given, one given (used for every channel), or, for
    c == 1, three equal values (the 3-channel defaults)."""
    v = np.asarray(values) if not isinstance(values, (str, bytes, dict)) else None
    if v is not None and v.dtype.kind in "iuf" and v.size in (1, 3) and (v.size == 1 or (c == 1 and
                                                                                      np.all(v == v.flat[0]))):
        values = np.repeat(v.reshape(-1)[:1], c)
    return _floats(name, values, c)


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _run(name, suffix, lead_args, c, ow, oh, mean, scale, u8) -> CropResult:
    out = np.empty((c, oh, ow), np.float32)
    img = np.empty((oh, ow, c), np.uint8)
    _call(name, suffix, *lead_args, _ptr(mean), _ptr(scale), _ptr(out), _ptr(img) if u8 else None)
    return (out, img) if u8 else out


def _crop_yuv(name, y, chroma, chroma_name, u_first, box, size, mean, scale, channels, full_range, u8,
              impl) -> CropResult:
    suffix = _check_impl(impl)
    full, want_u8 = _flag("full_range", full_range), _flag("u8", u8)
    if not isinstance(channels, (int, np.integer)) or isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels must be 3 (RGB) or 1 (luma only), got {channels!r}")
    y = _array("y", y, np.uint8, (2,))
    h, w = y.shape
    if h % 2 or w % 2:
        raise ValueError(f"y must have an even height and width (4:2:0 frame), got {h}x{w}")
    chroma = _array(chroma_name, chroma, np.uint8, (2, 3))
    want = (h // 2, w // 2, 2) if chroma.ndim == 3 else (h // 2, w)
    if chroma.shape != want:
        raise ValueError(f"{chroma_name} must have shape {want} for a {h}x{w} luma plane, got {chroma.shape}")
    x0, y0, bw, bh = _box(box)
    ow, oh = _size(size)
    if ow * oh * channels > _INT_MAX:
        raise ValueError(f"size {size!r} is too large")
    m, s = _per_channel("mean", mean, channels), _per_channel("scale", scale, channels)
    args = (_ptr(y), _row_stride("y", y), _ptr(chroma), _row_stride(chroma_name, chroma), w, h,
            1 if u_first else 0, 1 if full else 0, x0, y0, bw, bh, ow, oh, channels)
    return _run(name, suffix, args, channels, ow, oh, m, s, want_u8)


_DOC = """{fmt} frame + crop box -> model input, in one pass: area (box-filter)
    downscale of the box, BT.601 to RGB (or luma only), normalize.

    Y is averaged over the box on the luma grid, U and V on the chroma grid;
    the averages are converted per output pixel (``nv21_to_rgb888``'s
    formula), then ``(v - mean[c]) * scale[c]`` exactly like ``normalize``.
    Samples outside the frame are black (Y 16, or 0 with ``full_range``;
    U = V = 128); a box partly or wholly outside the frame is allowed.

    Args:
        y: (H, W) u8 luma plane, H and W even.
        {chroma}: (H/2, W/2, 2) or (H/2, W) u8, {order} first.
        box: (x, y, w, h) integers in frame pixels, w and h >= 1.
        size: the output's (width, height).
        mean: ``channels`` values (or one for every channel).
        scale: ``channels`` values (or one for every channel).
        channels: 3 (RGB) or 1 (luma: the grey of Y with neutral chroma).
        full_range: JPEG/full-range YUV instead of video range.
        u8: also return the u8 (height, width, channels) image.
        impl: ``"auto"``, ``"ref"`` or ``"neon"``.

    Returns:
        (channels, height, width) f32; with ``u8=True`` a tuple (that, u8 HWC image).

    Raises:
        ValueError: a wrong shape, dtype, stride, box, size, mean, scale, channels, flag or impl.
        KernelError: the C library refused (``impl="neon"`` without NEON).
        FileNotFoundError: the library is missing.
    """


def crop_nv21(y: np.ndarray, vu: np.ndarray, box: Sequence[int], size: Tuple[int, int] = (64, 64), *,
              mean: Sequence[float] = (0, 0, 0), scale: Sequence[float] = (1, 1, 1), channels: int = 3,
              full_range: bool = False, u8: bool = False, impl: str = "auto") -> CropResult:
    return _crop_yuv("posetok_crop_area_yuv420sp_u8", y, vu, "vu", False, box, size, mean, scale, channels,
                     full_range, u8, impl)


def crop_nv12(y: np.ndarray, uv: np.ndarray, box: Sequence[int], size: Tuple[int, int] = (64, 64), *,
              mean: Sequence[float] = (0, 0, 0), scale: Sequence[float] = (1, 1, 1), channels: int = 3,
              full_range: bool = False, u8: bool = False, impl: str = "auto") -> CropResult:
    return _crop_yuv("posetok_crop_area_yuv420sp_u8", y, uv, "uv", True, box, size, mean, scale, channels,
                     full_range, u8, impl)


crop_nv21.__doc__ = _DOC.format(fmt="NV21", chroma="vu", order="V")
crop_nv12.__doc__ = _DOC.format(fmt="NV12", chroma="uv", order="U")


def crop_image(img: np.ndarray, box: Sequence[int], size: Tuple[int, int] = (64, 64), *,
               mean: Sequence[float], scale: Sequence[float], u8: bool = False,
               impl: str = "auto") -> CropResult:
    """RGB or grey u8 image + crop box -> model input: area (box-filter)
    downscale of the box per channel, then ``(v - mean[c]) * scale[c]``
    exactly like ``normalize``. Pixels outside the image are 0; a box partly
    or wholly outside the image is allowed.

    Args:
        img: (H, W, 3), (H, W, 1) or (H, W) u8.
        box: (x, y, w, h) integers in image pixels, w and h >= 1.
        size: the output's (width, height).
        mean: one value per channel (or one for every channel).
        scale: one value per channel (or one for every channel).
        u8: also return the u8 (height, width, C) image.
        impl: ``"auto"``, ``"ref"`` or ``"neon"``.

    Returns:
        (C, height, width) f32; with ``u8=True`` a tuple (that, u8 HWC image).

    Raises:
        ValueError: a wrong shape, dtype, stride, box, size, mean, scale, flag or impl.
        KernelError: the C library refused (``impl="neon"`` without NEON).
        FileNotFoundError: the library is missing.
    """
    suffix = _check_impl(impl)
    want_u8 = _flag("u8", u8)
    img, c = _u8_image("img", img, (1, 3))
    x0, y0, bw, bh = _box(box)
    ow, oh = _size(size)
    if ow * oh * c > _INT_MAX:
        raise ValueError(f"size {size!r} is too large")
    m, s = _per_channel("mean", mean, c), _per_channel("scale", scale, c)
    h, w = img.shape[:2]
    args = (_ptr(img), _row_stride("img", img), w, h, c, x0, y0, bw, bh, ow, oh)
    return _run("posetok_crop_area_u8", suffix, args, c, ow, oh, m, s, want_u8)
