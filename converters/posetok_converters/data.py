"""Synthetic stick figures: seeded, vectorized pose sampling and rendering.

A pose is 13 keypoints (order from ``posetok.skeleton``) in pixels of the
64-px frame. Two distributions:

- "broad" (the default for training and evaluation): the figure is built in
  3-D, every limb with a direction inside anatomical limits that may point
  towards or away from the camera; the body is turned about its vertical
  axis by any angle (front, side and back views: limbs foreshorten, left and
  right can cross) and tilted a little towards or away from the camera, then
  projected orthographically, rotated by any angle in the image plane
  (lying, falling, upside down), scaled 0.6-1.25 with varied proportions,
  jittered and placed anywhere in the frame, often touching its border.
- "upright": the earlier generator, kept as a named evaluation set so its
  figure stays comparable: figures face the camera in the image plane,
  +-30 degrees of rotation, body scale 0.85-1.10, limbs at full length.

Both build each figure as a kinematic tree hanging from the neck, with numpy
over the whole batch and no per-pose Python loop.

Seeds: each evaluation set and the calibration set have their own integer
seed. Training draws from ``training_poses`` streams, which are seeded by a
*sequence* ``[TRAINING_STREAM, seed, chunk]``; numpy's SeedSequence hashes a
sequence differently from a plain integer, so no training chunk can repeat
the evaluation or calibration poses.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from posetok.skeleton import FRAME_SIZE, KEYPOINT_INDEX, NUM_KEYPOINTS

DISTRIBUTIONS = ("broad", "upright")
DEFAULT_DISTRIBUTION = "broad"
# The upright set keeps the seed of the evaluation set all earlier figures were measured on.
EVAL_SEEDS = {"broad": 20_251_101, "upright": 20_251_001}
EVAL_SEED = EVAL_SEEDS[DEFAULT_DISTRIBUTION]
EVAL_SIZE = 10_000
CALIBRATION_SEED = 20_251_002
TRAINING_STREAM = 0x7EA1  # first entropy word of every training chunk's seed

# Per-coordinate Gaussian jitter (pixels), clipped at 3 sigma. It stands for
# annotation noise. It is kept well below the 0.5 px reconstruction target so
# the error we report measures the tokenizer, not noise it cannot predict.
DEFAULT_JITTER_PX = 0.2
JITTER_CLIP_SIGMAS = 3.0

# Limb lengths in pixels for a body of scale 1 (a figure about 40 px tall).
BASE_LIMB_LENGTH_PX = {
    "head": 5.0, "shoulder": 4.5, "upper_arm": 7.0, "forearm": 6.5,
    "torso": 13.0, "thigh": 9.0, "shin": 9.0,
}
BODY_SCALE_RANGE = (0.85, 1.10)     # upright: whole figure
LIMB_SCALE_RANGE = (0.92, 1.08)     # upright: each limb on its own, on top of the body scale
FRAME_MARGIN_PX = 1.0               # upright: every keypoint stays this far inside the frame

# Angle limits in radians. Directions are image angles (x right, y down, so
# +pi/2 points down). "left" is the figure's left, which faces the camera and
# therefore appears on the image's right.
ANGLE_LIMITS = {
    "torso_lean": (-0.35, 0.35),       # neck->waist around straight down
    "head_tilt": (-0.50, 0.50),        # neck->head around straight up the torso
    "shoulder_line": (-0.20, 0.20),    # neck->shoulder around perpendicular to the torso
    "arm_abduction": (-0.26, 2.97),    # upper arm away from hanging down, outward positive
    "elbow_flexion": (-0.50, 2.60),    # forearm relative to upper arm
    "hip_abduction": (-0.20, 1.20),    # thigh away from the torso axis, outward positive
    "knee_flexion": (-0.30, 1.60),     # shin relative to thigh
    "global_rotation": (-0.52, 0.52),  # whole-figure rotation augmentation (about +-30 degrees)
}

# (limb name, parent joint, child joint) in the order the tree is built.
_LIMB_TABLE = (
    ("head", "neck", "head"),
    ("shoulder", "neck", "left_shoulder"), ("shoulder", "neck", "right_shoulder"),
    ("upper_arm", "left_shoulder", "left_elbow"), ("upper_arm", "right_shoulder", "right_elbow"),
    ("forearm", "left_elbow", "left_hand"), ("forearm", "right_elbow", "right_hand"),
    ("torso", "neck", "waist"),
    ("thigh", "waist", "left_knee"), ("thigh", "waist", "right_knee"),
    ("shin", "left_knee", "left_foot"), ("shin", "right_knee", "right_foot"),
)


# Broad figures, on top of the frontal-plane angles above (global_rotation
# aside). Elevation is the angle of a limb out of the body's frontal plane,
# towards the body's front positive, in radians; a forearm's and a shin's are
# relative to the upper arm and thigh and clipped short of straight forward/back.
BROAD_BODY_SCALE_RANGE = (0.60, 1.25)
# Proportions: one factor per body part (both sides share it), then each limb
# on its own, so figures range from long-legged to short-armed.
BROAD_PART_SCALE_RANGE = {
    "head": (0.80, 1.25), "shoulder": (0.80, 1.20), "upper_arm": (0.85, 1.15), "forearm": (0.85, 1.15),
    "torso": (0.85, 1.15), "thigh": (0.85, 1.15), "shin": (0.85, 1.15),
}
BROAD_LIMB_SCALE_RANGE = (0.96, 1.04)
BROAD_ELEVATION_LIMITS = {
    "head": (-0.40, 0.50),          # chin forward positive
    "shoulder": (-0.30, 0.30),      # shoulders rolled forward or back
    "upper_arm": (-0.80, 1.45),     # arm swung back / raised forward
    "forearm": (-0.30, 1.40),       # relative: the elbow bends the forearm forward
    "torso": (-0.50, 0.50),         # neck->waist leaning out of the frontal plane
    "thigh": (-0.50, 1.45),         # hip extension / flexion (sitting, kicking)
    "shin": (-1.70, 0.20),          # relative: the knee bends the shin backwards
}
MAX_ELEVATION = 1.45                # |elevation| cap: a limb never points straight at the camera's axis in body frame
BROAD_VIEW_TILT = (-0.50, 0.50)     # camera above (+) or below (-) the figure, radians
BROAD_EDGE_TOUCH = 0.10             # chance per side and axis that the figure touches that frame edge

def limb_length_bounds_px(distribution: str = "upright") -> dict[tuple[int, int], tuple[float, float]]:
    """(parent, child) -> (shortest, longest) limb length in pixels before jitter
    and before a rare shrink to fit the frame; for "broad" the length in 3-D,
    before projection."""
    _check_distribution(distribution)
    bounds = {}
    for name, p, c in _LIMB_TABLE:
        if distribution == "upright":
            factors = (BODY_SCALE_RANGE, LIMB_SCALE_RANGE)
        else:
            factors = (BROAD_BODY_SCALE_RANGE, BROAD_PART_SCALE_RANGE[name], BROAD_LIMB_SCALE_RANGE)
        lo = BASE_LIMB_LENGTH_PX[name] * np.prod([f[0] for f in factors])
        hi = BASE_LIMB_LENGTH_PX[name] * np.prod([f[1] for f in factors])
        bounds[(KEYPOINT_INDEX[p], KEYPOINT_INDEX[c])] = (float(lo), float(hi))
    return bounds


def _check_distribution(distribution: str) -> None:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown pose distribution {distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}")


def _frontal_angles(uniform) -> dict[str, np.ndarray]:
    """Image angle of every limb of a figure facing the camera, within ANGLE_LIMITS
    (x right, y down). On the left side "outward" turns the angle towards the
    figure's left (decreasing); the right side mirrors it."""
    down = np.pi / 2 + uniform(ANGLE_LIMITS["torso_lean"])
    up = down + np.pi
    arm_l = down - uniform(ANGLE_LIMITS["arm_abduction"])
    arm_r = down + uniform(ANGLE_LIMITS["arm_abduction"])
    thigh_l = down - uniform(ANGLE_LIMITS["hip_abduction"])
    thigh_r = down + uniform(ANGLE_LIMITS["hip_abduction"])
    return {
        "head": up + uniform(ANGLE_LIMITS["head_tilt"]),
        "left_shoulder": down - np.pi / 2 + uniform(ANGLE_LIMITS["shoulder_line"]),
        "right_shoulder": down + np.pi / 2 + uniform(ANGLE_LIMITS["shoulder_line"]),
        "left_elbow": arm_l,
        "right_elbow": arm_r,
        "left_hand": arm_l - uniform(ANGLE_LIMITS["elbow_flexion"]),
        "right_hand": arm_r + uniform(ANGLE_LIMITS["elbow_flexion"]),
        "waist": down,
        "left_knee": thigh_l,
        "right_knee": thigh_r,
        "left_foot": thigh_l - uniform(ANGLE_LIMITS["knee_flexion"]),
        "right_foot": thigh_r + uniform(ANGLE_LIMITS["knee_flexion"]),
    }


