"""Where the estimator's error lies, on the fixed held-out frames.

``posetok eval-estimator --breakdown`` splits the held-out MPJPE of
``estimator_train.evaluate_estimator`` (same frames, same model output) by
what could cause it, so a change to the model or the data can be aimed:

- the spread over frames (median, 90th and 99th percentile, the share of
  frames off by more than ``GROSS_ERROR_PX`` and their share of the total
  error): a mean carried by a tail of failures asks for other fixes than
  an error spread over every frame;
- per keypoint;
- left/right: the frames whose estimate relabelled left as right
  (``posetok.skeleton.MIRROR_INDEX``) would be nearer the truth, and the
  MPJPE if those swaps were forgiven (the side colours should make it
  small);
- by pose: the upright generator's poses against the broad ones, the
  torso's tilt from upright (neck above waist = 0 degrees, upside down =
  180), and the shoulder span over the torso length (turned bodies show
  narrow shoulders and limbs that cross);
- the camera's edge: a person box may stick out of the camera frame
  (``frames.BOX_OUTSIDE``), and the keypoints beyond it are not in the
  picture at all; the error of those keypoints against the seen ones, and
  of the frames with any such keypoint;
- by what the renderer drew (``frames.SceneRecord``, recorded while the
  same frames are drawn): limb half-width, hard or anti-aliased edges,
  patterned backdrop, limb-like clutter strokes, blur, sensor noise, and
  how far the kernel downscales the crop. These are the trained model's
  errors split by each factor, not what training without it would give;
  and the frames nearest the calibration trial's (``upright_easy_render``:
  upright poses on a plain backdrop, limbs at least 0.5 px wide, little
  noise and blur).

``--plot FILE.png`` draws the same figures and three clean frames at the
50th, 90th and 99th percentile of error, truth and estimate drawn over the
model's input.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posetok.skeleton import FRAME_SIZE, KEYPOINT_INDEX, KEYPOINT_NAMES, LIMBS, MIRROR_INDEX

from . import frames
from .estimator import PoseEstimatorModel
from .estimator_train import held_out_keypoints

GROSS_ERROR_PX = 5.0
TILT_EDGES_DEG = (0.0, 30.0, 90.0, 150.0, 180.0)
# Shoulder span / torso length: about 0.6-0.85 facing the camera or turned
# away, down to 0 seen from the side.
SPAN_EDGES = (0.0, 0.25, 0.5, np.inf)
EXAMPLE_PERCENTILES = (50, 90, 99)
# Render bins: limb half-width in model px (frames.LIMB_RADIUS_PX), blur sigma in camera px (0: none), sensor
# noise sigma in grey levels, crop downscale = box side / 64 (frames.BOX_SIDE_PX).
RADIUS_EDGES = (0.25, 0.5, 1.0, 1.8)
STROKE_EDGES = (0, 3, 6)
BLUR_EDGES = (0.0, 0.2, 0.7, 1.2)
NOISE_EDGES = (0.0, 2.0, 5.0, 8.0)
DOWNSCALE_EDGES = (1.125, 1.3, 1.5)
# The easy end of each render factor (upright_easy_render): the bounds of the plain scenes (frames.SCENES)
EASY_MIN_LIMB_RADIUS_PX = frames.PLAIN_LIMB_RADIUS_PX[0]
EASY_MAX_NOISE_SIGMA, EASY_MAX_BLUR_SIGMA_PX = frames.PLAIN_NOISE_MAX, frames.PLAIN_BLUR_MAX_PX

_NECK, _WAIST = KEYPOINT_INDEX["neck"], KEYPOINT_INDEX["waist"]
_SHOULDERS = KEYPOINT_INDEX["left_shoulder"], KEYPOINT_INDEX["right_shoulder"]


@dataclass
class HeldOutEstimates:
    """One held-out set with the model's keypoints.

    Attributes:
        kind: "clean" or "occluded" (``frames.EVAL_SEEDS``).
        true_px, estimated_px: float [n,13,2] in 64-px model-frame pixels.
        upright: bool [n], the poses drawn from the upright generator.
        pictures: uint8 [n,64,64,3], the model's input crops.
        boxes: int [n,4], the crops' (x, y, w, h) in the ``frames.CAMERA_PX`` camera frame.
        scene: what the renderer drew for each frame (``frames.SceneRecord``); None when unknown.
    """
    kind: str
    true_px: np.ndarray
    estimated_px: np.ndarray
    upright: np.ndarray
    pictures: np.ndarray
    boxes: np.ndarray
    scene: frames.SceneRecord | None = None

    @property
    def outside_camera(self) -> np.ndarray:
        """bool [n,13]: the true keypoints beyond the camera frame's edge (not in the picture)."""
        camera = frames.crop_to_camera(self.true_px, self.boxes)
        return ((camera < 0) | (camera > frames.CAMERA_PX)).any(axis=-1)

    @property
    def keypoint_errors(self) -> np.ndarray:
        """[n,13] distances in px."""
        return np.linalg.norm(self.estimated_px - self.true_px, axis=-1)

    @property
    def frame_errors(self) -> np.ndarray:
        """[n] per-frame MPJPE in px."""
        return self.keypoint_errors.mean(axis=1)


