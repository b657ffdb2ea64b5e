"""Parity of a bundle's graphs with the torch model, on the fixed eval set.

The graphs run through ``posetok.PoseTokenizer.from_bundle``, the exact code
path the device runs (sha256 checks, fixed-batch splitting for TFLite).

One row per (format, precision):
  size_bytes              encoder + decoder files (TFLite: the largest batch variant)
  token_agreement         fraction of the encoder graph's ids (nearest codes) equal to torch's
  searched_token_agreement  the same for the ids after the bundle's decoder search
                          (``posetok.token_search``), which PoseTokenizer.encode returns: the
                          search compares decoded poses, so a decoder's rounding can tip a
                          near-tie either way; reconstruction, not this, is what is judged
  mpjpe_px                encode (with the search) + decode with these files vs the true poses
  decoder_max_abs_err_px  decoder alone, fed torch's tokens, vs torch's decoder
  decoder_mpjpe_px        decoder alone, fed torch's tokens, vs the true poses: with
                          mpjpe_px it tells the encoder's token flips from the decoder's error
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from posetok import bundle as bundle_lib
from posetok.backends import FORMAT_OF_BACKEND
from posetok.skeleton import HALF_FRAME, pixels_to_normalized

from . import data, metrics
from .checkpoint import load_checkpoint, resolve_checkpoint

# Targets a row must meet; ``meets_targets`` in each row. Full-integer int8 is
# judged by reconstruction and size (an int8 input grid alone moves a fine
# tokenizer's ids, and most moves land on a neighbouring code that decodes
# almost the same, README "Known limits"); its token agreement is a floor.
TARGETS: dict[str, dict[str, float]] = {
    "fp32": {"min_token_agreement": 0.999, "max_decoder_abs_err_px": 1e-3},
    "fp16": {"min_token_agreement": 0.995, "max_mpjpe_over_reference_px": 0.05},
    "int8w": {"min_token_agreement": 0.97, "max_mpjpe_over_reference_px": 0.05},
    "int8": {"min_token_agreement": 0.90, "max_mpjpe_over_reference_px": 0.1, "max_size_vs_fp32": 0.30},
}
BACKEND_OF_FORMAT = {fmt: backend for backend, fmt in FORMAT_OF_BACKEND.items()}


@dataclasses.dataclass(frozen=True)
class Reference:
    """The torch model's outputs on the eval set, in normalized coordinates."""
    poses_norm: np.ndarray   # [N, 13, 2] ground truth
    nearest_ids: np.ndarray  # [N, M] int32, the encoder's nearest codes
    token_ids: np.ndarray    # [N, M] int32, after the decoder search (what the tokenizer encodes to)
    recon_norm: np.ndarray   # [N, 13, 2] torch decode of its own tokens
    mpjpe_px: float
    eval_seed: Optional[int]

    @property
    def num_poses(self) -> int:
        return len(self.poses_norm)

    def summary(self) -> dict:
        return {"mpjpe_px": self.mpjpe_px, "eval_poses": self.num_poses, "eval_seed": self.eval_seed}


@torch.no_grad()
def torch_reference(model, poses_px: Optional[np.ndarray] = None, count: Optional[int] = None) -> Reference:
    """Torch tokens and reconstruction of ``poses_px`` (default: the fixed eval set, its first ``count`` poses
    when given)."""
    poses = data.eval_poses(count=count) if poses_px is None else np.asarray(poses_px, dtype=np.float32)
    kp = torch.from_numpy(pixels_to_normalized(poses))
    model.eval()
    nearest = metrics.nearest_tokens(model, kp)
    ids = metrics.searched_tokens(model, kp, nearest)
    recon = metrics.decoded(model, ids)
    return Reference(poses_norm=kp.numpy(), nearest_ids=nearest.numpy().astype(np.int32),
                     token_ids=ids.numpy().astype(np.int32), recon_norm=recon.numpy(),
                     mpjpe_px=metrics.mpjpe_px_from_normalized(recon, kp),
                     eval_seed=data.EVAL_SEED if poses_px is None else None)


def row_files(manifest: bundle_lib.Manifest, fmt: str,
              precision: str) -> tuple[list[bundle_lib.Artifact], Optional[int]]:
    """The artifacts whose sizes a row counts: encoder + decoder, for TFLite the largest batch."""
    chosen, batch = [], None
    for role in ("encoder", "decoder"):  # the tokenizer's row; the estimator has its own parity rows
        found = [a for a in manifest.artifacts if (a.format, a.precision, a.role) == (fmt, precision, role)]
        fixed = [a for a in found if a.batch is not None]
        pick = max(fixed, key=lambda a: a.batch) if fixed and len(fixed) == len(found) else \
            next(a for a in found if a.batch is None)
        batch = pick.batch
        chosen.append(pick)
    return chosen, batch


