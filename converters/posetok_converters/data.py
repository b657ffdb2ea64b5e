"""Synthetic stick figures: seeded, vectorized pose sampling and rendering.

A pose is 13 keypoints (order from ``posetok.skeleton``) in pixels of the
64-px frame. Sampling builds each figure as a kinematic tree hanging from the
neck: limb lengths (a body scale times a per-limb factor), joint angles drawn
inside the anatomical limits below, a global rotation, a small per-joint
jitter, then a random placement that keeps every keypoint inside the frame.
All of it is numpy over the whole batch; there is no per-pose Python loop.

Seeds: the evaluation set and the calibration set each have their own integer
seed. Training draws from ``training_poses`` streams, which are seeded by a
*sequence* ``[TRAINING_STREAM, seed, chunk]``; numpy's SeedSequence hashes a
sequence differently from a plain integer, so no training chunk can repeat
the evaluation or calibration poses.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from posetok.skeleton import FRAME_SIZE, KEYPOINT_INDEX, NUM_KEYPOINTS

EVAL_SEED = 20_251_001
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
BODY_SCALE_RANGE = (0.85, 1.10)     # whole figure
LIMB_SCALE_RANGE = (0.92, 1.08)     # each limb on its own, on top of the body scale
FRAME_MARGIN_PX = 1.0               # every keypoint stays this far inside the frame

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


def limb_length_bounds_px() -> dict[tuple[int, int], tuple[float, float]]:
    """(parent, child) -> (shortest, longest) length in pixels before jitter."""
    lo = BODY_SCALE_RANGE[0] * LIMB_SCALE_RANGE[0]
    hi = BODY_SCALE_RANGE[1] * LIMB_SCALE_RANGE[1]
    return {(KEYPOINT_INDEX[p], KEYPOINT_INDEX[c]): (BASE_LIMB_LENGTH_PX[name] * lo, BASE_LIMB_LENGTH_PX[name] * hi)
            for name, p, c in _LIMB_TABLE}


def _direction(angle: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def sample_poses_rng(n: int, rng: np.random.Generator, jitter_px: float = DEFAULT_JITTER_PX) -> np.ndarray:
    """``n`` poses [n,13,2] float32 in pixels, drawn from ``rng``."""
    if int(n) != n or n < 0:
        raise ValueError(f"number of poses must be a non-negative integer, got {n!r}")
    if not np.isfinite(jitter_px) or jitter_px < 0:
        raise ValueError(f"jitter_px must be a finite number >= 0, got {jitter_px!r}")
    n = int(n)

    def uniform(limits: tuple[float, float], *shape: int) -> np.ndarray:
        return rng.uniform(limits[0], limits[1], size=(n, *shape))

    body_scale = uniform(BODY_SCALE_RANGE)
    lengths = {}
    for name, _, child in _LIMB_TABLE:
        lengths[child] = BASE_LIMB_LENGTH_PX[name] * body_scale * uniform(LIMB_SCALE_RANGE)

    down = np.pi / 2 + uniform(ANGLE_LIMITS["torso_lean"])
    up = down + np.pi
    to_left = down - np.pi / 2    # figure's left = image right when upright
    to_right = down + np.pi / 2

    # Image-angle of every limb. On the left side "outward" turns the angle
    # towards to_left (decreasing); the right side mirrors it.
    arm_l = down - uniform(ANGLE_LIMITS["arm_abduction"])
    arm_r = down + uniform(ANGLE_LIMITS["arm_abduction"])
    thigh_l = down - uniform(ANGLE_LIMITS["hip_abduction"])
    thigh_r = down + uniform(ANGLE_LIMITS["hip_abduction"])
    angle = {
        "head": up + uniform(ANGLE_LIMITS["head_tilt"]),
        "left_shoulder": to_left + uniform(ANGLE_LIMITS["shoulder_line"]),
        "right_shoulder": to_right + uniform(ANGLE_LIMITS["shoulder_line"]),
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

    poses = np.zeros((n, NUM_KEYPOINTS, 2))
    for _, parent, child in _LIMB_TABLE:  # 12 vectorized steps down the tree
        poses[:, KEYPOINT_INDEX[child]] = (poses[:, KEYPOINT_INDEX[parent]]
                                           + lengths[child][:, None] * _direction(angle[child]))

    rot = uniform(ANGLE_LIMITS["global_rotation"])
    c, s = np.cos(rot)[:, None], np.sin(rot)[:, None]
    x, y = poses[..., 0], poses[..., 1]
    poses = np.stack([c * x - s * y, s * x + c * y], axis=-1)

    if jitter_px > 0:
        noise = rng.standard_normal(size=poses.shape)
        poses += jitter_px * np.clip(noise, -JITTER_CLIP_SIGMAS, JITTER_CLIP_SIGMAS)

    # Placement: shrink the rare figure that would not fit (never happens with
    # the ranges above, kept as a guarantee), then a uniform random offset
    # among the positions that keep the whole figure inside the margins.
    lo, hi = poses.min(axis=1), poses.max(axis=1)                 # [n,2]
    room = FRAME_SIZE - 2 * FRAME_MARGIN_PX
    fit = np.minimum(1.0, room / np.maximum((hi - lo).max(axis=1), 1e-9))[:, None]
    poses = (poses - lo[:, None]) * fit[:, None]
    extent = (hi - lo) * fit
    offset = FRAME_MARGIN_PX + rng.uniform(0.0, 1.0, size=(n, 2)) * (room - extent)
    poses += offset[:, None]
    return poses.astype(np.float32)


def sample_poses(n: int, seed: int, jitter_px: float = DEFAULT_JITTER_PX) -> np.ndarray:
    """``n`` poses [n,13,2] float32 in pixels of the 64-px frame; same seed, same poses."""
    return sample_poses_rng(n, np.random.default_rng(seed), jitter_px)


def training_poses(n: int, seed: int, chunk: int, jitter_px: float = DEFAULT_JITTER_PX) -> np.ndarray:
    """Chunk ``chunk`` of training stream ``seed`` (disjoint from eval/calibration seeds)."""
    return sample_poses_rng(n, np.random.default_rng([TRAINING_STREAM, int(seed), int(chunk)]), jitter_px)


@lru_cache(maxsize=1)
def _eval_poses_cached() -> np.ndarray:
    poses = sample_poses(EVAL_SIZE, EVAL_SEED)
    poses.setflags(write=False)
    return poses


def eval_poses() -> np.ndarray:
    """The fixed evaluation set: 10,000 poses from EVAL_SEED, never used in training."""
    return _eval_poses_cached().copy()


def calibration_poses(n: int = 512) -> np.ndarray:
    """Poses for int8 calibration, from their own seed (disjoint from eval and training)."""
    return sample_poses(n, CALIBRATION_SEED)


# Rendering lives in its own module; re-exported here as part of the data API.
from .render import render  # noqa: E402,F401
