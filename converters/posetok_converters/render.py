"""Vectorized stick-figure renderer: poses in pixels -> uint8 images."""
from __future__ import annotations

import numpy as np

from posetok.skeleton import FRAME_SIZE, KEYPOINT_INDEX, LIMBS, NUM_KEYPOINTS

LIMB_RADIUS_PX = 1.0
JOINT_RADIUS_PX = 1.5
HEAD_RADIUS_PX = 3.0
_RENDER_CHUNK = 256  # poses per vectorized chunk: 256 x 12 x 64 x 64 floats ~ 100 MB peak


def render(poses_px: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray:
    """Stick figures as uint8 images [n,size,size]: limbs as thick lines, joints as discs.

    ``poses_px`` are pixels of the 64-px frame; ``size`` rescales the drawing.
    Edges are anti-aliased by coverage (distance to the shape, 1 px ramp).
    """
    poses = np.asarray(poses_px, dtype=np.float32)
    if poses.ndim != 3 or poses.shape[1:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"poses_px must have shape [n,{NUM_KEYPOINTS},2], got {list(poses.shape)}")
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    size = int(size)
    scale = size / FRAME_SIZE
    centers = (np.arange(size, dtype=np.float32) + 0.5) / scale         # pixel centers in frame px
    grid = np.stack(np.meshgrid(centers, centers, indexing="xy"), axis=-1)  # [size,size,2] (x,y)
    parents = np.array([p for p, _ in LIMBS])
    children = np.array([c for _, c in LIMBS])
    joint_radius = np.full(NUM_KEYPOINTS, JOINT_RADIUS_PX, dtype=np.float32)
    joint_radius[KEYPOINT_INDEX["head"]] = HEAD_RADIUS_PX

    out = np.empty((len(poses), size, size), dtype=np.uint8)
    for start in range(0, len(poses), _RENDER_CHUNK):
        p = poses[start:start + _RENDER_CHUNK]
        a = p[:, parents][:, :, None, None, :]                           # [c,L,1,1,2]
        ab = (p[:, children] - p[:, parents])[:, :, None, None, :]
        ap = grid[None, None] - a                                          # [c,L,S,S,2]
        t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
        limb_dist = np.linalg.norm(ap - t[..., None] * ab, axis=-1).min(axis=1) - LIMB_RADIUS_PX
        joint_dist = (np.linalg.norm(grid[None, None] - p[:, :, None, None, :], axis=-1)
                      - joint_radius[None, :, None, None]).min(axis=1)
        dist = np.minimum(limb_dist, joint_dist) * scale                  # in output pixels
        out[start:start + len(p)] = np.round(np.clip(0.5 - dist, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out
