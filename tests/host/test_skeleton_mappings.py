"""Keypoint conversions in posetok.skeleton: COCO-17 <-> the 13 keypoints and
person box <-> 64-px frame, checked against hand-computed numbers."""
from __future__ import annotations

import numpy as np
import pytest

from posetok.skeleton import (
    COCO17_NAMES,
    DEFAULT_BOX_MARGIN,
    FRAME_SIZE,
    KEYPOINT_INDEX,
    FrameTransform,
    box_to_frame_transform,
    coco17_to_posetok,
    frame_to_image,
    image_to_frame,
    posetok_to_coco17,
)

# An upright figure facing the camera (its left on the image's right), the
# shoulder line tilted by (16, 4); the neck is the shoulders' midpoint.
FIGURE_13 = np.array([
    [32.0, 10.0],                 # head
    [32.0, 20.0],                 # neck
    [40.0, 22.0], [24.0, 18.0],   # left, right shoulder
    [44.0, 30.0], [20.0, 27.0],   # elbows
    [46.0, 37.0], [18.0, 35.0],   # hands
    [32.0, 38.0],                 # waist
    [36.0, 48.0], [28.0, 48.0],   # knees
    [37.0, 58.0], [27.0, 59.0],   # feet
], dtype=np.float32)

# posetok_to_coco17(FIGURE_13) by hand, shoulder vector s = (16, 4):
# eyes = head +- 0.08 s, ears = head +- 0.18 s, hips = waist +- 0.3 s.
FIGURE_17 = np.array([
    [32.0, 10.0],                   # nose = head
    [33.28, 10.32], [30.72, 9.68],  # left, right eye
    [34.88, 10.72], [29.12, 9.28],  # left, right ear
    [40.0, 22.0], [24.0, 18.0],     # shoulders
    [44.0, 30.0], [20.0, 27.0],     # elbows
    [46.0, 37.0], [18.0, 35.0],     # wrists = hands
    [36.8, 39.2], [27.2, 36.8],     # hips
    [36.0, 48.0], [28.0, 48.0],     # knees
    [37.0, 58.0], [27.0, 59.0],     # ankles = feet
])

# A COCO-17 detection in image pixels, with scores.
COCO = np.array([
    [50.0, 20.0], [53.0, 17.0], [47.0, 17.0], [56.0, 19.0], [44.0, 19.0],
    [60.0, 40.0], [40.0, 42.0], [64.0, 55.0], [36.0, 57.0], [66.0, 70.0], [34.0, 71.0],
    [56.0, 80.0], [44.0, 78.0], [57.0, 100.0], [43.0, 101.0], [58.0, 120.0], [42.0, 122.0],
])
COCO_SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5,
                        0.95, 0.85, 0.9, 0.8, 0.7, 0.6, 0.9, 0.7, 0.8, 0.8, 0.6, 0.5])


def test_coco17_names_order():
    assert len(COCO17_NAMES) == 17
    assert COCO17_NAMES[0] == "nose" and COCO17_NAMES[5:7] == ("left_shoulder", "right_shoulder")
    assert COCO17_NAMES[9:13] == ("left_wrist", "right_wrist", "left_hip", "right_hip")
    assert COCO17_NAMES[-1] == "right_ankle"


def test_coco17_to_posetok_by_hand():
    kp, sc = coco17_to_posetok(COCO, COCO_SCORES)
    assert kp.shape == (13, 2) and sc.shape == (13,)
    assert kp.dtype == np.float32 and sc.dtype == np.float32
    expected = np.array([
        [50.0, 18.4],                 # head: mean of the five face points
        [50.0, 41.0],                 # neck: shoulder midpoint
        [60.0, 40.0], [40.0, 42.0], [64.0, 55.0], [36.0, 57.0], [66.0, 70.0], [34.0, 71.0],
        [50.0, 79.0],                 # waist: hip midpoint
        [57.0, 100.0], [43.0, 101.0], [58.0, 120.0], [42.0, 122.0],
    ])
    np.testing.assert_allclose(kp, expected, atol=1e-5)
    expected_scores = [0.7,           # mean of 0.9 0.8 0.7 0.6 0.5
                       0.85,          # min(0.95, 0.85)
                       0.95, 0.85, 0.9, 0.8, 0.7, 0.6,
                       0.7,           # min(0.9, 0.7)
                       0.8, 0.8, 0.6, 0.5]
    np.testing.assert_allclose(sc, expected_scores, atol=1e-6)


