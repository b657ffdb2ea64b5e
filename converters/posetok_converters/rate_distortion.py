"""Rate-distortion: the tokenizer against plain rounding of the 26 coordinates.

At the same number of bits per pose, which reconstructs the broad evaluation
set better: M token ids of log2(V) bits each, or every coordinate rounded to
a uniform grid over the 64-px frame? The tokenizer rows come from one
checkpoint per bit budget (the shipped model at 256 bits and two smaller
token shapes trained with the same recipe, ``models/rd-64`` and
``models/rd-128``); the rounding rows need no model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from posetok.skeleton import FRAME_SIZE, NUM_KEYPOINTS, mpjpe_px

from . import data
from .checkpoint import DEFAULT_MODEL_DIR

NUM_COORDINATES = 2 * NUM_KEYPOINTS
RD_BITS = (64, 128, 256)
MODELS_DIR = DEFAULT_MODEL_DIR.parent
RD_CHECKPOINTS = {64: MODELS_DIR / "rd-64", 128: MODELS_DIR / "rd-128", 256: DEFAULT_MODEL_DIR}


def rounding_bits_per_coordinate(bits_per_pose: int) -> np.ndarray:
    """[13,2] bits for each coordinate: ``bits_per_pose`` spread as evenly as
    possible (the first ``bits_per_pose % 26`` coordinates in keypoint order
    get one bit more)."""
    if int(bits_per_pose) != bits_per_pose or bits_per_pose < NUM_COORDINATES:
        raise ValueError(f"bits_per_pose must be an integer >= {NUM_COORDINATES} (one bit per coordinate), "
                         f"got {bits_per_pose!r}")
    base, extra = divmod(int(bits_per_pose), NUM_COORDINATES)
    return (base + (np.arange(NUM_COORDINATES) < extra)).reshape(NUM_KEYPOINTS, 2)


def round_uniform(poses_px: np.ndarray, bits_per_pose: int) -> np.ndarray:
    """Each coordinate rounded to the centre of its cell on a uniform grid of
    2**b cells over [0, 64] (b from ``rounding_bits_per_coordinate``): what a
    receiver reconstructs from ``bits_per_pose`` bits of plain rounding."""
    cells = 2.0 ** rounding_bits_per_coordinate(bits_per_pose)
    step = FRAME_SIZE / cells
    index = np.clip(np.floor(np.asarray(poses_px, np.float64) / step), 0, cells - 1)
    return ((index + 0.5) * step).astype(np.float32)


def rounding_mpjpe_px(poses_px: np.ndarray, bits_per_pose: int) -> float:
    return mpjpe_px(round_uniform(poses_px, bits_per_pose), poses_px)


def rate_distortion(checkpoints: dict[int, Path] | None = None, eval_poses: int | None = None) -> dict:
    """Rows for every bit budget of ``checkpoints`` (default ``RD_CHECKPOINTS``):
    the tokenizer's and uniform rounding's MPJPE on the broad evaluation set
    (its first ``eval_poses``, default all), plus the rounding curve at every
    whole number of bits per coordinate."""
    import torch

    from posetok.skeleton import pixels_to_normalized

    from .checkpoint import load_checkpoint
    from .metrics import mpjpe_px_from_normalized, tokens_and_reconstruction

    checkpoints = RD_CHECKPOINTS if checkpoints is None else checkpoints
    poses = data.eval_poses(count=eval_poses)
    kp = torch.from_numpy(pixels_to_normalized(poses))
    rows = []
    for bits, path in sorted(checkpoints.items()):
        model, _ = load_checkpoint(path)
        if model.config.bits_per_pose > bits:
            raise ValueError(f"{path} spends {model.config.bits_per_pose:g} bits per pose, more than {bits}")
        tokenizer = mpjpe_px_from_normalized(tokens_and_reconstruction(model, kp)[1], kp)
        nearest = mpjpe_px_from_normalized(tokens_and_reconstruction(model, kp, sweeps=0)[1], kp)
        rounding = rounding_mpjpe_px(poses, bits)
        rows.append({
            "bits_per_pose": bits,
            "tokenizer_mpjpe_px": tokenizer,
            "tokenizer_nearest_mpjpe_px": nearest,
            "tokenizer_shape": f"{model.config.num_tokens} x {model.config.num_codes}",
            "tokenizer_checkpoint": str(path),
            "rounding_mpjpe_px": rounding,
            "rounding_bits_per_coordinate": f"{bits / NUM_COORDINATES:.2f}",
            "better": "tokenizer" if tokenizer < rounding else "rounding",
        })
    curve = [{"bits_per_pose": b * NUM_COORDINATES, "rounding_mpjpe_px": rounding_mpjpe_px(poses, b * NUM_COORDINATES)}
             for b in range(1, 13)]
    return {"eval_set": data.DEFAULT_DISTRIBUTION, "eval_poses": len(poses), "eval_seed": data.EVAL_SEED,
            "rows": rows, "rounding_curve": curve}


def format_table(report: dict) -> str:
    lines = [f"rate-distortion on the {report['eval_set']} evaluation set ({report['eval_poses']} poses), MPJPE px",
             f"  {'bits/pose':>9}  {'tokenizer':>9}  {'nearest':>8}  {'M x V':>8}  {'rounding':>8}  better"]
    for r in report["rows"]:
        lines.append(f"  {r['bits_per_pose']:>9}  {r['tokenizer_mpjpe_px']:>9.3f}  "
                     f"{r['tokenizer_nearest_mpjpe_px']:>8.3f}  {r['tokenizer_shape']:>8}  "
                     f"{r['rounding_mpjpe_px']:>8.3f}  {r['better']}")
    lines.append("  tokenizer: nearest codes refined by the decoder search (posetok.token_search), as PoseTokenizer "
                 "encodes; nearest: the encoder's nearest codes alone")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """Log-scale MPJPE against bits per pose: the rounding curve and the tokenizer points."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posetok.atomic import atomic_output

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    curve = report["rounding_curve"]
    ax.plot([c["bits_per_pose"] for c in curve], [c["rounding_mpjpe_px"] for c in curve], "o-", color="tab:gray",
            label="uniform rounding of the 26 coordinates")
    rows = report["rows"]
    ax.plot([r["bits_per_pose"] for r in rows], [r["tokenizer_mpjpe_px"] for r in rows], "s-", color="tab:blue",
            label="tokenizer (M x V tokens), decoder search")
    ax.plot([r["bits_per_pose"] for r in rows], [r["tokenizer_nearest_mpjpe_px"] for r in rows], "s--",
            color="tab:blue", alpha=0.45, label="tokenizer, nearest codes alone")
    for r in rows:
        ax.annotate(r["tokenizer_shape"], (r["bits_per_pose"], r["tokenizer_mpjpe_px"]), textcoords="offset points",
                    xytext=(6, 6), fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("bits per pose")
    ax.set_ylabel("MPJPE, px of the 64-px frame")
    ax.set_title(f"Rate-distortion, {report['eval_set']} evaluation set")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
