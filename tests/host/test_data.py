"""The synthetic stick-figure generators (broad and upright) and the renderer keep their constraints."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from posetok.skeleton import FRAME_SIZE, KEYPOINT_INDEX as J, LIMBS, NUM_KEYPOINTS
from posetok_converters import data, render as render_module


def limb_lengths(poses: np.ndarray) -> np.ndarray:
    parents, children = np.array(LIMBS).T
    return np.linalg.norm(poses[:, children] - poses[:, parents], axis=-1)   # [n,12]


def signed_angle(v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """Angle turning v1 into v2, in (-pi, pi]."""
    cross = v1[..., 0] * v2[..., 1] - v1[..., 1] * v2[..., 0]
    return np.arctan2(cross, (v1 * v2).sum(-1))


@pytest.fixture(scope="module")
def clean_poses():
    """Upright figures without jitter."""
    return data.sample_poses(20_000, seed=11, jitter_px=0.0, distribution="upright")


@pytest.fixture(scope="module")
def broad():
    return data.sample_broad_rng(20_000, np.random.default_rng(12), jitter_px=0.0)


@pytest.mark.parametrize("distribution", data.DISTRIBUTIONS)
def test_shape_dtype_and_determinism(distribution):
    a = data.sample_poses(300, seed=5, distribution=distribution)
    assert a.shape == (300, NUM_KEYPOINTS, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, data.sample_poses(300, seed=5, distribution=distribution))
    b = data.sample_poses(300, seed=6, distribution=distribution)
    assert np.abs(a - b).mean() > 1.0  # different seeds give different figures, not a shifted copy


def test_broad_is_the_default():
    np.testing.assert_array_equal(data.sample_poses(50, seed=3), data.sample_poses(50, seed=3, distribution="broad"))
    assert not np.array_equal(data.sample_poses(50, seed=3), data.sample_poses(50, seed=3, distribution="upright"))


def test_broad_keypoints_inside_the_frame_and_often_touching_it():
    poses = np.concatenate([data.eval_poses(), data.sample_poses(20_000, seed=1, jitter_px=0.5)])
    assert poses.min() >= 0.0 and poses.max() <= FRAME_SIZE
    lo, hi = poses.min(axis=1), poses.max(axis=1)
    touching = ((lo <= 1e-4) | (hi >= FRAME_SIZE - 1e-4)).any(axis=1)
    # each side of each axis is touched with chance BROAD_EDGE_TOUCH
    expected = 1 - (1 - 2 * data.BROAD_EDGE_TOUCH) ** 2
    assert touching.mean() == pytest.approx(expected, abs=0.03)
    # the rest are spread over the frame, not bunched in the middle
    centre = (lo + hi)[~touching] / 2
    assert centre.min() < 12 and centre.max() > FRAME_SIZE - 12


def test_broad_limb_lengths_in_3d_and_their_projection(broad):
    bounds = data.limb_length_bounds_px("broad")
    parents, children = np.array(LIMBS).T
    vec3d = broad.figures_3d[:, children] - broad.figures_3d[:, parents]
    length3d = np.linalg.norm(vec3d, axis=-1)
    for k, limb in enumerate(LIMBS):
        lo, hi = bounds[limb]
        assert lo - 1e-6 <= length3d[:, k].min() and length3d[:, k].max() <= hi + 1e-6, limb
        assert length3d[:, k].max() - length3d[:, k].min() > 0.7 * (hi - lo), limb
    # body scale 0.6-1.25 of the upright figure's base lengths
    torso = length3d[:, LIMBS.index((J["neck"], J["waist"]))] / data.BASE_LIMB_LENGTH_PX["torso"]
    assert torso.min() < 0.6 * 0.9 and torso.max() > 1.25 * 1.1
    # the image pose is the orthographic projection (placement only shifts, or shrinks a figure to fit)
    assert broad.fit.min() > 0.8 and (broad.fit < 1).mean() < 0.01
    projected = vec3d[..., :2] * broad.fit[:, None, None]
    np.testing.assert_allclose(limb_lengths(broad.poses), np.linalg.norm(projected, axis=-1), atol=1e-3)
    # limbs foreshorten: turned towards or away from the camera, many look much shorter
    ratio = limb_lengths(broad.poses) / (length3d * broad.fit[:, None])
    assert (ratio < 0.5).mean() > 0.1 and (ratio > 0.95).mean() > 0.2


def test_broad_rotation_covers_the_circle(broad):
    torso = broad.poses[:, J["waist"]] - broad.poses[:, J["neck"]]
    octant = np.floor((np.arctan2(torso[:, 1], torso[:, 0]) + np.pi) / (np.pi / 4)).astype(int) % 8
    share = np.bincount(octant, minlength=8) / len(octant)
    assert share.min() > 0.09 and share.max() < 0.16   # 1/8 each, up to sampling and lean


def test_broad_left_and_right_cross(broad, clean_poses):
    """Seen from behind, a figure's left is on the image's left: the side of the
    left shoulder relative to the torso flips; upright figures never flip."""
    def left_side(p):
        torso = p[:, J["waist"]] - p[:, J["neck"]]
        across = p[:, J["left_shoulder"]] - p[:, J["right_shoulder"]]
        return torso[:, 0] * across[:, 1] - torso[:, 1] * across[:, 0] < 0
    assert left_side(clean_poses).mean() > 0.99
    assert 0.35 < left_side(broad.poses).mean() < 0.65


def test_upright_keypoints_inside_the_frame():
    poses = np.concatenate([data.eval_poses("upright"),
                            data.sample_poses(20_000, seed=1, jitter_px=0.5, distribution="upright")])
    assert poses.min() >= data.FRAME_MARGIN_PX - 1e-4
    assert poses.max() <= FRAME_SIZE - data.FRAME_MARGIN_PX + 1e-4
    # placement uses the frame: figures reach near every border, not just the middle
    assert poses[..., 0].min() < 2 and poses[..., 0].max() > FRAME_SIZE - 2
    assert poses[..., 1].min() < 2 and poses[..., 1].max() > FRAME_SIZE - 2


def test_limb_lengths_within_body_and_limb_scale(clean_poses):
    bounds = data.limb_length_bounds_px()
    lengths = limb_lengths(clean_poses)
    for k, limb in enumerate(LIMBS):
        lo, hi = bounds[limb]
        assert lengths[:, k].min() >= lo - 1e-3, limb
        assert lengths[:, k].max() <= hi + 1e-3, limb
        # the variation is real: the range is mostly covered
        assert lengths[:, k].max() - lengths[:, k].min() > 0.8 * (hi - lo), limb


def test_jitter_is_small_and_bounded():
    clean = data.sample_poses(2000, seed=3, jitter_px=0.0, distribution="upright")
    jittered = data.sample_poses(2000, seed=3, distribution="upright")
    # same seed, same skeleton; jitter draws come after the skeleton, placement
    # may shift the whole figure, so compare limb vectors, not positions
    parents, children = np.array(LIMBS).T
    delta = (jittered[:, children] - jittered[:, parents]) - (clean[:, children] - clean[:, parents])
    max_change = 2 * data.JITTER_CLIP_SIGMAS * data.DEFAULT_JITTER_PX * np.sqrt(2)
    assert np.abs(delta).max() <= max_change + 1e-4
    # per coordinate, the difference of two independent jitters has std sqrt(2)*sigma
    assert np.std(delta) == pytest.approx(np.sqrt(2) * data.DEFAULT_JITTER_PX, rel=0.1)


def test_joint_angles_within_anatomical_limits(clean_poses):
    p = clean_poses
    lim = data.ANGLE_LIMITS
    tol = 1e-3
    for side, sign in (("left", -1.0), ("right", 1.0)):
        upper = p[:, J[f"{side}_elbow"]] - p[:, J[f"{side}_shoulder"]]
        fore = p[:, J[f"{side}_hand"]] - p[:, J[f"{side}_elbow"]]
        flex = sign * signed_angle(upper, fore)
        assert flex.min() >= lim["elbow_flexion"][0] - tol and flex.max() <= lim["elbow_flexion"][1] + tol
        thigh = p[:, J[f"{side}_knee"]] - p[:, J["waist"]]
        shin = p[:, J[f"{side}_foot"]] - p[:, J[f"{side}_knee"]]
        knee = sign * signed_angle(thigh, shin)
        assert knee.min() >= lim["knee_flexion"][0] - tol and knee.max() <= lim["knee_flexion"][1] + tol
        torso = p[:, J["waist"]] - p[:, J["neck"]]
        hip = sign * signed_angle(torso, thigh)
        assert hip.min() >= lim["hip_abduction"][0] - tol and hip.max() <= lim["hip_abduction"][1] + tol
    # the whole figure's orientation: torso lean plus rotation augmentation around "down"
    torso = p[:, J["waist"]] - p[:, J["neck"]]
    tilt = np.arctan2(torso[:, 1], torso[:, 0]) - np.pi / 2
    max_tilt = lim["torso_lean"][1] + lim["global_rotation"][1]
    assert np.abs(tilt).max() <= max_tilt + tol
    assert np.abs(tilt).max() > 0.9 * max_tilt


# sha256 of the upright evaluation set: the set every earlier figure was measured on
UPRIGHT_EVAL_SHA256 = "af243dbaf0290d6ff32b1448209fb334c2d0d6f19acae8f7881abd0443d21e6b"


def test_eval_calibration_and_training_sets_are_disjoint():
    ev = data.eval_poses()
    upright = data.eval_poses("upright")
    assert ev.shape == upright.shape == (data.EVAL_SIZE, NUM_KEYPOINTS, 2) and data.EVAL_SIZE >= 10_000
    np.testing.assert_array_equal(ev, data.sample_poses(data.EVAL_SIZE, data.EVAL_SEEDS["broad"]))
    np.testing.assert_array_equal(upright, data.sample_poses(data.EVAL_SIZE, data.EVAL_SEEDS["upright"],
                                                             distribution="upright"))
    assert hashlib.sha256(upright.tobytes()).hexdigest() == UPRIGHT_EVAL_SHA256
    calib = data.calibration_poses()
    assert calib.shape == (512, NUM_KEYPOINTS, 2)
    train = data.training_poses(4096, seed=0, chunk=0, upright_fraction=0.25)
    eval_rows = {row.tobytes() for row in np.concatenate([ev, upright])}
    assert not any(row.tobytes() in eval_rows for row in calib)
    assert not any(row.tobytes() in eval_rows for row in train)
    # the training stream is seeded by a sequence: even a seed equal to an eval seed gives other poses
    for distribution, seed in data.EVAL_SEEDS.items():
        assert not np.array_equal(data.training_poses(10, seed, 0), data.eval_poses(distribution)[:10])


def test_eval_poses_count_gives_the_first_poses_of_the_set():
    for distribution in data.DISTRIBUTIONS:
        whole = data.eval_poses(distribution)
        first = data.eval_poses(distribution, count=37)
        np.testing.assert_array_equal(first, whole[:37])
        first[0, 0, 0] = -1.0                                      # a copy: the cached set stays as it was
        assert data.eval_poses(distribution, count=1)[0, 0, 0] == whole[0, 0, 0]
    assert len(data.eval_poses(count=data.EVAL_SIZE + 5)) == data.EVAL_SIZE
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"eval_poses must be >= 1, got {bad}"):
            data.eval_poses(count=bad)


def test_training_stream_mixes_in_upright_poses():
    def upright_share(poses):  # upright figures: torso within lean + rotation of straight down, facing the camera
        torso = poses[:, J["waist"]] - poses[:, J["neck"]]
        return (np.abs(np.arctan2(torso[:, 1], torso[:, 0]) - np.pi / 2) < 0.9).mean()
    broad_only = upright_share(data.training_poses(8192, seed=1, chunk=0))
    mixed = upright_share(data.training_poses(8192, seed=1, chunk=0, upright_fraction=0.5))
    assert mixed == pytest.approx(0.5 + 0.5 * broad_only, abs=0.03)
    np.testing.assert_array_equal(data.training_poses(64, 1, 2, upright_fraction=0.5),
                                  data.training_poses(64, 1, 2, upright_fraction=0.5))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="non-negative integer"):
        data.sample_poses(-1, seed=0)
    with pytest.raises(ValueError, match="jitter_px"):
        data.sample_poses(3, seed=0, jitter_px=-0.1)
    with pytest.raises(ValueError, match="unknown pose distribution 'sideways'"):
        data.sample_poses(3, seed=0, distribution="sideways")
    with pytest.raises(ValueError, match="upright_fraction"):
        data.training_poses(3, seed=0, chunk=0, upright_fraction=1.5)
    with pytest.raises(ValueError, match=r"shape \[n,13,2\]"):
        data.render(np.zeros((2, 12, 2)))


def test_render_draws_limbs_and_joints_only():
    poses = data.sample_poses(8, seed=2, distribution="upright")
    images = data.render(poses)
    assert images.shape == (8, FRAME_SIZE, FRAME_SIZE) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, data.render(poses))
    for img, pose in zip(images, poses):
        for a, b in LIMBS:  # the middle of every limb is drawn at full intensity
            x, y = ((pose[a] + pose[b]) / 2).astype(int)
            assert img[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].max() == 255
        # a drawn pixel is within half the longest limb (plus the thickest
        # radius and the 1 px edge ramp) of some joint; farther ones are empty
        reach = max(hi for _, hi in data.limb_length_bounds_px().values()) / 2 + render_module.HEAD_RADIUS_PX + 1
        ys, xs = np.mgrid[0:FRAME_SIZE, 0:FRAME_SIZE] + 0.5
        pix = np.stack([xs, ys], -1).reshape(-1, 1, 2)
        far = np.linalg.norm(pix - pose[None], axis=-1).min(1) > reach
        assert img.reshape(-1)[far].max() == 0
        assert 0.02 < (img > 0).mean() < 0.5
    big = data.render(poses[:1], size=128)
    assert big.shape == (1, 128, 128)
    assert (big > 0).mean() == pytest.approx((images[0] > 0).mean(), rel=0.25)
