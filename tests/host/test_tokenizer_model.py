"""The tokenizer's interface, quantizer, checkpoint files and int8 simulation (no training)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from posetok_converters.checkpoint import load_checkpoint, save_checkpoint
from posetok_converters.fakequant import calibrate, fake_quant_act, fake_quant_weight, simulated_int8
from posetok_converters.model import KeypointEmbedding, TokenizerConfig, TokenizerModel, codebook_int8_grid

SMALL = TokenizerConfig(num_tokens=6, num_codes=16, code_dim=3, hidden=16, channel_hidden=24,
                        token_hidden=8, num_blocks=2)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TokenizerModel(SMALL).eval()


def kp(n=5, seed=1):
    return torch.rand(n, 13, 2, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_shapes_and_dtypes(model):
    x = kp()
    z_e = model.encode(x)
    assert z_e.shape == (5, 6, 3) and z_e.dtype == torch.float32
    idx, z_q = model.quantize(z_e)
    assert idx.shape == (5, 6) and idx.dtype == torch.int64
    assert z_q.shape == (5, 6, 3)
    assert model.codebook.shape == (16, 3)
    assert model.decode(z_q).shape == (5, 13, 2)
    torch.testing.assert_close(model.tokenize(x), idx, rtol=0, atol=0)
    torch.testing.assert_close(model.detokenize(idx), model.decode(z_q))


def test_quantize_picks_the_nearest_code(model):
    z = torch.randn(400, 6, 3) * 1.5
    idx, z_q = model.quantize(z)
    brute = torch.cdist(z.reshape(-1, 3), model.codebook).argmin(-1).reshape(400, 6)
    assert (idx == brute).float().mean() > 0.999  # ties aside, exactly the brute-force nearest code
    torch.testing.assert_close(z_q, model.codebook[idx])


def test_ema_update_moves_codes_to_their_vectors_and_restarts_dead_ones(model):
    q = model.quantizer
    assert (q.ema_count == 1).all()        # a fresh codebook counts as one observation of each code
    z = q.codebook[:4].repeat(50, 1) + 0.01
    idx = q(z)[0]
    assert (idx.view(50, 4) == torch.arange(4)).all()
    before = q.codebook.clone()
    restarted = q.update(z, idx, restart_below=1.0)
    # codes 4..15 got nothing: their counts decay from 1 to 0.99, below 1 => all restarted onto batch vectors
    assert restarted == 12
    for row in q.codebook[4:]:
        assert torch.isclose(row[None], z).all(-1).any()
    # used codes: count 0.99 + 50 * 0.01 = 1.49, sum 0.99 c + 0.5 (c + 0.01) => c + 0.005 / 1.49 (the Laplace
    # smoothing moves it by under 1e-6)
    torch.testing.assert_close(q.codebook[:4], before[:4] + 0.005 / 1.49, rtol=0, atol=1e-5)


def test_the_seed_articles_zero_counts_throw_used_codes_out(model):
    """The seed article's start (counts 0 under nonzero sums, TrainConfig.ema_start_count=0): the first update
    divides each used code's sum by 50 * 0.01 = 0.5 and sends it to 2.98 c + 0.01, far from every vector."""
    q = model.quantizer
    q.ema_count.zero_()
    z = q.codebook[:4].repeat(50, 1) + 0.01
    before = q.codebook.clone()
    q.update(z, q(z)[0])
    torch.testing.assert_close(q.codebook[:4], 2.98 * before[:4] + 0.01, rtol=1e-4, atol=1e-4)


PER_TOKEN = TokenizerConfig(**{**SMALL.to_dict(), "codebook_per_token": True})


def test_per_token_codebooks_pick_the_nearest_code_of_their_own_position():
    torch.manual_seed(0)
    model = TokenizerModel(PER_TOKEN).eval()
    assert model.codebook.shape == (6, 16, 3)
    z = torch.randn(400, 6, 3) * 1.5
    idx, z_q = model.quantize(z)
    for m in range(6):
        brute = torch.cdist(z[:, m], model.codebook[m]).argmin(-1)
        assert (idx[:, m] == brute).float().mean() > 0.999, m
        torch.testing.assert_close(z_q[:, m], model.codebook[m][idx[:, m]])
    # the same id means a different vector at each position
    same = torch.zeros(1, 6, dtype=torch.long)
    vectors = model.quantizer.lookup(same)[0]
    torch.testing.assert_close(vectors, model.codebook[:, 0])
    torch.testing.assert_close(model.detokenize(idx), model.decode(z_q))


