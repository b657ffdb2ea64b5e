"""The 13-keypoint stick-figure skeleton and its coordinate frame.

This is the one definition of keypoint order, limbs and normalization; the
converters, the bundle manifest and the runtime all use it.

Sides: "left" is the figure's own left. Figures face the camera, so left_*
keypoints appear on the image's right (larger x) in an upright pose.

Coordinates: pixel coordinates (x right, y down) in a 64x64 frame run over
[0, 64]. Models see normalized coordinates ``u = px / 32 - 1`` in [-1, 1],
so quantized graphs get a bounded input range.

Other estimators: ``coco17_to_posetok`` / ``posetok_to_coco17`` convert to
and from the 17 COCO keypoints (MoveNet, RTMPose, YOLO-pose), and
``image_to_frame`` / ``frame_to_image`` map image pixels to the 64-px frame
through a square crop around a person box. NaN marks a missing point
throughout these conversions; inf is always rejected.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .checks import real_number

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


def _other_side(name: str) -> str:
    for a, b in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(a):
            return b + name[len(a):]
    return name


# Each keypoint's twin on the figure's other side (head, neck and waist map to
# themselves): ``keypoints[..., MIRROR_INDEX, :]`` relabels left as right.
MIRROR_INDEX: tuple[int, ...] = tuple(KEYPOINT_INDEX[_other_side(name)] for name in KEYPOINT_NAMES)

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
    """Pixel coordinates in the 64-px frame -> model coordinates in [-1, 1].

    ``u = px / 32 - 1``; values outside the frame map outside [-1, 1].

    Args:
        px: array of any shape (usually [..., 13, 2]) in frame pixels.

    Returns:
        float32 array of the same shape.
    """
    return (np.asarray(px, dtype=np.float32) / HALF_FRAME - 1.0).astype(np.float32)


def normalized_to_pixels(u: np.ndarray) -> np.ndarray:
    """Model coordinates in [-1, 1] -> pixel coordinates in the 64-px frame.

    ``px = (u + 1) * 32``, the inverse of ``pixels_to_normalized``.

    Args:
        u: array of any shape (usually [..., 13, 2]) in model coordinates.

    Returns:
        float32 array of the same shape.
    """
    return ((np.asarray(u, dtype=np.float32) + 1.0) * HALF_FRAME).astype(np.float32)


def mpjpe_px(predicted_px: np.ndarray, true_px: np.ndarray) -> float:
    """Mean per-joint position error: the mean Euclidean distance between
    matching keypoints, in pixels of the 64-px frame.

    Args:
        predicted_px: [..., 13, 2] keypoints (any [..., 2] works).
        true_px: keypoints of the same (or a broadcastable) shape.

    Returns:
        The mean distance over all keypoints of all poses (NaN if any input
        is NaN).

    Raises:
        ValueError: shapes that do not broadcast.
    """
    return float(np.linalg.norm(np.asarray(predicted_px) - np.asarray(true_px), axis=-1).mean())


# --------------------------------------------------------------------------
# Keypoints from other estimators: COCO-17 <-> the 13 keypoints.

COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO17_INDEX = {name: i for i, name in enumerate(COCO17_NAMES)}

# 13-point name -> COCO-17 name, for the points copied one to one.
_COPIED = (
    ("left_shoulder", "left_shoulder"), ("right_shoulder", "right_shoulder"),
    ("left_elbow", "left_elbow"), ("right_elbow", "right_elbow"),
    ("left_hand", "left_wrist"), ("right_hand", "right_wrist"),
    ("left_knee", "left_knee"), ("right_knee", "right_knee"),
    ("left_foot", "left_ankle"), ("right_foot", "right_ankle"),
)
_OURS = np.array([KEYPOINT_INDEX[a] for a, _ in _COPIED])
_COCO = np.array([COCO17_INDEX[b] for _, b in _COPIED])
_FACE = np.array([COCO17_INDEX[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")])

DEFAULT_MIN_SCORE = 0.3  # a common keypoint-visibility threshold for these estimators
# Synthesized points of posetok_to_coco17, as fractions of the shoulder vector
# (right shoulder -> left shoulder). Hip joints sit about 0.6 of the shoulder
# width apart; eyes about 0.16 and ears about 0.36 of it. Each pair is placed
# symmetrically so 17 -> 13 gives back the head and the waist exactly.
HIP_TO_SHOULDER_WIDTH = 0.6
EYE_OFFSET = 0.08   # each eye from the head point
EAR_OFFSET = 0.18   # each ear from the head point


class MappedKeypoints(NamedTuple):
    """Result of ``coco17_to_posetok``: ``keypoints`` [..., 13, 2] float32
    (NaN where missing) and ``scores`` [..., 13] float32 (0 where missing)."""
    keypoints: np.ndarray
    scores: np.ndarray


def _real_array(x, name: str) -> np.ndarray:
    try:
        a = np.asarray(x)
    except ValueError:      # ragged nested lists
        raise ValueError(f"{name} must be a real numeric array of one shape (rows of equal length)") from None
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    return a.astype(np.float64)


def _float32_points(values: np.ndarray, name: str) -> np.ndarray:
    """The float64 result as float32, refusing finite inputs that came out beyond float32's range."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = values.astype(np.float32)
    if np.isinf(out).any():
        raise ValueError(f"{name} are beyond float32's range (about 3.4e38) after the mapping; "
                         "the inputs are too large")
    return out


