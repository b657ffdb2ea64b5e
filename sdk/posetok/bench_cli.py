"""posetok bench: load, first-inference and steady-state latency of a bundle,
the figures onnxruntime_perf_test and LiteRT's benchmark_model report.

Tokenizer mode (default): one iteration is a full round trip of one batch:
encode keypoints to token ids, then decode them back.

Pipeline mode (``--pipeline``): one iteration is one camera frame through the
whole frame -> pose path, timed per stage: pre-processing (the one-pass
``crop_nv21`` kernel: the person box of an NV21 frame -> the normalized
3x64x64 input), the estimator graph (keypoints, scores and token ids), and
the tokenizer's decoder (token ids -> keypoints, what a receiver of the
tokens runs); ``total`` is their sum per frame. ``search`` times a frame
without a box (``estimate_nv21``: a coarse pass over the whole frame, then a
refined pass), ``flip test`` and ``shift test`` a frame with a box and
``EstimatorOptions.flip_test`` (the crop and its mirror image in one call)
or ``EstimatorOptions.shift_test`` (the crop and two moved crops).
One row per runtime and estimator precision the bundle and the machine
offer. Runs on the host and inside the emulated Python.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import time
from typing import Optional

import numpy as np

from . import backends
from .bundle import PRECISIONS, Bundle, BundleError
from .cli import refuse
from .errors import PosetokError
from .kernels.crop import MAX_BOX_PX
from .skeleton import FRAME_SIZE, NUM_KEYPOINTS
from .tokenizer import PoseTokenizer, TokenizerOptions

PIPELINE_STAGES = ("preprocess", "estimator", "decoder", "total")


def percentile_us(samples_s: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(samples_s), q)) * 1e6, 1)


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def machine_info() -> dict:
    """Where a benchmark ran: the machine and, under QEMU, the emulated CPU."""
    return {"machine": platform.machine(),
            "emulated_cpu": os.environ.get("POSETOK_QEMU_CPU") if platform.machine() == "aarch64" else None}


def bench(bundle: str, options: TokenizerOptions, batch: int, iterations: int, warmup: int, seed: int = 0) -> dict:
    # Any in-frame poses will do for timing; the graphs' cost does not depend on the values.
    poses = np.random.default_rng(seed).uniform(8, FRAME_SIZE - 8, size=(batch, NUM_KEYPOINTS, 2)).astype(np.float32)
    t0 = time.perf_counter()
    tok = PoseTokenizer.from_bundle(bundle, options=options)
    load_s = time.perf_counter() - t0
    with tok:
        t0 = time.perf_counter()
        tok.roundtrip(poses)
        first_s = time.perf_counter() - t0
        for _ in range(warmup):
            tok.roundtrip(poses)
        encode_s, decode_s, total_s = [], [], []
        for _ in range(iterations):
            t0 = time.perf_counter()
            ids = tok.encode(poses)
            t1 = time.perf_counter()
            tok.decode(ids)
            t2 = time.perf_counter()
            encode_s.append(t1 - t0)
            decode_s.append(t2 - t1)
            total_s.append(t2 - t0)
        return {
            "backend": tok.backend,
            "runtime": backends.runtime_version(tok.backend),
            "precision": tok.precision,
            "search_sweeps": tok.search_sweeps,
            "batch": batch,
            "num_threads": options.num_threads,
            **machine_info(),
            "iterations": iterations,
            "load_ms": round(load_s * 1e3, 2),
            "first_inference_ms": round(first_s * 1e3, 2),
            "p50_us": percentile_us(total_s, 50),
            "p90_us": percentile_us(total_s, 90),
            "p99_us": percentile_us(total_s, 99),
            "encode_p50_us": percentile_us(encode_s, 50),
            "decode_p50_us": percentile_us(decode_s, 50),
            "throughput_per_s": round(batch * len(total_s) / sum(total_s), 1),
            "peak_rss_mb": peak_rss_mb(),
        }


def pipeline_frame(width: int, height: int, seed: int = 0) -> tuple:
    """A synthetic NV21 camera frame and its person box, for timing.

    The kernel's and the graphs' cost does not depend on the pixel values, so
    the planes are random; the box is the crop: the centred square of side 14/15
    of the frame's height, the box ``posetok kernels-bench`` measures
    ``crop_nv21_c3`` on (``PoseEstimator`` gets the person box whose crop it is).

    Args:
        width, height: the frame size in pixels, even, at least 16.
        seed: the random planes' seed.

    Returns:
        ``(y uint8 (H, W), vu uint8 (H/2, W/2, 2), box (x, y, side, side))``.

    Raises:
        ValueError: an odd size, or one under 16 or over ``MAX_BOX_PX`` pixels on a side.
    """
    check_frame_size(width, height)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 256, (height, width), dtype=np.uint8)
    vu = rng.integers(0, 256, (height // 2, width // 2, 2), dtype=np.uint8)
    side = min(width, height) * 14 // 15
    return y, vu, ((width - side) // 2, (height - side) // 2, side, side)


def check_frame_size(width: int, height: int) -> None:
    """Refuse a pipeline frame size the estimator would refuse, before any plane is made.

    Args:
        width, height: the frame size in pixels.

    Raises:
        ValueError: an odd size, or one under 16 or over ``MAX_BOX_PX`` pixels on a side (named).
    """
    if width % 2 or height % 2 or min(width, height) < 16 or max(width, height) > MAX_BOX_PX:
        raise ValueError(f"frame must be even, at least 16x16 and at most {MAX_BOX_PX} pixels on a side (an NV21 "
                         f"frame), got {width}x{height}")


def pipeline_combos(bundle: str, backend: str = "auto", precision: Optional[str] = None) -> list[tuple[str, str]]:
    """The (backend, precision) pairs of the bundle's estimator that this machine can run.

    Args:
        bundle: the bundle folder.
        backend: ``"auto"`` (every installed runtime) or one backend.
        precision: one precision, or None for every one the bundle has.

    Returns:
        ``(backend, precision)`` pairs, in ``backends.BACKENDS`` then ``PRECISIONS`` order.

    Raises:
        BundleError: no bundle, no estimator in it, or none of the files asked for
            with an installed runtime (the message lists what there is).
    """
    have = {(a.format, a.precision) for a in Bundle.load(bundle, verify=False).artifacts if a.role == "estimator"}
    if not have:
        raise BundleError(f"bundle {bundle} has no estimator; --pipeline needs one (posetok export adds it)")
    installed = backends.installed_backends()
    combos = [(b, p) for b in backends.BACKENDS if b in installed and backend in ("auto", b)
              for p in PRECISIONS if (backends.FORMAT_OF_BACKEND[b], p) in have and precision in (None, p)]
    if not combos:
        listing = ", ".join(f"{f}/{p}" for f, p in sorted(have))
        raise BundleError(f"bundle {bundle}: no estimator file for backend {backend!r}, precision "
                          f"{precision or 'any'} with the installed runtimes ({', '.join(installed) or 'none'}); "
                          f"its estimator files are {listing}")
    return combos


def pipeline_bench(bundle: str, backend: str, precision: str, frame: tuple = (640, 480), iterations: int = 50,
                   warmup: int = 5, num_threads: Optional[int] = None, seed: int = 0, test_time: bool = False) -> dict:
    """Time the frame -> pose pipeline of one estimator file, stage by stage.

    Args:
        bundle: the bundle folder (with an estimator).
        backend: ``"onnxruntime"`` or ``"litert"``.
        precision: the estimator file's precision.
        frame: ``(width, height)`` of the NV21 frame.
        iterations: timed frames; warmup: untimed frames before them.
        num_threads: threads per session; None: the runtime's default.
        seed: the synthetic frame's seed.
        test_time: also time a frame with the box and the flip test, and one
            with the shift test (an estimator each on the same files;
            ``posetok bench`` does).

    Returns:
        One row: the runtime, files and machine, ``load_ms``, ``first_frame_ms``,
        ``<stage>_p50_us`` for each of ``PIPELINE_STAGES`` (``decoder`` None when
        the bundle has no tokenizer decoder of that format and precision),
        ``total_p90_us``, ``search_p50_us`` (no box: coarse + refine),
        ``flip_test_p50_us`` and ``shift_test_p50_us`` (``estimate_nv21`` with
        the box and that option; None unless ``test_time``),
        ``frames_per_s`` (1 / total p50) and ``peak_rss_mb``.

    Raises:
        ValueError: a bad frame size.
        BundleError, BackendUnavailable: as ``PoseEstimator.from_bundle``.
    """
    from . import kernels
    from .estimator import PoseEstimator

    y, vu, box = pipeline_frame(*frame, seed=seed)
    t0 = time.perf_counter()
    est = PoseEstimator.from_bundle(bundle, backend=backend, precision=precision, num_threads=num_threads)
    load_s = time.perf_counter() - t0
    tok = None
    if (est.format, precision) in est.bundle.offers():
        tok = PoseTokenizer.from_bundle(bundle, backend=backend, precision=precision, num_threads=num_threads,
                                        verify=False)
    # the stages PoseEstimator.estimate_nv21(box=...) runs, called one by one to time each
    mean, scale = est._mean, est._scale

    def one_frame() -> tuple:
        t0 = time.perf_counter()
        tensor = kernels.crop_nv21(y, vu, box, (FRAME_SIZE, FRAME_SIZE), mean=mean, scale=scale)
        t1 = time.perf_counter()
        ids = est._runner.run_outputs(tensor[None])["token_ids"]
        t2 = time.perf_counter()
        if tok is not None:
            tok.decode(np.asarray(ids).reshape(1, -1))
        return t1 - t0, t2 - t1, time.perf_counter() - t2

    share = est.figure_share          # the person box whose crop is ``box``
    person = (box[0] + box[2] * (1 - share) / 2, box[1] + box[3] * (1 - share) / 2, box[2] * share, box[3] * share)
    try:
        t0 = time.perf_counter()
        est.estimate_nv21(y, vu, box=person)
        first_s = time.perf_counter() - t0
        for _ in range(warmup):
            one_frame()
        stages = np.array([one_frame() for _ in range(iterations)])            # [iterations, 3]
        search_s = timed(lambda: est.estimate_nv21(y, vu), iterations)
        test_time_s = {}
        for option in ("flip_test", "shift_test") if test_time else ():
            with PoseEstimator(est.bundle, dataclasses.replace(est.options, **{option: True})) as viewing:
                test_time_s[option] = timed(lambda: viewing.estimate_nv21(y, vu, box=person), iterations, warmup)
        row = {"backend": est.backend, "runtime": backends.runtime_version(est.backend), "precision": precision,
               "files": est.files + (tok.files["decoder"] if tok is not None else []), **machine_info(),
               "frame": f"{frame[0]}x{frame[1]} NV21", "box": list(box), "iterations": iterations,
               "load_ms": round(load_s * 1e3, 2), "first_frame_ms": round(first_s * 1e3, 2)}
    finally:
        est.close()
        if tok is not None:
            tok.close()
    totals = stages.sum(axis=1)
    for name, samples in zip(PIPELINE_STAGES, (stages[:, 0], stages[:, 1], stages[:, 2], totals)):
        row[f"{name}_p50_us"] = percentile_us(list(samples), 50)
    if tok is None:
        row["decoder_p50_us"] = None
    row.update({"total_p90_us": percentile_us(list(totals), 90), "search_p50_us": percentile_us(search_s, 50),
                **{f"{option}_p50_us": percentile_us(test_time_s[option], 50) if option in test_time_s else None
                   for option in ("flip_test", "shift_test")},
                "frames_per_s": round(1.0 / float(np.median(totals)), 1), "peak_rss_mb": peak_rss_mb()})
    return row


def timed(call, iterations: int, warmup: int = 0) -> list[float]:
    """Seconds per call of ``call()`` over ``iterations`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return samples


def frame_size(text: str) -> tuple:
    """``"640x480"`` -> ``(640, 480)`` (argparse type)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--frame must be WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from None
    return w, h


def print_pipeline(result: dict) -> None:
    from .info_cli import table
    fmt = lambda us: "-" if us is None else f"{us / 1000:.2f}"
    print(f"frame -> pose on {result['machine']}" + (f" (QEMU -cpu {result['emulated_cpu']})"
                                                      if result["emulated_cpu"] else "") +
          f", {result['frame']}, box {result['box']}, p50 ms per frame")
    rows = [[r["runtime"], r["precision"], *(fmt(r[f"{s}_p50_us"]) for s in PIPELINE_STAGES),
             fmt(r["search_p50_us"]), fmt(r["flip_test_p50_us"]), fmt(r["shift_test_p50_us"]),
             f"{r['frames_per_s']:.1f}"] for r in result["rows"]]
    for line in table(["runtime", "precision", "pre-process", "estimator", "decoder", "total", "no box",
                       "flip test", "shift test", "frames/s"], rows, right=set(range(2, 10))):
        print(line)


def main(argv: list[str], prog: str = "posetok bench") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("bundle", help="bundle folder made by 'posetok export'")
    ap.add_argument("--backend", default="auto", choices=("auto",) + backends.BACKENDS)
    ap.add_argument("--precision", default=None, choices=PRECISIONS,
                    help="default: fp32 (tokenizer), every estimator precision in the bundle (--pipeline)")
    ap.add_argument("--pipeline", action="store_true",
                    help="time the frame -> pose pipeline (pre-processing, estimator, decoder) per frame")
    ap.add_argument("--frame", type=frame_size, default=(640, 480), help="--pipeline: NV21 frame size (640x480)")
    ap.add_argument("--batch", type=int, default=1, help="tokenizer: poses per inference (default 1)")
    ap.add_argument("--iterations", type=int, default=None, help="timed iterations (200; --pipeline: 50)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed iterations first (10; --pipeline: 5)")
    ap.add_argument("--num-threads", type=int, default=None)
    ap.add_argument("--no-search", action="store_true",
                    help="tokenizer: time the encoder graph alone, without the bundle's encoder-side search")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    iterations = args.iterations if args.iterations is not None else (50 if args.pipeline else 200)
    warmup = args.warmup if args.warmup is not None else (5 if args.pipeline else 10)
    if args.batch < 1 or iterations < 1 or warmup < 0:
        ap.error("--batch and --iterations must be >= 1 and --warmup >= 0")
    if args.pipeline:
        try:
            check_frame_size(*args.frame)
        except ValueError as e:
            ap.error(str(e))
    try:
        if args.pipeline:
            rows = [pipeline_bench(args.bundle, b, p, args.frame, iterations, warmup, args.num_threads,
                                   test_time=True)
                    for b, p in pipeline_combos(args.bundle, args.backend, args.precision)]
            result = {"mode": "pipeline", **machine_info(), "frame": rows[0]["frame"], "box": rows[0]["box"],
                      "stages": list(PIPELINE_STAGES), "rows": rows}
        else:
            options = TokenizerOptions(args.backend, args.precision or "fp32", args.num_threads,
                                       search=not args.no_search)
            result = bench(args.bundle, options, args.batch, iterations, warmup)
    except (PosetokError, ValueError, OSError) as exc:    # a bundle, option or runtime the user named
        return refuse(prog, str(exc))
    if args.json:
        print(json.dumps(result))
    elif args.pipeline:
        print_pipeline(result)
    else:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    return 0