def measure_row(bundle_dir: Path | str, fmt: str, precision: str, reference: Reference) -> dict:
    """One parity row, running the bundle's files through the device runtime."""
    from posetok import PoseTokenizer

    manifest = bundle_lib.Bundle.load(bundle_dir, verify=False).spec
    files, batch = row_files(manifest, fmt, precision)
    with PoseTokenizer.from_bundle(bundle_dir, backend=BACKEND_OF_FORMAT[fmt], precision=precision) as tok:
        ids = tok.encode_normalized(reference.poses_norm)
        recon = tok.decode_normalized(ids)
        decoded_torch_ids = tok.decode_normalized(reference.token_ids)
    with PoseTokenizer.from_bundle(bundle_dir, backend=BACKEND_OF_FORMAT[fmt], precision=precision,
                                   verify=False, search=False) as tok:
        nearest = tok.encode_normalized(reference.poses_norm)
    mpjpe = metrics.mpjpe_px_from_normalized(torch.from_numpy(recon), torch.from_numpy(reference.poses_norm))
    return {
        "format": fmt,
        "precision": precision,
        "files": [a.file for a in files],
        "size_bytes": int(sum(a.size_bytes for a in files)),
        "size_counts": "encoder + decoder" + (f", batch-{batch} files" if batch else ", any-batch files"),
        "token_agreement": float(np.mean(nearest == reference.nearest_ids)),
        "searched_token_agreement": float(np.mean(ids == reference.token_ids)),
        "mpjpe_px": mpjpe,
        "mpjpe_over_reference_px": mpjpe - reference.mpjpe_px,
        "decoder_max_abs_err_px": float(np.abs(decoded_torch_ids - reference.recon_norm).max() * HALF_FRAME),
        "decoder_mpjpe_px": metrics.mpjpe_px_from_normalized(torch.from_numpy(decoded_torch_ids),
                                                             torch.from_numpy(reference.poses_norm)),
        "quantization": files[0].quantization,
    }


def judge(rows: list[dict]) -> list[dict]:
    """Add ``size_vs_fp32``, ``targets`` and ``meets_targets`` to each row (in place)."""
    fp32_size = {r["format"]: r["size_bytes"] for r in rows if r["precision"] == "fp32"}
    for row in rows:
        targets = TARGETS[row["precision"]]
        base = fp32_size.get(row["format"])
        row["size_vs_fp32"] = row["size_bytes"] / base if base else None
        checks = [row["token_agreement"] >= targets["min_token_agreement"]]
        if "max_decoder_abs_err_px" in targets:
            checks.append(row["decoder_max_abs_err_px"] <= targets["max_decoder_abs_err_px"])
        if "max_mpjpe_over_reference_px" in targets:
            checks.append(row["mpjpe_over_reference_px"] <= targets["max_mpjpe_over_reference_px"])
        if "max_size_vs_fp32" in targets and row["size_vs_fp32"] is not None:
            checks.append(row["size_vs_fp32"] <= targets["max_size_vs_fp32"])
        row["targets"] = dict(targets)
        row["meets_targets"] = all(checks)
    return rows


def attach_parity(manifest: bundle_lib.Manifest, rows: list[dict]) -> bundle_lib.Manifest:
    """The manifest with the judged rows: top-level ``parity`` and each artifact's ``parity``."""
    judge(rows)
    by_key = {(r["format"], r["precision"]): r for r in rows}
    keys = ("token_agreement", "searched_token_agreement", "mpjpe_px", "decoder_max_abs_err_px", "size_bytes",
            "meets_targets")
    artifacts = []
    for artifact in manifest.artifacts:
        row = by_key.get((artifact.format, artifact.precision))
        if row is not None:
            artifact = dataclasses.replace(artifact, parity={k: row[k] for k in keys})
        artifacts.append(artifact)
    return dataclasses.replace(manifest, artifacts=tuple(artifacts), parity=tuple(rows))


class ParityError(RuntimeError):
    """The checkpoint does not belong to the bundle, or the bundle cannot be measured."""


def parity_report(bundle_dir: Path | str, checkpoint=None, progress=None) -> dict:
    """``{"bundle", "checkpoint", "reference", "artifacts": [rows]}`` for a bundle on disk."""
    bundle = bundle_lib.Bundle.load(bundle_dir)  # verifies every file's sha256
    ckpt_path = resolve_checkpoint(checkpoint)
    ckpt_sha = bundle_lib.file_sha256(ckpt_path)
    expected = bundle.spec.model.checkpoint_sha256
    if ckpt_sha != expected:
        raise ParityError(f"checkpoint {ckpt_path} (sha256 {ckpt_sha[:16]}...) is not the one this bundle was "
                          f"exported from (manifest: {str(expected)[:16]}...); pass --checkpoint with the right file")
    model, _ = load_checkpoint(ckpt_path)
    # the poses the exporter measured on (export --parity-poses): the first N of the eval set
    reference = torch_reference(model, count=bundle.spec.reference.get("eval_poses"))
    rows = []
    for fmt, precision in bundle.spec.rows():
        rows.append(measure_row(bundle_dir, fmt, precision, reference))
        if progress:
            progress(f"{fmt} {precision}: token agreement {rows[-1]['token_agreement']:.4f} "
                     f"(after the search {rows[-1]['searched_token_agreement']:.4f})")
    return {"bundle": str(Path(bundle_dir).resolve()), "checkpoint": str(ckpt_path),
            "checkpoint_sha256": ckpt_sha, "reference": reference.summary(), "artifacts": judge(rows)}
