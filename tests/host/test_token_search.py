"""posetok.token_search on hand-made codebooks and decoders: neighbour tables, the greedy search's
guarantees (never worse, the exact optimum where positions act apart), argument checks, and the torch
side running the same search as the runtime."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from posetok.token_search import check_neighbours, code_neighbours, pose_error, refine_token_ids


def test_neighbours_are_the_nearest_other_codes_with_ties_to_the_lower_id():
    line = np.array([[[0.0], [1.0], [3.0], [4.0], [10.0]]])          # one codebook of five 1-D codes
    np.testing.assert_array_equal(code_neighbours(line, 2)[0], [[1, 2], [0, 2], [3, 1], [2, 1], [3, 2]])
    square = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    # code 0 is 1 away from codes 1 and 2 (a tie: lower id first), sqrt(2) from code 3
    np.testing.assert_array_equal(code_neighbours(square, 3)[0, 0], [1, 2, 3])
    per_position = np.stack([line[0], -line[0]])
    table = code_neighbours(per_position, 1)
    assert table.shape == (2, 5, 1) and table.dtype == np.int32
    np.testing.assert_array_equal(table[0], table[1])                 # mirrored codes, same neighbours


@pytest.mark.parametrize("codebooks, count, message", [
    (np.zeros((5, 2)), 1, r"float array \[G, V, D\]"),
    (np.zeros((1, 5, 2), np.int32), 1, r"float array \[G, V, D\], got int32"),
    (np.full((1, 5, 2), np.nan), 1, "NaN or inf"),
    (np.zeros((1, 5, 2)), 5, r"count must be in \[1, 4\] for 5 codes, got 5"),
    (np.zeros((1, 5, 2)), 0, r"count must be in \[1, 4\]"),
])
def test_bad_codebooks_are_named(codebooks, count, message):
    with pytest.raises(ValueError, match=message):
        code_neighbours(codebooks, count)


def test_check_neighbours_accepts_shared_or_per_position_tables():
    assert check_neighbours(np.zeros((1, 6, 2), np.int64), 4, 6).dtype == np.int32
    assert check_neighbours([[[5]] * 6] * 4, 4, 6).shape == (4, 6, 1)
    with pytest.raises(ValueError, match=r"shape \[1 or 4, 6, C >= 1\], got \[3, 6, 1\]"):
        check_neighbours(np.zeros((3, 6, 1), np.int32), 4, 6)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 6\), got \[-1, 0\]"):
        check_neighbours(np.array([[[-1]] + [[0]] * 5]), 4, 6)


def separable_problem(rng, num_tokens=3, num_codes=6):
    """A decoder in which token position m alone places keypoints 4m..4m+3: the best ids are found one position
    at a time, so one sweep over all other codes must reach the brute-force optimum."""
    places = rng.uniform(-1, 1, (num_tokens, num_codes, 4, 2))

    def decode(ids):
        out = np.zeros((len(ids), 13, 2))
        for m in range(num_tokens):
            out[:, 4 * m:4 * m + 4] = places[m, ids[:, m]]
        return out
    return decode


def test_one_sweep_over_every_code_finds_the_optimum_of_a_separable_decoder():
    rng = np.random.default_rng(0)
    decode = separable_problem(rng)
    target = rng.uniform(-1, 1, (20, 13, 2))
    target[:, 12] = 0.0                                # the keypoint no position places
    start = rng.integers(0, 6, (20, 3)).astype(np.int32)
    everything = np.array([[[c for c in range(6) if c != v] for v in range(6)]] * 3, np.int32)   # [3, 6, 5]
    ids, error = refine_token_ids(start, target, decode, everything, sweeps=1)
    combos = np.array(list(itertools.product(range(6), repeat=3)), np.int32)
    for b in range(20):
        errors = pose_error(decode(combos), np.repeat(target[b:b + 1], len(combos), 0))
        assert error[b] == pytest.approx(errors.min())
        np.testing.assert_array_equal(ids[b], combos[errors.argmin()])


def test_the_search_never_ends_worse_and_reports_the_error_of_its_ids():
    rng = np.random.default_rng(1)
    num_tokens, num_codes = 5, 16
    codebook = rng.standard_normal((num_codes, 3))
    mix = rng.standard_normal((num_tokens * 3, 26)) * 0.4

    def decode(ids):                                    # nonlinear: every position moves every keypoint
        return np.tanh(codebook[ids].reshape(len(ids), -1) @ mix).reshape(-1, 13, 2)
    target = rng.uniform(-0.8, 0.8, (50, 13, 2))
    start = rng.integers(0, num_codes, (50, num_tokens)).astype(np.int32)
    table = code_neighbours(codebook[None], 3)
    calls = []
    counted = lambda ids: calls.append(len(ids)) or decode(ids)  # noqa: E731
    ids, error = refine_token_ids(start, target, counted, table, sweeps=2)
    assert calls == [50] + [50 * 3] * (2 * num_tokens)   # the start, then B * C rows per position and sweep
    start_error = pose_error(decode(start), target)
    assert (error <= start_error).all() and (error < start_error).mean() > 0.5
    np.testing.assert_allclose(error, pose_error(decode(ids), target))
    assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < num_codes
    unchanged, same_error = refine_token_ids(start, target, decode, table, sweeps=0)
    np.testing.assert_array_equal(unchanged, start)
    np.testing.assert_allclose(same_error, start_error)


def test_torch_tokenizer_runs_the_same_search_as_the_runtime():
    import torch

    from posetok.skeleton import pixels_to_normalized
    from posetok_converters import data
    from posetok_converters.metrics import nearest_tokens, search_table, searched_tokens, tokens_and_reconstruction
    from posetok_converters.model import TokenizerConfig, TokenizerModel

    torch.manual_seed(0)
    model = TokenizerModel(TokenizerConfig(num_tokens=8, num_codes=16, code_dim=2, hidden=16, channel_hidden=16,
                                           token_hidden=8, num_blocks=1, codebook_per_token=True)).eval()
    kp = torch.from_numpy(pixels_to_normalized(data.eval_poses("upright")[:40]))
    nearest = nearest_tokens(model, kp)
    ids = searched_tokens(model, kp, nearest)

    def decode(i):
        with torch.no_grad():
            return model.detokenize(torch.from_numpy(i).long()).numpy()
    want, _ = refine_token_ids(nearest.numpy(), kp.numpy(), decode, search_table(model), 1)
    np.testing.assert_array_equal(ids.numpy(), want)
    searched, recon = tokens_and_reconstruction(model, kp)
    np.testing.assert_array_equal(searched.numpy(), want)
    nearest_error = pose_error(decode(nearest.numpy()), kp.numpy())
    assert pose_error(recon.numpy(), kp.numpy()).mean() < nearest_error.mean()
    np.testing.assert_array_equal(tokens_and_reconstruction(model, kp, sweeps=0)[0].numpy(), nearest.numpy())
