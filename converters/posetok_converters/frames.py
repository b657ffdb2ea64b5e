"""Camera frames for the image -> pose estimator: stick figures in a scene.

Each sample is a small RGB camera frame with one figure from the tokenizer's
pose generator, a person box around it, and what a camera brings: a backdrop
(gradients, blotches, clutter lines that look like limbs, and on some frames
stripes, a checker of tiles or blocks of furniture), lighting and contrast,
blur, sensor noise, limb thickness (from sub-pixel to ~3 px, anti-aliased or
hard-edged as other renderers draw them) and colour, and (optionally)
occluding boxes. The frame goes through NV21, as a camera driver hands it over,
and the model input is made by the same kernel library the board runs
(``posetok.kernels.crop_nv21``): training and deployment see identical inputs.
Plain scenes (``scenes="plain"``) leave the hard parts out, to split the
error between the scenes and the model (see ``SCENES``).

Left and right: a plain stick figure seen from behind is its own mirror image,
so the figures wear side colours: the figure's left arm and leg in warm hues
(red to yellow), the right ones in cool hues (green to blue), the head and
torso in neutral tones. Hue, saturation and brightness vary per frame inside
those ranges; the estimator learns left from right by colour.

Coordinates: poses come in the 64-px model frame; a box (x, y, side, side) in
camera pixels maps the model frame onto the camera frame (px_cam = box_xy +
px64 * side / 64), so the box crop resized to 64 px gives back the model frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from posetok import kernels
from posetok.skeleton import FRAME_SIZE, KEYPOINT_INDEX, LIMBS, NUM_KEYPOINTS

from . import data

CAMERA_PX = 96                       # the synthetic camera frame is CAMERA_PX x CAMERA_PX
BOX_SIDE_PX = (72, 96)               # person box side in camera pixels (the crop is downscaled 1.1x-1.5x)
BOX_OUTSIDE = 0.1                    # a box may stick out of the frame by this fraction of its side
# Model input: (u8 - MEAN) * SCALE per channel, made by the kernel.
INPUT_MEAN = (128.0, 128.0, 128.0)
INPUT_SCALE = (1.0 / 64.0, 1.0 / 64.0, 1.0 / 64.0)
OCCLUDER_SIDE_PX = (6.0, 18.0)       # occluding boxes, in 64-px model-frame pixels
EVAL_SEEDS = {"clean": 20251201, "occluded": 20251202}
CALIBRATION_SEED = 20251204          # int8 calibration frames of the exported estimator
# frames that fit the exported estimator's presence model, and fresh ones that measure it
PRESENCE_SEEDS = {"fit": 20251208, "test": 20251211}
# The runtime crops a square around a person box, side = the box's long side / FIGURE_SHARE (the manifest's
# figure_share). Training figures fill 0.42 of the model frame at the median, anywhere in it; crops centred on
# the figure did best at 0.5 in a sweep (`posetok eval-estimator --shares 0.35,0.42,0.5,0.58`): tighter crops
# leave the training distribution, wider ones lose resolution.
FIGURE_SHARE = 0.5
LIMB_RADIUS_PX = (0.25, 1.8)         # model-frame px, log-uniform: from lines thinner than a pixel to ~3.5 px wide
HARD_EDGE_SHARE = 0.3                # frames drawn without anti-aliasing (coverage 0 or 1)
PATTERN_SHARE = 0.4                  # backdrops with stripes, tiles or blocks on top
EVAL_FRAMES = 2000
UPRIGHT_FRACTION = 0.25              # share of upright poses among the broad ones (as the tokenizer trains)
BLUR_MAX_PX = 1.2                    # per-chunk Gaussian blur sigma, camera px (none for about a third)
NOISE_MAX = 8.0                      # sensor noise sigma, grey levels
PLAIN_LIMB_RADIUS_PX = (0.5, 1.8)
PLAIN_BLUR_MAX_PX = 0.7
PLAIN_NOISE_MAX = 5.0

_LEFT = {KEYPOINT_INDEX[n] for n in ("left_shoulder", "left_elbow", "left_hand", "left_knee", "left_foot")}
_RIGHT = {KEYPOINT_INDEX[n] for n in ("right_shoulder", "right_elbow", "right_hand", "right_knee", "right_foot")}
# limb side: +1 left, -1 right, 0 torso/head (by the child keypoint)
LIMB_SIDE = np.array([1 if c in _LEFT else -1 if c in _RIGHT else 0 for _, c in LIMBS])
_PARENTS = np.array([p for p, _ in LIMBS])
_CHILDREN = np.array([c for _, c in LIMBS])
_HEAD = KEYPOINT_INDEX["head"]
_CHUNK = 64                          # frames per vectorized drawing chunk
# Distances are measured this far beyond a capsule's radius (painting reads them up to radius + 0.5; the head's
# shifted distance up to its own radius + 0.5); the extra pixel keeps rounding at the window's edge harmless.
_REACH_PX = 1.5


@dataclass(frozen=True)
class SceneStyle:
    """What one kind of scene draws (``SCENES``)."""
    upright_fraction: float                   # share of upright poses among the broad ones
    limb_radius_px: tuple[float, float]       # limb half-width range, model-frame px, log-uniform
    hard_edge_share: float                    # frames drawn without anti-aliasing
    clutter: bool                             # limb-like strokes and patterns on the backdrop
    blur_max_px: float                        # see _blur
    noise_max: float                          # see _camera


# "camera": what a camera brings, as above (training, the held-out figures). "plain": the frames nearest the calibration
# trial of issue #17 (0.78 px after 3M frames): upright poses only, the gradient-and-blotch backdrop without clutter,
# thicker anti-aliased limbs, less blur and noise; lighting, colours, boxes and occluders as the camera's. Training
# and evaluating on them splits the gap to the targets between the scenes and the model.
SCENES = {"camera": SceneStyle(UPRIGHT_FRACTION, LIMB_RADIUS_PX, HARD_EDGE_SHARE, True, BLUR_MAX_PX, NOISE_MAX),
          "plain": SceneStyle(1.0, PLAIN_LIMB_RADIUS_PX, 0.0, False, PLAIN_BLUR_MAX_PX, PLAIN_NOISE_MAX)}


@dataclass
class FrameBatch:
    """Frames and what the estimator learns from them.

    Attributes:
        inputs: float32 [n,3,64,64], the model input made by the kernel.
        pictures: uint8 [n,64,64,3], the same crop before normalization.
        poses_px: float32 [n,13,2], the true keypoints in the 64-px model frame.
        boxes: int32 [n,4], (x, y, w, h) of the crop in camera pixels.
        camera: uint8 [n,CAMERA_PX,CAMERA_PX,3], the camera frames the crops
            were taken from (only when asked for: ``keep_camera``), else None.
    """
    inputs: np.ndarray
    pictures: np.ndarray
    poses_px: np.ndarray
    boxes: np.ndarray
    camera: np.ndarray | None = None


@dataclass
class SceneRecord:
    """What ``draw_scene`` drew for each frame, filled in when one is passed to it (the frames stay the same:
    recording draws nothing from the random source). ``get(name)`` gives one value per frame:

    - ``limb_radius_px``: limb half-width in model-frame px;
    - ``hard_edges``: drawn without anti-aliasing;
    - ``patterned``: stripes, tiles or blocks on the backdrop;
    - ``clutter_strokes``: limb-like strokes on the backdrop (drawn per chunk of frames);
    - ``blur_sigma_px``: the Gaussian blur in camera px, 0 for none (per chunk);
    - ``noise_sigma``: the sensor noise's standard deviation in grey levels.
    """
    NAMES = ("limb_radius_px", "hard_edges", "patterned", "clutter_strokes", "blur_sigma_px", "noise_sigma")
    parts: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in SceneRecord.NAMES})

    def add(self, n: int, **values) -> None:
        """Record ``values`` (one per frame, or one for all ``n`` frames) for the next ``n`` frames."""
        for name, value in values.items():
            self.parts[name].append(np.broadcast_to(np.asarray(value).reshape(-1), (n,)).copy())

    def get(self, name: str) -> np.ndarray:
        if name not in self.parts:
            raise KeyError(f"no scene value {name!r}; recorded: {', '.join(self.NAMES)}")
        return np.concatenate(self.parts[name]) if self.parts[name] else np.zeros(0)


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorized HSV (each in [0, 1]) -> RGB floats in [0, 255], shape [..., 3]."""
    i = np.floor(h * 6.0) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(h.shape + (3,), np.float32)
    for k, (r, g, b) in enumerate(table):
        m = i == k
        rgb[m] = np.stack([r[m], g[m], b[m]], -1)
    return rgb * 255.0


