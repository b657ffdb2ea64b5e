"""``posetok train-estimator``, ``posetok eval-estimator`` and ``posetok average-estimators``: the image -> pose
estimator (PCT stage 2).

The estimator checkpoint holds its own config and weights and the frozen
tokenizer it was trained against (config and weights), so it decodes with
exactly that tokenizer wherever it goes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
from pathlib import Path

from posetok.atomic import atomic_output, write_text_atomic

from .cli_checks import refuse, refuse_out_of_range, refuse_unwritable

DEFAULT_OUT = Path("out/estimator")
CHECKPOINT_NAME = "estimator.pt"
FORMAT = "posetok-estimator-checkpoint"
DEFAULT_ESTIMATOR_DIR = Path(__file__).resolve().parent / "models" / "estimator"


def save_estimator(path: Path, model, meta: dict) -> Path:
    """Write the estimator checkpoint atomically (temp file, then rename)."""
    import torch
    payload = {"format": FORMAT, "format_version": 1, "config": model.config.to_dict(),
               "tokenizer_config": model.tokenizer.config.to_dict(),
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
               "meta": dict(meta)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_estimator(path: str | os.PathLike | None = None):
    """(model, meta) from an estimator checkpoint (a file, or a folder holding estimator.pt; None: the shipped one).

    Raises:
        FileNotFoundError: no checkpoint there.
        ValueError: the file is not an estimator checkpoint.
    """
    import torch

    from .estimator import EstimatorConfig, PoseEstimatorModel
    from .model import TokenizerConfig, TokenizerModel
    p = Path(path) if path is not None else DEFAULT_ESTIMATOR_DIR
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise FileNotFoundError(f"no estimator checkpoint at {p} (train one with 'posetok train-estimator')")
    payload = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{p} is not a posetok estimator checkpoint")
    tokenizer = TokenizerModel(TokenizerConfig.from_dict(payload["tokenizer_config"]))
    model = PoseEstimatorModel(EstimatorConfig.from_dict(payload["config"]), tokenizer)
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload["meta"]


def held_out_and_user_path_metrics(model, n: int, shares: tuple[float, ...] = (), flip_test: bool = False,
                                   shift_test: bool = False) -> dict:
    """The figures every estimator command reports: the held-out frames (``evaluate_estimator``), then the
    user's path (``user_path_metrics``, on the CPU, where the runtime's kernel crops are made); ``flip_test``,
    ``shift_test``: of those keypoints."""
    from .estimator_eval import user_path_metrics
    from .estimator_train import evaluate_estimator
    return {**evaluate_estimator(model, n=n, flip_test=flip_test, shift_test=shift_test),
            **user_path_metrics(model.cpu(), n, shares, flip_test, shift_test)}


def scenes_metrics(model, n: int, scenes: str) -> dict:
    """The held-out figures of ``evaluate_estimator`` on the frames of ``scenes`` (their clean and occluded MPJPE,
    argmax MPJPE and token accuracy)."""
    from .estimator_train import evaluate_estimator
    result = evaluate_estimator(model, n=n, scenes=scenes)
    return {"scenes": scenes, "eval_frames": n,
            **{k: v for k, v in result.items() if k.endswith(("mpjpe_px", "token_accuracy"))}}


def _software() -> dict:
    """Where a checkpoint was made, for its metrics."""
    import torch
    return {"machine": platform.machine(), "torch": str(torch.__version__)}


def train_parser(prog: str) -> argparse.ArgumentParser:
    from . import frames
    from .estimator import HEADS
    from .estimator_train import COMPUTE_DTYPES, EstimatorTrainConfig
    d = EstimatorTrainConfig()
    p = argparse.ArgumentParser(prog=prog, description="Train the image -> pose estimator on rendered camera frames "
                                "against a frozen tokenizer (CUDA when present, else the CPU).")
    p.add_argument("--heads", default="tokens",
                   help=f"comma-separated, from {', '.join(HEADS)}: tokens is the PCT-style token classification "
                        "head, regression the 26-coordinate baseline; several train side by side on the same "
                        "frames. The first is written to OUT/estimator.pt, the others to OUT/HEAD/estimator.pt "
                        "(default: tokens)")
    p.add_argument("--tokenizer", type=Path, default=None, help="tokenizer checkpoint (default: the shipped one)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--min-lr-ratio", type=float, default=d.min_lr_ratio,
                   help="the learning rate's cosine decay ends at lr times this; 1 keeps it constant after the "
                        f"warm-up (default: {d.min_lr_ratio:g})")
    p.add_argument("--average-from", type=int, default=None, metavar="STEP",
                   help="keep the mean of the weights after step STEP and after every --average-every steps "
                        "from there (stochastic weight averaging), instead of the last step's; batch-norm "
                        "statistics are averaged alike (default: off)")
    p.add_argument("--average-every", type=int, default=d.average_every, metavar="K",
                   help=f"steps between the weights averaged with --average-from (default: {d.average_every})")
    p.add_argument("--snapshot-every", type=int, default=None, metavar="K",
                   help="every K steps, write the weights so far (the mean so far once --average-from has begun) "
                        "to OUT's checkpoint, without metrics, so a run stopped early keeps its training; the "
                        "end of the run overwrites it (default: off)")
    p.add_argument("--keypoint-weight", type=float, default=d.keypoint_weight,
                   help="weight of the tokens head's keypoint L1 (per pixel) against its cross-entropy to the "
                        "tokenizer's ids (nats); the regression head's only loss is the L1, so its training does not "
                        f"change (default: {d.keypoint_weight:g})")
    p.add_argument("--workers", type=int, default=None,
                   help="frame-making processes (default: CPU cores - 1, at least 1; 0: make frames in the "
                        "training process, one fresh batch per step, deterministic)")
    p.add_argument("--buffer-frames", type=int, default=d.buffer_frames, help="replay buffer of recent frames")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the training process")
    p.add_argument("--precision", choices=tuple(COMPUTE_DTYPES), default=d.precision,
                   help="arithmetic of the backbone and head in training: bf16 computes them under bfloat16 "
                        "autocast (faster steps where the CPU has bfloat16 dot products, AVX512-BF16 or AMX, and "
                        "on GPUs); weights, the frozen decoder, the losses and every exported graph stay float32 "
                        "(default: fp32)")
    p.add_argument("--scenes", choices=frames.SCENES, default=d.scenes,
                   help="the frames to train on: camera, what a camera brings (backdrops, clutter, thin and "
                        "hard-edged limbs, blur, noise); plain, the frames nearest the calibration trial's (upright "
                        "poses, plain backdrops, limbs of 0.5 px half-width or more, little blur and noise). A "
                        "plain run is evaluated on the camera scenes and, in plain_scenes, on plain ones "
                        f"(default: {d.scenes})")
    p.add_argument("--eval-frames", type=int, default=None, help="held-out frames per set (default: 2000)")
    p.add_argument("--seed", type=int, default=0,
                   help="training frames and initialization; continuing a run (--init), pick another seed so the "
                        "frames are new")
    p.add_argument("--init", type=Path, default=None,
                   help="continue from the checkpoints of an earlier run (its --out folder: each head from the "
                        "estimator.pt of that head found there); same tokenizer and configs. Heads it trained "
                        "that --heads leaves out keep their figures in metrics.json, marked carried_over")
    p.add_argument("--retarget", action="store_true",
                   help="with --init: the earlier run was trained against another tokenizer of the same token "
                        "shape (M tokens, V codes; a continued tokenizer, say); its backbone and head carry over "
                        "and this run trains them against --tokenizer")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--no-progress", action="store_true", help="print a line every 500 steps instead of every 50")
    return p


def train_main(argv: list[str], prog: str) -> int:
    args = train_parser(prog).parse_args(argv)
    import torch

    from . import frames
    from .checkpoint import load_checkpoint
    from .estimator import HEADS, EstimatorConfig
    from .estimator_train import EstimatorTrainConfig, train_config_dict, train_estimators

    if refuse_out_of_range(prog, [("--steps", args.steps, ">=", 1, ""), ("--batch-size", args.batch_size, ">=", 1, ""),
                                  ("--lr", args.lr, ">", 0, ""),
                                  ("--min-lr-ratio", args.min_lr_ratio, ">=", 0, ""),
                                  ("--average-from", args.average_from, ">=", 1, ""),
                                  ("--average-every", args.average_every, ">=", 1, ""),
                                  ("--snapshot-every", args.snapshot_every, ">=", 1, ""),
                                  ("--keypoint-weight", args.keypoint_weight, ">", 0, ""),
                                  ("--workers", args.workers, ">=", 0, ""),
                                  ("--buffer-frames", args.buffer_frames, ">=", args.batch_size, "--batch-size"),
                                  ("--threads", args.threads, ">=", 1, ""),
                                  ("--eval-frames", args.eval_frames, ">=", 1, "")]):
        return 2
    if args.average_from is not None and args.average_from > args.steps:
        return refuse(prog, f"--average-from must be <= --steps ({args.steps}), got {args.average_from}")
    cuda = args.device == "cuda" or args.device.startswith("cuda:")
    if args.device not in ("auto", "cpu") and not (cuda and torch.cuda.is_available()):
        return refuse(prog, f"--device must be auto, cpu or cuda, and cuda needs a GPU torch can use "
                            f"(torch {torch.__version__}, cuda available: {torch.cuda.is_available()}), "
                            f"got {args.device!r}")
    if refuse_unwritable(prog, folders=[args.out]):
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    workers = args.workers if args.workers is not None else max(1, (os.cpu_count() or 2) - 1)
    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    unknown = [h for h in heads if h not in HEADS]
    if not heads or unknown or len(set(heads)) != len(heads):
        return refuse(prog, f"--heads must list distinct heads from {', '.join(HEADS)}, got {args.heads!r}")
    try:
        tokenizer, tok_meta = load_checkpoint(args.tokenizer)
    except (FileNotFoundError, ValueError) as exc:
        return refuse(prog, f"--tokenizer: {exc}")
    cfgs = [EstimatorConfig(head=h, num_tokens=tokenizer.config.num_tokens, num_codes=tokenizer.config.num_codes)
            for h in heads]
    tcfg = EstimatorTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                min_lr_ratio=args.min_lr_ratio, keypoint_weight=args.keypoint_weight,
                                workers=workers, buffer_frames=args.buffer_frames, seed=args.seed, device=device,
                                precision=args.precision, average_from=args.average_from,
                                average_every=args.average_every, snapshot_every=args.snapshot_every,
                                scenes=args.scenes)
    every = 500 if args.no_progress else 50

    def progress(step: int, row: dict) -> None:
        if step % every == 0 or step == tcfg.steps - 1:
            extra = f" ce {row['ce']:.3f} token acc {row['token_acc']:.3f}" if "ce" in row else ""
            print(f"[{prog}] {row['head']:10s} step {step + 1}/{tcfg.steps} l1 {row['l1_px']:.3f} px{extra} "
                  f"frames made {row['frames']} {row['seconds']:.0f} s", flush=True)

    if args.retarget and args.init is None:
        return refuse(prog, "--retarget applies with --init")
    try:
        earlier = _earlier_run(args.init, heads, tokenizer, args.retarget) if args.init is not None else {}
    except (FileNotFoundError, ValueError) as exc:
        return refuse(prog, f"--init: {exc}")
    print(f"[{prog}] heads {', '.join(heads)}: {tcfg.steps} steps x {tcfg.batch_size} frames on {device} "
          f"({tcfg.precision}), {tcfg.scenes} scenes, "
          f"{workers} frame worker(s)" + (f", continuing from {args.init}" if earlier else ""), flush=True)
    command = "posetok " + prog.split()[-1] + " " + shlex.join(argv)
    paths = {head: (args.out if head == heads[0] else args.out / head) / CHECKPOINT_NAME for head in heads}
    run_meta = {"command": command, "train": train_config_dict(tcfg), "tokenizer": str(args.tokenizer or "default"),
                "tokenizer_command": tok_meta.get("command")}

    def snapshot(count: int, weights: dict, averaged: int) -> None:
        for head in heads:
            save_estimator(paths[head], weights[head],
                           {**run_meta, "snapshot": {"after_step": count, "weights_averaged": averaged}})
        print(f"[{prog}] step {count}: wrote the weights so far to {args.out}" +
              (f" (the mean of {averaged} points)" if averaged else ""), flush=True)

    models, history = train_estimators(cfgs, tcfg, tokenizer, progress,
                                       init={h: model for h, (model, _) in earlier.items()}, snapshot=snapshot)
    if history["weights_averaged"]:
        print(f"[{prog}] the weights written are the mean of {history['weights_averaged']} points from step "
              f"{tcfg.average_from} on, every {tcfg.average_every} steps", flush=True)
    shared = {"train_seconds": round(history["train_seconds"], 1), "frames_made": history["frames_made"],
              "frames_seen": history["frames_seen"], "weights_averaged": history["weights_averaged"],
              "device": device, **_software()}
    metas = {head: {**run_meta, "history": history[head]} for head in heads}
    for head in heads:              # the weights first, without metrics: an evaluation that fails loses no training
        save_estimator(paths[head], models[head], metas[head])
    results = {}
    for head in heads:
        print(f"[{prog}] evaluating the {head} head on the held-out frames", flush=True)
        n = args.eval_frames or frames.EVAL_FRAMES
        results[head] = {**held_out_and_user_path_metrics(models[head], n), **shared}
        if tcfg.scenes != "camera":
            results[head][f"{tcfg.scenes}_scenes"] = scenes_metrics(models[head], n, tcfg.scenes)
        if earlier:
            results[head].update(_continued(earlier[head][1].get("metrics", {}), shared))
            results[head]["continued_from"]["tokenizer_command"] = earlier[head][1].get("tokenizer_command")
        save_estimator(paths[head], models[head].cpu(), {**metas[head], "metrics": results[head]})
        print(f"[{prog}] wrote {paths[head]}")
    carried = _untrained_heads(args.init, heads) if earlier else {}
    metrics = {**results[heads[0]], "baselines": {**carried, **{h: results[h] for h in heads[1:]}}}
    write_text_atomic(args.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    return 0


def _continued(earlier: dict, this_run: dict) -> dict:
    """What a continued run adds to its metrics: the earlier run's figures and the whole training's totals (None
    after a weight average, which records none: its sources share their earlier runs)."""
    out = {"continued_from": {k: earlier.get(k) for k in ("train_seconds", "frames_made", "frames_seen",
                                                          "mpjpe_px", "occluded_mpjpe_px")}}
    for key in ("train_seconds", "frames_made", "frames_seen"):
        before = earlier.get(f"total_{key}", earlier.get(key))
        if before is None:
            out[f"total_{key}"] = None
        else:
            total = this_run[key] + before
            out[f"total_{key}"] = round(total, 1) if key == "train_seconds" else int(total)
    return out


CARRIED_OVER = "not trained in this run: the figures of the --init run's metrics.json"


def _untrained_heads(folder: Path, heads: list[str]) -> dict[str, dict]:
    """The figures of heads the --init run trained and this run does not, marked ``carried_over``, so a run that
    continues only the shipped head keeps its baseline's figures beside it (a baseline whose weights were not
    kept cannot be evaluated again)."""
    path = folder / "metrics.json"
    if not path.is_file():
        return {}
    earlier = json.loads(path.read_text())
    per_head = {earlier.get("head"): {k: v for k, v in earlier.items() if k != "baselines"},
                **earlier.get("baselines", {})}
    return {h: {**m, "carried_over": m.get("carried_over", CARRIED_OVER)} for h, m in per_head.items()
            if h is not None and h not in heads}


def _earlier_run(folder: Path, heads: list[str], tokenizer, retarget: bool = False) -> dict[str, tuple]:
    """{head: (model, meta)} of an earlier run's --out folder (first head at the top, others in HEAD/), each
    checked to be trained against exactly ``tokenizer`` (with ``retarget``, against one of the same token shape)."""
    from .estimator import same_tokenizer
    found: dict[str, tuple] = {}
    for path in [folder / CHECKPOINT_NAME] + [folder / h / CHECKPOINT_NAME for h in heads]:
        if path.is_file():
            model, meta = load_estimator(path)
            found.setdefault(model.config.head, (model, meta))
    missing = [h for h in heads if h not in found]
    if missing:
        raise FileNotFoundError(f"no {', '.join(missing)} estimator checkpoint in {folder}")
    shape = (tokenizer.config.num_tokens, tokenizer.config.num_codes)
    for h in heads:
        theirs = found[h][0].tokenizer.config
        if retarget and (theirs.num_tokens, theirs.num_codes) != shape:
            raise ValueError(f"the {h} checkpoint in {folder} predicts {theirs.num_tokens} tokens of "
                             f"{theirs.num_codes} codes; this tokenizer has {shape[0]} of {shape[1]}")
        if not retarget and not same_tokenizer(found[h][0], tokenizer):
            raise ValueError(f"the {h} checkpoint in {folder} was trained against another tokenizer "
                             "(--retarget carries it over to this one)")
    return {h: found[h] for h in heads}


def average_main(argv: list[str], prog: str) -> int:
    p = argparse.ArgumentParser(prog=prog, description="Average the weights of estimator checkpoints (a model "
                                "soup: runs continued from the same weights), then evaluate the average like "
                                "train-estimator does and write it as a checkpoint with its metrics.json.")
    p.add_argument("checkpoints", nargs="+", type=Path,
                   help="two or more estimator checkpoints (files, or folders holding estimator.pt) of one config, "
                        "trained against one tokenizer")
    p.add_argument("--out", type=Path, required=True, help="output folder (estimator.pt, metrics.json)")
    p.add_argument("--eval-frames", type=int, default=None, help="held-out frames per set (default: 2000)")
    args = p.parse_args(argv)
    if len(args.checkpoints) < 2:
        return refuse(prog, f"averaging needs at least two checkpoints, got {len(args.checkpoints)}")
    if refuse_out_of_range(prog, [("--eval-frames", args.eval_frames, ">=", 1, "")]) or \
            refuse_unwritable(prog, folders=[args.out]):
        return 2
    from . import frames
    from .estimator_train import average_estimators
    loaded = []
    for path in args.checkpoints:
        try:
            loaded.append(load_estimator(path))
        except (FileNotFoundError, ValueError) as exc:
            return refuse(prog, str(exc))
    try:
        model = average_estimators([m for m, _ in loaded])
    except ValueError as exc:
        return refuse(prog, str(exc))
    sources = [{"checkpoint": str(path), "command": meta.get("command"),
                **{k: meta.get("metrics", {}).get(k) for k in ("mpjpe_px", "occluded_mpjpe_px", "total_train_seconds",
                                                               "total_frames_seen")}}
               for path, (_, meta) in zip(args.checkpoints, loaded)]
    n = args.eval_frames or frames.EVAL_FRAMES
    print(f"[{prog}] averaged {len(loaded)} {model.config.head} estimators; evaluating on the held-out frames",
          flush=True)
    results = {**held_out_and_user_path_metrics(model, n), "averaged_from": sources, **_software()}
    first = args.checkpoints[0]
    carried = _untrained_heads(first if first.is_dir() else first.parent, [model.config.head])
    command = "posetok " + prog.split()[-1] + " " + shlex.join(argv)
    meta = {"command": command, "tokenizer_command": loaded[0][1].get("tokenizer_command"), "metrics": results}
    path = save_estimator(args.out / CHECKPOINT_NAME, model, meta)
    write_text_atomic(args.out / "metrics.json", json.dumps({**results, "baselines": carried}, indent=2) + "\n")
    print(f"[{prog}] wrote {path}")
    print(json.dumps(results, indent=2))
    return 0


def eval_main(argv: list[str], prog: str) -> int:
    from . import frames
    p = argparse.ArgumentParser(prog=prog, description="Evaluate an estimator checkpoint on the held-out frames "
                                "(clean, and with two occluding boxes of 6-18 px), then as a user meets it: held-out "
                                "poses cropped around a person box, and frames of an independent renderer "
                                "(see posetok_converters.estimator_eval).")
    p.add_argument("checkpoint", nargs="?", type=Path, default=None, help="default: the shipped estimator")
    p.add_argument("--frames", type=int, default=None, help="held-out frames per set (default: 2000)")
    p.add_argument("--shares", default="",
                   help="comma-separated person-box shares of the crop to sweep (e.g. 0.35,0.42,0.5,0.58); the "
                        "errors go to person_box_share_sweep")
    p.add_argument("--breakdown", action="store_true",
                   help="instead of the headline figures, where the held-out error lies: its spread over frames, "
                        "per keypoint, left/right swaps, by pose (see posetok_converters.estimator_breakdown)")
    p.add_argument("--flip-test", action="store_true",
                   help="measure the flip-test keypoints (the runtime's EstimatorOptions.flip_test: the mean of the "
                        "frame's pass and its mirror image's)")
    p.add_argument("--shift-test", action="store_true",
                   help="measure the shift-test keypoints (the runtime's EstimatorOptions.shift_test: the mean of "
                        "the passes on the crop and on two crops moved by posetok.estimator.SHIFT_TEST_PX)")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                   help="with --breakdown: also draw it, with example frames, into this PNG")
    p.add_argument("--scenes", choices=frames.SCENES, default="camera",
                   help="the held-out frames' scenes: camera, the headline figures; plain, the frames nearest the "
                        "calibration trial's (see train-estimator --scenes), held-out figures alone "
                        "(default: camera)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.plot is not None and (not args.breakdown or args.plot.suffix.lower() != ".png"):
        return refuse(prog, f"--plot needs --breakdown and a .png file name, got {args.plot}")
    if refuse_out_of_range(prog, [("--frames", args.frames, ">=", 1, "")]) or \
            refuse_unwritable(prog, files=[args.plot]):
        return 2
    if args.breakdown and args.shares:
        return refuse(prog, "--shares sweeps the person-box path, which --breakdown does not run; give one of them")
    if args.scenes != "camera" and (args.breakdown or args.shares or args.flip_test or args.shift_test):
        return refuse(prog, f"--scenes {args.scenes} measures the held-out frames alone; --breakdown, --shares, "
                            "--flip-test and --shift-test run on the camera scenes")
    try:
        shares = tuple(float(v) for v in args.shares.split(",") if v.strip())
        if any(not 0 < v <= 1 for v in shares):
            raise ValueError
    except ValueError:
        return refuse(prog, f"--shares must be numbers in (0, 1], got {args.shares!r}")
    try:
        model, _ = load_estimator(args.checkpoint)
    except (FileNotFoundError, ValueError) as exc:
        return refuse(prog, str(exc))
    n = frames.EVAL_FRAMES if args.frames is None else args.frames
    if args.breakdown:
        return _print_breakdown(model, n, args.plot, args.json, args.flip_test, args.shift_test)
    if args.scenes != "camera":
        metrics = scenes_metrics(model, n, args.scenes)
    else:
        metrics = held_out_and_user_path_metrics(model, n, shares, args.flip_test, args.shift_test)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for key, value in metrics.items():
            print(f"{key:28s} {value:.4f}" if isinstance(value, float) else f"{key:28s} {value}")
        if "independent_mpjpe_px" in metrics:
            print(f"{'independent / clean':28s} {metrics['independent_mpjpe_px'] / metrics['mpjpe_px']:.2f}x")
    return 0


def _print_breakdown(model, n: int, plot: Path | None, as_json: bool, flip_test: bool, shift_test: bool) -> int:
    from .estimator_breakdown import breakdown, held_out_estimates, plot_breakdown
    sets = [held_out_estimates(model, kind, n, flip_test, shift_test) for kind in ("clean", "occluded")]
    result = {s.kind: {**breakdown(s), "flip_test": flip_test, "shift_test": shift_test} for s in sets}
    if plot is not None:
        plot_breakdown(sets, list(result.values()), plot)
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    for kind, f in result.items():
        print(f"{kind} ({f['frames']} frames): MPJPE {f['mpjpe_px']:.2f} px, median {f['median_px']:.2f}, "
              f"p90 {f['p90_px']:.2f}, p99 {f['p99_px']:.2f}")
        print(f"  frames over the gross-error line: {f['gross_frames']:.3f}, carrying {f['gross_error_share']:.3f} "
              f"of the error")
        print(f"  left/right swapped: {f['mirror_swapped_frames']:.3f} of frames; forgiven, MPJPE "
              f"{f['mpjpe_px_mirror_forgiven']:.2f} px")
        print("  per keypoint: " + ", ".join(f"{k} {v:.2f}" for k, v in f["per_keypoint_px"].items()))
        print(f"  keypoints beyond the camera's edge: {f['keypoints_outside_camera']:.3f}, error "
              f"{f['outside_camera_keypoint_px'] or 0:.2f} px (in the picture: {f['inside_camera_keypoint_px']:.2f})")
        groups = {key: f[key] for key in ("by_generator", "by_torso_tilt_deg", "by_shoulder_span", "by_camera_edge")}
        groups.update({f"render {factor}": bins for factor, bins in f.get("by_render", {}).items()})
        for key, bins in groups.items():
            parts = [f"{label} {b['mpjpe_px']:.2f} ({b['frames']})" for label, b in bins.items()
                     if b["mpjpe_px"] is not None]
            print(f"  {key}: " + ", ".join(parts))
        if "upright_easy_render" in f:
            easy = f["upright_easy_render"]
            print(f"  upright poses, easy render: {easy['mpjpe_px'] or 0:.2f} px ({easy['frames']} frames)")
    if plot is not None:
        print(f"wrote {plot}")
    return 0


STUDIES = ("shift-sweep", "video-margins", "partial-figures")


def study_main(argv: list[str], prog: str) -> int:
    p = argparse.ArgumentParser(prog=prog, description="The measurements behind the README's choices for the "
                                "runtime's estimator (see posetok_converters.estimator_studies): shift-sweep, the "
                                "shift test's error for each move (torch model); video-margins, how often video mode "
                                "searches again while tracking still figures, per box_scale; partial-figures, the "
                                "presence of crops around a figure and moved off it (both on a bundle).")
    p.add_argument("study", choices=STUDIES)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="shift-sweep: the estimator checkpoint (default: the shipped one)")
    p.add_argument("--bundle", type=Path, default=Path("build/bundle"),
                   help="video-margins and partial-figures: the bundle folder (default: build/bundle)")
    p.add_argument("--frames", type=int, default=None,
                   help="fresh frames (shift-sweep: 2000, partial-figures: 300) or, for video-margins, still "
                        "figures (200)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if refuse_out_of_range(prog, [("--frames", args.frames, ">=", 1, "")]):
        return 2
    from . import estimator_studies as studies
    count = {} if args.frames is None else {"figures" if args.study == "video-margins" else "n": args.frames}
    if args.study == "shift-sweep":
        try:
            model, _ = load_estimator(args.checkpoint)
        except (FileNotFoundError, ValueError) as exc:
            return refuse(prog, str(exc))
        progress = None if args.json else print
        result = studies.shift_sweep(model, progress=progress, **count)
    else:
        from posetok.errors import PosetokError
        run = studies.video_margin_searches if args.study == "video-margins" else studies.partial_figure_presence
        try:
            result = run(args.bundle, **count)
        except (PosetokError, OSError) as exc:
            return refuse(prog, str(exc))
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.study == "shift-sweep":
        print(f"{result['frames']} fresh frames: best move {result['best_shift_px']:g} model px "
              f"(the runtime's SHIFT_TEST_PX: {result['runtime_shift_px']:g})")
    elif args.study == "video-margins":
        for scale, searches in result["searches_again"].items():
            print(f"box_scale {scale}: searched again {searches} times in {result['tracked_frames']} tracked "
                  f"frames, {result['figures_searched_again'][scale]} of {result['figures']} still figures at "
                  "least once")
    else:
        for shift, row in result["by_shift"].items():
            print(f"crop moved by {shift} of its side: presence median {row['median']:.3f}, "
                  f"{row['kept']:.0%} at min_presence or more ({result['frames']} frames)")
    return 0
