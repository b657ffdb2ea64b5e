"""Evaluation of a tokenizer on the fixed evaluation sets (broad, and upright beside it) or on given poses."""
from __future__ import annotations

import math

import numpy as np
import torch

from posetok import token_search
from posetok.skeleton import HALF_FRAME, NUM_KEYPOINTS, pixels_to_normalized

from . import data
from .fakequant import calibrate, fake_quant_act, simulated_int8
from .model import TokenizerModel

EVAL_BATCH = 2048


def check_poses(poses_px, name: str = "poses_px") -> np.ndarray:
    """``poses_px`` as float32 after checking it is a non-empty, finite, real [N,13,2] array."""
    poses = np.asarray(poses_px)
    if not (np.issubdtype(poses.dtype, np.floating) or np.issubdtype(poses.dtype, np.integer)):
        raise ValueError(f"{name} must be a real array, got dtype {poses.dtype}")
    if poses.ndim != 3 or poses.shape[1:] != (NUM_KEYPOINTS, 2) or len(poses) == 0:
        raise ValueError(f"{name} must have shape [N>0,{NUM_KEYPOINTS},2], got {list(poses.shape)}")
    if not np.isfinite(poses).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return poses.astype(np.float32)


def search_table(model: TokenizerModel, candidates: int = token_search.DEFAULT_CANDIDATES) -> np.ndarray:
    """The search's candidates: each code's nearest other codes in its codebook, int32 [G, V, C]."""
    return token_search.code_neighbours(model.quantizer.grouped().detach().cpu().numpy(), candidates)


@torch.no_grad()
def searched_tokens(model: TokenizerModel, kp: torch.Tensor, nearest: torch.Tensor,
                    sweeps: int = token_search.DEFAULT_SWEEPS,
                    candidates: int = token_search.DEFAULT_CANDIDATES) -> torch.Tensor:
    """The encoder's nearest codes refined by ``posetok.token_search`` against this model's decoder
    (the same search the runtime runs on a bundle's decoder graph); int64 [N, M]."""
    if sweeps == 0:
        return nearest

    def decode(ids: np.ndarray) -> np.ndarray:
        return decoded(model, torch.from_numpy(ids).long()).numpy()

    table = search_table(model, candidates)
    ids = [token_search.refine_token_ids(nearest[s:s + EVAL_BATCH].numpy(), kp[s:s + EVAL_BATCH].numpy(),
                                         decode, table, sweeps)[0] for s in range(0, len(kp), EVAL_BATCH)]
    return torch.from_numpy(np.concatenate(ids)).long()


@torch.no_grad()
def nearest_tokens(model: TokenizerModel, kp: torch.Tensor) -> torch.Tensor:
    """One encoder pass: each position's nearest code (what the encoder graph outputs); int64 [N, M]."""
    return torch.cat([model.tokenize(kp[s:s + EVAL_BATCH]) for s in range(0, len(kp), EVAL_BATCH)])


