"""The estimator as a user meets it (converters/posetok_converters/estimator_eval.py): person boxes around
keypoints, the crop the runtime makes around them, the independent renderer and the size-relative error."""
from __future__ import annotations

import numpy as np
import pytest

from posetok.estimator import MIN_BOX_PX, person_crop
from posetok.skeleton import KEYPOINT_INDEX
from posetok_converters import estimator_eval as ev


def test_person_crop_is_centred_and_sized_by_the_share():
    # long side 40 at share 0.5 -> an 80-px square around the centre (25, 24)
    assert person_crop((10.0, 4.0, 30.0, 40.0), 96, 96, 0.5) == (-15, -16, 80, 80)
    assert person_crop((10.0, 4.0, 30.0, 40.0), 96, 96, 0.5, box_scale=1.5) == (-35, -36, 120, 120)
    assert person_crop((50.0, 50.0, 2.0, 1.0), 96, 96, 0.5)[2] == MIN_BOX_PX       # never under 16 px
    assert person_crop((0.0, 0.0, 900.0, 900.0), 96, 64, 0.5)[2] == 192             # at most 2x the frame
    x, y, side, _ = person_crop((150.0, 150.0, 40.0, 40.0), 160, 120, 0.5)           # centre kept in the frame
    assert (x + side / 2, y + side / 2) == (160, 120)


def test_keypoint_boxes_and_size_relative_error():
    kp = np.array([[[10.0, 20.0], [30.0, 60.0]]])
    np.testing.assert_array_equal(ev.keypoint_boxes(kp), [[10, 20, 20, 40]])
    np.testing.assert_array_equal(ev.keypoint_boxes(kp, 2.0), [[8, 18, 24, 44]])
    rng = np.random.default_rng(0)
    true = rng.uniform(0, 50, (20, 13, 2))
    pred = true + rng.normal(0, 1, true.shape)
    base = ev.relative_mpjpe(pred, true, 27.0)
    # the same error on people twice the size, in twice the pixels, is the same relative error
    assert ev.relative_mpjpe(2 * pred, 2 * true, 27.0) == pytest.approx(base)
    assert ev.relative_mpjpe(pred, true, 54.0) == pytest.approx(2 * base)
    errors = np.linalg.norm(pred - true, axis=-1).mean()
    assert base == pytest.approx(errors / ev.long_sides(true).mean() * 27.0)


def test_independent_frames_draw_the_figure_in_its_person_box_with_side_colours():
    rgb, kp, boxes = ev.independent_frames(40, np.random.default_rng(3))
    w, h = ev.INDEPENDENT_FRAME
    assert rgb.shape == (40, h, w, 3) and rgb.dtype == np.uint8 and kp.shape == (40, 13, 2)
    assert (kp >= 0).all() and (kp[..., 0] <= w).all() and (kp[..., 1] <= h).all()
    low, high = boxes[:, None, :2], boxes[:, None, :2] + boxes[:, None, 2:]
    assert ((kp >= low) & (kp <= high)).all()                     # every keypoint inside its person box
    again = ev.independent_frames(40, np.random.default_rng(3))
    assert np.array_equal(again[0], rgb)                          # seeded
    warm = cool = 0
    for frame, pose in zip(rgb, kp):
        for side in ("left", "right"):
            mid = (pose[KEYPOINT_INDEX[f"{side}_knee"]] + pose[KEYPOINT_INDEX[f"{side}_foot"]]) / 2
            r, _, b = frame[int(mid[1]), int(mid[0])].astype(int)
            warm += side == "left" and r > b + 40
            cool += side == "right" and b > r + 40
    assert warm >= 20 and cool >= 20, (warm, cool)