def test_coco17_to_posetok_missing_face_point_hip_and_wrist():
    scores = COCO_SCORES.copy()
    scores[COCO17_NAMES.index("right_ear")] = 0.1
    scores[COCO17_NAMES.index("left_hip")] = 0.05
    scores[COCO17_NAMES.index("right_wrist")] = 0.29
    kp, sc = coco17_to_posetok(COCO, scores, min_score=0.3)
    head, waist, right_hand = KEYPOINT_INDEX["head"], KEYPOINT_INDEX["waist"], KEYPOINT_INDEX["right_hand"]
    # head: mean of nose and eyes and left ear only: x (50+53+47+56)/4, y (20+17+17+19)/4
    np.testing.assert_allclose(kp[head], [51.5, 18.25], atol=1e-5)
    assert sc[head] == pytest.approx((0.9 + 0.8 + 0.7 + 0.6) / 4, abs=1e-6)
    assert np.isnan(kp[waist]).all() and sc[waist] == 0.0
    assert np.isnan(kp[right_hand]).all() and sc[right_hand] == 0.0
    others = [i for i in range(13) if i not in (waist, right_hand)]
    assert not np.isnan(kp[others]).any() and (sc[others] > 0).all()
    # the threshold is inclusive
    kp, sc = coco17_to_posetok(COCO, scores, min_score=0.29)
    np.testing.assert_allclose(kp[right_hand], [34.0, 71.0])
    assert sc[right_hand] == pytest.approx(0.29)


def test_coco17_to_posetok_without_scores_treats_nan_as_missing():
    coco = COCO.copy()
    coco[COCO17_NAMES.index("nose")] = np.nan
    coco[COCO17_NAMES.index("right_hip"), 1] = np.nan    # one NaN coordinate is enough
    kp, sc = coco17_to_posetok(coco)
    # head: mean of eyes and ears: x (53+47+56+44)/4 = 50, y (17+17+19+19)/4 = 18
    np.testing.assert_allclose(kp[KEYPOINT_INDEX["head"]], [50.0, 18.0], atol=1e-5)
    assert np.isnan(kp[KEYPOINT_INDEX["waist"]]).all()
    expected = np.ones(13, np.float32)
    expected[KEYPOINT_INDEX["waist"]] = 0.0
    np.testing.assert_array_equal(sc, expected)
    # no visible face point at all: head missing
    coco[:5] = np.nan
    kp, sc = coco17_to_posetok(coco)
    assert np.isnan(kp[KEYPOINT_INDEX["head"]]).all() and sc[KEYPOINT_INDEX["head"]] == 0.0


def test_coco17_to_posetok_batched_and_integer_input():
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 500, size=(2, 3, 17, 2))
    scores = rng.uniform(0, 1, size=(2, 3, 17))
    kp, sc = coco17_to_posetok(batch, scores)
    assert kp.shape == (2, 3, 13, 2) and sc.shape == (2, 3, 13)
    one_kp, one_sc = coco17_to_posetok(batch[1, 2], scores[1, 2])
    np.testing.assert_array_equal(kp[1, 2], one_kp)
    np.testing.assert_array_equal(sc[1, 2], one_sc)
    kp_int, _ = coco17_to_posetok(COCO.astype(np.int64))
    np.testing.assert_allclose(kp_int[KEYPOINT_INDEX["neck"]], [50.0, 41.0])


def test_posetok_to_coco17_by_hand():
    out = posetok_to_coco17(FIGURE_13)
    assert out.shape == (17, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, FIGURE_17, atol=1e-5)


def test_round_trip_13_17_13_is_exact():
    kp, sc = coco17_to_posetok(posetok_to_coco17(FIGURE_13))
    np.testing.assert_allclose(kp, FIGURE_13, atol=1e-5)
    np.testing.assert_array_equal(sc, np.ones(13))
    # batched, random figures whose neck is the shoulder midpoint
    rng = np.random.default_rng(1)
    figs = rng.uniform(0, 64, size=(4, 5, 13, 2)).astype(np.float32)
    figs[..., KEYPOINT_INDEX["neck"], :] = (figs[..., 2, :] + figs[..., 3, :]) / 2
    back, _ = coco17_to_posetok(posetok_to_coco17(figs))
    np.testing.assert_allclose(back, figs, atol=1e-5)


