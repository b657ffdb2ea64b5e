"""Rate-distortion: uniform rounding of the 26 coordinates, and the shipped comparison."""
from __future__ import annotations

import json

import numpy as np
import pytest

from posetok.skeleton import FRAME_SIZE
from posetok_converters import data, eval_cli, rate_distortion as rd


def test_bits_are_spread_evenly_over_the_26_coordinates():
    for bits in (26, 64, 128, 208, 256):
        per = rd.rounding_bits_per_coordinate(bits)
        assert per.shape == (13, 2) and per.sum() == bits and per.max() - per.min() <= 1
    np.testing.assert_array_equal(rd.rounding_bits_per_coordinate(64).ravel()[:13], [3] * 12 + [2])
    with pytest.raises(ValueError, match="bits_per_pose must be an integer >= 26"):
        rd.rounding_bits_per_coordinate(25)


def test_rounding_snaps_to_cell_centres():
    # 8 bits per coordinate: cells of 0.25 px, centres at 0.125 + k/4
    poses = np.zeros((1, 13, 2), np.float32)
    poses[0, 0] = [0.0, 10.3]
    poses[0, 1] = [63.99, FRAME_SIZE]       # the far edge belongs to the last cell
    out = rd.round_uniform(poses, 8 * 26)
    np.testing.assert_allclose(out[0, 0], [0.125, 10.375])
    np.testing.assert_allclose(out[0, 1], [63.875, 63.875])
    # the error of uniform rounding: a uniform distribution over a cell, so about step/sqrt(12) per coordinate
    poses = data.eval_poses(count=2000)
    for b in (4, 6, 8):
        err = rd.round_uniform(poses, b * 26) - poses
        assert np.abs(err).max() <= FRAME_SIZE / 2 ** b / 2 + 1e-5
        assert np.sqrt((err ** 2).mean()) == pytest.approx(FRAME_SIZE / 2 ** b / np.sqrt(12), rel=0.05)
    # more bits, less error
    errors = [rd.rounding_mpjpe_px(poses, bits) for bits in (64, 128, 256)]
    assert errors[0] > errors[1] > errors[2]


# the first poses of the broad set: the decoder search runs the decoder dozens of times a pose, and the
# committed figures on all 10,000 are checked by test_tokenizer_shipped
RD_TEST_POSES = 1000


def test_rate_distortion_command_reports_every_budget(tmp_path, capsys):
    plot = tmp_path / "rd.png"
    assert eval_cli.main(["--rate-distortion", "--json", "--plot", str(plot), "--eval-poses", str(RD_TEST_POSES)],
                         prog="posetok eval") == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["bits_per_pose"] for r in report["rows"]] == list(rd.RD_BITS)
    assert report["eval_set"] == "broad" and report["eval_poses"] == RD_TEST_POSES
    poses = data.eval_poses(count=RD_TEST_POSES)
    for row in report["rows"]:
        m, v = (int(x) for x in row["tokenizer_shape"].split(" x "))
        assert m * np.log2(v) <= row["bits_per_pose"]
        assert row["rounding_mpjpe_px"] == pytest.approx(rd.rounding_mpjpe_px(poses, row["bits_per_pose"]))
        assert row["better"] == ("tokenizer" if row["tokenizer_mpjpe_px"] < row["rounding_mpjpe_px"] else "rounding")
        assert row["tokenizer_mpjpe_px"] < row["tokenizer_nearest_mpjpe_px"]     # the decoder search helps
    errors = [r["tokenizer_mpjpe_px"] for r in report["rows"]]
    assert errors[0] > errors[1] > errors[2]                  # more bits, better tokenizer
    # the prefix against each model's committed whole-set figures (metrics.json, which the README table quotes and
    # test_tokenizer_shipped checks it against): measured within 0.004 px of them
    for row in report["rows"]:
        stored = json.loads((rd.RD_CHECKPOINTS[row["bits_per_pose"]] / "metrics.json").read_text())
        assert row["tokenizer_mpjpe_px"] == pytest.approx(stored["mpjpe_px"], abs=0.02), row["bits_per_pose"]
        assert row["tokenizer_nearest_mpjpe_px"] == pytest.approx(stored["nearest_mpjpe_px"], abs=0.02)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit) as exit_info:
        eval_cli.main(["--rate-distortion", "--checkpoint", "x"], prog="posetok eval")
    assert exit_info.value.code == 2
    assert "--rate-distortion uses the shipped token shapes" in capsys.readouterr().err
