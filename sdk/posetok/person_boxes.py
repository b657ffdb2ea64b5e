"""Frames, person boxes and smoothing around ``PoseEstimator``: the checks of a frame and a box, the square
crop the model sees around a person box, and the One Euro filter of video mode."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import numpy as np

from .checks import is_real_number
from .kernels.crop import MAX_BOX_PX

MIN_FRAME_PX = 16   # frames smaller than 16 x 16 are refused: the figure would be a few pixels
MIN_BOX_PX = 16     # crops are at least this wide


class OneEuroFilter:
    """The One Euro filter (Casiez et al. 2012) on an array of coordinates, each filtered on its own.

    Args:
        min_cutoff: cutoff in Hz at zero speed.
        beta: cutoff increase per unit of (scaled) speed.
        d_cutoff: cutoff in Hz of the speed's own low-pass.
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: Optional[np.ndarray] = None
        self._dx: Optional[np.ndarray] = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, dt: Optional[float], speed_scale: float = 1.0) -> np.ndarray:
        """Filter one sample.

        Args:
            x: the new sample (any shape, the same every call).
            dt: seconds since the previous sample (> 0); None for the first.
            speed_scale: multiplies the speed before it sets the cutoff
                (e.g. 1 / box side, for speed in box sides per second).

        Returns:
            The filtered sample, float64, the shape of ``x``.
        """
        x = np.asarray(x, np.float64)
        if self._x is None or dt is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return self._x.copy()
        speed = (x - self._x) / dt * speed_scale
        self._dx = self._dx + self._alpha(self.d_cutoff, dt) * (speed - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + self._alpha(cutoff, dt) * (x - self._x)
        return self._x.copy()


def _check_frame(name: str, a, channels: tuple) -> np.ndarray:
    """A frame (or plane) checked: uint8, (H, W) or (H, W, C) with C in ``channels``, 16 px to ``MAX_BOX_PX`` on a
    side; returned in a layout the kernels read (see ``kernel_layout``)."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8, got {a.dtype}")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in channels)):
        want = "(H, W)" + "".join(f" or (H, W, {c})" for c in channels)
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    h, w = a.shape[:2]
    if h < MIN_FRAME_PX or w < MIN_FRAME_PX:
        raise ValueError(f"{name} is {w}x{h} pixels; frames must be at least {MIN_FRAME_PX}x{MIN_FRAME_PX}")
    if h > MAX_BOX_PX or w > MAX_BOX_PX:
        raise ValueError(f"{name} is {w}x{h} pixels; frames must be at most {MAX_BOX_PX} pixels on a side")
    return kernel_layout(a)


def kernel_layout(a):
    """``a`` itself when the kernels can read it in place (rows top to bottom, each row's pixels packed: a whole
    frame, or a window of a larger one), else a C-contiguous copy (a flipped, transposed, channel-reordered or
    Fortran-ordered view, an RGB view of RGBA pixels). Anything but a non-empty ndarray passes through, for the
    kernels' own checks to name."""
    if not isinstance(a, np.ndarray) or a.ndim < 1 or a.size == 0:
        return a
    row = a[0]
    if (row.ndim == 0 or row.flags.c_contiguous) and (a.shape[0] == 1 or a.strides[0] >= row.nbytes):
        return a
    return np.ascontiguousarray(a)


def _check_box(box, width: int, height: int) -> tuple:
    """The caller's person box, checked: (x, y, w, h) floats."""
    ordered = isinstance(box, np.ndarray) or (isinstance(box, Sequence) and not isinstance(box, (str, bytes,
                                                                                                 bytearray)))
    if not ordered or not all(map(is_real_number, box)):
        raise ValueError(f"box must be a tuple, list or array of four numbers (x, y, width, height), got {box!r}")
    try:
        vals = [float(v) for v in box]
    except OverflowError:
        vals = [math.inf]
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"box must be four finite numbers (x, y, width, height), got {box!r}")
    x, y, w, h = vals
    if w < 1 or h < 1:
        raise ValueError(f"box width and height must be at least 1 pixel, got {box!r}")
    if max(w, h) > MAX_BOX_PX or max(abs(x), abs(y)) >= 2 ** 30:
        raise ValueError(f"box is too large (w, h <= {MAX_BOX_PX}, |x|, |y| < 2**30), got {box!r}")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"box {tuple(box)!r} lies outside the {width}x{height} frame; it must overlap it")
    return x, y, w, h


def person_crop(box: tuple, width: int, height: int, figure_share: float, box_scale: float = 1.0) -> tuple:
    """The square crop the model sees around a person box.

    Args:
        box: ``(x, y, w, h)`` floats, tight around the person, frame pixels.
        width, height: the frame's size.
        figure_share: the share of the crop the box's long side fills (the
            manifest's ``estimator.figure_share``).
        box_scale: multiplies the crop's side.

    Returns:
        ``(x, y, side, side)`` ints: centred on the box (the centre kept inside
        the frame), side = ``max(w, h) / figure_share * box_scale``, at least
        ``MIN_BOX_PX`` and at most twice the frame's larger side (and at most
        ``MAX_BOX_PX``, the crop kernel's limit).
    """
    x, y, w, h = box
    side = min(max(max(w, h) / figure_share * box_scale, MIN_BOX_PX), 2 * max(width, height), MAX_BOX_PX)
    cx, cy = min(max(x + w / 2, 0.0), width), min(max(y + h / 2, 0.0), height)
    return _square(float(cx), float(cy), side)


def _square(cx: float, cy: float, side: float) -> tuple:
    side = max(1, int(math.floor(side + 0.5)))
    return (int(math.floor(cx - side / 2 + 0.5)), int(math.floor(cy - side / 2 + 0.5)), side, side)