def test_per_token_restart_draws_from_its_own_position():
    torch.manual_seed(0)
    q = TokenizerModel(PER_TOKEN).quantizer
    # position m's vectors all sit near (m, m, m); only code 0 of each position is used
    z = torch.arange(6.0)[None, :, None].expand(50, 6, 3) + 0.01 * torch.randn(50, 6, 3)
    idx = torch.zeros(50, 6, dtype=torch.long)
    restarted = q.update(z, idx, restart_below=1.0)      # unused counts decay from 1 to 0.99
    assert restarted == 6 * 15
    for m in range(6):
        # every restarted code of position m is one of position m's vectors
        assert (q.codebook[m, 1:] - m).abs().max() < 0.1, m
    assert q.ema_count.shape == (6, 16)


def test_config_round_trip_and_errors():
    assert TokenizerConfig.from_dict(SMALL.to_dict()) == SMALL
    assert SMALL.bits_per_pose == 6 * 4
    with pytest.raises(ValueError, match="unknown TokenizerConfig field"):
        TokenizerConfig.from_dict({**SMALL.to_dict(), "colour": 3})
    with pytest.raises(ValueError, match="num_codes must be a positive integer"):
        TokenizerConfig(num_codes=0)
    with pytest.raises(ValueError, match="fourier_bands must be an integer >= 0"):
        TokenizerConfig(fourier_bands=-1)
    assert TokenizerConfig(fourier_bands=0).fourier_bands == 0


def test_keypoint_embedding_without_bands_is_a_plain_linear():
    """Checkpoints from before the option load unchanged: same parameter names and function."""
    torch.manual_seed(0)
    embed = KeypointEmbedding(16, bands=0)
    assert sorted(embed.state_dict()) == ["bias", "weight"] and embed.weight.shape == (16, 2)
    x = kp()
    torch.testing.assert_close(embed(x), x @ embed.weight.T + embed.bias, rtol=0, atol=0)


def test_keypoint_embedding_bands_are_sines_and_cosines_of_halving_periods():
    torch.manual_seed(0)
    embed = KeypointEmbedding(16, bands=3)
    assert embed.weight.shape == (16, 2 + 4 * 3)
    assert sorted(embed.state_dict()) == ["bias", "weight"]  # the frequencies are not weights
    x = kp()
    angles = x.unsqueeze(-1) * (torch.pi / 2) * torch.tensor([1.0, 2.0, 4.0])  # periods 4, 2, 1 (128/64/32 px)
    features = torch.cat([x, torch.cat([angles.sin(), angles.cos()], -1).flatten(-2)], -1)
    torch.testing.assert_close(embed(x), features @ embed.weight.T + embed.bias, rtol=0, atol=1e-5)
    # one full period of the slowest band (4 in normalized units) moves only the raw-coordinate part
    shift = torch.tensor([4.0, -4.0])
    torch.testing.assert_close(embed(x + shift) - embed(x), (shift @ embed.weight[:, :2].T).expand(5, 13, 16),
                               rtol=0, atol=1e-4)


def test_checkpoint_round_trip_is_exact(model, tmp_path):
    path = tmp_path / "sub" / "tok.pt"
    save_checkpoint(path, model, {"data_seed": 7})
    assert sorted(p.name for p in path.parent.iterdir()) == ["tok.pt"]  # no temp file left behind
    loaded, meta = load_checkpoint(path)
    assert meta == {"data_seed": 7} and not loaded.training
    assert loaded.config == model.config
    want = model.state_dict()           # every weight and buffer, the EMA sums and counts too, to the bit
    got = loaded.state_dict()
    assert got.keys() == want.keys() and any("ema" in k for k in want)
    for key, value in want.items():
        assert torch.equal(got[key], value), key
    x = kp()
    torch.testing.assert_close(loaded.detokenize(loaded.tokenize(x)), model.detokenize(model.tokenize(x)),
                               rtol=0, atol=0)


def test_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(ValueError, match="not a posetok tokenizer checkpoint"):
        load_checkpoint(other)


def test_fake_quant_rounding_error_is_half_a_step():
    w = torch.randn(8, 20)
    step = w.abs().amax(1, keepdim=True) / 127
    err = (fake_quant_weight(w) - w).abs()
    assert (err <= step / 2 + 1e-7).all() and err.max() > step.min() / 10
    x = torch.linspace(-3, 5, 1001)
    y = fake_quant_act(x, -3.0, 5.0)
    assert (y - x).abs().max() <= 8 / 255 / 2 + 1e-6
    assert len(torch.unique(y)) <= 256
    # other widths: 2**bits levels over the same range, the error shrinking with them
    y12 = fake_quant_act(x, -3.0, 5.0, bits=12)
    assert (y12 - x).abs().max() <= 8 / 4095 / 2 + 1e-6 and 256 < len(torch.unique(y12)) <= 4096
    # straight-through: the gradient passes unchanged
    x.requires_grad_(True)
    fake_quant_act(x, -3.0, 5.0).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))


