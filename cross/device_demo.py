#!/usr/bin/env python3
"""The device half of ``make demo``; also a self-test to run on a real board.

    python cross/device_demo.py --bundle BUNDLE --frame frame.npz --out result.npz

A standalone script, not part of the wheel: it needs only the installed
``posetok`` runtime (numpy, onnxruntime and/or LiteRT), so copy this one file
to a board next to a bundle and a frame. ``make demo`` runs it inside the
emulated aarch64 Python against the wheel installed in build/device-site.

Takes an NV21 camera frame, runs the pre-processing kernels to a normalized
model-input tensor (blur the luma, NV21 -> RGB, crop, resize, normalize),
then encodes the figure's keypoints to tokens and decodes them with every
runtime and precision the bundle and the device offer. With a frame file
that carries host results (poses and host token ids) it also reports token
agreement with the host. Prints one JSON object; arrays go to --out.
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
from posetok.bench_cli import bench
from posetok.skeleton import mpjpe_px
from posetok.tokenizer import PoseTokenizer, TokenizerOptions

# ImageNet-style per-channel statistics, the usual input of a pose detector.
MEAN_RGB = (123.675, 116.28, 103.53)
SCALE_RGB = (1 / 58.395, 1 / 57.12, 1 / 57.375)
MODEL_INPUT = 64  # px, the tokenizer's frame


def preprocess(y: np.ndarray, vu: np.ndarray, crop: tuple[int, int, int], impl: str = "auto") -> dict:
    """crop = (x0, y0, side): the square around the person in frame pixels."""
    x0, y0, side = crop
    luma = kernels.gaussian3x3(y, impl=impl)                     # denoise before colour conversion
    rgb = kernels.nv21_to_rgb888(luma, vu, impl=impl)            # BT.601 video range
    person = rgb[y0:y0 + side, x0:x0 + side]                     # a strided view: no copy
    small = kernels.resize_bilinear(person, (MODEL_INPUT, MODEL_INPUT), impl=impl)
    tensor = kernels.normalize(small, MEAN_RGB, SCALE_RGB, impl=impl)
    return {"rgb": rgb, "model_input_u8": small, "model_input": tensor}


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def run(bundle: str, frame_path: str, repeats: int = 5) -> tuple[dict, dict]:
    frame = np.load(frame_path)
    crop = tuple(int(v) for v in frame["crop"])
    y, vu = frame["y"], frame["vu"]
    pre = preprocess(y, vu, crop)
    pre_ref = preprocess(y, vu, crop, impl="ref")
    report = {
        "machine": platform.machine(),
        "emulated_cpu": os.environ.get("POSETOK_QEMU_CPU") if platform.machine() == "aarch64" else None,
        "kernels_isa": kernels.isa(),
        "frame": f"{y.shape[1]}x{y.shape[0]} NV21",
        "model_input": list(pre["model_input"].shape),
        "preprocess_bit_exact_vs_ref": bool(np.array_equal(pre["rgb"], pre_ref["rgb"]) and
                                            np.array_equal(pre["model_input_u8"], pre_ref["model_input_u8"])),
        "preprocess_ms": round(median_ms(lambda: preprocess(y, vu, crop), repeats), 2),
        "preprocess_ref_ms": round(median_ms(lambda: preprocess(y, vu, crop, impl="ref"), repeats), 2),
        "tokenizer": [],
    }
    arrays = {"rgb": pre["rgb"], "model_input_u8": pre["model_input_u8"]}
    truth = frame["keypoints_px"]
    installed = backends.installed_backends()
    probe = PoseTokenizer.from_bundle(bundle)  # verifies every file once
    offered = probe.bundle.offers()
    probe.close()
    for backend in backends.BACKENDS:
        fmt = backends.FORMAT_OF_BACKEND[backend]
        for precision in ("fp32", "int8"):
            if backend not in installed or (fmt, precision) not in offered:
                continue
            options = TokenizerOptions(backend=backend, precision=precision, verify=False)
            with PoseTokenizer.from_bundle(bundle, options=options) as tok:
                ids = tok.encode(truth)
                decoded = tok.decode(ids)
                row = {"backend": backend, "runtime": backends.runtime_version(backend), "precision": precision,
                       "files": tok.files, "token_ids": ids.tolist(),
                       "frame_pose_error_px": round(mpjpe_px(decoded, truth), 3)}
                key = f"host_ids_{backend}_{precision}"
                if key in frame.files:
                    poses = frame["eval_poses"]
                    device_ids = tok.encode(poses)
                    row["token_agreement_vs_host"] = float((device_ids == frame[key]).mean())
                    row["mpjpe_px"] = round(mpjpe_px(tok.decode(device_ids), poses), 4)
                    row["poses"] = int(poses.shape[0])
                arrays[f"decoded_{backend}_{precision}"] = decoded
            timing = bench(bundle, options, batch=1, iterations=50, warmup=5)
            row.update({k: timing[k] for k in ("load_ms", "first_inference_ms", "p50_us", "p90_us", "peak_rss_mb")})
            report["tokenizer"].append(row)
    return report, arrays


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="device_demo.py", description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--frame", required=True, help=".npz with y, vu, crop, keypoints_px [, eval_poses, host_ids_*]")
    ap.add_argument("--out", help="write the RGB frame, model input and decoded poses here (.npz)")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats for the pre-processing (median)")
    args = ap.parse_args(argv)
    report, arrays = run(args.bundle, args.frame, args.repeats)
    if args.out:
        with atomic_output(args.out) as tmp:
            np.savez(tmp, **arrays)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