def held_out_estimates(model: PoseEstimatorModel, kind: str, n: int = frames.EVAL_FRAMES,
                       flip_test: bool = False, shift_test: bool = False) -> HeldOutEstimates:
    """The model's keypoints on the held-out frames ``frames.eval_frames(kind, n)`` (``flip_test``,
    ``shift_test``: those keypoints, see ``estimator_train.held_out_keypoints``)."""
    scene = frames.SceneRecord()
    batch = frames.eval_frames(kind, n, record=scene, keep_camera=shift_test)
    poses, upright = frames.eval_poses_and_generator(kind, n)
    if not np.array_equal(poses, batch.poses_px):
        raise AssertionError("eval_poses_and_generator no longer draws the poses of eval_frames")
    estimated = held_out_keypoints(model, batch, flip_test, shift_test)
    return HeldOutEstimates(kind, batch.poses_px, estimated, upright, batch.pictures, batch.boxes, scene)


def torso_tilt_deg(poses_px: np.ndarray) -> np.ndarray:
    """[n] angle between the waist->neck vector and image up (y decreases upward): 0 upright, 180 upside down."""
    torso = poses_px[:, _NECK] - poses_px[:, _WAIST]
    length = np.maximum(np.linalg.norm(torso, axis=-1), 1e-9)
    return np.degrees(np.arccos(np.clip(-torso[:, 1] / length, -1.0, 1.0)))


def shoulder_span(poses_px: np.ndarray) -> np.ndarray:
    """[n] distance between the shoulders over the neck-waist distance."""
    span = np.linalg.norm(poses_px[:, _SHOULDERS[0]] - poses_px[:, _SHOULDERS[1]], axis=-1)
    return span / np.maximum(np.linalg.norm(poses_px[:, _NECK] - poses_px[:, _WAIST], axis=-1), 1e-9)


def _edge_label(value: float) -> str:
    return "inf" if np.isinf(value) else f"{value:g}"


def _group(errors: np.ndarray, mask: np.ndarray) -> dict:
    """{"frames", "mpjpe_px"} of the frames in a boolean mask (mpjpe_px None when it is empty)."""
    return {"frames": int(mask.sum()), "mpjpe_px": float(errors[mask].mean()) if mask.any() else None}


def _masked(errors: np.ndarray, groups: dict[str, np.ndarray], keep_empty: bool = False) -> dict:
    """{name: ``_group``} for each boolean mask; an empty group is left out, or kept with mpjpe_px None."""
    return {name: _group(errors, mask) for name, mask in groups.items() if keep_empty or mask.any()}


def _binned(errors: np.ndarray, values: np.ndarray, edges: tuple[float, ...]) -> dict:
    """``_masked`` over half-open bins [lo, hi) named "lo-hi"; the last bin includes hi; empty bins kept."""
    groups = {}
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        below = values <= hi if i == len(edges) - 2 else values < hi
        groups[f"{_edge_label(lo)}-{_edge_label(hi)}"] = (values >= lo) & below
    return _masked(errors, groups, keep_empty=True)