def _build_tree(lengths: dict[str, np.ndarray], directions: dict[str, np.ndarray]) -> np.ndarray:
    """Joint positions [n,13,dim] from the neck (origin) down the kinematic tree."""
    n, dim = next(iter(directions.values())).shape
    points = np.zeros((n, NUM_KEYPOINTS, dim))
    for _, parent, child in _LIMB_TABLE:  # 12 vectorized steps down the tree
        points[:, KEYPOINT_INDEX[child]] = (points[:, KEYPOINT_INDEX[parent]]
                                            + lengths[child][:, None] * directions[child])
    return points


def _rotate_in_plane(xy: np.ndarray, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, y = xy[..., 0], xy[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], axis=-1)


def _upright_figures(n: int, rng: np.random.Generator) -> np.ndarray:
    """Upright figures [n,13,2] in pixels, neck at the origin, before jitter and placement."""
    def uniform(limits, *shape):
        return rng.uniform(limits[0], limits[1], size=(n, *shape))

    body_scale = uniform(BODY_SCALE_RANGE)
    lengths = {child: BASE_LIMB_LENGTH_PX[name] * body_scale * uniform(LIMB_SCALE_RANGE)
               for name, _, child in _LIMB_TABLE}
    angle = _frontal_angles(uniform)
    poses = _build_tree(lengths, {k: np.stack([np.cos(a), np.sin(a)], -1) for k, a in angle.items()})
    return _rotate_in_plane(poses, uniform(ANGLE_LIMITS["global_rotation"]))


