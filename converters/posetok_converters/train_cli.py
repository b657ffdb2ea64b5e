"""``posetok train``: train a tokenizer and write its checkpoint and metrics.json."""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from posetok.atomic import write_text_atomic

from .cli_checks import refuse, refuse_out_of_range, refuse_unwritable
from .train import PRESETS, SCHEDULES, TrainConfig, preset, train, train_config_dict

DEFAULT_OUT = Path("out/tokenizer")
PRE_INT8_NAME = "tokenizer_before_int8_finetune.pt"


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Train a pose tokenizer (VQ-VAE) on synthetic stick figures.")
    p.add_argument("--preset", choices=sorted(PRESETS), required=True,
                   help="quick: ~1 minute, for tests; full: the shipped model")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0, help="training seed: weights init and training-data stream")
    p.add_argument("--schedule", choices=SCHEDULES, default="staged",
                   help="staged: ours (autoencoder, k-means codebook, VQ with restarts, int8 fine-tune); "
                        "joint: the seed article's joint training, to measure its collapse")
    p.add_argument("--steps", type=int, default=None,
                   help="scale the preset's phases to this many optimizer steps in total (for fast experiments)")
    p.add_argument("--init", type=Path, default=None,
                   help="continue from this checkpoint (its model config and codebook are kept; "
                        "the autoencoder phase and k-means init are skipped)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate of the VQ phase (default: preset's)")
    p.add_argument("--int8-steps", type=int, default=None,
                   help="steps of the int8-robustness fine-tune (default: preset's; applied after --steps)")
    p.add_argument("--num-tokens", type=int, default=None,
                   help="tokens per pose M of a fresh model (default: preset's); bits per pose are M * log2 V")
    p.add_argument("--num-codes", type=int, default=None,
                   help="codes per codebook V of a fresh model (default: preset's)")
    p.add_argument("--code-dim", type=int, default=None,
                   help="code dimension D of a fresh model (default: preset's); V and M stay, so bits per pose stay")
    p.add_argument("--fourier-bands", type=int, default=None,
                   help="sine/cosine bands of the keypoint embedding, for a fresh model (default: preset's)")
    p.add_argument("--codebook", choices=("per-token", "shared"), default=None,
                   help="codebooks of a fresh model (default: preset's): one per token position, "
                        "or one shared by all tokens (the seed article's)")
    p.add_argument("--ema-start-count", type=float, default=None, metavar="C",
                   help="EMA counts of a fresh random codebook (default: 1, the joint schedule's 0 as the seed "
                        "article starts; the staged schedule's k-means init sets its own)")
    p.add_argument("--eval-poses", type=int, default=None, metavar="N",
                   help="metrics.json scores the first N poses of each fixed evaluation set (default all 10,000)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str], prog: str) -> int:
    args = build_parser(prog).parse_args(argv)
    import torch

    from .checkpoint import CHECKPOINT_NAME, save_checkpoint
    from .metrics import evaluate

    if refuse_out_of_range(prog, [("--threads", args.threads, ">=", 1, ""), ("--lr", args.lr, ">", 0, ""),
                                  ("--steps", args.steps, ">=", 1, ""), ("--int8-steps", args.int8_steps, ">=", 0, ""),
                                  ("--ema-start-count", args.ema_start_count, ">=", 0, ""),
                                  ("--eval-poses", args.eval_poses, ">=", 1, "")]):
        return 2
    if refuse_unwritable(prog, folders=[args.out]):
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model_cfg, cfg = preset(args.preset, args.schedule, args.seed)
    init_model, init_meta = None, None
    fresh_model_options = {  # flag -> (TokenizerConfig field, value)
        "--num-tokens": ("num_tokens", args.num_tokens),
        "--num-codes": ("num_codes", args.num_codes),
        "--code-dim": ("code_dim", args.code_dim),
        "--fourier-bands": ("fourier_bands", args.fourier_bands),
        "--codebook": ("codebook_per_token", None if args.codebook is None else args.codebook == "per-token"),
    }
    for flag, (field, value) in fresh_model_options.items():
        if value is None:
            continue
        if args.init is not None:
            return refuse(prog, f"{flag} applies to a fresh model, not with --init")
        try:
            model_cfg = replace(model_cfg, **{field: value})
        except ValueError as exc:
            return refuse(prog, f"{flag}: {exc}")
    if args.init is not None:
        from .checkpoint import load_checkpoint
        try:
            init_model, init_meta = load_checkpoint(args.init)
        except (FileNotFoundError, ValueError) as exc:
            return refuse(prog, f"--init: {exc}")
        model_cfg = init_model.config
        cfg = replace(cfg, autoencoder_steps=0)
    if args.lr is not None:
        cfg = replace(cfg, lr=args.lr)
    if args.steps is not None:
        cfg = scale_steps(cfg, args.steps)
    if args.int8_steps is not None:
        cfg = replace(cfg, robust_steps=args.int8_steps)
    if args.ema_start_count is not None:
        cfg = replace(cfg, ema_start_count=args.ema_start_count)

    from tqdm import tqdm
    bar = tqdm(total=cfg.total_steps, file=sys.stderr, disable=args.no_progress, unit="step",
               desc=f"train {args.preset}/{args.schedule}")

    def progress(step: int, stats: dict) -> None:
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(phase=stats["phase"], recon_px=f"{stats['recon_px']:.3f}", refresh=False)

    out: Path = args.out

    def on_phase_end(phase: str, model) -> None:
        # kept so int8 robustness can be compared before/after the fine-tune
        if phase == "vq" and cfg.robust_steps > 0:
            save_checkpoint(out / PRE_INT8_NAME, model, {"command": "posetok train " + shlex.join(argv),
                                                         "phase": phase, "seed": args.seed})

    result = train(model_cfg, cfg, progress=progress, model=init_model, on_phase_end=on_phase_end)
    bar.close()
    print(f"{prog}: trained {cfg.total_steps} steps in {result.seconds:.0f} s; evaluating", file=sys.stderr)
    metrics = evaluate(result.model, eval_poses=args.eval_poses)
    command = "posetok train " + shlex.join(argv)
    meta = {
        "command": command,
        "preset": args.preset,
        "schedule": args.schedule,
        "seed": args.seed,
        "init": None if init_meta is None else {"path": str(args.init), "command": init_meta.get("command")},
        "data_seed": {"training_stream": [cfg.seed], "eval_seed": metrics["eval_seed"]},
        "jitter_px": cfg.jitter_px,
        "train_config": train_config_dict(cfg),
        "train_seconds": round(result.seconds, 1),
        "phases": result.phases,
        "metrics": metrics,
        "torch": str(torch.__version__),  # TorchVersion would not pass weights_only loading
        "machine": platform.machine(),
    }
    save_checkpoint(out / CHECKPOINT_NAME, result.model, meta)
    write_text_atomic(out / "metrics.json", json.dumps({**metrics, "train_seconds": meta["train_seconds"],
                                                        "phases": result.phases}, indent=2) + "\n")
    write_text_atomic(out / "history.json", json.dumps(result.history, indent=1) + "\n")
    print(json.dumps(metrics))
    print(f"{prog}: wrote {out / CHECKPOINT_NAME} and {out / 'metrics.json'}", file=sys.stderr)
    return 0


def scale_steps(cfg: TrainConfig, total: int) -> TrainConfig:
    """The preset's phase lengths scaled proportionally to ``total`` steps."""
    factor = total / cfg.total_steps
    ae = round(cfg.autoencoder_steps * factor)
    robust = round(cfg.robust_steps * factor)
    return replace(cfg, autoencoder_steps=ae, robust_steps=robust, vq_steps=max(1, total - ae - robust))