def easy_render(scene: frames.SceneRecord) -> np.ndarray:
    """bool [n]: frames on a plain backdrop with limbs at least EASY_MIN_LIMB_RADIUS_PX wide and noise and blur
    under EASY_MAX_NOISE_SIGMA and EASY_MAX_BLUR_SIGMA_PX."""
    return (~scene.get("patterned").astype(bool) & (scene.get("limb_radius_px") >= EASY_MIN_LIMB_RADIUS_PX)
            & (scene.get("noise_sigma") < EASY_MAX_NOISE_SIGMA) & (scene.get("blur_sigma_px") < EASY_MAX_BLUR_SIGMA_PX))


def by_render(errors: np.ndarray, scene: frames.SceneRecord, boxes: np.ndarray) -> dict:
    """Per-frame errors [n] split by what the renderer drew: {factor: groups}."""
    hard, patterned = scene.get("hard_edges").astype(bool), scene.get("patterned").astype(bool)
    return {
        "limb_radius_px": _binned(errors, scene.get("limb_radius_px"), RADIUS_EDGES),
        "limb_edges": _masked(errors, {"anti_aliased": ~hard, "hard": hard}, keep_empty=True),
        "backdrop": _masked(errors, {"plain": ~patterned, "patterned": patterned}, keep_empty=True),
        "clutter_strokes": _binned(errors, scene.get("clutter_strokes"), STROKE_EDGES),
        "blur_sigma_px": _binned(errors, scene.get("blur_sigma_px"), BLUR_EDGES),
        "noise_sigma": _binned(errors, scene.get("noise_sigma"), NOISE_EDGES),
        "crop_downscale": _binned(errors, np.asarray(boxes)[:, 2] / FRAME_SIZE, DOWNSCALE_EDGES),
    }


def breakdown(est: HeldOutEstimates) -> dict:
    """The figures of the module notes for one held-out set (the render groups when ``est.scene`` is known)."""
    per_keypoint = est.keypoint_errors
    errors = per_keypoint.mean(axis=1)
    mirrored = np.linalg.norm(est.estimated_px[:, list(MIRROR_INDEX)] - est.true_px, axis=-1).mean(axis=1)
    gross = errors > GROSS_ERROR_PX
    outside = est.outside_camera
    cut = outside.any(axis=1)
    return {
        "frames": int(len(errors)),
        "mpjpe_px": float(errors.mean()),
        "median_px": float(np.median(errors)),
        "p90_px": float(np.percentile(errors, 90)),
        "p99_px": float(np.percentile(errors, 99)),
        "gross_frames": float(gross.mean()),
        "gross_error_share": float(errors[gross].sum() / errors.sum()),
        "mirror_swapped_frames": float((mirrored < errors).mean()),
        "mpjpe_px_mirror_forgiven": float(np.minimum(errors, mirrored).mean()),
        "per_keypoint_px": {name: float(v) for name, v in zip(KEYPOINT_NAMES, per_keypoint.mean(axis=0))},
        "by_generator": _masked(errors, {"upright": est.upright, "broad": ~est.upright}),
        "by_torso_tilt_deg": _binned(errors, torso_tilt_deg(est.true_px), TILT_EDGES_DEG),
        "by_shoulder_span": _binned(errors, shoulder_span(est.true_px), SPAN_EDGES),
        "keypoints_outside_camera": float(outside.mean()),
        "outside_camera_keypoint_px": float(per_keypoint[outside].mean()) if outside.any() else None,
        "inside_camera_keypoint_px": float(per_keypoint[~outside].mean()),
        "by_camera_edge": _masked(errors, {"all_inside": ~cut, "some_outside": cut}),
        **({"by_render": by_render(errors, est.scene, est.boxes),
            "upright_easy_render": _group(errors, est.upright & easy_render(est.scene))}
           if est.scene is not None else {}),
    }