def _points(x, name: str, n: int | None) -> np.ndarray:
    """Checked float64 copy of a [..., n, 2] (or [..., 2] when n is None) array."""
    a = _real_array(x, name)
    want = (2,) if n is None else (n, 2)
    if a.ndim < len(want) or a.shape[a.ndim - len(want):] != want:
        pattern = "[..., 2]" if n is None else f"[..., {n}, 2]"
        raise ValueError(f"{name} must have shape {pattern}, got shape {a.shape}")
    if np.isinf(a).any():
        raise ValueError(f"{name} contain inf; mark a missing point with NaN instead")
    return a


def coco17_to_posetok(keypoints, scores=None, min_score: float = DEFAULT_MIN_SCORE) -> MappedKeypoints:
    """COCO-17 keypoints (any image's pixels) -> the 13 keypoints, same pixels.

    ===========  ==================================================
    ours         from COCO-17
    ===========  ==================================================
    head         mean of the visible face points (nose, eyes, ears)
    neck         midpoint of left_shoulder and right_shoulder
    shoulders    shoulders (copied), same for elbows and knees
    hands        wrists
    waist        midpoint of left_hip and right_hip
    feet         ankles
    ===========  ==================================================

    A COCO point is visible when its coordinates are not NaN and, if scores
    are given, its score is >= ``min_score``. Copied points need their
    source, neck and waist need both sources, head needs one face point;
    otherwise the output point is NaN with score 0.

    Args:
        keypoints: [..., 17, 2] real array, x right and y down; NaN = missing.
        scores: optional [..., 17] confidences, finite.
        min_score: visibility threshold on ``scores``.

    Returns:
        ``MappedKeypoints(keypoints [..., 13, 2], scores [..., 13])``, float32.
        Scores: copied points keep their score; neck and waist get the
        smaller of their two (a midpoint is only as good as its weaker end);
        head gets the mean score of the visible face points. Without
        ``scores`` the returned scores are 1 (present) or 0 (missing).

    Raises:
        ValueError: wrong shape or dtype, inf in keypoints, scores that do
            not match keypoints or are not finite, a non-finite min_score.
    """
    kp = _points(keypoints, "keypoints", 17)
    visible = ~np.isnan(kp).any(axis=-1)
    if scores is None:
        sc = visible.astype(np.float64)
    else:
        sc = _real_array(scores, "scores")
        if sc.shape != kp.shape[:-1]:
            raise ValueError(f"scores must have shape {kp.shape[:-1]} to match keypoints, got shape {sc.shape}")
        if not np.isfinite(sc).all():
            raise ValueError("scores contain NaN or inf; give a low score to a missing point instead")
        visible &= sc >= real_number(min_score, "min_score")
    sc = np.where(visible, sc, 0.0)

    lead = kp.shape[:-2]
    out = np.zeros(lead + (NUM_KEYPOINTS, 2))
    out_sc = np.zeros(lead + (NUM_KEYPOINTS,))
    present = np.zeros(lead + (NUM_KEYPOINTS,), dtype=bool)
    out[..., _OURS, :], out_sc[..., _OURS], present[..., _OURS] = kp[..., _COCO, :], sc[..., _COCO], visible[..., _COCO]
    for ours, a, b in (("neck", "left_shoulder", "right_shoulder"), ("waist", "left_hip", "right_hip")):
        i, a, b = KEYPOINT_INDEX[ours], COCO17_INDEX[a], COCO17_INDEX[b]
        out[..., i, :] = (kp[..., a, :] + kp[..., b, :]) / 2
        out_sc[..., i] = np.minimum(sc[..., a], sc[..., b])
        present[..., i] = visible[..., a] & visible[..., b]
    face_vis = visible[..., _FACE]
    n_vis = np.maximum(face_vis.sum(axis=-1), 1)
    head = KEYPOINT_INDEX["head"]
    out[..., head, :] = np.where(face_vis[..., None], kp[..., _FACE, :], 0.0).sum(axis=-2) / n_vis[..., None]
    out_sc[..., head] = sc[..., _FACE].sum(axis=-1) / n_vis
    present[..., head] = face_vis.any(axis=-1)

    out = np.where(present[..., None], out, np.nan)
    out_sc = np.where(present, out_sc, 0.0)
    return MappedKeypoints(_float32_points(out, "keypoints"), out_sc.astype(np.float32))