def _broad_figures(n: int, rng: np.random.Generator) -> np.ndarray:
    """Broad figures [n,13,3] in pixels, neck at the origin, in the camera's
    frame (x right, y down, z towards the camera), before jitter and placement.
    The image pose is the orthographic projection: the first two columns."""
    def uniform(limits, *shape):
        return rng.uniform(limits[0], limits[1], size=(n, *shape))

    body_scale = uniform(BROAD_BODY_SCALE_RANGE)
    part_scale = {name: uniform(limits) for name, limits in BROAD_PART_SCALE_RANGE.items()}
    lengths = {child: BASE_LIMB_LENGTH_PX[name] * body_scale * part_scale[name] * uniform(BROAD_LIMB_SCALE_RANGE)
               for name, _, child in _LIMB_TABLE}
    frontal = _frontal_angles(uniform)
    lim = BROAD_ELEVATION_LIMITS
    upper_l, upper_r = uniform(lim["upper_arm"]), uniform(lim["upper_arm"])
    thigh_l, thigh_r = uniform(lim["thigh"]), uniform(lim["thigh"])
    elevation = {
        "head": uniform(lim["head"]),
        "left_shoulder": uniform(lim["shoulder"]), "right_shoulder": uniform(lim["shoulder"]),
        "left_elbow": upper_l, "right_elbow": upper_r,
        "left_hand": upper_l + uniform(lim["forearm"]), "right_hand": upper_r + uniform(lim["forearm"]),
        "waist": uniform(lim["torso"]),
        "left_knee": thigh_l, "right_knee": thigh_r,
        "left_foot": thigh_l + uniform(lim["shin"]), "right_foot": thigh_r + uniform(lim["shin"]),
    }
    directions = {}
    for joint, a in frontal.items():
        e = np.clip(elevation[joint], -MAX_ELEVATION, MAX_ELEVATION)
        directions[joint] = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1)
    body = _build_tree(lengths, directions)           # body frame: faces the camera (+z is its front)
    # View: turn the body about its vertical (y) axis by any angle, tilt the
    # camera about x, then roll the image by any angle about the optical axis.
    turn, tilt, roll = uniform((0.0, 2 * np.pi)), uniform(BROAD_VIEW_TILT), uniform((0.0, 2 * np.pi))
    x, y, z = body[..., 0], body[..., 1], body[..., 2]
    ct, st = np.cos(turn)[:, None], np.sin(turn)[:, None]
    x, z = ct * x + st * z, -st * x + ct * z
    cv, sv = np.cos(tilt)[:, None], np.sin(tilt)[:, None]
    y, z = cv * y - sv * z, sv * y + cv * z
    xy = _rotate_in_plane(np.stack([x, y], -1), roll)
    return np.concatenate([xy, z[..., None]], axis=-1)


