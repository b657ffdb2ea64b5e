"""The committed default tokenizer meets its targets on the fixed evaluation sets
(broad, and the earlier upright one), and the committed rate-distortion models
fit their bit budgets."""
from __future__ import annotations

import json
import math

import pytest

from posetok_converters.checkpoint import DEFAULT_CHECKPOINT, DEFAULT_MODEL_DIR, load_checkpoint
from posetok_converters.metrics import evaluate


@pytest.fixture(scope="module")
def shipped():
    model, meta = load_checkpoint()
    return model, meta, evaluate(model)


def test_shipped_model_fits_the_bit_budget(shipped):
    model, _, m = shipped
    cfg = model.config
    assert m["bits_per_pose"] == cfg.num_tokens * math.log2(cfg.num_codes) <= 256
    assert m["eval_poses"] >= 10_000


def test_shipped_model_uses_its_codebook(shipped):
    model, _, m = shipped
    assert model.config.codebook_per_token and m["codebooks"] == "per_token"
    assert m["codebook_usage"] >= 0.9
    assert m["perplexity"] >= model.config.num_codes / 2


# Reconstruction targets (issue #15): broad set <= 0.5 px, upright set <= 0.45 px.
# Full-integer int8 is judged by reconstruction (README "Known limits"); the
# simulated A8W8 token agreement is held by a regression floor just below the
# shipped model's.
MPJPE_TARGET_PX = 0.5
UPRIGHT_MPJPE_TARGET_PX = 0.45
SHIPPED_SIM_INT8_FLOOR = 0.86


def test_shipped_codebook_is_on_an_int8_grid(shipped):
    # so that every reduced-precision file stores it as int8 without changing a code
    from posetok_converters.model import codebook_int8_grid
    assert codebook_int8_grid(shipped[0].codebook.numpy()) is not None


def test_shipped_model_reconstruction(shipped):
    assert shipped[2]["eval_set"] == "broad"
    assert shipped[2]["mpjpe_px"] <= MPJPE_TARGET_PX
    assert shipped[2]["upright_mpjpe_px"] <= UPRIGHT_MPJPE_TARGET_PX


def test_shipped_model_int8_token_agreement(shipped):
    # simulated full-integer A8W8 encoder, float codebook lookup
    assert shipped[2]["sim_int8_token_agreement"] >= SHIPPED_SIM_INT8_FLOOR


def test_committed_metrics_and_command_match_the_checkpoint(shipped):
    _, meta, m = shipped
    stored = json.loads((DEFAULT_MODEL_DIR / "metrics.json").read_text())
    for key in ("mpjpe_px", "upright_mpjpe_px", "codebook_usage", "perplexity", "sim_int8_token_agreement",
                "noisy_token_agreement", "input_grid_token_agreement"):
        assert stored[key] == pytest.approx(m[key], rel=1e-3, abs=1e-4), key
    command = (DEFAULT_MODEL_DIR / "COMMAND.txt").read_text()
    assert meta["command"] in command and "--preset full" in meta["command"]
    assert DEFAULT_CHECKPOINT.stat().st_size < 5 * 2**20


def test_rate_distortion_models_fit_their_budgets_and_match_the_readme():
    from posetok_converters.rate_distortion import RD_CHECKPOINTS
    for bits, path in RD_CHECKPOINTS.items():
        model, meta = load_checkpoint(path)
        assert model.config.bits_per_pose == bits, path
        assert meta["command"] in (path / "COMMAND.txt").read_text(), path
        stored = json.loads((path / "metrics.json").read_text())
        assert stored["bits_per_pose"] == bits
