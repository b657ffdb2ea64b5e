"""posetok bench: load, first-inference and steady-state latency of a bundle,
the figures onnxruntime_perf_test and LiteRT's benchmark_model report.

One iteration is a full round trip of one batch: encode keypoints to token
ids, then decode them back. Runs on the host and inside the emulated Python.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np

from . import backends
from .bundle import PRECISIONS
from .skeleton import FRAME_SIZE, NUM_KEYPOINTS
from .tokenizer import PoseTokenizer, TokenizerOptions


def percentile_us(samples_s: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(samples_s), q)) * 1e6, 1)


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


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
            "batch": batch,
            "num_threads": options.num_threads,
            "machine": platform.machine(),
            "emulated_cpu": os.environ.get("POSETOK_QEMU_CPU") if platform.machine() == "aarch64" else None,
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


def main(argv: list[str], prog: str = "posetok bench") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("bundle", help="bundle folder made by 'posetok export'")
    ap.add_argument("--backend", default="auto", choices=("auto",) + backends.BACKENDS)
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS)
    ap.add_argument("--batch", type=int, default=1, help="poses per inference (default 1)")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--num-threads", type=int, default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.iterations < 1 or args.warmup < 0:
        ap.error("--batch and --iterations must be >= 1 and --warmup >= 0")
    result = bench(args.bundle, TokenizerOptions(args.backend, args.precision, args.num_threads),
                   args.batch, args.iterations, args.warmup)
    if args.json:
        print(json.dumps(result))
    else:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    return 0