def _group_bars(ax, figures: list[dict], groups: list[tuple[str, tuple[str, ...]]], width: float,
                colours: tuple[str, ...], title: str) -> None:
    """Horizontal bars of MPJPE per group, one bar per set; a group is (label, key path into the figures)."""
    y = np.arange(len(groups))
    for i, f in enumerate(figures):
        values = []
        for _, path in groups:
            node = f
            for key in path:
                node = (node or {}).get(key)
            values.append((node or {}).get("mpjpe_px") or 0.0)
        ax.barh(y + (i - (len(figures) - 1) / 2) * width, values, width, color=colours[i])
    ax.set_yticks(y, [label for label, _ in groups], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("MPJPE, px")
    ax.set_title(title, fontsize=9)


def plot_breakdown(sets: list[HeldOutEstimates], figures: list[dict], path: Path) -> None:
    """Write the breakdown figure (PNG) for ``sets`` and their ``breakdown`` ``figures`` (the first set's frames
    are the examples)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posetok.atomic import atomic_output

    colours = ("tab:blue", "tab:orange", "tab:green")
    fig = plt.figure(figsize=(15, 9))
    grid = fig.add_gridspec(2, 4, height_ratios=[1, 1.1])
    width = 0.8 / len(sets)

    ax = fig.add_subplot(grid[0, :2])
    x = np.arange(len(KEYPOINT_NAMES))
    for i, (s, f) in enumerate(zip(sets, figures)):
        ax.bar(x + (i - (len(sets) - 1) / 2) * width, list(f["per_keypoint_px"].values()), width,
               color=colours[i], label=f"{s.kind}: {f['mpjpe_px']:.2f} px")
    ax.set_xticks(x, [n.replace("_", "\n") for n in KEYPOINT_NAMES], fontsize=7)
    ax.set_ylabel("mean error, px")
    ax.set_title("error per keypoint", fontsize=10)
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[0, 2])
    for i, (s, f) in enumerate(zip(sets, figures)):
        errors = np.sort(s.frame_errors)
        ax.plot(errors, np.arange(1, len(errors) + 1) / len(errors), color=colours[i],
                label=f"{s.kind}: median {f['median_px']:.2f}, p90 {f['p90_px']:.2f} px")
    ax.axvline(GROSS_ERROR_PX, color="gray", ls=":", lw=1)
    ax.set_xlim(0, 3 * GROSS_ERROR_PX)
    ax.set_xlabel("per-frame MPJPE, px")
    ax.set_ylabel("share of frames")
    ax.set_title("frames by error", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")

    pose_groups = [("tilt " + k + "°", ("by_torso_tilt_deg", k)) for k in figures[0]["by_torso_tilt_deg"]]
    pose_groups += [("span " + k, ("by_shoulder_span", k)) for k in figures[0]["by_shoulder_span"]]
    pose_groups += [(k.replace("_", " "), ("by_camera_edge", k)) for k in figures[0]["by_camera_edge"]]
    _group_bars(fig.add_subplot(grid[0, 3]), figures, pose_groups, width, colours,
                "by torso tilt, shoulder span / torso, camera edge")
    if "by_render" in figures[0]:
        render_groups = [(f"{factor.replace('_px', '').replace('_', ' ')} {k.replace('_', ' ')}",
                          ("by_render", factor, k))
                         for factor, bins in figures[0]["by_render"].items() for k in bins]
        render_groups.append(("upright poses, easy render", ("upright_easy_render",)))
        _group_bars(fig.add_subplot(grid[1, 0]), figures, render_groups, width, colours,
                    "by what the renderer drew")

    first = sets[0]
    errors = first.frame_errors
    order = np.argsort(errors)
    for j, pct in enumerate(EXAMPLE_PERCENTILES):
        k = order[min(len(order) - 1, int(round(pct / 100 * (len(order) - 1))))]
        ax = fig.add_subplot(grid[1, 1 + j])
        ax.imshow(first.pictures[k], extent=(0, 64, 64, 0), interpolation="nearest")
        for a, b in LIMBS:
            ax.plot(first.estimated_px[k, [a, b], 0], first.estimated_px[k, [a, b], 1], color="red", lw=1.0)
        ax.scatter(first.true_px[k, :, 0], first.true_px[k, :, 1], s=14, color="white", edgecolors="black",
                   linewidths=0.6, zorder=3)
        ax.set_xlim(0, 64)
        ax.set_ylim(64, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{first.kind} frame at p{pct}: {errors[k]:.2f} px", fontsize=9)
    fig.suptitle("estimator error on the held-out frames (64-px model frame); examples: true keypoints white, "
                 "estimated skeleton red", fontsize=11)
    fig.tight_layout()
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
    finally:
        plt.close(fig)
