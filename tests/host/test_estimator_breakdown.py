"""``posetok eval-estimator --breakdown``: where the held-out error lies, on hand-made estimates and a real model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from posetok.skeleton import KEYPOINT_INDEX, MIRROR_INDEX
from posetok_converters import frames
from posetok_converters.checkpoint import load_checkpoint
from posetok_converters.estimator import EstimatorConfig, PoseEstimatorModel
from posetok_converters.estimator_breakdown import (
    HeldOutEstimates,
    breakdown,
    by_render,
    easy_render,
    held_out_estimates,
    shoulder_span,
    torso_tilt_deg,
)
from posetok_converters.estimator_cli import eval_main, save_estimator
from posetok_converters.estimator_train import evaluate_estimator


def _torso(neck, waist, shoulders=((0.0, 0.0), (0.0, 0.0))) -> np.ndarray:
    pose = np.zeros((13, 2), np.float32)
    pose[KEYPOINT_INDEX["neck"]], pose[KEYPOINT_INDEX["waist"]] = neck, waist
    pose[KEYPOINT_INDEX["left_shoulder"]], pose[KEYPOINT_INDEX["right_shoulder"]] = shoulders
    return pose


def test_mirror_index_swaps_each_side_and_keeps_the_middle():
    names = {i: n for n, i in KEYPOINT_INDEX.items()}
    for i, j in enumerate(MIRROR_INDEX):
        if names[i].startswith("left_"):
            assert names[j] == "right_" + names[i][5:]
        elif names[i].startswith("right_"):
            assert names[j] == "left_" + names[i][6:]
        else:
            assert j == i
    assert sorted(MIRROR_INDEX) == list(range(13))


def test_torso_tilt_and_shoulder_span_of_hand_made_poses():
    poses = np.stack([
        _torso((32, 20), (32, 40), ((37, 21), (27, 21))),   # upright: neck above the waist (y grows down)
        _torso((32, 40), (32, 20)),                         # upside down
        _torso((20, 30), (40, 30)),                         # lying, head to the left
        _torso((32 - 10, 30 - 10), (32, 30)),               # leaning 45 degrees
    ])
    np.testing.assert_allclose(torso_tilt_deg(poses), [0.0, 180.0, 90.0, 45.0], atol=1e-4)
    assert shoulder_span(poses)[0] == pytest.approx(0.5)
    assert shoulder_span(poses)[1] == 0.0


def _estimates(true: np.ndarray, estimated: np.ndarray, upright: np.ndarray, boxes: np.ndarray) -> HeldOutEstimates:
    return HeldOutEstimates("clean", true, estimated.astype(np.float32), upright,
                            np.zeros((len(true), 64, 64, 3), np.uint8), boxes)


def test_breakdown_of_known_estimates():
    true, upright = frames.eval_poses_and_generator("clean", 40)
    estimated = true + np.array([1.0, 0.0], np.float32)          # every keypoint 1 px to the right
    estimated[:10] = true[:10][:, list(MIRROR_INDEX)]             # left called right, exactly
    estimated[10:15] = true[10:15] + np.array([0.0, 12.0])        # five gross failures
    boxes = np.tile(np.array([16, 16, 64, 64], np.int32), (40, 1))   # the model frame inside the 96-px camera
    boxes[39] = (-200, 16, 64, 64)                                    # the last figure wholly beyond its edge
    got = breakdown(_estimates(true, estimated, upright, boxes))
    mirror_errors = np.linalg.norm(true[:10][:, list(MIRROR_INDEX)] - true[:10], axis=-1).mean(1)
    frame_errors = np.concatenate([mirror_errors, np.full(5, 12.0), np.ones(25)])
    assert got["frames"] == 40
    assert got["mpjpe_px"] == pytest.approx(frame_errors.mean(), rel=1e-5)
    assert got["median_px"] == pytest.approx(np.median(frame_errors), rel=1e-5)
    assert got["gross_frames"] == pytest.approx((frame_errors > 5.0).mean())
    assert got["gross_error_share"] == pytest.approx(frame_errors[frame_errors > 5].sum() / frame_errors.sum(),
                                                     rel=1e-5)
    # the ten mirrored estimates are exact once relabelled; the others get worse
    assert got["mirror_swapped_frames"] == pytest.approx(10 / 40)
    assert got["mpjpe_px_mirror_forgiven"] == pytest.approx((60.0 + 25.0) / 40, rel=1e-5)
    assert got["per_keypoint_px"]["neck"] == pytest.approx((5 * 12.0 + 25 * 1.0) / 40, rel=1e-5)
    assert {k: v["frames"] for k, v in got["by_generator"].items()} == {"upright": int(upright.sum()),
                                                                        "broad": int((~upright).sum())}
    assert sum(b["frames"] for b in got["by_torso_tilt_deg"].values()) == 40
    assert sum(b["frames"] for b in got["by_shoulder_span"].values()) == 40
    assert list(got["by_shoulder_span"]) == ["0-0.25", "0.25-0.5", "0.5-inf"]
    assert got["keypoints_outside_camera"] == pytest.approx(1 / 40)
    assert got["outside_camera_keypoint_px"] == pytest.approx(1.0, rel=1e-5)
    assert got["by_camera_edge"]["some_outside"] == {"frames": 1, "mpjpe_px": pytest.approx(1.0, rel=1e-5)}
    json.dumps(got)   # plain values only


def test_eval_poses_and_generator_are_the_frames_poses():
    poses, upright = frames.eval_poses_and_generator("occluded", 300)
    np.testing.assert_array_equal(poses, frames.eval_frames("occluded", 300).poses_px)
    assert upright.dtype == bool and 0.15 < upright.mean() < 0.35   # the training share, 0.25
    with pytest.raises(ValueError, match="kind must be one of"):
        frames.eval_poses_and_generator("blurry", 4)


def test_recording_the_scene_leaves_the_frames_as_they_were():
    scene = frames.SceneRecord()
    recorded = frames.eval_frames("clean", 140, record=scene)
    plain = frames.eval_frames("clean", 140)
    np.testing.assert_array_equal(recorded.pictures, plain.pictures)
    values = {name: scene.get(name) for name in frames.SceneRecord.NAMES}
    assert all(v.shape == (140,) for v in values.values())
    radius = values["limb_radius_px"]
    assert frames.LIMB_RADIUS_PX[0] <= radius.min() and radius.max() <= frames.LIMB_RADIUS_PX[1]
    blur = values["blur_sigma_px"]
    assert np.all((blur == 0) | ((blur > 0.2) & (blur <= 1.2)))
    assert len(np.unique(blur[:64])) == 1                      # one sigma per drawing chunk of 64 frames
    assert 0 <= values["noise_sigma"].min() and values["noise_sigma"].max() <= 8
    assert 0.15 < values["hard_edges"].mean() < 0.45 and 0.25 < values["patterned"].mean() < 0.55
    with pytest.raises(KeyError, match="no scene value 'fog'"):
        scene.get("fog")


def test_render_groups_of_known_errors():
    scene = frames.SceneRecord()
    scene.add(4, limb_radius_px=[0.3, 0.6, 1.5, 1.8], hard_edges=[True, False, False, False],
              patterned=[False, True, True, False], clutter_strokes=2, blur_sigma_px=0.0,
              noise_sigma=[1.0, 3.0, 6.0, 8.0])
    boxes = np.array([[0, 0, 72, 72], [0, 0, 80, 80], [0, 0, 90, 90], [0, 0, 96, 96]])
    got = by_render(np.array([1.0, 2.0, 3.0, 5.0]), scene, boxes)
    assert got["limb_radius_px"] == {"0.25-0.5": {"frames": 1, "mpjpe_px": 1.0},
                                     "0.5-1": {"frames": 1, "mpjpe_px": 2.0},
                                     "1-1.8": {"frames": 2, "mpjpe_px": 4.0}}     # the last bin holds 1.8
    assert got["limb_edges"] == {"anti_aliased": {"frames": 3, "mpjpe_px": 10 / 3},
                                 "hard": {"frames": 1, "mpjpe_px": 1.0}}
    assert got["backdrop"]["patterned"] == {"frames": 2, "mpjpe_px": 2.5}
    assert got["clutter_strokes"]["3-6"] == {"frames": 0, "mpjpe_px": None}
    assert got["blur_sigma_px"]["0-0.2"]["frames"] == 4
    assert got["noise_sigma"]["5-8"] == {"frames": 2, "mpjpe_px": 4.0}
    assert got["crop_downscale"]["1.125-1.3"] == {"frames": 2, "mpjpe_px": 1.5}     # sides 72 and 80 of 64
    # easy: plain backdrop, limbs >= 0.5 px, noise < 5, blur < 0.7 (frame 1 thin, 2-3 patterned, 4 noisy)
    assert easy_render(scene).tolist() == [False, False, False, False]
    scene.add(2, limb_radius_px=[0.5, 0.5], hard_edges=False, patterned=False, clutter_strokes=6,
              blur_sigma_px=[0.0, 0.7], noise_sigma=4.9)
    assert easy_render(scene).tolist() == [False, False, False, False, True, False]


def _untrained_model() -> PoseEstimatorModel:
    torch.manual_seed(0)
    tokenizer, _ = load_checkpoint(None)
    return PoseEstimatorModel(EstimatorConfig(head="tokens", num_tokens=tokenizer.config.num_tokens,
                                              num_codes=tokenizer.config.num_codes), tokenizer)


def test_breakdown_mpjpe_is_the_headline_figure():
    model = _untrained_model()
    est = held_out_estimates(model, "clean", 48)
    assert breakdown(est)["mpjpe_px"] == pytest.approx(evaluate_estimator(model, ("clean",), 48)["mpjpe_px"],
                                                       rel=1e-5)


def test_breakdown_command_writes_json_and_a_png(tmp_path, capsys):
    checkpoint = save_estimator(tmp_path / "estimator.pt", _untrained_model(), {})
    assert eval_main([str(checkpoint), "--plot", str(tmp_path / "x.png")], "posetok eval-estimator") == 2
    assert "--plot needs --breakdown" in capsys.readouterr().err
    assert eval_main([str(checkpoint), "--breakdown", "--plot", str(tmp_path / "x.svg")], "prog") == 2
    assert eval_main([str(checkpoint), "--breakdown", "--shares", "0.5"], "prog") == 2
    assert "--shares sweeps the person-box path" in capsys.readouterr().err
    plot = tmp_path / "breakdown.png"
    assert eval_main([str(checkpoint), "--frames", "24", "--breakdown", "--plot", str(plot), "--json"], "prog") == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got) == {"clean", "occluded"} and got["occluded"]["frames"] == 24
    assert sum(b["frames"] for b in got["clean"]["by_render"]["limb_radius_px"].values()) == 24
    assert 0 <= got["clean"]["upright_easy_render"]["frames"] < 24
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temp file left
