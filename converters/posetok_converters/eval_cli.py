"""``posetok eval``: metrics of a checkpoint on the fixed evaluation sets or a file of poses, and rate-distortion."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .cli_checks import refuse, refuse_unwritable


def _kept_at(kept: dict) -> str:
    return ", ".join(f"{v:.4f} @ {k}" for k, v in kept.items())


ROWS = (
    ("mpjpe_px", "MPJPE (px of 64-px frame)", "{:.4f}"),
    ("upright_mpjpe_px", "MPJPE, upright set (px)", "{:.4f}"),
    ("nearest_mpjpe_px", "  ... nearest codes alone", "{:.4f}"),
    ("upright_nearest_mpjpe_px", "  ... upright, nearest codes alone", "{:.4f}"),
    ("search", "decoder search (token_search)", lambda d: f"{d['candidates']} neighbours, {d['sweeps']} sweep(s)"),
    ("search_changed_ids", "  ... ids it changed", "{:.4f}"),
    ("codebook_usage", "codebook usage", "{:.3f}"),
    ("perplexity", "code perplexity", "{:.1f}"),
    ("num_tokens", "tokens per pose (M)", "{}"),
    ("num_codes", "codes (V)", "{}"),
    ("code_dim", "code dim (D)", "{}"),
    ("codebooks", "codebooks", "{}"),
    ("bits_per_pose", "bits per pose (M*log2 V)", "{:.0f}"),
    ("float32_bits_per_pose", "float32 bits per pose", "{}"),
    ("noisy_token_agreement", "tokens kept under input noise", _kept_at),
    ("input_grid_token_agreement", "tokens kept with the input on a grid", _kept_at),
    ("sim_int8_token_agreement", "simulated A8W8 token agreement", "{:.4f}"),
    ("sim_int8_tensor_agreement", "  ... one part rounded at a time",
     lambda d: "(worst 8)" + "".join(f"\n    {v:.4f}  {k}" for k, v in sorted(d.items(), key=lambda kv: kv[1])[:8])),
    ("eval_set", "evaluation set", "{}"),
    ("poses_file", "poses file", "{}"),
    ("eval_poses", "evaluation poses", "{}"),
    ("eval_seed", "evaluation seed", "{}"),
    ("upright_eval_seed", "upright set seed", "{}"),
)


def format_table(metrics: dict, source: str) -> str:
    lines = [f"checkpoint: {source}"]
    width = max(len(label) for _, label, _ in ROWS)
    for key, label, fmt in ROWS:
        if key in metrics:
            text = fmt(metrics[key]) if callable(fmt) else fmt.format(metrics[key])
            lines.append(f"  {label:<{width}}  {text}")
    return "\n".join(lines)


def load_poses_file(path: Path) -> np.ndarray:
    """A user's poses: an .npy file holding an [N,13,2] real array of pixel
    keypoints in the 64-px frame, in the order of posetok.skeleton.KEYPOINT_NAMES."""
    from .metrics import check_poses
    try:
        poses = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"cannot read {path} as a .npy array: {exc}") from exc
    return check_poses(poses, name=f"{path}: poses")


def main(argv: list[str], prog: str) -> int:
    p = argparse.ArgumentParser(prog=prog, description="Evaluate a tokenizer checkpoint on the fixed evaluation "
                                                       "sets (10,000 seeded broad poses, and 10,000 upright ones; "
                                                       "never used in training) or on a file of poses.")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file or folder (default: shipped model)")
    p.add_argument("--poses", type=Path, default=None,
                   help="evaluate these poses instead: an .npy [N,13,2] array of pixel keypoints in the 64-px "
                        "frame, in the order of posetok.skeleton.KEYPOINT_NAMES")
    p.add_argument("--rate-distortion", action="store_true",
                   help="tokenizer vs uniform rounding of the 26 coordinates at 64, 128 and 256 bits per pose "
                        "(the shipped token shapes) on the broad set")
    p.add_argument("--eval-poses", type=int, default=None, metavar="N",
                   help="score the first N poses of each fixed set (default all 10,000; the decoder search "
                        "makes every pose cost dozens of decoder runs)")
    p.add_argument("--plot", type=Path, default=None, help="with --rate-distortion: also write this PNG")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--no-int8", action="store_true", help="skip the simulated int8 token agreement")
    p.add_argument("--int8-tensors", action="store_true",
                   help="also the token agreement with one int8 tensor rounded at a time (slower)")
    args = p.parse_args(argv)
    if args.no_int8 and args.int8_tensors:
        p.error("--int8-tensors is part of the int8 simulation that --no-int8 skips")
    if args.rate_distortion and (args.poses or args.checkpoint or args.int8_tensors):
        p.error("--rate-distortion uses the shipped token shapes on the broad set; "
                "it takes no --checkpoint, --poses or --int8-tensors")
    if args.plot and not args.rate_distortion:
        p.error("--plot goes with --rate-distortion")
    if args.eval_poses is not None and args.poses is not None:
        p.error("--eval-poses counts poses of the fixed sets; it does not go with --poses")
    if args.eval_poses is not None and args.eval_poses < 1:
        p.error(f"--eval-poses must be >= 1, got {args.eval_poses}")

    if refuse_unwritable(prog, files=[args.plot]):
        return 2
    if args.rate_distortion:
        from . import rate_distortion
        report = rate_distortion.rate_distortion(eval_poses=args.eval_poses)
        if args.plot:
            rate_distortion.plot(report, args.plot)
        print(json.dumps(report) if args.json else rate_distortion.format_table(report))
        return 0

    from .checkpoint import load_for_command
    from .metrics import evaluate

    poses = None
    if args.poses is not None:
        try:
            poses = load_poses_file(args.poses)
        except ValueError as exc:
            return refuse(prog, f"--poses: {exc}")
    model, source = load_for_command(prog, args.checkpoint)
    if model is None:
        return 2
    metrics = evaluate(model, poses, int8=not args.no_int8, int8_tensors=args.int8_tensors,
                       eval_poses=args.eval_poses)
    metrics["checkpoint"] = str(source)
    if args.poses is not None:
        metrics["poses_file"] = str(args.poses)
    print(json.dumps(metrics) if args.json else format_table(metrics, str(source)))
    return 0