def rgb_to_nv21(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BT.601 video-range RGB [..., H, W, 3] uint8 (H, W even) -> NV21 planes (Y [..., H, W],
    interleaved VU [..., H/2, W/2, 2]), the way a camera driver hands a frame over."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    half = lambda p: p.reshape(*p.shape[:-2], p.shape[-2] // 2, 2, p.shape[-1] // 2, 2).mean(axis=(-3, -1))
    to_u8 = lambda p: np.clip(np.rint(p), 0, 255).astype(np.uint8)
    return to_u8(y), np.stack([to_u8(half(v)), to_u8(half(u))], axis=-1)


def _segment_distance(centers: np.ndarray, a: np.ndarray, b: np.ndarray,
                      reach: np.ndarray | None = None) -> np.ndarray:
    """Distance of pixel centres of an S x S grid (``centers`` [S]) to segments a->b [c,L,2]: [c,L,S,S].

    With ``reach`` [c,L], only the pixels within ``reach`` of each segment's bounding box are measured and the
    rest stay +inf: painting reads a distance only under a capsule's radius + 0.5, and a limb covers a few
    percent of the frame, so measuring the whole grid spent most of the drawing time on pixels nobody reads.
    Each measured pixel goes through the same steps, in the inputs' precision, as on the whole grid, so the
    frames are the same to the bit.
    """
    c, segments, size = a.shape[0], a.shape[1], len(centers)
    out = np.full((c, segments, size, size), np.inf, np.result_type(centers, a, b))
    ab = b - a
    inv = 1.0 / np.maximum((ab * ab).sum(-1), 1e-9)
    ux, uy = ab[..., 0] * inv, ab[..., 1] * inv
    if reach is None:
        first = np.zeros((c, segments, 2), np.int64)
        stop = np.full((c, segments, 2), size, np.int64)
    else:   # pixel k's centre is k + 0.5: the window holds the k with k + 0.5 in [lo, hi]
        lo = np.minimum(a, b) - reach[..., None]
        hi = np.maximum(a, b) + reach[..., None]
        first = np.clip(np.ceil(lo - 0.5), 0, size).astype(np.int64)
        stop = np.clip(np.floor(hi - 0.5) + 1, 0, size).astype(np.int64)
    for i, k in np.ndindex(c, segments):
        (x0, y0), (x1, y1) = first[i, k], stop[i, k]
        if x0 >= x1 or y0 >= y1:
            continue
        gx = centers[None, x0:x1] - a[i, k, 0]                        # [1,w]
        gy = centers[y0:y1, None] - a[i, k, 1]                        # [h,1]
        t = gx * ux[i, k] + gy * uy[i, k]                             # [h,w]; in place from here
        np.clip(t, 0.0, 1.0, out=t)
        dx = t * ab[i, k, 0]
        np.subtract(gx, dx, out=dx)
        dx *= dx
        t *= ab[i, k, 1]
        np.subtract(gy, t, out=t)
        t *= t
        dx += t
        out[i, k, y0:y1, x0:x1] = np.sqrt(dx, out=dx)
    return out


def _paint(canvas: np.ndarray, dist: np.ndarray, radius: np.ndarray, colors: np.ndarray,
           hard: np.ndarray | None = None) -> None:
    """Composite capsules onto canvas [c,S,S,3] in order: coverage = clip(radius + 0.5 - dist) (1-px ramp), or
    for the frames where ``hard`` [c] is set, 1 where the pixel centre is within max(radius, 0.5) (aliased).
    Only covered pixels are touched: elsewhere compositing would multiply by 1 and add 0."""
    for k in range(dist.shape[1]):
        alpha = np.clip(radius[:, k, None, None] + 0.5 - dist[:, k], 0.0, 1.0)
        if hard is not None and hard.any():
            alpha[hard] = dist[hard, k] <= np.maximum(radius[hard, k], 0.5)[:, None, None]
        frame, y, x = np.nonzero(alpha > 0)
        cover = alpha[frame, y, x][:, None]
        pixels = canvas[frame, y, x]
        pixels *= 1.0 - cover
        pixels += cover * colors[frame, k]
        canvas[frame, y, x] = pixels


def _patterns(rng: np.random.Generator, canvas: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """On about PATTERN_SHARE of the frames: stripes or a checker of tiles at a random angle and period, or
    axis-aligned blocks (furniture, shelves), blended over the backdrop. Returns which frames got one."""
    n, s = len(canvas), grid.shape[0]
    patterned = rng.uniform(size=n) < PATTERN_SHARE
    for i in np.flatnonzero(patterned):
        kind = rng.integers(3)
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        if kind < 2:
            angle = rng.uniform(0, np.pi)
            period = rng.uniform(6.0, 30.0)
            u = (grid[..., 0] * np.cos(angle) + grid[..., 1] * np.sin(angle)) / period
            mask = (np.floor(u) % 2).astype(bool)
            if kind == 1:
                v = (-grid[..., 0] * np.sin(angle) + grid[..., 1] * np.cos(angle)) / period
                mask ^= (np.floor(v) % 2).astype(bool)
        else:
            mask = np.zeros((s, s), bool)
            for _ in range(int(rng.integers(2, 7))):
                x0, y0 = rng.integers(0, s, 2)
                mask[y0:y0 + rng.integers(3, s // 2), x0:x0 + rng.integers(3, s // 2)] = True
                colour = colour if rng.uniform() < 0.5 else rng.uniform(0, 255, 3).astype(np.float32)
        canvas[i][mask] = colour
    return patterned


def scene_style(scenes: str) -> SceneStyle:
    """``SCENES[scenes]``; raises ValueError naming the choices for any other name."""
    if scenes not in SCENES:
        raise ValueError(f"scenes must be one of {', '.join(SCENES)}, got {scenes!r}")
    return SCENES[scenes]


def _backdrop(rng: np.random.Generator, n: int, grid: np.ndarray,
              clutter: bool = True) -> tuple[np.ndarray, int, np.ndarray]:
    """Gradient + low-frequency blotches, with ``clutter`` also strokes and patterns: (float32 [n,S,S,3] in
    [0, 255], the number of strokes, which frames got a pattern)."""
    s = grid.shape[0]
    c0, c1 = rng.uniform(0, 255, (2, n, 1, 1, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    ramp = (grid[None, ..., 0] * np.cos(angle)[:, None, None] + grid[None, ..., 1] * np.sin(angle)[:, None, None])
    ramp = ((ramp - ramp.min((1, 2), keepdims=True)) / np.ptp(ramp, (1, 2), keepdims=True))[..., None]
    canvas = c0 * (1 - ramp) + c1 * ramp
    # blotches: a coarse random grid of colours, upsampled bilinearly (a tent weight per grid node)
    cells = int(rng.integers(3, 8))
    coarse = rng.normal(0, 40, (n, cells, cells, 3)).astype(np.float32)
    nodes = (np.arange(s, dtype=np.float32) + 0.5) * (cells - 1) / s
    tent = np.maximum(0.0, 1.0 - np.abs(nodes[:, None] - np.arange(cells, dtype=np.float32)[None]))   # [S,cells]
    canvas += np.einsum("yc,ncdk,xd->nyxk", tent, coarse, tent, optimize=True)
    if not clutter:
        return canvas, 0, np.zeros(n, bool)
    # clutter: strokes of random width and colour, some as thin as limbs
    strokes = int(rng.integers(0, 7))
    if strokes:
        a = rng.uniform(-0.1 * s, 1.1 * s, (n, strokes, 2)).astype(np.float32)
        b = a + rng.normal(0, 0.25 * s, (n, strokes, 2)).astype(np.float32)
        radius = rng.uniform(0.5, 4.0, (n, strokes)).astype(np.float32)
        colors = rng.uniform(0, 255, (n, strokes, 3)).astype(np.float32)
        _paint(canvas, _segment_distance(grid[0, :, 0], a, b, radius + _REACH_PX), radius, colors)
    return canvas, strokes, _patterns(rng, canvas, grid)


def _figure_colors(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-limb colours [n,L,3]: warm left, cool right, neutral torso (hue etc. jittered per frame)."""
    left_h = rng.uniform(-0.03, 0.14, n) % 1.0       # red .. yellow
    right_h = rng.uniform(0.36, 0.67, n)              # green .. blue
    sat = rng.uniform(0.55, 1.0, (n, 2))
    val = rng.uniform(0.55, 1.0, (n, 2))
    left = hsv_to_rgb(left_h, sat[:, 0], val[:, 0])
    right = hsv_to_rgb(right_h, sat[:, 1], val[:, 1])
    torso = np.repeat(rng.uniform(20, 255, (n, 1)), 3, axis=1) + rng.normal(0, 10, (n, 3))
    colors = np.where(LIMB_SIDE[None, :, None] > 0, left[:, None], np.where(LIMB_SIDE[None, :, None] < 0,
                                                                          right[:, None], torso[:, None]))
    return np.clip(colors, 0, 255).astype(np.float32)


def _occlude(rng: np.random.Generator, canvas: np.ndarray, grid: np.ndarray, boxes: np.ndarray, count: int) -> None:
    """Draw ``count`` boxes of 6-18 model-frame px at random places of each crop, flat colour plus texture."""
    n = len(canvas)
    for _ in range(count):
        side = rng.uniform(*OCCLUDER_SIDE_PX, (n, 2)).astype(np.float32)
        corner = rng.uniform(0, FRAME_SIZE, (n, 2)).astype(np.float32) - side / 2
        scale = (boxes[:, 2] / FRAME_SIZE)[:, None]
        lo = boxes[:, :2] + corner * scale
        hi = lo + side * scale
        inside = ((grid[None, ..., 0] >= lo[:, None, None, 0]) & (grid[None, ..., 0] < hi[:, None, None, 0])
                  & (grid[None, ..., 1] >= lo[:, None, None, 1]) & (grid[None, ..., 1] < hi[:, None, None, 1]))
        color = rng.uniform(0, 255, (n, 3)).astype(np.float32)
        texture = rng.normal(0, 12, canvas.shape).astype(np.float32)    # drawn whole: it fixes later draws
        frame, y, x = np.nonzero(inside)
        canvas[frame, y, x] = color[frame] + texture[frame, y, x]


def _blur(rng: np.random.Generator, canvas: np.ndarray, max_px: float = BLUR_MAX_PX) -> tuple[np.ndarray, float]:
    """Separable Gaussian blur with a per-chunk sigma drawn from [-0.6, ``max_px``] camera px, none at 0.2 or under:
    (the blurred canvas, sigma or 0 for none)."""
    sigma = rng.uniform(-0.6, max_px)
    if sigma <= 0.2:
        return canvas, 0.0
    taps = np.arange(-3, 4, dtype=np.float32)
    w = np.exp(-0.5 * (taps / sigma) ** 2)
    w /= w.sum()
    padded = np.pad(canvas, ((0, 0), (3, 3), (3, 3), (0, 0)), mode="edge")
    rows = sum(w[k] * padded[:, k:k + canvas.shape[1], :, :] for k in range(7))
    return sum(w[k] * rows[:, :, k:k + canvas.shape[2], :] for k in range(7)), float(sigma)


def _camera(rng: np.random.Generator, canvas: np.ndarray,
            noise_max: float = NOISE_MAX) -> tuple[np.ndarray, np.ndarray]:
    """Lighting, contrast, gamma and sensor noise (sigma up to ``noise_max`` grey levels): (uint8 [n,S,S,3], the
    noise's sigma per frame [n])."""
    n = len(canvas)
    gain = rng.uniform(0.6, 1.3, (n, 1, 1, 1)).astype(np.float32)
    offset = rng.uniform(-30, 30, (n, 1, 1, 1)).astype(np.float32)
    gamma = rng.uniform(0.75, 1.35, (n, 1, 1, 1)).astype(np.float32)
    x = np.clip(canvas * gain + offset, 0, 255) / 255.0
    x = 255.0 * x ** gamma
    unit = rng.normal(0, 1, x.shape).astype(np.float32)          # drawn before the sigma, as always
    noise = rng.uniform(0, noise_max, (n, 1, 1, 1)).astype(np.float32)
    x += unit * noise
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), noise.reshape(n)


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    side = rng.integers(BOX_SIDE_PX[0], BOX_SIDE_PX[1] + 1, n)
    slack = np.floor(side * BOX_OUTSIDE).astype(int)
    x = rng.integers(-slack, CAMERA_PX - side + slack + 1)
    y = rng.integers(-slack, CAMERA_PX - side + slack + 1)
    return np.stack([x, y, side, side], axis=1).astype(np.int32)


def draw_frames(poses_px: np.ndarray, rng: np.random.Generator, occluders: int | None = None,
                record: SceneRecord | None = None, scenes: str = "camera") -> tuple[np.ndarray, np.ndarray]:
    """Camera frames with one figure each, at random person boxes of the CAMERA_PX camera.

    Args:
        poses_px: float [n,13,2], poses in the 64-px model frame.
        rng: the random source for boxes, scene and camera.
        occluders: boxes drawn over the figure; None: 0, 1 or 2 at random (training).
        record, scenes: as ``draw_scene``.

    Returns:
        (rgb uint8 [n,CAMERA_PX,CAMERA_PX,3], boxes int32 [n,4] as (x, y, w, h) in camera pixels).
    """
    poses_px = np.asarray(poses_px, np.float32)
    n = len(poses_px)
    if poses_px.shape != (n, NUM_KEYPOINTS, 2):
        raise ValueError(f"poses_px must have shape [n,{NUM_KEYPOINTS},2], got {list(poses_px.shape)}")
    boxes = _boxes(rng, n)
    return draw_scene(poses_px, boxes, CAMERA_PX, rng, occluders, record, scenes), boxes


def draw_scene(poses_px: np.ndarray, boxes: np.ndarray, size: int, rng: np.random.Generator,
               occluders: int | None = None, record: SceneRecord | None = None, scenes: str = "camera") -> np.ndarray:
    """Square camera frames of any size with one figure each, the model frame of each pose at its box.

    Args:
        poses_px: float [n,13,2], poses in the 64-px model frame.
        boxes: [n,4] (x, y, side, side) camera pixels where each pose's model frame lies
            (px_cam = box_xy + px64 * side / 64).
        size: the frames' side in pixels.
        rng: the random source for the scene and camera.
        occluders: as ``draw_frames``.
        record: where to note what was drawn for each frame (optional).
        scenes: one of ``SCENES``.

    Returns:
        rgb uint8 [n,size,size,3].
    """
    style = scene_style(scenes)
    poses_px = np.asarray(poses_px, np.float32)
    n = len(poses_px)
    centers = np.arange(size, dtype=np.float32) + 0.5
    grid = np.stack(np.meshgrid(centers, centers, indexing="xy"), axis=-1)
    scale = (boxes[:, 2] / FRAME_SIZE).astype(np.float32)
    cam = boxes[:, None, :2] + poses_px * scale[:, None, None]
    canvas, strokes, patterned = _backdrop(rng, n, grid, style.clutter)
    radius_model_px = np.exp(rng.uniform(*np.log(style.limb_radius_px), n))
    limb_radius = (radius_model_px * scale)[:, None]
    hard = rng.uniform(size=n) < style.hard_edge_share
    colors = _figure_colors(rng, n)
    dist = _segment_distance(centers, cam[:, _PARENTS], cam[:, _CHILDREN],
                             np.repeat(limb_radius + _REACH_PX, len(_PARENTS), axis=1))     # [c,L,S,S]
    head_radius = (rng.uniform(2.0, 3.5, n) * scale)[:, None]
    head_dist = _segment_distance(centers, cam[:, [_HEAD]], cam[:, [_HEAD]], head_radius + _REACH_PX)[:, 0] - (
        head_radius[..., None] - limb_radius[..., None])
    # one layer per colour: torso and head, then the two sides in random order (the later one in front)
    sides = (0, 1, -1) if rng.uniform() < 0.5 else (0, -1, 1)
    layers = [dist[:, LIMB_SIDE == side].min(axis=1) for side in sides]
    layers[0] = np.minimum(layers[0], head_dist)
    layer_colors = np.stack([colors[:, list(LIMB_SIDE).index(side)] for side in sides], axis=1)
    _paint(canvas, np.stack(layers, axis=1), np.repeat(limb_radius, 3, axis=1), layer_colors, hard)
    count = int(rng.integers(0, 3)) if occluders is None else occluders
    _occlude(rng, canvas, grid, boxes, count)
    canvas, blur_sigma = _blur(rng, canvas, style.blur_max_px)
    rgb, noise_sigma = _camera(rng, canvas, style.noise_max)
    if record is not None:
        record.add(n, limb_radius_px=radius_model_px, hard_edges=hard, patterned=patterned, clutter_strokes=strokes,
                   blur_sigma_px=blur_sigma, noise_sigma=noise_sigma)
    return rgb


def backdrop_frames(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Camera frames of backdrop alone (no figure), drawn and captured as ``draw_frames`` draws the scene
    around one, and pre-processed at random person boxes: what a crop that lost the figure sees.

    Returns:
        (float32 [n,3,64,64] model inputs, int32 [n,4] boxes as ``draw_frames``).
    """
    centers = np.arange(CAMERA_PX, dtype=np.float32) + 0.5
    grid = np.stack(np.meshgrid(centers, centers, indexing="xy"), axis=-1)
    parts = []
    for start in range(0, n, _CHUNK):          # stroke counts and blur are drawn per chunk, as for the frames
        canvas, _, _ = _backdrop(rng, min(_CHUNK, n - start), grid)
        rgb, _ = _camera(rng, _blur(rng, canvas)[0])
        boxes = _boxes(rng, len(rgb))
        parts.append((model_inputs(rgb, boxes)[0], boxes))
    inputs, boxes = (np.concatenate(a) for a in zip(*parts))
    return inputs, boxes


def model_inputs(rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames -> NV21 -> the kernel's crop of each box: (float32 [n,3,64,64], uint8 [n,64,64,3])."""
    inputs = np.empty((len(rgb), 3, FRAME_SIZE, FRAME_SIZE), np.float32)
    pictures = np.empty((len(rgb), FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
    ys, vus = rgb_to_nv21(rgb)
    for i, (y, vu, box) in enumerate(zip(ys, vus, boxes)):
        inputs[i], pictures[i] = kernels.crop_nv21(y, vu, tuple(int(v) for v in box), (FRAME_SIZE, FRAME_SIZE),
                                                   mean=INPUT_MEAN, scale=INPUT_SCALE, u8=True)
    return inputs, pictures


def person_box_of(square) -> tuple[float, float, float, float]:
    """The person box (x0, y0, width, height) whose runtime crop is ``square``, a frame's model-frame box
    (x0, y0, side, side): its centre ``FIGURE_SHARE`` of the side."""
    x, y, side, _ = (float(v) for v in square)
    inner = side * FIGURE_SHARE
    return (x + (side - inner) / 2, y + (side - inner) / 2, inner, inner)


def crop_to_camera(points_px: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Points [n,k,2] in the 64-px model frame of square crops ``boxes`` [n,4] (x, y, side, side) -> camera
    pixels, float64."""
    boxes = np.asarray(boxes, np.float64)
    return boxes[:, None, :2] + points_px * (boxes[:, 2] / FRAME_SIZE)[:, None, None]


def make_frames(n: int, rng: np.random.Generator, occluders: int | None = None,
                upright_fraction: float | None = None, record: SceneRecord | None = None,
                keep_camera: bool = False, scenes: str = "camera") -> FrameBatch:
    """``n`` fresh poses from the tokenizer's generator, drawn, captured and pre-processed.

    Args:
        n: frames to make.
        rng: the random source (poses, scene, camera).
        occluders: see ``draw_frames``.
        upright_fraction: the share of upright poses among the broad ones; None: the scenes' own (camera:
            UPRIGHT_FRACTION, as the tokenizer trains; plain: all upright).
        record: as ``draw_scene``.
        keep_camera: also return the camera frames (``FrameBatch.camera``).
        scenes: one of ``SCENES``.

    Returns:
        A ``FrameBatch``.
    """
    style = scene_style(scenes)
    poses = sample_poses(n, rng, style.upright_fraction if upright_fraction is None else upright_fraction)
    parts = []
    for start in range(0, n, _CHUNK):
        rgb, boxes = draw_frames(poses[start:start + _CHUNK], rng, occluders, record, scenes)
        parts.append((*model_inputs(rgb, boxes), boxes, rgb if keep_camera else rgb[:0]))
    inputs, pictures, boxes, camera = (np.concatenate(a) for a in zip(*parts))
    return FrameBatch(inputs, pictures, poses.astype(np.float32), boxes, camera if keep_camera else None)


def sample_poses(n: int, rng: np.random.Generator, upright_fraction: float = UPRIGHT_FRACTION) -> np.ndarray:
    """The poses ``make_frames`` draws first from ``rng``: broad ones with ``upright_fraction`` upright."""
    return _sample_poses_and_generator(n, rng, upright_fraction)[0]


def _sample_poses_and_generator(n: int, rng: np.random.Generator,
                                upright_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """``sample_poses`` and which of them came from the upright generator (bool [n])."""
    poses = data.sample_poses_rng(n, rng, distribution="broad")
    upright = rng.uniform(size=n) < upright_fraction
    if upright.any():
        poses[upright] = data.sample_poses_rng(int(upright.sum()), rng, distribution="upright")
    return poses, upright


def eval_poses(kind: str, n: int = EVAL_FRAMES, scenes: str = "camera") -> np.ndarray:
    """The poses of ``eval_frames(kind, n, scenes=scenes)`` without drawing the frames."""
    return eval_poses_and_generator(kind, n, scenes)[0]


def eval_poses_and_generator(kind: str, n: int = EVAL_FRAMES,
                             scenes: str = "camera") -> tuple[np.ndarray, np.ndarray]:
    """The poses of ``eval_frames(kind, n, scenes=scenes)`` and which of them are upright ones (bool [n])."""
    if kind not in EVAL_SEEDS:
        raise ValueError(f"kind must be one of {sorted(EVAL_SEEDS)}, got {kind!r}")
    poses, upright = _sample_poses_and_generator(n, np.random.default_rng(EVAL_SEEDS[kind]),
                                                  scene_style(scenes).upright_fraction)
    return poses.astype(np.float32), upright


def eval_frames(kind: str, n: int = EVAL_FRAMES, record: SceneRecord | None = None,
                keep_camera: bool = False, scenes: str = "camera") -> FrameBatch:
    """The fixed held-out frames: ``"clean"`` (no occluder) or ``"occluded"`` (two boxes of 6-18 px); ``record``,
    ``keep_camera`` and ``scenes`` as ``make_frames`` (each scenes' frames from the same seeds)."""
    if kind not in EVAL_SEEDS:
        raise ValueError(f"kind must be one of {sorted(EVAL_SEEDS)}, got {kind!r}")
    rng = np.random.default_rng(EVAL_SEEDS[kind])
    return make_frames(n, rng, occluders=0 if kind == "clean" else 2, record=record, keep_camera=keep_camera,
                       scenes=scenes)