def test_simulated_int8_only_inside_the_block(model):
    x = kp(64)
    ref = model.encode(x)
    ranges = calibrate(model.encoder, x)
    assert ranges.ranges and all(lo <= hi for lo, hi in ranges.ranges.values())
    with simulated_int8(model.encoder, ranges):
        sim = model.encode(x)
    after = model.encode(x)
    diff = (sim - ref).abs().max()
    assert 0 < diff < 0.1 * ref.abs().max()  # int8 changes the numbers a little
    torch.testing.assert_close(after, ref, rtol=0, atol=0)  # and the float model is back afterwards
    assert not any("forward" in vars(m) for m in model.modules())
    # the exported int8 graphs keep the layers outside the Mixer blocks float; so does the simulation
    names = {name.rsplit(".", 1)[0] for name in ranges.ranges}
    assert names and all(name.startswith("blocks.") for name in names), names


def test_codebook_snaps_onto_an_exact_int8_grid():
    vq = TokenizerModel(TokenizerConfig(num_codes=16, code_dim=4, num_tokens=3, codebook_per_token=True)).quantizer
    vq.codebook.copy_(torch.randn(3, 16, 4) * 7.3)
    before = vq.codebook.clone()
    scale = vq.snap_to_int8_grid()
    mantissa, _ = np.frexp(scale)
    assert mantissa * 2048 == int(mantissa * 2048) and scale * 127 >= before.abs().max()  # 11 significant bits
    assert (vq.codebook - before).abs().max() <= scale / 2
    codes, found = codebook_int8_grid(vq.codebook.numpy())
    assert found == scale and codes.dtype == np.int8 and np.abs(codes).max() == 127
    assert torch.equal(torch.from_numpy(codes).float() * scale, vq.codebook)
    # a codebook between grid points is reported as such, not rounded
    assert codebook_int8_grid(before.numpy()) is None
    # tiny and all-zero codebooks too: the grid is found again after the snap
    for peak in (1e-6, 0.0):
        vq.codebook.copy_(before / before.abs().max() * peak)
        scale = vq.snap_to_int8_grid()
        codes, found = codebook_int8_grid(vq.codebook.numpy())
        assert found == scale and torch.equal(torch.from_numpy(codes).float() * scale, vq.codebook), peak


def test_int8_layers_are_the_mixer_blocks():
    from posetok_converters.fakequant import int8_linears
    from posetok_converters.graphs import outside_mixer

    assert outside_mixer(["embed", "a", "b", "to_tokens", "to_code"], reads_token_ids=False) == \
        ["embed", "to_tokens", "to_code"]
    assert outside_mixer(["from_code", "to_keypoints", "a", "head"], reads_token_ids=True) == \
        ["head", "from_code", "to_keypoints"]
    assert outside_mixer([], reads_token_ids=True) == []
    model = TokenizerModel(SMALL)
    names = [name for name, _ in int8_linears(model.encoder)]
    assert len(names) == 4 * SMALL.num_blocks and all(n.startswith("blocks.") for n in names), names


def test_int8_tensor_sensitivity_names_every_int8_tensor(model):
    from posetok_converters.fakequant import int8_linears
    from posetok_converters.metrics import int8_tensor_sensitivity, simulated_int8_token_agreement

    x = kp(1024)
    ids = model.tokenize(x)
    per_tensor = int8_tensor_sensitivity(model, x, ids)
    linears = [name for name, _ in int8_linears(model.encoder)]
    assert set(per_tensor) == {f"{n}.{end}" for n in linears for end in ("in", "out")} | {"activations", "weights"}
    assert all(0.0 <= v <= 1.0 for v in per_tensor.values())
    # on this seeded model one rounded tensor flips fewer ids than all of them together, and some flip at all
    everything = simulated_int8_token_agreement(model, x, ids)
    single = [v for k, v in per_tensor.items() if k not in ("activations", "weights")]
    assert everything < 1.0 and everything <= min(single) + 1e-9, (everything, per_tensor)
    assert per_tensor["activations"] <= min(single) + 1e-9, per_tensor