def _jitter(poses: np.ndarray, rng: np.random.Generator, jitter_px: float) -> np.ndarray:
    if jitter_px > 0:
        noise = rng.standard_normal(size=poses.shape)
        poses = poses + jitter_px * np.clip(noise, -JITTER_CLIP_SIGMAS, JITTER_CLIP_SIGMAS)
    return poses


def _place(poses: np.ndarray, rng: np.random.Generator, margin_px: float,
           edge_touch: float) -> tuple[np.ndarray, np.ndarray]:
    """Shrink the rare figure that would not fit, then a random offset among the
    positions that keep every keypoint within ``margin_px`` of the frame; with
    chance ``edge_touch`` per side and axis the figure touches that side.
    Returns the placed poses and the shrink factor per pose (1 = none)."""
    n = len(poses)
    lo, hi = poses.min(axis=1), poses.max(axis=1)                 # [n,2]
    room = FRAME_SIZE - 2 * margin_px
    fit = np.minimum(1.0, room / np.maximum((hi - lo).max(axis=1), 1e-9))
    extent = (hi - lo) * fit[:, None]
    where = rng.uniform(0.0, 1.0, size=(n, 2))
    if edge_touch > 0:
        side = rng.uniform(0.0, 1.0, size=(n, 2))
        where = np.where(side < edge_touch, 0.0, np.where(side > 1.0 - edge_touch, 1.0, where))
    offset = margin_px + where * (room - extent)
    return (poses - lo[:, None]) * fit[:, None, None] + offset[:, None], fit


@dataclass(frozen=True)
class BroadSample:
    """Broad poses with the 3-D figures they were projected from."""
    poses: np.ndarray       # [n,13,2] float32 pixels of the 64-px frame, as ``sample_poses`` returns them
    figures_3d: np.ndarray  # [n,13,3] camera frame, neck at the origin, before jitter, shrink and placement
    fit: np.ndarray         # [n] shrink factor applied to fit the frame (1 for almost every figure)


