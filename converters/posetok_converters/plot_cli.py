"""``posetok plot``: true vs reconstructed stick figures and a code-usage histogram."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posetok.atomic import atomic_output

from .cli_checks import refuse, refuse_unwritable

NUM_FIGURES = 12  # 2 rows of 6 poses


def main(argv: list[str], prog: str) -> int:
    p = argparse.ArgumentParser(prog=prog, description="Plot ground-truth vs reconstructed poses from the evaluation "
                                                       "set and how often each code is used.")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file or folder (default: shipped model)")
    p.add_argument("--out", type=Path, required=True, help="output PNG file")
    p.add_argument("--eval-poses", type=int, default=None, metavar="N",
                   help="code usage over the first N evaluation poses (default all 10,000)")
    args = p.parse_args(argv)
    if args.out.suffix.lower() != ".png":
        return refuse(prog, f"--out must name a .png file, got {args.out}")
    if refuse_unwritable(prog, files=[args.out]):
        return 2
    if args.eval_poses is not None and args.eval_poses < NUM_FIGURES:
        return refuse(prog, f"--eval-poses must be >= {NUM_FIGURES} (the figures drawn), got {args.eval_poses}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from posetok.skeleton import FRAME_SIZE, LIMBS, normalized_to_pixels, pixels_to_normalized

    from . import data
    from .checkpoint import load_for_command
    from .metrics import tokens_and_reconstruction

    model, source = load_for_command(prog, args.checkpoint)
    if model is None:
        return 2
    poses = data.eval_poses(count=args.eval_poses)
    kp = torch.from_numpy(pixels_to_normalized(poses))
    ids, recon = tokens_and_reconstruction(model, kp)
    recon_px = normalized_to_pixels(recon.numpy())
    err = np.linalg.norm(recon_px - poses, axis=-1).mean(axis=1)     # per-pose MPJPE
    cfg = model.config
    # per-token codebooks: one bar per (position, code) pair
    counts = np.bincount(model.quantizer.flat_indices(ids).numpy().ravel(),
                         minlength=cfg.num_codebooks * cfg.num_codes)

    fig = plt.figure(figsize=(13, 8.5))
    grid = fig.add_gridspec(3, 6, height_ratios=[1, 1, 0.8])
    images = data.render(poses[:NUM_FIGURES])
    for i in range(NUM_FIGURES):
        ax = fig.add_subplot(grid[i // 6, i % 6])
        ax.imshow(images[i], cmap="gray_r", extent=(0, FRAME_SIZE, FRAME_SIZE, 0), alpha=0.35)
        for a, b in LIMBS:
            ax.plot(poses[i, [a, b], 0], poses[i, [a, b], 1], color="tab:blue", lw=1.5)
            ax.plot(recon_px[i, [a, b], 0], recon_px[i, [a, b], 1], color="tab:red", lw=1.0, ls="--")
        ax.scatter(poses[i, :, 0], poses[i, :, 1], s=6, color="tab:blue")
        ax.scatter(recon_px[i, :, 0], recon_px[i, :, 1], s=6, color="tab:red")
        ax.set_xlim(0, FRAME_SIZE)
        ax.set_ylim(FRAME_SIZE, 0)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"#{i}  {err[i]:.2f} px", fontsize=9)
    ax = fig.add_subplot(grid[2, :])
    order = np.sort(counts)[::-1]
    ax.bar(np.arange(len(order)), order, width=1.0, color="tab:gray")
    used = int((counts > 0).sum())
    ax.set_title(f"code usage on {len(poses)} eval poses, sorted: {used}/{len(counts)} codes used", fontsize=10)
    ax.set_xlabel(("(token position, code) pair" if cfg.codebook_per_token else "code") + ", sorted by count")
    ax.set_ylabel("token count")
    fig.suptitle(f"blue: ground truth, red dashed: decode(tokenize(pose))  -  MPJPE {err.mean():.3f} px, "
                 f"{cfg.num_tokens} tokens x {cfg.num_codes} codes"
                 + (" (one codebook per token)" if cfg.codebook_per_token else ""), fontsize=11)
    fig.tight_layout()

    try:
        with atomic_output(args.out) as tmp:
            fig.savefig(tmp, dpi=90)
    finally:
        plt.close(fig)
    print(f"{prog}: wrote {args.out}", file=sys.stderr)
    return 0