@torch.no_grad()
def tokens_and_reconstruction(model: TokenizerModel, kp: torch.Tensor,
                              sweeps: int = token_search.DEFAULT_SWEEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [N,M] as the tokenizer encodes (nearest codes, then ``sweeps`` of the decoder search;
    0: nearest codes only) and their decoded keypoints [N,K,2] (normalized)."""
    ids = searched_tokens(model, kp, nearest_tokens(model, kp), sweeps)
    return ids, decoded(model, ids)


@torch.no_grad()
def decoded(model: TokenizerModel, ids: torch.Tensor) -> torch.Tensor:
    """Token ids [N, M] -> decoded keypoints [N, K, 2] (normalized), in batches."""
    return torch.cat([model.detokenize(ids[s:s + EVAL_BATCH]) for s in range(0, len(ids), EVAL_BATCH)])


def mpjpe_px_from_normalized(pred_norm: torch.Tensor, true_norm: torch.Tensor) -> float:
    """Mean per-joint Euclidean error in pixels of the 64-px frame, of torch
    tensors in model coordinates (for numpy arrays in pixels:
    ``posetok.skeleton.mpjpe_px``)."""
    return float(((pred_norm - true_norm) * HALF_FRAME).norm(dim=-1).mean())


def code_usage(indices: torch.Tensor, num_codes: int, per_token: bool = False) -> tuple[float, float]:
    """(fraction of codes used at least once, perplexity = exp(entropy of code frequencies)).

    Per-token codebooks: usage counts every (position, code) pair, and the
    perplexity is exp of the mean entropy of the positions' own codebooks.
    """
    groups = indices.reshape(-1, indices.shape[-1]).T if per_token else indices.reshape(1, -1)
    counts = torch.stack([torch.bincount(g, minlength=num_codes) for g in groups]).double()
    p = counts / counts.sum(-1, keepdim=True)
    entropy = -(p * p.clamp_min(1e-300).log()).sum(-1).mean()
    return float((counts > 0).double().mean()), math.exp(float(entropy))


def _calibration_kp() -> torch.Tensor:
    """The calibration poses, normalized: what the int8 converters calibrate on."""
    return torch.from_numpy(pixels_to_normalized(data.calibration_poses()))


def _calibrated_ranges(model: TokenizerModel):
    return calibrate(model.encoder, _calibration_kp())


@torch.no_grad()
def _ids_kept(model: TokenizerModel, kp: torch.Tensor, float_ids: torch.Tensor) -> float:
    """Fraction of ``float_ids`` that the float model gives again on ``kp`` (a changed input)."""
    return float((nearest_tokens(model, kp) == float_ids).double().mean())


@torch.no_grad()
def _int8_agreement(model: TokenizerModel, kp: torch.Tensor, float_ids: torch.Tensor, ranges) -> float:
    ids = []
    with simulated_int8(model.encoder, ranges):
        for start in range(0, len(kp), EVAL_BATCH):
            ids.append(model.quantize(model.encode(kp[start:start + EVAL_BATCH]))[0])
    return float((torch.cat(ids) == float_ids).double().mean())


def simulated_int8_token_agreement(model: TokenizerModel, kp: torch.Tensor, float_ids: torch.Tensor) -> float:
    """Fraction of token ids unchanged when the encoder runs A8W8 (simulated,
    calibrated on ``data.calibration_poses()``); the codebook lookup stays float."""
    return _int8_agreement(model, kp, float_ids, _calibrated_ranges(model))


def int8_tensor_sensitivity(model: TokenizerModel, kp: torch.Tensor, float_ids: torch.Tensor) -> dict[str, float]:
    """Token agreement with one int8 tensor rounded at a time: each activation
    tensor alone ("<layer>.in" / "<layer>.out", weights float), all the
    activations with float weights ("activations") and all the weights with
    float activations ("weights", the most int16 activations could keep).
    Tells where the simulated A8W8 flips come from."""
    ranges = _calibrated_ranges(model)
    result = {}
    ranges.round_weights = False
    for name in list(ranges.ranges):
        ranges.only = {name}
        result[name] = _int8_agreement(model, kp, float_ids, ranges)
    ranges.only = None
    result["activations"] = _int8_agreement(model, kp, float_ids, ranges)
    ranges.only, ranges.round_weights = set(), True
    result["weights"] = _int8_agreement(model, kp, float_ids, ranges)
    return result


# Input noise for ``noisy_token_agreement``: how far a pose may move before
# its tokens do. Int8 rounding inside the encoder acts like input noise, so
# this curve says what token agreement any int8 encoder can hope for.
NOISE_PX = (0.01, 0.02, 0.05, 0.1)
NOISE_SEED = 20_251_003


def noisy_token_agreement(model: TokenizerModel, kp: torch.Tensor, float_ids: torch.Tensor,
                          sigma_px: float) -> float:
    """Fraction of token ids unchanged when every coordinate gets Gaussian noise of ``sigma_px`` pixels."""
    gen = torch.Generator().manual_seed(NOISE_SEED)
    return _ids_kept(model, kp + torch.randn(kp.shape, generator=gen) * (sigma_px / HALF_FRAME), float_ids)


# Bits of the input grid for ``input_grid_token_agreement``. A full-integer
# graph, the kind an NPU runs, takes its input as int8 too: 8 bits over the
# calibrated coordinate range are steps of about 0.24 px of the 64-px frame.
INPUT_GRID_BITS = (8, 10, 12)


def input_grid_token_agreement(model: TokenizerModel, kp: torch.Tensor, float_ids: torch.Tensor,
                               bits: tuple[int, ...] = INPUT_GRID_BITS) -> dict[str, float]:
    """Keyed "<b>bit" for each b in ``bits``: the fraction of token ids
    unchanged when only the input coordinates are rounded to a b-bit grid over
    the calibration poses' range (as a quantized input tensor would be), the
    encoder itself running in float. With 8 bits it bounds every encoder of
    this tokenizer whose input tensor is int8, however well the rest of it is
    quantized."""
    calibration = _calibration_kp()
    lo, hi = float(calibration.min()), float(calibration.max())
    return {f"{b}bit": _ids_kept(model, fake_quant_act(kp, lo, hi, b), float_ids) for b in bits}


def evaluate(model: TokenizerModel, poses_px: np.ndarray | None = None, int8: bool = True,
             int8_tensors: bool = False, sweeps: int = token_search.DEFAULT_SWEEPS,
             eval_poses: int | None = None) -> dict:
    """Metrics of encode -> decode on ``poses_px``, or by default on the broad
    evaluation set, with ``upright_mpjpe_px`` of the upright set beside it
    (``eval_poses``: the first N poses of each set, default all; the search
    runs the decoder many times a pose, so quick checks score fewer).

    ``mpjpe_px``, usage and perplexity are of the ids the tokenizer gives
    (nearest codes refined by ``sweeps`` of the decoder search, as a bundle's
    ``PoseTokenizer`` encodes); ``nearest_mpjpe_px`` is of the encoder's
    nearest codes alone. The token-agreement figures (noise, input grid, int8)
    are of the nearest codes: they measure the encoder graph's argmin.
    ``int8_tensors`` adds ``int8_tensor_sensitivity`` (one simulated pass per tensor)."""
    if eval_poses is not None and poses_px is not None:
        raise ValueError("eval_poses counts poses of the fixed evaluation sets; it does not go with poses_px")
    poses = check_poses(data.eval_poses(count=eval_poses) if poses_px is None else poses_px)
    was_training = model.training
    model.eval()
    try:
        def errors(kp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float, float]:
            """(nearest ids, searched ids, their MPJPEs) with one encoder pass (and one decode without a search)."""
            nearest = nearest_tokens(model, kp)
            ids = searched_tokens(model, kp, nearest, sweeps)
            nearest_mpjpe = mpjpe_px_from_normalized(decoded(model, nearest), kp)
            return (nearest, ids, nearest_mpjpe,
                    nearest_mpjpe if sweeps == 0 else mpjpe_px_from_normalized(decoded(model, ids), kp))

        kp = torch.from_numpy(pixels_to_normalized(poses))
        nearest, ids, nearest_mpjpe, mpjpe = errors(kp)
        cfg = model.config
        usage, perplexity = code_usage(ids, cfg.num_codes, cfg.codebook_per_token)
        result = {"mpjpe_px": mpjpe, "nearest_mpjpe_px": nearest_mpjpe}
        if poses_px is None:
            upright = torch.from_numpy(pixels_to_normalized(data.eval_poses("upright", count=eval_poses)))
            _, _, upright_nearest, upright_mpjpe = errors(upright)
            result.update(upright_mpjpe_px=upright_mpjpe, upright_nearest_mpjpe_px=upright_nearest)
        result.update({
            "search": {"candidates": token_search.DEFAULT_CANDIDATES, "sweeps": sweeps},
            "search_changed_ids": float((ids != nearest).double().mean()),
            "codebook_usage": usage,
            "perplexity": perplexity,
            "num_codes": cfg.num_codes,
            "num_tokens": cfg.num_tokens,
            "code_dim": cfg.code_dim,
            "codebooks": "per_token" if cfg.codebook_per_token else "shared",
            "bits_per_pose": cfg.bits_per_pose,
            "float32_bits_per_pose": 32 * 2 * cfg.num_keypoints,
            "eval_poses": len(poses),
            "eval_set": data.DEFAULT_DISTRIBUTION if poses_px is None else "given poses",
            "eval_seed": data.EVAL_SEED if poses_px is None else None,
        })
        if poses_px is None:
            result["upright_eval_seed"] = data.EVAL_SEEDS["upright"]
        result["noisy_token_agreement"] = {f"{px:g}px": noisy_token_agreement(model, kp, nearest, px)
                                           for px in NOISE_PX}
        result["input_grid_token_agreement"] = input_grid_token_agreement(model, kp, nearest)
        if int8:
            result["sim_int8_token_agreement"] = simulated_int8_token_agreement(model, kp, nearest)
        if int8_tensors:
            result["sim_int8_tensor_agreement"] = int8_tensor_sensitivity(model, kp, nearest)
        return result
    finally:
        model.train(was_training)