def test_round_trip_replaces_an_off_centre_neck_with_the_shoulder_midpoint():
    fig = FIGURE_13.copy()
    fig[KEYPOINT_INDEX["neck"]] = [31.0, 17.0]
    back, _ = coco17_to_posetok(posetok_to_coco17(fig))
    np.testing.assert_allclose(back[KEYPOINT_INDEX["neck"]], [32.0, 20.0], atol=1e-5)
    others = [i for i in range(13) if i != KEYPOINT_INDEX["neck"]]
    np.testing.assert_allclose(back[others], fig[others], atol=1e-5)


def test_without_a_shoulder_the_round_trip_loses_the_waist_as_the_readme_says():
    pts = FIGURE_13.copy()
    pts[KEYPOINT_INDEX["right_shoulder"]] = np.nan
    back = coco17_to_posetok(posetok_to_coco17(pts)).keypoints
    assert np.isnan(back[KEYPOINT_INDEX["waist"]]).all()        # the hips lie along the shoulder line


def test_posetok_to_coco17_nan_propagates():
    fig = FIGURE_13.copy()
    fig[KEYPOINT_INDEX["right_shoulder"]] = np.nan
    out = posetok_to_coco17(fig)
    nan_rows = {COCO17_NAMES.index(n) for n in
                ("left_eye", "right_eye", "left_ear", "right_ear", "right_shoulder", "left_hip", "right_hip")}
    for i in range(17):
        assert np.isnan(out[i]).all() == (i in nan_rows), COCO17_NAMES[i]
    np.testing.assert_allclose(out[0], [32.0, 10.0])


def test_box_transform_by_hand_default_margin():
    assert DEFAULT_BOX_MARGIN == 0.5
    t = box_to_frame_transform((100, 50, 40, 80))
    # side = 80 * 1.5 = 120, centre (120, 90): crop (60, 30)-(180, 150)
    assert isinstance(t, FrameTransform)
    assert t.scale == pytest.approx(64 / 120)
    assert t.offset == pytest.approx((-32.0, -16.0))
    corners = np.array([[60, 30], [180, 150], [120, 90], [100, 50], [140, 130]], dtype=np.float64)
    expected = [[0, 0], [64, 64], [32, 32], [64 / 3, 32 / 3], [128 / 3, 64 - 32 / 3]]
    np.testing.assert_allclose(image_to_frame(corners, (100, 50, 40, 80)), expected, atol=1e-5)
    np.testing.assert_allclose(frame_to_image(expected, (100, 50, 40, 80)), corners, atol=1e-4)


def test_box_transform_by_hand_no_margin_wide_box():
    box = (10.5, 20.0, 200.0, 50.0)       # wide: the side is the width
    out = image_to_frame([[10.5, 20.0], [210.5, 70.0], [110.5, 45.0]], box, margin=0.0)
    # side 200, scale 0.32, centre (110.5, 45): y spans 45 -+ 100
    np.testing.assert_allclose(out, [[0.0, 24.0], [64.0, 40.0], [32.0, 32.0]], atol=1e-5)
    assert out.dtype == np.float32


