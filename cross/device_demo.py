#!/usr/bin/env python3
"""The device half of ``make demo``; also a self-test to run on a real board.

    python cross/device_demo.py --bundle BUNDLE --frame frame.npz --out result.npz

A standalone script, not part of the wheel: it needs only the installed
``posetok`` runtime (numpy, onnxruntime and/or LiteRT), so copy this one file
to a board next to a bundle and a frame. ``make demo`` runs it inside the
emulated aarch64 Python against the wheel installed in build/device-site.

Frame -> pose: takes an NV21 camera frame of a figure and, with every runtime
and estimator precision the bundle and the device offer, runs
``PoseEstimator.estimate_nv21`` without a box (a coarse pass over the whole
frame, then a refined one) and with the known person box; decodes the
estimator's token ids with the tokenizer (what a receiver of the tokens
reconstructs) and times the pipeline per stage (``posetok bench --pipeline``).
The tokenizer's own round trip (keypoints -> tokens -> keypoints) runs on the
frame file's evaluation poses. With host results in the frame file it reports
token agreement with the host. Prints one JSON object; arrays go to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from posetok import backends, kernels
from posetok.atomic import atomic_output
from posetok.bench_cli import bench, pipeline_bench, pipeline_combos
from posetok.bundle import Bundle
from posetok.estimator import PoseEstimator
from posetok.skeleton import FRAME_SIZE, mpjpe_px
from posetok.tokenizer import PoseTokenizer, TokenizerOptions


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def to_frame(px64: np.ndarray, box) -> np.ndarray:
    """Model-frame pixels of a pass's box -> frame pixels."""
    return np.asarray(box[:2], np.float32) + np.asarray(px64, np.float32) * np.float32(box[2] / FRAME_SIZE)


def errors(keypoints: np.ndarray, truth: np.ndarray, true_side: int) -> dict:
    err = mpjpe_px(keypoints, truth)
    return {"mpjpe_frame_px": round(err, 3), "mpjpe_model_px": round(err * FRAME_SIZE / true_side, 3)}


def estimator_rows(bundle: str, frame, repeats: int) -> tuple[list, dict]:
    y, vu, box = frame["y"], frame["vu"], tuple(int(v) for v in frame["box"])
    truth = frame["truth_frame_px"]
    offered = Bundle.load(bundle, verify=False).offers()
    rows, arrays = [], {}
    for backend, precision in pipeline_combos(bundle):
        fmt = backends.FORMAT_OF_BACKEND[backend]
        tok_precision = precision if (fmt, precision) in offered else "fp32"
        row = {"backend": backend, "runtime": backends.runtime_version(backend), "precision": precision}
        with PoseEstimator.from_bundle(bundle, backend=backend, precision=precision, verify=False) as est, \
                PoseTokenizer.from_bundle(bundle, backend=backend, precision=tok_precision, verify=False) as tok:
            for mode, given in (("search", None), ("box", tuple(float(v) for v in frame["person_box"]))):
                pose = est.estimate_nv21(y, vu, box=given)
                from_tokens = to_frame(tok.decode(pose.token_ids[None])[0], pose.box)
                row[mode] = {"box": list(pose.box), "token_ids": pose.token_ids.tolist(),
                             "mean_score": round(float(pose.scores.mean()), 3),
                             **errors(pose.keypoints, truth, box[2]),
                             "from_tokens": errors(from_tokens, truth, box[2])}
                host = f"host_est_{backend}_{precision}_{mode}_ids"
                if host in frame.files:
                    row[mode]["tokens_equal_host"] = float((pose.token_ids == frame[host]).mean())
                arrays[f"{backend}_{precision}_{mode}_keypoints"] = pose.keypoints
        row["decoder_precision"] = tok_precision
        timing = pipeline_bench(bundle, backend, precision, frame=(y.shape[1], y.shape[0]), iterations=repeats,
                                warmup=1, num_threads=1)
        row["timing"] = {k: timing[k] for k in ("preprocess_p50_us", "estimator_p50_us", "decoder_p50_us",
                                                "total_p50_us", "search_p50_us", "load_ms", "peak_rss_mb")}
        rows.append(row)
    return rows, arrays


