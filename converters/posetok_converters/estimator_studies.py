"""``posetok study-estimator``: the measurements behind the README's choices for the runtime's estimator.

- ``shift_sweep``: the shift test's error for each move of its two extra
  crops, on fresh frames apart from the held-out ones (how
  ``posetok.estimator.SHIFT_TEST_PX`` was chosen); torch model.
- ``video_margin_searches``: how often video mode searches the whole frame
  again while it tracks a still figure, for each ``box_scale``; bundle.
- ``partial_figure_presence``: what ``PoseResult.presence`` says of crops
  that hold a whole figure, or part of one as it leaves the crop; bundle.

Each is seeded, so a rerun on the same weights gives the same figures;
``make remeasure`` reruns all three after new weights ship.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from posetok.estimator import SHIFT_TEST_PX

SHIFTS_PX = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
SHIFT_SWEEP_SEED = 7           # fresh frames, apart from the held-out sets' seeds
MARGIN_SCALES = (1.0, 1.5, 2.0)
MARGIN_SEED = 0
MARGIN_FIGURE_AT = (150, 100)  # the figure's 96-px frame's corner in the 320 x 240 frame, a little off centre
PARTIAL_SHIFTS = (0.0, 0.25, 0.5)
PARTIAL_SEED = 5
TRACKED_FRAME_MS = 33          # 30 frames a second


def shift_sweep(model, shifts: tuple[float, ...] = SHIFTS_PX, n: int = 2000, seed: int = SHIFT_SWEEP_SEED,
                progress: Optional[Callable[[str], None]] = None) -> dict:
    """The shift test's MPJPE for each move, against one pass, on ``n`` fresh frames.

    The frames mix training's 0 to 2 occluders and come from their own seed,
    so the choice is not tuned on the held-out sets the README reports.

    Args:
        model: a torch ``PoseEstimatorModel``.
        shifts: the moves to try, in model pixels (each rounds to whole
            frame pixels, at least one; ``posetok.estimator.shift_test_boxes``).
        n: fresh frames.
        seed: their random seed.
        progress: called with a line after each move, or None.

    Returns:
        ``frames``, ``seed``, ``one_pass_px`` (MPJPE in model pixels without
        the shift test), ``shift_test_px`` (move -> MPJPE), ``best_shift_px``
        and ``runtime_shift_px`` (``SHIFT_TEST_PX``).
    """
    from . import frames
    from .estimator_train import held_out_keypoints
    batch = frames.make_frames(n, np.random.default_rng(seed), keep_camera=True)

    def mpjpe(keypoints: np.ndarray) -> float:
        return round(float(np.linalg.norm(keypoints - batch.poses_px, axis=-1).mean()), 4)

    one_pass = mpjpe(held_out_keypoints(model, batch))
    by_shift = {}
    for px in shifts:
        by_shift[float(px)] = mpjpe(held_out_keypoints(model, batch, shift_test=True, shift_px=px))
        if progress is not None:
            progress(f"shift {px:g} model px: {by_shift[float(px)]:.3f} px (one pass {one_pass:.3f})")
    return {"frames": n, "seed": seed, "one_pass_px": one_pass,
            "shift_test_px": {f"{px:g}": err for px, err in by_shift.items()},
            "best_shift_px": min(by_shift, key=by_shift.get), "runtime_shift_px": SHIFT_TEST_PX}


def video_margin_searches(bundle, scales: tuple[float, ...] = MARGIN_SCALES, figures: int = 200,
                          frames_per_figure: int = 10, seed: int = MARGIN_SEED, backend: str = "auto",
                          precision: str = "fp32") -> dict:
    """How often video mode searches again while tracking a still figure, for each ``box_scale``.

    Each upright figure (no occluder) stands still near the middle of a
    black 320 x 240 frame for ``frames_per_figure`` frames at 30 frames a second;
    the first frame is always searched, so each later search is video mode
    judging its tracked pass lost (``PoseResult.searched``). A figure the
    tracked pass misjudges is misjudged on most of its frames, so the count
    over a few figures is mostly which figures those are: many figures with
    a few frames each measure the rule better than a few with many.

    Args:
        bundle: a bundle folder with an estimator.
        scales: the ``EstimatorOptions.box_scale`` values to try.
        figures: still figures, each in its own run.
        frames_per_figure: frames per figure.
        seed: the figures' random seed.
        backend, precision: as ``EstimatorOptions``.

    Returns:
        ``figures``, ``tracked_frames`` (per scale), ``seed``,
        ``searches_again``: scale -> searches on tracked frames, summed over
        the figures, and ``figures_searched_again``: scale -> figures searched
        again at least once.
    """
    from posetok import EstimatorOptions, PoseEstimator

    from . import data, frames
    rng = np.random.default_rng(seed)
    pictures, _ = frames.draw_frames(data.sample_poses_rng(figures, rng, distribution="upright"), rng, occluders=0)
    height, width = pictures.shape[1:3]
    left, top = MARGIN_FIGURE_AT
    scenes = []
    for picture in pictures:
        scene = np.zeros((240, 320, 3), np.uint8)
        scene[top:top + height, left:left + width] = picture
        scenes.append(scene)
    searches, figures_searched = {}, {}
    for scale in scales:
        options = EstimatorOptions(running_mode="video", box_scale=scale, backend=backend, precision=precision)
        per_figure = []
        with PoseEstimator.from_bundle(bundle, options=options) as est:
            for scene in scenes:
                est.reset()                  # each figure its own stream
                poses = [est.estimate(scene, timestamp_ms=TRACKED_FRAME_MS * t) for t in range(frames_per_figure)]
                per_figure.append(sum(pose.searched for pose in poses[1:]))
        searches[f"{scale:g}"] = sum(per_figure)
        figures_searched[f"{scale:g}"] = sum(count > 0 for count in per_figure)
    return {"figures": figures, "tracked_frames": figures * (frames_per_figure - 1), "seed": seed,
            "backend": backend, "precision": precision, "searches_again": searches,
            "figures_searched_again": figures_searched}


def partial_figure_presence(bundle, shifts: tuple[float, ...] = PARTIAL_SHIFTS, n: int = 300,
                            seed: int = PARTIAL_SEED, backend: str = "auto", precision: str = "fp32") -> dict:
    """``PoseResult.presence`` on crops around the person box, and on the same crops moved sideways.

    The person box is the one whose crop is the square each figure was
    drawn in (``frames.person_box_of``); moving it by ``shift`` of the
    square's side moves the crop the runtime makes from it alike, so at 0.5
    about half the figure is out.

    Args:
        bundle: a bundle folder with an estimator.
        shifts: the sideways moves, in sides of the drawn square.
        n: fresh frames, no occluder.
        seed: their random seed.
        backend, precision: as ``EstimatorOptions``.

    Returns:
        ``frames``, ``seed``, and ``by_shift``: shift -> ``median`` presence
        and ``kept`` (the share at the default ``min_presence`` or more).
    """
    from posetok import EstimatorOptions, PoseEstimator

    from . import frames
    batch = frames.make_frames(n, np.random.default_rng(seed), occluders=0, keep_camera=True)
    options = EstimatorOptions(backend=backend, precision=precision)
    threshold = EstimatorOptions().min_presence
    by_shift = {}
    with PoseEstimator.from_bundle(bundle, options=options) as est:
        for shift in shifts:
            presence = np.array([est.estimate(rgb, box=(x + shift * float(square[2]), y, w, h)).presence
                                 for rgb, square in zip(batch.camera, batch.boxes)
                                 for x, y, w, h in [frames.person_box_of(square)]])
            by_shift[f"{shift:g}"] = {"median": round(float(np.median(presence)), 4),
                                      "kept": round(float(np.mean(presence >= threshold)), 4)}
    return {"frames": n, "seed": seed, "backend": backend, "precision": precision, "by_shift": by_shift}
