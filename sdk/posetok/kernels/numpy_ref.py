"""The kernels' specification in plain numpy (slow, vectorised over whole
images): an independent transcription of the formulas in
``kernels/include/posetok_kernels.h`` that the tests compare the C library
with. Same arguments as :mod:`posetok.kernels`, no ``impl``."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

# BT.601 Q6 coefficients: (crv, cgu, cgv, cbu)
_COEFFS = {False: (102, 25, 52, 129), True: (90, 22, 46, 113)}


def _yuv(y: np.ndarray, chroma: np.ndarray, u_first: bool, full_range: bool) -> np.ndarray:
    h, w = y.shape
    pairs = chroma.reshape(chroma.shape[0], -1, 2).astype(np.int32)
    pairs = np.repeat(np.repeat(pairs, 2, axis=0), 2, axis=1)[:h, :w]
    d = (pairs[..., 0] if u_first else pairs[..., 1]) - 128
    e = (pairs[..., 1] if u_first else pairs[..., 0]) - 128
    yi = y.astype(np.int32)
    yq = yi * 64 if full_range else ((yi * 149) >> 1) - 1192
    crv, cgu, cgv, cbu = _COEFFS[bool(full_range)]
    q = np.stack([yq + crv * e, yq - cgu * d - cgv * e, yq + cbu * d], axis=-1)
    return np.clip((q + 32) >> 6, 0, 255).astype(np.uint8)


def nv21_to_rgb888(y, vu, *, full_range=False):
    return _yuv(y, vu, False, full_range)


def nv12_to_rgb888(y, uv, *, full_range=False):
    return _yuv(y, uv, True, full_range)


def bt601_float(y: np.ndarray, u: np.ndarray, v: np.ndarray, full_range: bool) -> np.ndarray:
    """The exact real-valued BT.601 conversion (per pixel planes), unclipped."""
    y, d, e = y.astype(np.float64), u.astype(np.float64) - 128, v.astype(np.float64) - 128
    if full_range:
        r, g, b = y + 1.402 * e, y - 0.344136 * d - 0.714136 * e, y + 1.772 * d
    else:
        yy = 1.164 * (y - 16)
        r, g, b = yy + 1.596 * e, yy - 0.391 * d - 0.813 * e, yy + 2.018 * d
    return np.stack([r, g, b], axis=-1)


def downscale_uv2x2(uv):
    s = uv.astype(np.uint16)
    total = s[0::2, 0::2] + s[0::2, 1::2] + s[1::2, 0::2] + s[1::2, 1::2]
    return ((total + 2) >> 2).astype(np.uint8)


_NUMPY_PAD = {"reflect_101": "reflect", "replicate": "edge", "constant": "constant"}


def gaussian3x3(img, *, border="reflect_101", border_value=0):
    h, w = img.shape
    mode = _NUMPY_PAD[border]
    if border == "reflect_101" and (h == 1 or w == 1):
        # a 1-pixel dimension reflects onto itself (numpy cannot reflect it)
        p = np.pad(img, ((1, 1), (0, 0)), mode="edge" if h == 1 else "reflect")
        p = np.pad(p, ((0, 0), (1, 1)), mode="edge" if w == 1 else "reflect")
    elif mode == "constant":
        p = np.pad(img, 1, mode="constant", constant_values=border_value)
    else:
        p = np.pad(img, 1, mode=mode)
    p = p.astype(np.int32)
    v = p[:-2] + 2 * p[1:-1] + p[2:]
    acc = v[:, :-2] + 2 * v[:, 1:-1] + v[:, 2:]
    return ((acc + 8) >> 4).astype(np.uint8)


def resize_taps(src_len: int, dst_len: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, w): source indices and Q7 weight of i1 per destination index."""
    i = np.arange(dst_len, dtype=np.int64)
    s = np.maximum(((2 * i + 1) * src_len * 65536) // (2 * dst_len) - 32768, 0)
    i0, w = s >> 16, ((s & 0xFFFF) + 256) >> 9
    i0 = np.where(w == 128, i0 + 1, i0)
    w = np.where(w == 128, 0, w)
    at_end = i0 >= src_len - 1
    i0, w = np.where(at_end, src_len - 1, i0), np.where(at_end, 0, w)
    return i0, np.minimum(i0 + 1, src_len - 1), w


def _lerp(a, b, w):
    return (a * (128 - w) + b * w + 64) >> 7


def resize_bilinear(img, size):
    dw, dh = size
    h, w = img.shape[:2]
    x = img.reshape(h, w, -1).astype(np.int64)
    y0, y1, wy = resize_taps(h, dh)
    x0, x1, wx = resize_taps(w, dw)
    v = _lerp(x[y0], x[y1], wy[:, None, None])
    out = _lerp(v[:, x0], v[:, x1], wx[None, :, None]).astype(np.uint8)
    return out.reshape((dh, dw) + img.shape[2:])


def resize_bilinear_float(img, size) -> np.ndarray:
    """Exact real-valued bilinear with the same half-pixel centres."""
    dw, dh = size
    h, w = img.shape[:2]
    x = img.reshape(h, w, -1).astype(np.float64)

    def axis(src_len, dst_len):
        s = np.clip((np.arange(dst_len) + 0.5) * src_len / dst_len - 0.5, 0, src_len - 1)
        i0 = np.floor(s).astype(np.int64)
        return i0, np.minimum(i0 + 1, src_len - 1), s - i0

    y0, y1, fy = axis(h, dh)
    x0, x1, fx = axis(w, dw)
    v = x[y0] * (1 - fy)[:, None, None] + x[y1] * fy[:, None, None]
    out = v[:, x0] * (1 - fx)[None, :, None] + v[:, x1] * fx[None, :, None]
    return out.reshape((dh, dw) + img.shape[2:])


def conv2d(x, weight, bias: Optional[np.ndarray] = None, *, stride=1, padding=0):
    """float64 accumulation (a more accurate oracle than either f32 path)."""
    batched = x.ndim == 4
    xs = (x if batched else x[None]).astype(np.float64)
    n, c, h, w = xs.shape
    o, _, k, _ = weight.shape
    p = np.pad(xs, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    out = np.zeros((n, o, oh, ow))
    wt = weight.astype(np.float64)
    for ky in range(k):
        for kx in range(k):
            patch = p[:, :, ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride]
            out += np.einsum("nchw,oc->nohw", patch, wt[:, :, ky, kx])
    if bias is not None:
        out += bias.astype(np.float64)[None, :, None, None]
    out = out.astype(np.float32)
    return out if batched else out[0]


def normalize(img, mean: Sequence[float], scale: Sequence[float]):
    x = img.reshape(img.shape[0], img.shape[1], -1).astype(np.float32)
    m = np.asarray(mean, np.float32)
    s = np.asarray(scale, np.float32)
    return np.ascontiguousarray(((x - m) * s).transpose(2, 0, 1))


# ---- crop + area downscale (posetok_kernels.h, section 7) ----------------------

def area_weights(pos: int, length: int, n_out: int, s: int = 1) -> Tuple[np.ndarray, int]:
    """Dense Q8 weights [n_out, samples] of one axis over the grid samples
    floor(pos/s) .. ceil((pos+length)/s) - 1 (returned as the first index)."""
    lo, hi = pos // s, -(-(pos + length) // s)
    i = np.arange(n_out, dtype=np.int64)[:, None]
    g = np.arange(lo, hi, dtype=np.int64)[None, :]

    def share(t):
        c = np.clip((t - pos) * n_out - i * length, 0, length)
        return (512 * c + length) // (2 * length)

    return share(s * (g + 1)) - share(s * g), lo


def _area_plane(plane: np.ndarray, box, size, s: int, fill: int) -> np.ndarray:
    """plane [H, W, C] u8 -> [oh, ow, C] u8, samples outside the plane = fill."""
    x, y, w, h = box
    ow, oh = size
    wx, gx = area_weights(x, w, ow, s)
    wy, gy = area_weights(y, h, oh, s)
    rows, cols = gy + np.arange(wy.shape[1]), gx + np.arange(wx.shape[1])
    ry, cx = np.clip(rows, 0, plane.shape[0] - 1), np.clip(cols, 0, plane.shape[1] - 1)
    p = plane[ry][:, cx].astype(np.int64)
    inside = ((rows >= 0) & (rows < plane.shape[0]))[:, None] & ((cols >= 0) & (cols < plane.shape[1]))[None, :]
    p[~inside] = fill
    v = np.einsum("ij,jkc->ikc", wy, p)
    assert v.max(initial=0) <= 65280
    return ((np.einsum("ok,ikc->ioc", wx, v) + 32768) >> 16).astype(np.uint8)


def _crop_yuv(y, chroma, u_first, box, size, mean, scale, channels, full_range, u8):
    ybar = _area_plane(y[..., None], box, size, 1, 0 if full_range else 16)[..., 0].astype(np.int32)
    yq = ybar * 64 if full_range else ((ybar * 149) >> 1) - 1192
    if channels == 1:
        q = yq[..., None]
    else:
        uv = _area_plane(chroma.reshape(chroma.shape[0], -1, 2), box, size, 2, 128).astype(np.int32)
        d = (uv[..., 0] if u_first else uv[..., 1]) - 128
        e = (uv[..., 1] if u_first else uv[..., 0]) - 128
        crv, cgu, cgv, cbu = _COEFFS[bool(full_range)]
        q = np.stack([yq + crv * e, yq - cgu * d - cgv * e, yq + cbu * d], axis=-1)
    img = np.clip((q + 32) >> 6, 0, 255).astype(np.uint8)
    return _crop_outputs(img, mean, scale, u8)


def _crop_outputs(img, mean, scale, u8):
    c = img.shape[2]
    m = np.broadcast_to(np.asarray(mean, np.float32).reshape(-1)[:c], (c,))
    sc = np.broadcast_to(np.asarray(scale, np.float32).reshape(-1)[:c], (c,))
    out = normalize(img, m, sc)
    return (out, img) if u8 else out


def crop_nv21(y, vu, box, size=(64, 64), *, mean=(0, 0, 0), scale=(1, 1, 1), channels=3, full_range=False,
              u8=False):
    return _crop_yuv(y, vu, False, box, size, mean, scale, channels, full_range, u8)


def crop_nv12(y, uv, box, size=(64, 64), *, mean=(0, 0, 0), scale=(1, 1, 1), channels=3, full_range=False,
              u8=False):
    return _crop_yuv(y, uv, True, box, size, mean, scale, channels, full_range, u8)


def crop_image(img, box, size=(64, 64), *, mean, scale, u8=False):
    plane = img.reshape(img.shape[0], img.shape[1], -1)
    return _crop_outputs(_area_plane(plane, box, size, 1, 0), mean, scale, u8)


def crop_area_float(plane: np.ndarray, box, size, fill: float) -> np.ndarray:
    """The exact real-valued area mean of an [H, W, C] plane (same box rules)."""
    x, y, w, h = box
    ow, oh = size
    pad = max(w, h) + abs(x) + abs(y) + 2
    p = np.pad(plane.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), constant_values=fill)

    def weights(pos, length, n):
        edges = pos + np.arange(n + 1) * length / n
        t = np.arange(pos // 1 - 1, pos + length + 2, dtype=np.int64)
        lo = np.clip(edges[:-1, None], t[None, :], t[None, :] + 1)
        hi = np.clip(edges[1:, None], t[None, :], t[None, :] + 1)
        return (hi - lo) * n / length, t

    wx, tx = weights(x, w, ow)
    wy, ty = weights(y, h, oh)
    sub = p[ty + pad][:, tx + pad]
    return np.einsum("ij,ok,jkc->ioc", wy, wx, sub)