def test_box_round_trip_any_leading_shape_and_nan_passes():
    rng = np.random.default_rng(2)
    pts = rng.uniform(-50, 900, size=(3, 4, 17, 2))
    pts[0, 1, 5] = np.nan
    box = (312.25, 101.5, 95.0, 230.75)
    for margin in (0.0, 0.25, DEFAULT_BOX_MARGIN):
        frame = image_to_frame(pts, box, margin)
        assert frame.shape == pts.shape
        assert np.isnan(frame[0, 1, 5]).all() and np.isnan(frame).sum() == 2
        np.testing.assert_allclose(frame_to_image(frame, box, margin), pts, rtol=1e-6, atol=1e-4)
    frame = rng.uniform(0, FRAME_SIZE, size=(5, 13, 2)).astype(np.float32)
    np.testing.assert_allclose(image_to_frame(frame_to_image(frame, box), box), frame, atol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda: coco17_to_posetok(np.zeros((13, 2))), r"keypoints must have shape \[\.\.\., 17, 2\], got shape \(13, 2\)"),
    (lambda: coco17_to_posetok(np.zeros(34)), r"shape \[\.\.\., 17, 2\], got shape \(34,\)"),
    (lambda: coco17_to_posetok(np.full((17, 2), "1")), r"real numeric array, got dtype <U1"),
    (lambda: coco17_to_posetok(np.zeros((17, 2), bool)), r"real numeric array, got dtype bool"),
    (lambda: coco17_to_posetok(np.full((17, 2), 1 + 1j)), r"real numeric array, got dtype complex128"),
    (lambda: coco17_to_posetok(np.where(np.eye(17, 2) > 0, np.inf, 0.0)), r"keypoints contain inf"),
    (lambda: coco17_to_posetok(COCO, np.ones(13)),
     r"scores must have shape \(17,\) to match keypoints, got shape \(13,\)"),
    (lambda: coco17_to_posetok(COCO[None], np.ones(17)), r"scores must have shape \(1, 17\)"),
    (lambda: coco17_to_posetok(COCO, np.full(17, np.nan)), r"scores contain NaN or inf"),
    (lambda: coco17_to_posetok(COCO, np.ones(17, bool)), r"scores must be a real numeric array"),
    (lambda: coco17_to_posetok(COCO, COCO_SCORES, min_score=np.nan), r"min_score must be a finite number"),
    (lambda: posetok_to_coco17(np.zeros((17, 2))), r"keypoints must have shape \[\.\.\., 13, 2\], got shape \(17, 2\)"),
    (lambda: posetok_to_coco17(np.full((13, 2), -np.inf)), r"keypoints contain inf"),
    (lambda: box_to_frame_transform((1, 2, 3)),
     r"box must have shape \(4,\) as \(x0, y0, width, height\), got shape \(3,\)"),
    (lambda: box_to_frame_transform(()), r"box must have shape \(4,\).*got shape \(0,\)"),
    (lambda: box_to_frame_transform((0, 0, np.nan, 10)), r"box must be finite"),
    (lambda: box_to_frame_transform((0, np.inf, 10, 10)), r"box must be finite"),
    (lambda: box_to_frame_transform((0, 0, 0, 10)), r"box width and height must be > 0, got width=0.0, height=10.0"),
    (lambda: box_to_frame_transform((0, 0, 10, -5)), r"box width and height must be > 0, got width=10.0, height=-5.0"),
    (lambda: box_to_frame_transform(("a", "b", "c", "d")), r"box must be a real numeric array"),
    (lambda: box_to_frame_transform((0, 0, 10, 10), margin=-0.1), r"margin must be a finite number >= 0"),
    (lambda: box_to_frame_transform((0, 0, 10, 10), margin=np.inf), r"margin must be a finite number >= 0"),
    (lambda: image_to_frame(np.zeros((5, 3)), (0, 0, 10, 10)),
     r"keypoints must have shape \[\.\.\., 2\], got shape \(5, 3\)"),
    (lambda: image_to_frame([[1.0, np.inf]], (0, 0, 10, 10)), r"keypoints contain inf"),
    (lambda: frame_to_image(np.float32(3.0), (0, 0, 10, 10)), r"shape \[\.\.\., 2\], got shape \(\)"),
    (lambda: frame_to_image(np.zeros((2, 2)), (0, 0, 0, 10)), r"box width and height must be > 0"),
    # settings of the wrong type are named, not left to numpy
    (lambda: coco17_to_posetok(COCO, COCO_SCORES, min_score="0.3"), r"^min_score must be a finite number, got '0.3'"),
    (lambda: coco17_to_posetok(COCO, COCO_SCORES, min_score=None), r"^min_score must be a finite number, got None"),
    (lambda: box_to_frame_transform((0, 0, 10, 10), margin="0.5"), r"^margin must be a finite number >= 0, got '0.5'"),
    (lambda: box_to_frame_transform((0, 0, 10, 10), margin=True), r"^margin must be a finite number >= 0, got True"),
    (lambda: coco17_to_posetok([[1.0, 2.0], [3.0]]), r"^keypoints must be a real numeric array of one shape"),
    # finite inputs whose mapping leaves floating point are refused, not returned as inf or NaN ("missing")
    (lambda: coco17_to_posetok(np.full((17, 2), 1e300)), r"^keypoints are beyond float32's range"),
    (lambda: posetok_to_coco17(np.full((13, 2), 1e300)), r"^keypoints are beyond float32's range"),
    (lambda: image_to_frame(np.full((13, 2), 1e300), (0, 0, 10, 10)), r"^keypoints are beyond float32's range"),
    (lambda: image_to_frame(np.zeros((13, 2)), (0, 0, 1e-320, 1e-320)), r"too small or too large to map"),
    (lambda: frame_to_image(np.zeros((13, 2)), (0, 0, 10, 10), margin=1e308), r"too small or too large to map"),
])
def test_errors_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()
