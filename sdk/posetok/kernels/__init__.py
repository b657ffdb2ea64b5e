"""Image pre-processing kernels (C library ``libposetok_kernels.so``) for numpy.

Every function takes numpy arrays, checks shapes, dtypes, strides and sizes
(raising ``ValueError`` that names the argument before any C code runs) and
returns a new array. ``impl`` picks the implementation: ``"auto"`` (NEON on
aarch64, the scalar reference elsewhere), ``"ref"`` or ``"neon"``.

Rows may be strided (e.g. a crop ``frame[10:100, 20:200]``): only the row
stride may differ from the packed layout; pixels inside a row must be packed.

The library is found via ``$POSETOK_KERNELS_LIB`` or
``<this package>/../lib/<platform.machine()>/libposetok_kernels.so``; it is
loaded with ctypes on first use (no compiler needed on the device).
The exact formulas (fixed-point coefficients, rounding, pixel centres) are in
``kernels/include/posetok_kernels.h``; :mod:`posetok.kernels.numpy_ref` is a
slow numpy transcription of them.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .library import KernelError, _call, have_neon, isa, library_path, load_library

__all__ = [
    "KernelError", "library_path", "load_library", "isa", "have_neon",
    "nv21_to_rgb888", "nv12_to_rgb888", "downscale_uv2x2", "gaussian3x3",
    "resize_bilinear", "conv2d", "normalize", "crop_nv21", "crop_nv12", "crop_image",
    "BORDERS", "IMPLS",
]

IMPLS = ("auto", "ref", "neon")
BORDERS = {"reflect_101": 0, "replicate": 1, "constant": 2}
_RANGES = {False: 0, True: 1}
_INT_MAX = 2**31 - 1


# ---- argument checks ---------------------------------------------------------

def _check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return {"auto": "", "ref": "_ref", "neon": "_neon"}[impl]


def _array(name: str, a, dtype, ndims: Tuple[int, ...]) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype).name}, got {a.dtype}")
    if a.ndim not in ndims:
        want = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{name} must be {want}, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    if not a.flags.aligned:
        raise ValueError(f"{name} must be aligned to its {a.itemsize}-byte elements (e.g. np.ascontiguousarray)")
    return a


def _row_stride(name: str, a: np.ndarray) -> int:
    """Row stride in elements of an array whose rows are packed (axis 0 = rows,
    the remaining axes C-contiguous); raises ValueError otherwise."""
    item = a.itemsize
    packed = item
    for n, st in zip(reversed(a.shape[1:]), reversed(a.strides[1:])):
        if st != packed and n > 1:
            raise ValueError(f"{name} must have contiguous rows (packed pixels), got strides {a.strides}")
        packed *= n
    stride = a.strides[0] if a.shape[0] > 1 else packed
    if stride < packed or stride % item:
        raise ValueError(f"{name} rows must be stored top to bottom without overlap "
                         f"(row stride {a.strides[0]} bytes, row {packed} bytes)")
    if stride // item > _INT_MAX or a.shape[0] > _INT_MAX:
        raise ValueError(f"{name} is too large for the kernels (31-bit sizes), shape {a.shape}")
    return stride // item


def _ptr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _floats(name: str, values, count: int) -> np.ndarray:
    """``count`` finite numbers as a new aligned float32 vector."""
    try:
        v = np.asarray(values)
        if v.dtype.kind not in "iuf":
            raise TypeError
        with np.errstate(over="ignore"):
            v = np.array(v, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {count} real numbers, got {values!r}") from None
    if v.shape != (count,):
        raise ValueError(f"{name} must have {count} values (one per channel), got {v.size}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite float32 values, got {values!r}")
    return v


def _u8_image(name: str, a, channels: Sequence[int]) -> Tuple[np.ndarray, int]:
    """(H, W) or (H, W, C) u8 image with C in channels; returns (array, C)."""
    a = _array(name, a, np.uint8, (2, 3))
    c = 1 if a.ndim == 2 else a.shape[2]
    if c not in channels:
        raise ValueError(f"{name} must have {' or '.join(map(str, channels))} channels, got shape {a.shape}")
    return a, c


# ---- kernels -----------------------------------------------------------------

def _yuv(name: str, y, chroma, chroma_name: str, full_range: bool, impl: str) -> np.ndarray:
    suffix = _check_impl(impl)
    if not isinstance(full_range, (bool, np.bool_)):
        raise ValueError(f"full_range must be True or False, got {full_range!r}")
    y = _array("y", y, np.uint8, (2,))
    h, w = y.shape
    chroma = _array(chroma_name, chroma, np.uint8, (2, 3))
    ch, cw = (h + 1) // 2, (w + 1) // 2
    want = (ch, cw, 2) if chroma.ndim == 3 else (ch, 2 * cw)
    if chroma.shape != want:
        raise ValueError(f"{chroma_name} must have shape {want} for a {h}x{w} luma plane "
                         f"(ceil(h/2) rows of ceil(w/2) pairs), got {chroma.shape}")
    ys, cs = _row_stride("y", y), _row_stride(chroma_name, chroma)
    out = np.empty((h, w, 3), np.uint8)
    _call(name, suffix, _ptr(y), ys, _ptr(chroma), cs, _ptr(out), 3 * w, w, h,
          _RANGES[bool(full_range)])
    return out


def nv21_to_rgb888(y: np.ndarray, vu: np.ndarray, *, full_range: bool = False,
                   impl: str = "auto") -> np.ndarray:
    """NV21 (Y plane + interleaved V,U plane) to (H, W, 3) RGB, BT.601.

    Args:
        y: (H, W) u8 luma plane.
        vu: (ceil(H/2), ceil(W/2), 2) or (ceil(H/2), 2*ceil(W/2)) u8, V first.
        full_range: JPEG/full-range YUV instead of video range (Y 16..235).
        impl: ``"auto"``, ``"ref"`` or ``"neon"``.

    Returns:
        (H, W, 3) u8 RGB.

    Raises:
        ValueError: a wrong shape, dtype, stride, ``full_range`` or ``impl``.
        KernelError: the C library refused (``impl="neon"`` without NEON).
        FileNotFoundError: the library is missing.
    """
    return _yuv("posetok_nv21_to_rgb888", y, vu, "vu", full_range, impl)


def nv12_to_rgb888(y: np.ndarray, uv: np.ndarray, *, full_range: bool = False,
                   impl: str = "auto") -> np.ndarray:
    """NV12 (Y plane + interleaved U,V plane) to (H, W, 3) RGB, BT.601.

    Args:
        y: (H, W) u8 luma plane.
        uv: (ceil(H/2), ceil(W/2), 2) or (ceil(H/2), 2*ceil(W/2)) u8, U first.
        full_range: JPEG/full-range YUV instead of video range (Y 16..235).
        impl: ``"auto"``, ``"ref"`` or ``"neon"``.

    Returns:
        (H, W, 3) u8 RGB.

    Raises:
        ValueError: a wrong shape, dtype, stride, ``full_range`` or ``impl``.
        KernelError: the C library refused (``impl="neon"`` without NEON).
        FileNotFoundError: the library is missing.
    """
    return _yuv("posetok_nv12_to_rgb888", y, uv, "uv", full_range, impl)


def downscale_uv2x2(uv: np.ndarray, *, impl: str = "auto") -> np.ndarray:
    """2x2 box average of an interleaved UV plane: (H, W, 2) -> (H/2, W/2, 2),
    (a + b + c + d + 2) >> 2.

    Args:
        uv: (H, W, 2) u8 with even H and W.
        impl: ``"auto"``, ``"ref"`` or ``"neon"``.

    Returns:
        (H/2, W/2, 2) u8.

    Raises:
        ValueError: a wrong shape (or odd size), dtype, stride or ``impl``.
        KernelError: the C library refused (``impl="neon"`` without NEON).
        FileNotFoundError: the library is missing.
    """
    suffix = _check_impl(impl)
    uv = _array("uv", uv, np.uint8, (3,))
    h, w, c = uv.shape
    if c != 2:
        raise ValueError(f"uv must have shape (H, W, 2), got {uv.shape}")
    if h % 2 or w % 2:
        raise ValueError(f"uv needs an even height and width for a 2x2 downscale, got {h}x{w}")
    out = np.empty((h // 2, w // 2, 2), np.uint8)
    _call("posetok_downscale_uv2x2_u8", suffix, _ptr(uv), _row_stride("uv", uv), _ptr(out), w, w, h)
    return out


def gaussian3x3(img: np.ndarray, *, border: str = "reflect_101", border_value: int = 0,
                impl: str = "auto") -> np.ndarray:
    """3x3 Gaussian [1 2 1]x[1 2 1]/16, (acc + 8) >> 4, on an (H, W) u8 image.

    Args:
        img: (H, W) u8.
        border: ``"reflect_101"`` (OpenCV's default), ``"replicate"`` or
            ``"constant"``.
        border_value: the pixel value outside the image for ``"constant"``,
            0..255.
        impl: ``"auto"``, ``"ref"`` or ``"neon"``.

    Returns:
        (H, W) u8.

    Raises:
        ValueError: a wrong shape, dtype, stride, border, border_value or impl.
        KernelError: the C library refused (``impl="neon"`` without NEON).
        FileNotFoundError: the library is missing.
    """
    suffix = _check_impl(impl)
    img = _array("img", img, np.uint8, (2,))
    if not isinstance(border, str) or border not in BORDERS:
        raise ValueError(f"border must be one of {tuple(BORDERS)}, got {border!r}")
    if not isinstance(border_value, (int, np.integer)) or not 0 <= int(border_value) <= 255:
        raise ValueError(f"border_value must be an integer in 0..255, got {border_value!r}")
    h, w = img.shape
    out = np.empty((h, w), np.uint8)
    _call("posetok_gaussian3x3_u8", suffix, _ptr(img), _row_stride("img", img), _ptr(out), w, w, h,
          BORDERS[border], int(border_value))
    return out


def resize_bilinear(img: np.ndarray, size: Tuple[int, int], *, impl: str = "auto") -> np.ndarray:
    """Bilinear resize of a u8 image, half-pixel centres (like cv2.INTER_LINEAR).

    Args:
        img: (H, W), (H, W, 1) or (H, W, 3) u8.
        size: the output's (width, height), positive integers.
        impl: ``"auto"``, ``"ref"`` or ``"neon"``.

    Returns:
        (height, width) plus ``img``'s channel axis, u8.

    Raises:
        ValueError: a wrong shape, dtype, stride, size or impl.
        KernelError: the C library refused (``impl="neon"`` without NEON).
        FileNotFoundError: the library is missing.
    """
    suffix = _check_impl(impl)
    img, c = _u8_image("img", img, (1, 3))
    try:
        if not isinstance(size, (tuple, list, np.ndarray)):
            raise TypeError
        dw, dh = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height), got {size!r}") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in (dw, dh)) \
            or dw <= 0 or dh <= 0:
        raise ValueError(f"size must be two positive integers (width, height), got {size!r}")
    dw, dh = int(dw), int(dh)
    if dw * dh * c > _INT_MAX:
        raise ValueError(f"size {size!r} makes a {dw * dh * c}-byte image; the kernels take at most 2**31-1 bytes")
    h, w = img.shape[:2]
    out = np.empty((dh, dw) + img.shape[2:], np.uint8)
    _call("posetok_resize_bilinear_u8", suffix, _ptr(img), _row_stride("img", img), w, h,
          _ptr(out), dw * c, dw, dh, c)
    return out


def conv2d(x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray] = None, *,
           stride: int = 1, padding: int = 0, impl: str = "auto") -> np.ndarray:
    """2-D convolution in f32 like torch.nn.functional.conv2d (zero padding).

    Args:
        x: (C_in, H, W) or (N, C_in, H, W) f32, C-contiguous apart from an
            optional row stride.
        weight: (C_out, C_in, k, k) f32, C-contiguous.
        bias: (C_out,) f32, or None.
        stride: step in both directions, >= 1.
        padding: zero padding on every side, 0..k-1.
        impl: ``"auto"``, ``"ref"`` or ``"neon"``.

    Returns:
        (C_out, H', W') or (N, C_out, H', W') f32, with
        ``H' = (H + 2 * padding - k) // stride + 1`` (same for W').

    Raises:
        ValueError: a wrong shape, dtype, layout, stride, padding or impl.
        KernelError: the C library refused (``impl="neon"`` without NEON).
        FileNotFoundError: the library is missing.
    """
    suffix = _check_impl(impl)
    x = _array("x", x, np.float32, (3, 4))
    weight = _array("weight", weight, np.float32, (4,))
    batched = x.ndim == 4
    xs = x if batched else x[None]
    n, cin, h, w = xs.shape
    cout, wcin, kh, kw = weight.shape
    if kh != kw:
        raise ValueError(f"weight must have a square kernel (C_out, C_in, k, k), got {weight.shape}")
    if wcin != cin:
        raise ValueError(f"weight expects {wcin} input channels but x has {cin} (x shape {x.shape})")
    if not weight.flags.c_contiguous:
        raise ValueError("weight must be C-contiguous")
    if bias is not None:
        bias = _array("bias", bias, np.float32, (1,))
        if bias.shape != (cout,) or not bias.flags.c_contiguous:
            raise ValueError(f"bias must be a contiguous ({cout},) array, got shape {bias.shape}")
    for name, v in (("stride", stride), ("padding", padding)):
        if not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {v!r}")
    if not 1 <= stride <= _INT_MAX:
        raise ValueError(f"stride must be >= 1 and < 2**31, got {stride}")
    if not 0 <= padding < kh:
        raise ValueError(f"padding must be in 0..{kh - 1} for a {kh}x{kh} kernel, got {padding}")
    if h + 2 * padding < kh or w + 2 * padding < kh:
        raise ValueError(f"x ({h}x{w}) plus padding {padding} is smaller than the {kh}x{kh} kernel")
    # planes must follow each other at H * row stride (the C layout)
    row = xs.strides[2] // 4
    if xs.strides[3] != 4 or xs.strides[2] < 4 * w or xs.strides[2] % 4 or \
            xs.strides[1] != xs.strides[2] * h:
        raise ValueError(f"x must be C-contiguous apart from an optional row stride, got strides {x.strides}")
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kh) // stride + 1
    out = np.empty((n, cout, oh, ow), np.float32)
    bias_ptr = _ptr(bias) if bias is not None else None
    for i in range(n):
        _call("posetok_conv2d_f32", suffix, _ptr(xs[i]), row, w, h, cin, _ptr(weight), bias_ptr,
              cout, kh, int(stride), int(padding), _ptr(out[i]), ow)
    return out if batched else out[0]


def normalize(img: np.ndarray, mean: Sequence[float], scale: Sequence[float], *,
              impl: str = "auto") -> np.ndarray:
    """u8 HWC image to f32 CHW: (float(pixel) - mean[c]) * scale[c].

    The subtraction and the multiplication are each rounded to f32.

    Args:
        img: (H, W) or (H, W, C) u8, C = 1..4.
        mean: C finite values, one per channel.
        scale: C finite values, one per channel.
        impl: ``"auto"``, ``"ref"`` or ``"neon"``.

    Returns:
        (C, H, W) f32.

    Raises:
        ValueError: a wrong shape, dtype, stride, alignment or impl, or mean or
            scale of the wrong length or not finite.
        KernelError: the C library refused (``impl="neon"`` without NEON).
        FileNotFoundError: the library is missing.
    """
    suffix = _check_impl(impl)
    img, c = _u8_image("img", img, (1, 2, 3, 4))
    m, s = _floats("mean", mean, c), _floats("scale", scale, c)
    h, w = img.shape[:2]
    out = np.empty((c, h, w), np.float32)
    _call("posetok_normalize_u8_f32_chw", suffix, _ptr(img), _row_stride("img", img), w, h, c,
          _ptr(m), _ptr(s), _ptr(out), w)
    return out


# the one-pass crop kernels (their own module; they use the checks above)
from .crop import crop_image, crop_nv12, crop_nv21  # noqa: E402
