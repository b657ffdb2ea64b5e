"""``posetok eval``: metrics of a checkpoint on the fixed evaluation set."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _kept_at(kept: dict) -> str:
    return ", ".join(f"{v:.4f} @ {k}" for k, v in kept.items())


ROWS = (
    ("mpjpe_px", "MPJPE (px of 64-px frame)", "{:.4f}"),
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
    ("eval_poses", "evaluation poses", "{}"),
    ("eval_seed", "evaluation seed", "{}"),
)


def format_table(metrics: dict, source: str) -> str:
    lines = [f"checkpoint: {source}"]
    width = max(len(label) for _, label, _ in ROWS)
    for key, label, fmt in ROWS:
        if key in metrics:
            text = fmt(metrics[key]) if callable(fmt) else fmt.format(metrics[key])
            lines.append(f"  {label:<{width}}  {text}")
    return "\n".join(lines)


def main(argv: list[str], prog: str) -> int:
    p = argparse.ArgumentParser(prog=prog, description="Evaluate a tokenizer checkpoint on the fixed evaluation "
                                                       "set (10,000 seeded poses never used in training).")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file or folder (default: shipped model)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--no-int8", action="store_true", help="skip the simulated int8 token agreement")
    p.add_argument("--int8-tensors", action="store_true",
                   help="also the token agreement with one int8 tensor rounded at a time (slower)")
    args = p.parse_args(argv)
    if args.no_int8 and args.int8_tensors:
        p.error("--int8-tensors is part of the int8 simulation that --no-int8 skips")

    from .checkpoint import load_for_command
    from .metrics import evaluate

    model, source = load_for_command(prog, args.checkpoint)
    if model is None:
        return 2
    metrics = evaluate(model, int8=not args.no_int8, int8_tensors=args.int8_tensors)
    metrics["checkpoint"] = str(source)
    print(json.dumps(metrics) if args.json else format_table(metrics, str(source)))
    return 0
