"""``posetok estimate FRAME``: the pose in one camera frame (PNG or raw NV21/NV12), numpy only.

    posetok estimate frame.png --bundle bundle/ [--box x,y,w,h] [--flip-test] [--shift-test]
                     [--out overlay.png] [--json]
    posetok estimate frame.nv21 --size 640x480 --bundle bundle/

A ``.nv21`` / ``.nv12`` file holds the raw planes: W*H luma bytes, then
W*H/2 interleaved chroma bytes (V first for NV21, U first for NV12).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from . import backends, kernels
from .atomic import check_output_file
from .bundle import PRECISIONS
from .cli import refuse
from .errors import PosetokError
from .estimator import EstimatorOptions, PoseEstimator, PoseResult
from .info_cli import table
from .png import read_png, write_png
from .skeleton import KEYPOINT_NAMES, LIMBS

RAW_FORMATS = (".nv21", ".nv12")
_WARM, _COOL, _TORSO = (255, 96, 0), (0, 170, 255), (255, 235, 60)
_SIDE = {name: (_WARM if name.startswith("left") else _COOL if name.startswith("right") else _TORSO)
         for name in KEYPOINT_NAMES}


def _pair(text: str, sep: str, count: int, what: str) -> list:
    parts = text.replace(" ", "").split(sep)
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count:
        raise argparse.ArgumentTypeError(f"{what} must be {count} numbers separated by {sep!r}, got {text!r}")
    return values


def _size(text: str) -> list:
    """``--size WxH``: two positive whole numbers."""
    values = _pair(text.lower(), "x", 2, "--size")
    if not all(v.is_integer() and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"--size must be two positive whole numbers WxH, got {text!r}")
    return [int(v) for v in values]


def read_frame(path: Path, size) -> tuple:
    """(kind, planes, rgb): kind "rgb" with planes (image,), or "nv21"/"nv12" with planes (y, chroma)."""
    suffix = path.suffix.lower()
    if suffix not in RAW_FORMATS:
        if size is not None:
            raise ValueError("--size is for raw .nv21/.nv12 frames; a PNG carries its own size")
        image = read_png(path)
        return "rgb", (image,), np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    if size is None:
        raise ValueError(f"{path.name}: a raw {suffix} frame needs --size WxH")
    w, h = size
    if w % 2 or h % 2:
        raise ValueError(f"--size {w}x{h}: NV21/NV12 frames need an even width and height")
    data = np.fromfile(path, np.uint8)
    if data.size != w * h * 3 // 2:
        raise ValueError(f"{path.name} holds {data.size} bytes; a {w}x{h} {suffix[1:]} frame is {w * h * 3 // 2}")
    y, chroma = data[:w * h].reshape(h, w), data[w * h:].reshape(h // 2, w // 2, 2)
    convert = kernels.nv21_to_rgb888 if suffix == ".nv21" else kernels.nv12_to_rgb888
    return suffix[1:], (y, chroma), convert(y, chroma)


def _disk_segment(canvas: np.ndarray, a, b, radius: float, color) -> None:
    h, w = canvas.shape[:2]
    lo = np.floor(np.minimum(a, b) - radius - 1).astype(int)
    hi = np.ceil(np.maximum(a, b) + radius + 1).astype(int)
    x0, y0, x1, y1 = max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)
    if x0 >= x1 or y0 >= y1:
        return
    gx, gy = np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5)
    ab = np.asarray(b, float) - a
    t = np.clip(((gx - a[0]) * ab[0] + (gy - a[1]) * ab[1]) / max(float(ab @ ab), 1e-9), 0, 1)
    inside = np.hypot(gx - a[0] - t * ab[0], gy - a[1] - t * ab[1]) <= radius
    canvas[y0:y1, x0:x1][inside] = color


def draw_overlay(rgb: np.ndarray, result: PoseResult) -> np.ndarray:
    """The frame with the pose drawn over it: limbs (left warm, right cool, torso yellow), joints, the box.

    Args:
        rgb: uint8 (H, W, 3), the frame.
        result: the pose to draw.

    Returns:
        A new uint8 (H, W, 3) image.
    """
    out = rgb.copy()
    x, y, side, _ = result.box
    radius = max(1.0, side / 80.0)
    kp = result.keypoints.astype(float)
    for parent, child in LIMBS:
        _disk_segment(out, kp[parent], kp[child], radius, _SIDE[KEYPOINT_NAMES[child]])
    for k in range(len(kp)):
        _disk_segment(out, kp[k], kp[k], radius * 1.8, (255, 255, 255))
        _disk_segment(out, kp[k], kp[k], radius * 1.1, _SIDE[KEYPOINT_NAMES[k]])
    corners = np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], float)
    for i in range(4):
        _disk_segment(out, corners[i], corners[(i + 1) % 4], 0.6, (0, 255, 0))
    return out


def main(argv: list[str], prog: str = "posetok estimate") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("frame", type=Path, help="a PNG image, or a raw .nv21 / .nv12 frame (needs --size)")
    ap.add_argument("--bundle", required=True, type=Path, help="bundle folder with an estimator")
    ap.add_argument("--size", type=_size, help="WxH of a raw frame, e.g. 640x480")
    ap.add_argument("--box", type=lambda s: _pair(s, ",", 4, "--box"),
                    help="x,y,w,h of the person in frame pixels, tight around them as a detector gives it (the "
                         "model sees a square crop around it); default: search the whole frame. A box starting "
                         "left of or above the frame is written --box=-10,4,60,90")
    ap.add_argument("--backend", default="auto", choices=("auto",) + backends.BACKENDS)
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS)
    ap.add_argument("--num-threads", type=int, default=None)
    ap.add_argument("--flip-test", action="store_true",
                    help="also run the crop's mirror image and average the two estimates (more accurate, a second "
                         "graph row per pose)")
    ap.add_argument("--shift-test", action="store_true",
                    help="also run two crops moved by a pixel or two and average the three estimates (more "
                         "accurate, two more graph rows per pose; four with --flip-test)")
    ap.add_argument("--out", type=Path, help="write the frame with the pose drawn over it (PNG)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    try:
        if args.out is not None:
            check_output_file(args.out)      # before the work whose result it would lose
        kind, planes, rgb = read_frame(args.frame, args.size)
        options = EstimatorOptions(args.backend, args.precision, args.num_threads, flip_test=args.flip_test,
                                   shift_test=args.shift_test)
        with PoseEstimator.from_bundle(args.bundle, options=options) as est:
            call = {"rgb": est.estimate, "nv21": est.estimate_nv21, "nv12": est.estimate_nv12}[kind]
            result = call(*planes, box=args.box)
            backend = est.backend
        if args.out is not None:
            write_png(args.out, draw_overlay(rgb, result))
    except (PosetokError, ValueError, OSError) as exc:
        return refuse(prog, str(exc))
    if args.json:
        print(json.dumps({"frame": str(args.frame), "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
                          "backend": backend, "precision": args.precision, "flip_test": args.flip_test,
                          "shift_test": args.shift_test,
                          "box": [int(v) for v in result.box], "presence": round(float(result.presence), 4),
                          "keypoints": [[round(float(v), 3) for v in p] for p in result.keypoints],
                          "scores": [round(float(s), 4) for s in result.scores],
                          "token_ids": [int(t) for t in result.token_ids],
                          "keypoint_names": list(KEYPOINT_NAMES)}))
        return 0
    rows = [[name, f"{p[0]:.1f}", f"{p[1]:.1f}", f"{s:.3f}"]
            for name, p, s in zip(KEYPOINT_NAMES, result.keypoints, result.scores)]
    views = "".join(name for name, on in ((", flip test", args.flip_test), (", shift test", args.shift_test)) if on)
    print(f"{args.frame}  {rgb.shape[1]}x{rgb.shape[0]}  box {list(result.box)}  ({backend}, {args.precision}{views})")
    print("\n".join(table(["keypoint", "x", "y", "score"], rows, right={1, 2, 3})))
    print("token ids " + " ".join(str(int(t)) for t in result.token_ids))
    print(f"presence  {result.presence:.3f} (the chance the crop holds a figure)")
    if args.out is not None:
        print(f"overlay   {args.out}")
    return 0