def posetok_to_coco17(keypoints) -> np.ndarray:
    """The 13 keypoints -> COCO-17 keypoints, same pixels.

    Shoulders, elbows and knees are copied, wrists come from the hands and
    ankles from the feet. The rest is synthesized along the shoulder vector
    ``s = left_shoulder - right_shoulder`` (pointing to the figure's left):

    - nose = head; left/right eye = head +/- EYE_OFFSET * s;
      left/right ear = head +/- EAR_OFFSET * s (approximate face geometry,
      all at the head's height along the shoulder line);
    - left/right hip = waist +/- HIP_TO_SHOULDER_WIDTH / 2 * s.

    The pairs are symmetric, so ``coco17_to_posetok`` gives back every point
    exactly (to float32 precision) except the neck, which COCO cannot hold:
    it comes back as the shoulders' midpoint. NaN inputs give NaN outputs
    wherever they are used (a NaN shoulder makes eyes, ears and hips NaN).

    Args:
        keypoints: [..., 13, 2] real array in any pixels; NaN = missing.

    Returns:
        [..., 17, 2] float32 in ``COCO17_NAMES`` order.

    Raises:
        ValueError: wrong shape or dtype, or inf in keypoints.
    """
    kp = _points(keypoints, "keypoints", 13)
    s = kp[..., KEYPOINT_INDEX["left_shoulder"], :] - kp[..., KEYPOINT_INDEX["right_shoulder"], :]
    head, waist = kp[..., KEYPOINT_INDEX["head"], :], kp[..., KEYPOINT_INDEX["waist"], :]
    out = np.zeros(kp.shape[:-2] + (17, 2))
    out[..., _COCO, :] = kp[..., _OURS, :]
    synthesized = {
        "nose": head,
        "left_eye": head + EYE_OFFSET * s, "right_eye": head - EYE_OFFSET * s,
        "left_ear": head + EAR_OFFSET * s, "right_ear": head - EAR_OFFSET * s,
        "left_hip": waist + HIP_TO_SHOULDER_WIDTH / 2 * s, "right_hip": waist - HIP_TO_SHOULDER_WIDTH / 2 * s,
    }
    for name, point in synthesized.items():
        out[..., COCO17_INDEX[name], :] = point
    return _float32_points(out, "keypoints")


