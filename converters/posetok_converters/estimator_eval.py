"""The estimator as a user meets it: person boxes, and frames from another renderer.

The held-out frames of ``estimator_train.evaluate_estimator`` hand the model
its own crop (the model frame the pose was drawn in). A user hands
``PoseEstimator`` a person box instead, tight around the person, and the
runtime crops around it (``posetok.estimator.person_crop``: side = the box's
long side / ``figure_share``). Two checks here measure that path with the
torch model and the same kernel crop the runtime makes:

- person boxes: the held-out clean poses drawn again by ``frames``, each
  cropped around its keypoints' bounding box (``--shares`` sweeps the share);
- an independent renderer (Pillow, nothing shared with ``frames`` but the
  documented side colours): larger 4:3 frames, aliased lines of 1-5 px,
  round heads, other backdrops (flat, stripes, tiles, furniture blocks,
  smooth noise), no blur; the person box is the drawn figure's bounding box.

Errors are relative to the person's size, so sets of other scales compare:
the mean keypoint error over the mean long side of the keypoints' bounding
box, times the held-out clean poses' mean long side in the 64-px model frame
(``reference_extent_px``). On the held-out frames themselves this is their
``mpjpe_px``.
"""
from __future__ import annotations

import numpy as np

from posetok import kernels
from posetok.estimator import person_crop
from posetok.skeleton import FRAME_SIZE, KEYPOINT_INDEX, LIMBS

from . import data, frames
from .estimator import PoseEstimatorModel
from .estimator_train import keypoints_in_views

PERSON_BOX_SEED = 20251205
INDEPENDENT_SEED = 20251206
INDEPENDENT_FRAME = (160, 120)            # width, height: a 4:3 camera
INDEPENDENT_FIGURE_HEIGHT = (0.3, 0.75)   # the figure's long side, share of the frame height


def keypoint_boxes(keypoints: np.ndarray, pad: np.ndarray | float = 0.0) -> np.ndarray:
    """Tight (x, y, w, h) boxes [n,4] around keypoints [n,13,2], grown by ``pad`` px on every side."""
    pad = np.broadcast_to(np.asarray(pad, np.float64), (len(keypoints),))[:, None]
    low, high = keypoints.min(axis=1) - pad, keypoints.max(axis=1) + pad
    return np.concatenate([low, high - low], axis=1)


def estimate_in_crops(model: PoseEstimatorModel, rgb: np.ndarray, boxes: np.ndarray, share: float,
                      flip_test: bool = False, shift_test: bool = False) -> np.ndarray:
    """The runtime's path with the torch model: person box -> ``person_crop`` -> kernel crop -> model (with
    ``flip_test`` and ``shift_test``, as the runtime's, see ``estimator_train.keypoints_in_views``).

    Returns:
        keypoints [n,13,2] in frame px, float64.
    """
    h, w = rgb.shape[1:3]
    crops = [person_crop(tuple(float(v) for v in box), w, h, share) for box in boxes]

    def crops_of(squares: list[tuple]) -> np.ndarray:
        return np.stack([kernels.crop_image(img, square, (FRAME_SIZE, FRAME_SIZE), mean=frames.INPUT_MEAN,
                                            scale=frames.INPUT_SCALE) for img, square in zip(rgb, squares)])
    return keypoints_in_views(model, crops_of, crops, flip_test, shift_test)


def long_sides(keypoints: np.ndarray) -> np.ndarray:
    """The long side [n] of each pose's keypoint bounding box."""
    return (keypoints.max(axis=1) - keypoints.min(axis=1)).max(axis=1)


def reference_extent_px(n: int) -> float:
    """Mean long side of the held-out clean poses in the 64-px model frame: the scale errors are given at."""
    return float(long_sides(frames.eval_poses("clean", n)).mean())


def relative_mpjpe(pred: np.ndarray, true: np.ndarray, reference_px: float) -> float:
    """Mean keypoint error at the reference person size (see the module notes)."""
    return float(np.linalg.norm(pred - true, axis=-1).mean() / long_sides(true).mean() * reference_px)


def evaluate_person_boxes(model: PoseEstimatorModel, shares: tuple[float, ...], n: int,
                          flip_test: bool = False, shift_test: bool = False) -> dict[float, float]:
    """{share: relative MPJPE} on held-out clean poses drawn by ``frames``, cropped around their keypoints."""
    rng = np.random.default_rng(PERSON_BOX_SEED)
    poses = frames.eval_poses("clean", n)
    rgb, boxes = frames.draw_frames(poses, rng, occluders=0)
    true = frames.crop_to_camera(poses, boxes)
    person, reference = keypoint_boxes(true), float(long_sides(poses).mean())   # = reference_extent_px(n)
    return {share: relative_mpjpe(estimate_in_crops(model, rgb, person, share, flip_test, shift_test), true,
                                  reference)
            for share in shares}


# -- an independent renderer ------------------------------------------------------------

_WARM = [(220, 40, 30), (240, 120, 20), (250, 200, 40), (200, 30, 90), (255, 90, 60)]
_COOL = [(30, 90, 220), (20, 170, 200), (40, 180, 80), (90, 60, 200), (20, 120, 120)]
_SIDE = {name: (1 if name.startswith("left_") else -1 if name.startswith("right_") else 0)
         for name in KEYPOINT_INDEX}