def tokenizer_rows(bundle: str, frame, truth64: np.ndarray) -> list:
    installed, offered, rows = backends.installed_backends(), Bundle.load(bundle, verify=False).offers(), []
    for backend in backends.BACKENDS:
        for precision in ("fp32", "int8"):
            if backend not in installed or (backends.FORMAT_OF_BACKEND[backend], precision) not in offered:
                continue
            options = TokenizerOptions(backend=backend, precision=precision, verify=False)
            with PoseTokenizer.from_bundle(bundle, options=options) as tok:
                ids = tok.encode(truth64)
                row = {"backend": backend, "runtime": backends.runtime_version(backend), "precision": precision,
                       "token_ids": ids.tolist(), "frame_pose_error_px": round(mpjpe_px(tok.decode(ids), truth64), 3)}
                key = f"host_ids_{backend}_{precision}"
                if key in frame.files:
                    poses = frame["eval_poses"]
                    device_ids = tok.encode(poses)
                    row["token_agreement_vs_host"] = float((device_ids == frame[key]).mean())
                    row["mpjpe_px"] = round(mpjpe_px(tok.decode(device_ids), poses), 4)
                    row["poses"] = int(poses.shape[0])
            # encode includes the decoder search: 33 decoder runs, seconds per pose under emulation
            timing = bench(bundle, options, batch=1, iterations=5, warmup=1)
            row.update({k: timing[k] for k in ("load_ms", "p50_us", "peak_rss_mb")})
            rows.append(row)
    return rows


def run(bundle: str, frame_path: str, repeats: int = 5) -> tuple[dict, dict]:
    frame = np.load(frame_path)
    y, vu, box = frame["y"], frame["vu"], tuple(int(v) for v in frame["box"])
    Bundle.load(bundle)  # verifies every file once; the runs below skip it
    spec = Bundle.load(bundle, verify=False).spec.estimator["input"]
    crop = lambda b, impl="auto": kernels.crop_nv21(y, vu, tuple(b), (FRAME_SIZE, FRAME_SIZE), mean=spec["mean"],
                                                    scale=spec["scale"], u8=True, impl=impl)
    (tensor, small), (tensor_ref, small_ref) = crop(box), crop(box, "ref")
    report = {
        "machine": platform.machine(),
        "emulated_cpu": os.environ.get("POSETOK_QEMU_CPU") if platform.machine() == "aarch64" else None,
        "kernels_isa": kernels.isa(),
        "frame": f"{y.shape[1]}x{y.shape[0]} NV21",
        "model_input": list(tensor.shape),
        "preprocess_bit_exact_vs_ref": bool(np.array_equal(tensor, tensor_ref) and np.array_equal(small, small_ref)),
        "preprocess_ms": round(median_ms(lambda: crop(box), repeats), 2),
        "preprocess_ref_ms": round(median_ms(lambda: crop(box, "ref"), repeats), 2),
    }
    report["estimator"], arrays = estimator_rows(bundle, frame, repeats)
    report["tokenizer"] = tokenizer_rows(bundle, frame, frame["truth_px64"])
    shown = report["estimator"][0]["search"]["box"]  # the picture's inset: the model input of the found box
    arrays.update({"rgb": kernels.nv21_to_rgb888(y, vu), "model_input_u8": crop(shown)[1]})
    return report, arrays


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="device_demo.py", description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True, help="a bundle with an estimator and a tokenizer")
    ap.add_argument("--frame", required=True,
                    help=".npz with y, vu, box, person_box, truth_frame_px, truth_px64 [, eval_poses, host_ids_*, "
                         "host_est_*]")
    ap.add_argument("--out", help="write the RGB frame, the model input and the estimated keypoints here (.npz)")
    ap.add_argument("--repeats", type=int, default=5, help="timed frames per measurement (median)")
    args = ap.parse_args(argv)
    report, arrays = run(args.bundle, args.frame, args.repeats)
    if args.out:
        with atomic_output(args.out) as tmp:
            np.savez(tmp, **arrays)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