# --------------------------------------------------------------------------
# Person box in image pixels <-> the 64-px frame.

# The box's long side spans 64 / (1 + margin) px of the frame: with 0.5 that
# is about 43 px, the size of the synthetic training figures (about 31-44 px
# head to foot), and it leaves room for raised arms outside a tight box.
DEFAULT_BOX_MARGIN = 0.5


@dataclass(frozen=True)
class FrameTransform:
    """``frame = image * scale + offset`` (x right, y down; [0, 64] spans the
    frame). Build one with ``box_to_frame_transform``."""
    scale: float                  # frame pixels per image pixel
    offset: tuple[float, float]   # frame position of the image origin

    def apply(self, points_px) -> np.ndarray:
        """[..., 2] image pixels -> float32 frame pixels; ValueError as ``image_to_frame``."""
        p = _points(points_px, "keypoints", None)
        return _float32_points(p * self.scale + np.asarray(self.offset), "keypoints")

    def invert(self, points_frame) -> np.ndarray:
        """[..., 2] frame pixels -> float32 image pixels; ValueError as ``frame_to_image``."""
        p = _points(points_frame, "keypoints", None)
        return _float32_points((p - np.asarray(self.offset)) / self.scale, "keypoints")


def box_to_frame_transform(box, margin: float = DEFAULT_BOX_MARGIN) -> FrameTransform:
    """The transform for a square crop centred on a person box, aspect kept.

    The crop's side is ``max(width, height) * (1 + margin)``; it maps onto
    the whole 64-px frame, so the box centre lands on (32, 32).

    Args:
        box: (x0, y0, width, height) in image pixels; floats allowed.
        margin: extra crop size as a fraction of the box's long side, >= 0.

    Returns:
        A ``FrameTransform``.

    Raises:
        ValueError: box not 4 finite numbers, width or height <= 0, a
            margin that is not a finite number >= 0, or a box and margin whose
            scale or offset does not fit floating point.
    """
    b = _real_array(box, "box")
    if b.shape != (4,):
        raise ValueError(f"box must have shape (4,) as (x0, y0, width, height), got shape {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError(f"box must be finite, got {b.tolist()}")
    x0, y0, w, h = (float(v) for v in b)
    if w <= 0 or h <= 0:
        raise ValueError(f"box width and height must be > 0, got width={w}, height={h}")
    margin = real_number(margin, "margin", minimum=0)
    scale = FRAME_SIZE / (max(w, h) * (1.0 + margin))
    offset = (HALF_FRAME - (x0 + w / 2) * scale, HALF_FRAME - (y0 + h / 2) * scale)
    if not (math.isfinite(scale) and scale > 0 and all(map(math.isfinite, offset))):
        raise ValueError(f"box {b.tolist()} with margin {margin:g} is too small or too large to map "
                         "into the frame in floating point")
    return FrameTransform(scale, offset)


def image_to_frame(keypoints_px, box, margin: float = DEFAULT_BOX_MARGIN) -> np.ndarray:
    """Image pixels -> pixels of the 64-px frame, through one person's box.

    Args:
        keypoints_px: [..., 2] real array in image pixels; NaN passes through.
        box, margin: as ``box_to_frame_transform``.

    Returns:
        [..., 2] float32 frame pixels.

    Raises:
        ValueError: bad box or margin, a non-[..., 2] or non-real array, inf.
    """
    return box_to_frame_transform(box, margin).apply(keypoints_px)


def frame_to_image(keypoints_frame, box, margin: float = DEFAULT_BOX_MARGIN) -> np.ndarray:
    """Inverse of ``image_to_frame``: 64-px frame pixels -> image pixels.

    Args:
        keypoints_frame: [..., 2] real array in frame pixels; NaN passes through.
        box, margin: as ``box_to_frame_transform``.

    Returns:
        [..., 2] float32 image pixels.

    Raises:
        ValueError: bad box or margin, a non-[..., 2] or non-real array, inf.
    """
    return box_to_frame_transform(box, margin).invert(keypoints_frame)
