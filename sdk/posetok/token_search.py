"""Encoder-side search: pick token ids by what the decoder makes of them.

The encoder graph gives each token position the code nearest to its latent
vector. That choice ignores the decoder: another code a little further away
can reconstruct the pose better, and often does, since the decoder mixes all
positions nonlinearly. ``refine_token_ids`` therefore walks the positions in
order and, at each, tries the current code's nearest neighbours in its
codebook (``code_neighbours``), keeping a swap only when the decoded pose gets
strictly closer to the input. Like a speech or video codec's
analysis-by-synthesis search, it changes only how ids are chosen: same bits,
same decoder, and a receiver decodes them as before. The cost is
``sweeps * M * C`` extra decoder rows per pose, run ``M`` times in batches of
``B * C``.

The converters (torch) and the runtime (any backend) both call this module,
so the two choose ids by the same rule; only the decoders' float rounding can
part them, on near-ties.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

# The search a bundle ships with unless the exporter says otherwise: the two
# nearest other codes of each position's current code, one pass over the positions.
DEFAULT_CANDIDATES = 2
DEFAULT_SWEEPS = 1
MAX_SWEEPS = 8

Decode = Callable[[np.ndarray], np.ndarray]   # int32 ids [N, M] -> keypoints [N, 13, 2] in model units


def code_neighbours(codebooks: np.ndarray, count: int = DEFAULT_CANDIDATES) -> np.ndarray:
    """The ``count`` nearest other codes of every code, by squared L2 in its own codebook.

    Args:
        codebooks: float [G, V, D], G = 1 (one shared codebook) or M (one per token position).
        count: neighbours per code, 1 to V - 1.

    Returns:
        int32 [G, V, count], nearest first; equal distances keep the lower id first.

    Raises:
        ValueError: codebooks not a finite 3-D real array, or count out of range.
    """
    codes = np.asarray(codebooks)
    if codes.ndim != 3 or codes.dtype.kind != "f":
        raise ValueError(f"codebooks must be a float array [G, V, D], got {codes.dtype} of shape {codes.shape}")
    if not np.isfinite(codes).all():
        raise ValueError("codebooks contain NaN or inf")
    num_codes = codes.shape[1]
    if not 1 <= count < num_codes:
        raise ValueError(f"count must be in [1, {num_codes - 1}] for {num_codes} codes, got {count}")
    c = codes.astype(np.float64)
    sq = (c * c).sum(-1)
    dist = sq[:, :, None] - 2.0 * c @ c.transpose(0, 2, 1) + sq[:, None, :]
    dist[:, np.arange(num_codes), np.arange(num_codes)] = np.inf          # a code is not its own neighbour
    return np.argsort(dist, axis=-1, kind="stable")[..., :count].astype(np.int32)


def check_neighbours(table, num_tokens: int, num_codes: int) -> np.ndarray:
    """``table`` as int32 [G, V, C] with G = 1 or ``num_tokens``, every id in [0, V); raises ValueError naming
    the problem (shape, dtype, range)."""
    try:
        arr = np.asarray(table)
    except (TypeError, ValueError) as exc:   # ragged nested lists
        raise ValueError(f"code_neighbours must be a [G, {num_codes}, C] integer array: {exc}") from None
    if arr.dtype.kind not in "iu":
        raise ValueError(f"code_neighbours must hold integers, got dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[0] not in (1, num_tokens) or arr.shape[1] != num_codes or arr.shape[2] < 1:
        raise ValueError(f"code_neighbours must have shape [1 or {num_tokens}, {num_codes}, C >= 1], "
                         f"got {list(arr.shape)}")
    if arr.min() < 0 or arr.max() >= num_codes:
        raise ValueError(f"code_neighbours ids must lie in [0, {num_codes}), got [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int32)


def pose_error(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean per-keypoint distance of each pose [N, 13, 2] -> [N], in float64 (MPJPE in model units)."""
    diff = np.asarray(pred, np.float64) - np.asarray(target, np.float64)
    return np.sqrt((diff * diff).sum(-1)).mean(-1)


def refine_token_ids(ids: np.ndarray, target: np.ndarray, decode: Decode, neighbours: np.ndarray,
                     sweeps: int = DEFAULT_SWEEPS) -> tuple[np.ndarray, np.ndarray]:
    """Greedy search over token ids, one position at a time, against the decoder.

    Args:
        ids: int [B, M], the encoder's nearest codes (the start).
        target: float [B, 13, 2], the poses in model units that the ids should reconstruct.
        decode: ids [N, M] int32 -> keypoints [N, 13, 2]; called with N = B, then M times per sweep
            with N = B * C.
        neighbours: int32 [G, V, C] from ``code_neighbours`` (G = 1 shared, or M per position).
        sweeps: passes over the M positions; 0 returns the start.

    Returns:
        (ids int32 [B, M], error float64 [B]): the chosen ids and each pose's reconstruction error
        (mean per-keypoint distance, model units). No pose ends worse than its start.
    """
    ids = np.array(ids, dtype=np.int32)
    target = np.asarray(target)
    batch, num_tokens = ids.shape
    per_position = neighbours.shape[0] > 1
    count = neighbours.shape[-1]
    rows = np.arange(batch)
    error = pose_error(decode(ids), target)
    repeated_target = np.repeat(target, count, axis=0)
    for _ in range(sweeps):
        for m in range(num_tokens):
            candidates = neighbours[m if per_position else 0][ids[:, m]]           # [B, C]
            trial = np.repeat(ids[:, None, :], count, axis=1)                       # [B, C, M]
            trial[:, :, m] = candidates
            trial_error = pose_error(decode(trial.reshape(-1, num_tokens)), repeated_target).reshape(batch, count)
            best = trial_error.argmin(axis=1)
            best_error = trial_error[rows, best]
            better = best_error < error
            ids[better, m] = candidates[better, best[better]]
            error = np.where(better, best_error, error)
    return ids, error
