"""Training: a quick staged run learns without collapsing; the seed's joint
schedule is measured against it; the train/eval/plot commands work end to end."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from posetok_converters import eval_cli, plot_cli, train_cli
from posetok_converters.train import TrainConfig, preset, train

# the quick preset trimmed for the test suite: same model, same schedule, fewer steps, scored on the first
# EVAL_POSES poses of each evaluation set (the decoder search runs the decoder dozens of times a pose)
TEST_STEPS = 600
EVAL_POSES = 2000


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # the machines this runs on are small and shared: more intra-op threads
    # than free cores makes torch's thread pool spin and slows training ~10x
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    rc = train_cli.main(["--preset", "quick", "--steps", str(TEST_STEPS), "--out", str(out), "--no-progress",
                         "--threads", "1", "--eval-poses", str(EVAL_POSES)], prog="posetok train")
    assert rc == 0
    return out


def test_quick_training_learns_and_uses_the_codebook(quick_run):
    metrics = json.loads((quick_run / "metrics.json").read_text())
    history = json.loads((quick_run / "history.json").read_text())
    first, last = history[0]["recon_px"], history[-1]["recon_px"]
    assert last < first / 2, (first, last)
    # measured 1.12 px (nearest codes 1.58) after these 600 steps; the collapsed joint schedule sits at 5 px or more
    assert metrics["mpjpe_px"] < 1.5 and metrics["nearest_mpjpe_px"] < 2.1, metrics
    # not collapsed: nearly every code in use and usage spread widely
    assert metrics["codebook_usage"] >= 0.9
    assert metrics["perplexity"] >= metrics["num_codes"] / 4
    assert metrics["eval_poses"] == EVAL_POSES
    # tokens move with the pose: more input noise, fewer ids kept; none kept all
    kept = list(metrics["noisy_token_agreement"].values())
    assert list(metrics["noisy_token_agreement"]) == ["0.01px", "0.02px", "0.05px", "0.1px"]
    assert all(a > b for a, b in zip(kept, kept[1:])) and 0.5 < kept[-1] and kept[0] < 1.0, kept
    # the input rounded to a grid: finer grids keep more; an 8-bit input alone already flips some ids
    grid = metrics["input_grid_token_agreement"]
    assert list(grid) == ["8bit", "10bit", "12bit"]
    assert grid["8bit"] < grid["10bit"] < grid["12bit"] <= 1.0 and grid["8bit"] < 0.999, grid


def test_training_leaves_int8_grid_per_token_codebooks(quick_run):
    from posetok_converters.checkpoint import load_checkpoint
    from posetok_converters.model import codebook_int8_grid

    model, _ = load_checkpoint(quick_run)
    cfg = model.config
    assert cfg.codebook_per_token and model.codebook.shape == (cfg.num_tokens, cfg.num_codes, cfg.code_dim)
    codes, scale = codebook_int8_grid(model.codebook.numpy())
    assert torch.equal(torch.from_numpy(codes).float() * scale, model.codebook)
    assert np.abs(codes).max() == 127 and scale > 0
    # the codes were trained apart per position, not copies of one codebook
    assert (model.codebook[0] - model.codebook[1]).abs().max() > 0.1


def test_joint_schedule_collapse_is_measured(quick_run):
    """The seed's joint schedule (random codebook, no restarts, all trained at
    once) against ours on the same model and number of steps."""
    staged = json.loads((quick_run / "metrics.json").read_text())
    model_cfg, cfg = preset("quick", "joint")
    from dataclasses import replace

    from posetok_converters.metrics import evaluate
    # nearest codes on both sides: the collapse is the encoder's and codebooks', and the search would cost a
    # full pass over both evaluation sets
    joint = evaluate(train(model_cfg, replace(cfg, vq_steps=TEST_STEPS)).model, int8=False, sweeps=0,
                     eval_poses=EVAL_POSES)
    print(f"\njoint: usage {joint['codebook_usage']:.3f} perplexity {joint['perplexity']:.1f} "
          f"MPJPE {joint['mpjpe_px']:.2f} px | staged: usage {staged['codebook_usage']:.3f} "
          f"perplexity {staged['perplexity']:.1f} MPJPE {staged['nearest_mpjpe_px']:.2f} px (nearest codes)")
    assert joint["perplexity"] < staged["perplexity"] / 4
    assert joint["codebook_usage"] < 0.5
    assert joint["mpjpe_px"] > 1.5 * staged["nearest_mpjpe_px"]
    # the collapse is mostly the seed's zero EMA counts: from counts of 1 the joint schedule uses its codebook,
    # and what is left of the gap to staged is the schedule
    counted = evaluate(train(model_cfg, replace(cfg, vq_steps=TEST_STEPS, ema_start_count=1.0)).model, int8=False,
                       sweeps=0, eval_poses=EVAL_POSES)
    print(f"joint from counts of 1: usage {counted['codebook_usage']:.3f} perplexity {counted['perplexity']:.1f} "
          f"MPJPE {counted['mpjpe_px']:.2f} px")
    assert counted["codebook_usage"] > 0.6 and counted["perplexity"] > 4 * joint["perplexity"]
    assert counted["mpjpe_px"] > 1.5 * staged["nearest_mpjpe_px"]


def test_eval_command_prints_one_json_object(quick_run, capsys):
    assert eval_cli.main(["--checkpoint", str(quick_run), "--json", "--no-int8", "--eval-poses", str(EVAL_POSES)],
                         prog="posetok eval") == 0
    result = json.loads(capsys.readouterr().out)
    stored = json.loads((quick_run / "metrics.json").read_text())
    for key in ("mpjpe_px", "upright_mpjpe_px", "codebook_usage", "perplexity", "num_codes", "num_tokens",
                "eval_poses"):
        assert result[key] == pytest.approx(stored[key], rel=1e-5), key
    assert result["eval_set"] == "broad" and result["upright_eval_seed"] != result["eval_seed"]
    # the two sets are scored apart: the numbers differ
    assert result["upright_mpjpe_px"] != pytest.approx(result["mpjpe_px"], rel=1e-3)
    # the decoder search improves on the encoder's nearest codes, on both sets
    assert result["search"] == {"candidates": 2, "sweeps": 1} and 0 < result["search_changed_ids"] < 0.5
    assert result["mpjpe_px"] < result["nearest_mpjpe_px"]
    assert result["upright_mpjpe_px"] < result["upright_nearest_mpjpe_px"]
    table = eval_cli.format_table(result, str(quick_run))   # what the command prints without --json
    assert "MPJPE (px of 64-px frame)" in table and f"{stored['mpjpe_px']:.4f}" in table
    assert "MPJPE, upright set (px)" in table and f"{stored['upright_mpjpe_px']:.4f}" in table
    assert "tokens kept under input noise" in table and "@ 0.02px" in table
    assert "... nearest codes alone" in table and f"{result['nearest_mpjpe_px']:.4f}" in table
    assert f"{stored['input_grid_token_agreement']['8bit']:.4f} @ 8bit" in table


def test_eval_poses_file_scores_a_users_poses(quick_run, tmp_path, capsys):
    from posetok_converters import data
    from posetok_converters.checkpoint import load_checkpoint
    from posetok_converters.metrics import evaluate

    poses = data.sample_poses(300, seed=77, distribution="upright").astype(np.float64)
    path = tmp_path / "mine.npy"
    np.save(path, poses)
    assert eval_cli.main(["--checkpoint", str(quick_run), "--poses", str(path), "--json", "--no-int8"],
                         prog="posetok eval") == 0
    result = json.loads(capsys.readouterr().out)
    expected = evaluate(load_checkpoint(quick_run)[0], poses[:300], int8=False)
    assert result["mpjpe_px"] == pytest.approx(expected["mpjpe_px"], rel=1e-6)
    assert result["eval_poses"] == 300 and result["eval_set"] == "given poses" and result["poses_file"] == str(path)
    assert "upright_mpjpe_px" not in result
    # a pose moved far from its figure is scored worse: the file's poses are what is measured
    np.save(path, poses + np.where(np.arange(13)[:, None] == 0, 20.0, 0.0))
    assert eval_cli.main(["--checkpoint", str(quick_run), "--poses", str(path), "--json", "--no-int8"],
                         prog="posetok eval") == 0
    assert json.loads(capsys.readouterr().out)["mpjpe_px"] > result["mpjpe_px"] + 0.5


@pytest.mark.parametrize("content, message", [
    (np.zeros((4, 12, 2)), r"shape \[N>0,13,2\], got \[4, 12, 2\]"),
    (np.zeros((0, 13, 2)), r"shape \[N>0,13,2\], got \[0, 13, 2\]"),
    (np.full((2, 13, 2), np.nan), "NaN or infinite"),
    (np.array(["a", "b"]), "real array, got dtype <U1"),
    (b"not an npy file", "cannot read"),
])
def test_eval_poses_file_errors_name_the_problem(tmp_path, capsys, content, message):
    path = tmp_path / "bad.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    assert eval_cli.main(["--poses", str(path), "--json"], prog="posetok eval") == 2
    err = capsys.readouterr().err
    assert "posetok eval: error: --poses:" in err
    import re
    assert re.search(message, err), err


def test_eval_poses_scores_the_first_poses_of_each_set(quick_run):
    from posetok_converters import data
    from posetok_converters.checkpoint import load_checkpoint
    from posetok_converters.metrics import evaluate

    model, _ = load_checkpoint(quick_run)
    first = evaluate(model, int8=False, eval_poses=40)
    assert first["eval_poses"] == 40 and first["eval_set"] == "broad"
    assert first["mpjpe_px"] == pytest.approx(evaluate(model, data.eval_poses(count=40), int8=False)["mpjpe_px"])
    upright = evaluate(model, data.eval_poses("upright")[:40], int8=False)["mpjpe_px"]
    assert first["upright_mpjpe_px"] == pytest.approx(upright)
    with pytest.raises(ValueError, match="does not go with poses_px"):
        evaluate(model, data.eval_poses(count=40), eval_poses=40)
    with pytest.raises(ValueError, match="eval_poses must be >= 1, got 0"):
        evaluate(model, eval_poses=0)


@pytest.mark.parametrize("argv, message", [
    (["--eval-poses", "0"], "--eval-poses must be >= 1, got 0"),
    (["--eval-poses", "5", "--poses", "mine.npy"], "--eval-poses counts poses of the fixed sets"),
])
def test_eval_poses_option_errors_name_the_problem(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        eval_cli.main(argv, prog="posetok eval")
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--eval-poses", "-3"], "--eval-poses must be >= 1, got -3"),
    (["--ema-start-count", "-1"], "--ema-start-count must be >= 0, got -1.0"),
    (["--ema-start-count", "nan"], "--ema-start-count must be >= 0, got nan"),
    (["--lr", "nan"], "--lr must be > 0, got nan"),
    (["--lr", "0"], "--lr must be > 0, got 0.0"),
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--int8-steps", "-1"], "--int8-steps must be >= 0, got -1"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
])
def test_train_refuses_bad_options_before_training(argv, message, tmp_path, capsys):
    assert train_cli.main(["--preset", "quick", *argv, "--out", str(tmp_path / "t"), "--no-progress"],
                          prog="posetok train") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_train_config_refuses_negative_ema_counts():
    with pytest.raises(ValueError, match="ema_start_count must be >= 0, got -1"):
        TrainConfig(ema_start_count=-1)
    assert preset("quick", "joint")[1].ema_start_count == 0.0 and preset("quick")[1].ema_start_count == 1.0


def test_eval_names_a_missing_checkpoint(tmp_path, capsys):
    assert eval_cli.main(["--checkpoint", str(tmp_path / "nope.pt"), "--json"], prog="posetok eval") == 2
    assert "no tokenizer checkpoint at" in capsys.readouterr().err


def test_plot_writes_a_png(quick_run, tmp_path, capsys):
    out = tmp_path / "plot.png"
    assert plot_cli.main(["--checkpoint", str(quick_run), "--out", str(out), "--eval-poses", str(EVAL_POSES)],
                         prog="posetok plot") == 0
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert width > 600 and height > 400
    assert plot_cli.main(["--checkpoint", str(quick_run), "--out", str(tmp_path / "plot.jpg")],
                         prog="posetok plot") == 2
    assert plot_cli.main(["--checkpoint", str(quick_run), "--out", str(tmp_path / "few.png"), "--eval-poses", "11"],
                         prog="posetok plot") == 2
    assert "--eval-poses must be >= 12 (the figures drawn), got 11" in capsys.readouterr().err
    assert not (tmp_path / "few.png").exists()


def test_train_rejects_model_options_it_cannot_apply(tmp_path, capsys):
    def run(*args):
        return train_cli.main(["--preset", "quick", "--out", str(tmp_path / "out"), "--no-progress", *args],
                              prog="posetok train")

    assert run("--fourier-bands", "-1") == 2
    assert "--fourier-bands: TokenizerConfig.fourier_bands must be an integer >= 0" in capsys.readouterr().err
    assert run("--fourier-bands", "4", "--init", str(tmp_path / "some.pt")) == 2
    assert "--fourier-bands applies to a fresh model" in capsys.readouterr().err
    assert run("--num-tokens", "0") == 2
    assert "--num-tokens: TokenizerConfig.num_tokens must be a positive integer, got 0" in capsys.readouterr().err
    assert run("--num-codes", "-4") == 2
    assert "--num-codes: TokenizerConfig.num_codes must be a positive integer, got -4" in capsys.readouterr().err
    assert run("--num-tokens", "16", "--init", str(tmp_path / "some.pt")) == 2
    assert "--num-tokens applies to a fresh model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
