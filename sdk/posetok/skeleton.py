"""The 13-keypoint stick-figure skeleton and its coordinate frame.

This is the one definition of keypoint order, limbs and normalization; the
converters, the bundle manifest and the runtime all use it.

Sides: "left" is the figure's own left. Figures face the camera, so left_*
keypoints appear on the image's right (larger x) in an upright pose.

Coordinates: pixel coordinates (x right, y down) in a 64x64 frame run over
[0, 64]. Models see normalized coordinates ``u = px / 32 - 1`` in [-1, 1],
so quantized graphs get a bounded input range.
"""
from __future__ import annotations

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "head", "neck",
    "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow",
    "left_hand", "right_hand",
    "waist",
    "left_knee", "right_knee",
    "left_foot", "right_foot",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
KEYPOINT_INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Limbs as (parent, child) index pairs, parent closer to the neck.
LIMBS: tuple[tuple[int, int], ...] = tuple(
    (KEYPOINT_INDEX[a], KEYPOINT_INDEX[b]) for a, b in (
        ("neck", "head"),
        ("neck", "left_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_hand"),
        ("neck", "right_shoulder"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_hand"),
        ("neck", "waist"),
        ("waist", "left_knee"), ("left_knee", "left_foot"),
        ("waist", "right_knee"), ("right_knee", "right_foot"),
    ))

FRAME_SIZE = 64                      # pixels, square frame
HALF_FRAME = FRAME_SIZE / 2.0        # pixels per normalized unit

NORMALIZATION = {
    "frame_px": FRAME_SIZE,
    "formula": "u = px / 32 - 1",
    "range": [-1.0, 1.0],
    "pixel_convention": "x right, y down, [0, 64] spans the frame",
}


def pixels_to_normalized(px: np.ndarray) -> np.ndarray:
    """Pixel coordinates in the 64-px frame -> model coordinates in [-1, 1]."""
    return (np.asarray(px, dtype=np.float32) / HALF_FRAME - 1.0).astype(np.float32)


def normalized_to_pixels(u: np.ndarray) -> np.ndarray:
    """Model coordinates in [-1, 1] -> pixel coordinates in the 64-px frame."""
    return ((np.asarray(u, dtype=np.float32) + 1.0) * HALF_FRAME).astype(np.float32)


def mpjpe_px(predicted_px: np.ndarray, true_px: np.ndarray) -> float:
    """Mean per-joint position error: the mean Euclidean distance between
    matching keypoints, in pixels of the 64-px frame."""
    return float(np.linalg.norm(np.asarray(predicted_px) - np.asarray(true_px), axis=-1).mean())