_NAMES = {i: name for name, i in KEYPOINT_INDEX.items()}


def _colour(rng: np.random.Generator) -> tuple:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _backdrop(rng: np.random.Generator, w: int, h: int):
    from PIL import Image, ImageDraw
    kind = rng.integers(5)
    base = _colour(rng)
    img = Image.new("RGB", (w, h), base)
    draw = ImageDraw.Draw(img)
    if kind == 1:       # stripes
        step = int(rng.integers(6, 24))
        other = _colour(rng)
        for x in range(0, w + h, 2 * step):
            draw.polygon([(x, 0), (x + step, 0), (x + step - h, h), (x - h, h)], fill=other)
    elif kind == 2:     # floor tiles
        step = int(rng.integers(8, 30))
        for y in range(0, h, step):
            for x in range(0, w, step):
                if (x // step + y // step) % 2:
                    draw.rectangle([x, y, x + step - 1, y + step - 1], fill=_colour(rng))
    elif kind == 3:     # furniture: blocks and poles
        for _ in range(int(rng.integers(2, 8))):
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            draw.rectangle([int(x0), int(y0), int(x0 + rng.integers(3, w // 2)), int(y0 + rng.integers(3, h // 2))],
                           fill=_colour(rng))
    elif kind == 4:     # smooth noise
        coarse = rng.integers(0, 256, (4, 5, 3)).astype(np.uint8)
        img = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
    return img


def independent_frames(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames of another renderer.

    Returns:
        (rgb uint8 [n,H,W,3], keypoints [n,13,2] frame px, person boxes [n,4] (x, y, w, h) around the drawing).
    """
    from PIL import ImageDraw
    w, h = INDEPENDENT_FRAME
    poses = data.sample_poses_rng(n, rng, distribution="broad")
    upright = rng.uniform(size=n) < 0.25
    poses[upright] = data.sample_poses_rng(int(upright.sum()), rng, distribution="upright")
    images, keypoints, pads = [], [], []
    for pose in poses.astype(np.float64):
        low, high = pose.min(0), pose.max(0)
        scale = rng.uniform(*INDEPENDENT_FIGURE_HEIGHT) * h / max(float((high - low).max()), 1.0)
        size = (high - low) * scale
        origin = rng.uniform([2, 2], [max(3, w - size[0] - 2), max(3, h - size[1] - 2)])
        kp = origin + (pose - low) * scale
        width = int(rng.integers(1, 6))
        head_r = float(rng.uniform(2.0, 6.0))
        img = _backdrop(rng, w, h)
        draw = ImageDraw.Draw(img)
        warm, cool = _WARM[rng.integers(len(_WARM))], _COOL[rng.integers(len(_COOL))]
        grey = rng.integers(30, 256)
        torso = tuple(int(np.clip(grey + v, 0, 255)) for v in rng.integers(-20, 21, 3))   # neutral, as documented
        colour = {1: warm, -1: cool, 0: torso}
        for parent, child in LIMBS:
            draw.line([tuple(kp[parent]), tuple(kp[child])], fill=colour[_SIDE[_NAMES[child]]], width=width)
        hx, hy = kp[KEYPOINT_INDEX["head"]]
        draw.ellipse([hx - head_r, hy - head_r, hx + head_r, hy + head_r], fill=torso)
        arr = np.asarray(img, np.float32) + rng.normal(0, rng.uniform(0, 4), (h, w, 3))
        images.append(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
        keypoints.append(kp)
        pads.append(max(head_r, width / 2))
    kp = np.asarray(keypoints)
    return np.stack(images), kp, keypoint_boxes(kp, np.asarray(pads))


def evaluate_independent(model: PoseEstimatorModel, share: float, n: int, flip_test: bool = False,
                         shift_test: bool = False) -> float:
    """Relative MPJPE on ``n`` frames of the independent renderer, person box given."""
    rgb, true, boxes = independent_frames(n, np.random.default_rng(INDEPENDENT_SEED))
    return relative_mpjpe(estimate_in_crops(model, rgb, boxes, share, flip_test, shift_test), true,
                          reference_extent_px(n))


def user_path_metrics(model: PoseEstimatorModel, n: int, shares: tuple[float, ...] = (),
                      flip_test: bool = False, shift_test: bool = False) -> dict:
    """``person_box_mpjpe_px`` and ``independent_mpjpe_px`` at the shipped share, plus a share sweep if asked."""
    sweep = evaluate_person_boxes(model, tuple(dict.fromkeys((frames.FIGURE_SHARE, *shares))), n, flip_test,
                                  shift_test)
    result = {"person_box_mpjpe_px": sweep[frames.FIGURE_SHARE],
              "independent_mpjpe_px": evaluate_independent(model, frames.FIGURE_SHARE, n, flip_test, shift_test),
              "figure_share": frames.FIGURE_SHARE}
    if shares:
        result["person_box_share_sweep"] = {f"{s:g}": v for s, v in sorted(sweep.items())}
    return result