def sample_broad_rng(n: int, rng: np.random.Generator, jitter_px: float = DEFAULT_JITTER_PX) -> BroadSample:
    """``n`` broad poses and their 3-D figures, drawn from ``rng``."""
    n = _check_sample_args(n, jitter_px)
    figures = _broad_figures(n, rng)
    poses, fit = _place(_jitter(figures[..., :2], rng, jitter_px), rng, 0.0, BROAD_EDGE_TOUCH)
    return BroadSample(poses.astype(np.float32), figures, fit)


def _check_sample_args(n: int, jitter_px: float) -> int:
    if int(n) != n or n < 0:
        raise ValueError(f"number of poses must be a non-negative integer, got {n!r}")
    if not np.isfinite(jitter_px) or jitter_px < 0:
        raise ValueError(f"jitter_px must be a finite number >= 0, got {jitter_px!r}")
    return int(n)


def sample_poses_rng(n: int, rng: np.random.Generator, jitter_px: float = DEFAULT_JITTER_PX,
                     distribution: str = DEFAULT_DISTRIBUTION) -> np.ndarray:
    """``n`` poses [n,13,2] float32 in pixels of the 64-px frame, drawn from ``rng``."""
    _check_distribution(distribution)
    if distribution == "broad":
        return sample_broad_rng(n, rng, jitter_px).poses
    n = _check_sample_args(n, jitter_px)
    poses, _ = _place(_jitter(_upright_figures(n, rng), rng, jitter_px), rng, FRAME_MARGIN_PX, 0.0)
    return poses.astype(np.float32)


def sample_poses(n: int, seed: int, jitter_px: float = DEFAULT_JITTER_PX,
                 distribution: str = DEFAULT_DISTRIBUTION) -> np.ndarray:
    """``n`` poses [n,13,2] float32 in pixels of the 64-px frame; same seed, same poses."""
    return sample_poses_rng(n, np.random.default_rng(seed), jitter_px, distribution)


def training_poses(n: int, seed: int, chunk: int, jitter_px: float = DEFAULT_JITTER_PX,
                   upright_fraction: float = 0.0) -> np.ndarray:
    """Chunk ``chunk`` of training stream ``seed`` (disjoint from eval/calibration
    seeds): broad poses, of which a random ``upright_fraction`` are upright ones."""
    if not 0.0 <= upright_fraction <= 1.0:
        raise ValueError(f"upright_fraction must be in [0, 1], got {upright_fraction!r}")
    rng = np.random.default_rng([TRAINING_STREAM, int(seed), int(chunk)])
    poses = sample_poses_rng(n, rng, jitter_px, "broad")
    upright = rng.uniform(size=n) < upright_fraction
    if upright.any():
        poses[upright] = sample_poses_rng(int(upright.sum()), rng, jitter_px, "upright")
    return poses


@lru_cache(maxsize=len(DISTRIBUTIONS))
def _eval_poses_cached(distribution: str) -> np.ndarray:
    poses = sample_poses(EVAL_SIZE, EVAL_SEEDS[distribution], distribution=distribution)
    poses.setflags(write=False)
    return poses


def eval_poses(distribution: str = DEFAULT_DISTRIBUTION, count: int | None = None) -> np.ndarray:
    """A fixed evaluation set of 10,000 poses from its own seed, never used in
    training: "broad" (the default) or "upright" (the earlier generator's set);
    with ``count``, its first ``count`` poses (quick checks score fewer).

    Raises:
        ValueError: an unknown distribution, or ``count`` < 1.
    """
    _check_distribution(distribution)
    if count is not None and count < 1:
        raise ValueError(f"eval_poses must be >= 1, got {count}")
    return _eval_poses_cached(distribution)[:count].copy()


def calibration_poses(n: int = 512) -> np.ndarray:
    """Broad poses for int8 calibration, from their own seed (disjoint from eval and training)."""
    return sample_poses(n, CALIBRATION_SEED)


# Rendering lives in its own module; re-exported here as part of the data API.
from .render import render  # noqa: E402,F401
