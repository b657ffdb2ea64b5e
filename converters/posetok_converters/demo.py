"""make demo: the product story in one command: a camera frame -> a pose, on the emulated board.

1. export the shipped tokenizer and estimator to a bundle (ONNX + TFLite,
   fp32/fp16/int8w/int8; the estimator's files as the exporter writes them);
2. (make builds and installs the aarch64 wheel into build/device-site);
3. draw a 640x480 camera frame of a figure in the style the estimator was
   trained on (frames.py: backdrop, clutter, side colours, camera noise),
   hand it over as NV21, and run the host's estimator and tokenizer on it for
   reference;
4. inside the emulated aarch64 Python, with the installed wheel only: estimate
   the pose without a box (coarse + refine) and with the known box for every
   runtime and precision, decode the token ids with the tokenizer, run the
   tokenizer's round trip, and time the pipeline stage by stage;
5. count the guest instructions of the one-pass crop kernel under QEMU;
6. print the summary tables and write a PNG of the frame with the estimated
   skeleton (the true one faint) and the model input of the found box.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from posetok import PoseEstimator, PoseTokenizer
from posetok.atomic import atomic_output, write_text_atomic
from posetok.backends import FORMAT_OF_BACKEND
from posetok.bench_cli import pipeline_bench, pipeline_combos
from posetok.bundle import Bundle
from posetok.info_cli import table as text_table
from posetok.skeleton import FRAME_SIZE, LIMBS

from . import frames
from .data import eval_poses, sample_poses
from .estimator_cli import CHECKPOINT_NAME, DEFAULT_ESTIMATOR_DIR
from .estimator_eval import keypoint_boxes

REPO = Path(__file__).resolve().parents[2]
FRAME_W, FRAME_H = 640, 480
CROP = (96, 16, 448)          # x0, y0, side: the true person box, 7x the 64-px frame
HOST_POSES = 64               # host-vs-device token comparison; encode searches with 33 emulated decoder runs
COMBOS = (("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("litert", "fp32"), ("litert", "int8"))
KERNEL_OUT_PX = FRAME_SIZE * FRAME_SIZE   # kernels-bench counts crop_nv21_c3 per output pixel of the 64x64 input


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def camera_frame(pose_px: np.ndarray, seed: int) -> np.ndarray:
    """A 640x480 RGB frame of frames.py's scene at camera size (``frames.draw_scene``, no occluder), the
    figure's model frame at CROP: the square canvas (640 x 640) cut to the top 480 rows."""
    x0, y0, side = CROP
    box = np.array([[x0, y0, side, side]], np.int32)
    return frames.draw_scene(pose_px[None], box, FRAME_W, np.random.default_rng(seed), occluders=0)[0, :FRAME_H]


def run_logged(cmd: list[str], env: dict | None = None, capture: bool = False) -> str:
    proc = subprocess.run(cmd, env=env, text=True, stdout=subprocess.PIPE if capture else None)
    if proc.returncode != 0:
        raise SystemExit(f"[demo] FAILED: {' '.join(map(str, cmd))} exited {proc.returncode}")
    return proc.stdout if capture else ""


def draw_skeleton(ax, kp: np.ndarray, colour: str, label: str, **style) -> None:
    for a, b in LIMBS:
        ax.plot(kp[[a, b], 0], kp[[a, b], 1], color=colour, **style)
    ax.scatter(kp[:, 0], kp[:, 1], s=16, color=colour, label=label, zorder=3, alpha=style.get("alpha", 1.0))


def write_png(path: Path, arrays, truth: np.ndarray, row: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    key = f"{row['backend']}_{row['precision']}_search"
    estimate, found = arrays[f"{key}_keypoints"], row["search"]["box"]
    label = f"{row['runtime']} {row['precision']}"
    fig, (ax_frame, ax_input) = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [4, 3]})
    ax_frame.imshow(arrays["rgb"])
    draw_skeleton(ax_frame, truth, "#111111", "ground truth (faint)", ls="--", lw=1.2, alpha=0.5)
    draw_skeleton(ax_frame, estimate, "#ff00ff", f"estimated, no box given ({label})", lw=2.2)
    ax_frame.add_patch(Rectangle(found[:2], found[2], found[3], fill=False, ec="#ffdc00", lw=1.2,
                                 label="box found (coarse + refine)"))
    height, width = arrays["rgb"].shape[:2]
    ax_frame.set_xlim(0, width)                      # a found box may reach past the frame: keep the frame's view
    ax_frame.set_ylim(height, 0)
    ax_frame.legend(loc="lower left", fontsize=8)
    ax_frame.set_title(f"640x480 NV21 frame -> pose on aarch64 (QEMU): MPJPE {row['search']['mpjpe_frame_px']:.1f} "
                       f"frame px = {row['search']['mpjpe_model_px']:.2f} model px", fontsize=10)
    ax_frame.axis("off")
    ax_input.imshow(arrays["model_input_u8"], interpolation="nearest", extent=(0, FRAME_SIZE, FRAME_SIZE, 0))
    draw_skeleton(ax_input, (estimate - np.array(found[:2], np.float32)) * (FRAME_SIZE / found[2]), "#ff00ff",
                  "estimated", lw=1.5)
    ax_input.set_title("64x64 model input of the found box (crop_nv21, NEON)", fontsize=10)
    ax_input.axis("off")
    ids = row["search"]["token_ids"]
    fig.suptitle(f"{len(ids)} tokens: " + " ".join(map(str, ids)), fontsize=9)
    fig.tight_layout()
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)


def table(rows: list[tuple], header: tuple) -> str:
    return "\n".join(text_table(list(header), [[str(c) for c in r] for r in rows]))


def host_references(bundle_dir: Path, y: np.ndarray, vu: np.ndarray, box: np.ndarray) -> tuple[dict, dict]:
    """The host's token ids (tokenizer on the evaluation poses, estimator on the frame) and pipeline timings."""
    refs = {"eval_poses": eval_poses(count=HOST_POSES)}
    offered = Bundle.load(bundle_dir, verify=False).offers()
    for backend, precision in (c for c in COMBOS if (FORMAT_OF_BACKEND[c[0]], c[1]) in offered):
        with PoseTokenizer.from_bundle(bundle_dir, backend=backend, precision=precision, verify=False) as tok:
            refs[f"host_ids_{backend}_{precision}"] = tok.encode(refs["eval_poses"])
    timings = {}
    for backend, precision in pipeline_combos(str(bundle_dir)):
        with PoseEstimator.from_bundle(bundle_dir, backend=backend, precision=precision, verify=False) as est:
            for mode, given in (("search", None), ("box", tuple(float(v) for v in box))):
                refs[f"host_est_{backend}_{precision}_{mode}_ids"] = est.estimate_nv21(y, vu, box=given).token_ids
        timings[(backend, precision)] = pipeline_bench(str(bundle_dir), backend, precision, (FRAME_W, FRAME_H),
                                                       iterations=20, warmup=3, num_threads=1)
    return refs, timings


def print_summary(bundle: Bundle, device: dict, host_timing: dict, crop_row: dict, chain_row: dict | None) -> None:
    print(f"\nposetok demo: frame -> pose, {bundle.num_tokens} tokens x {bundle.num_codes} codes per pose; "
          f"device {device['machine']} under QEMU -cpu {device['emulated_cpu']}, kernels {device['kernels_isa']}")
    print(f"true person box {CROP[2]}x{CROP[2]} px at ({CROP[0]}, {CROP[1]}): 1 model-frame px = "
          f"{CROP[2] / FRAME_SIZE:.0f} frame px\n")
    rows = []
    for r in device["estimator"]:
        for mode, name in (("search", "none (search)"), ("box", "known")):
            m = r[mode]
            rows.append((r["runtime"], r["precision"], name, f"{m['mpjpe_frame_px']:.1f}", f"{m['mpjpe_model_px']:.2f}",
                         f"{m['from_tokens']['mpjpe_model_px']:.2f}", f"{m.get('tokens_equal_host', float('nan')):.3f}",
                         f"{m['mean_score']:.2f}"))
    print(table(rows, ("estimator (aarch64)", "precision", "box", "MPJPE frame px", "MPJPE 64-px",
                       "from tokens 64-px", "tokens = host", "mean score")))
    print()
    ms = lambda us: "-" if us is None else f"{us / 1000:.1f}"
    rows = []
    for r in device["estimator"]:
        t, h = r["timing"], host_timing.get((r["backend"], r["precision"]), {})
        rows.append((r["runtime"], r["precision"], ms(t["preprocess_p50_us"]), ms(t["estimator_p50_us"]),
                     ms(t["decoder_p50_us"]), ms(t["total_p50_us"]), ms(t["search_p50_us"]),
                     ms(h.get("total_p50_us")), ms(h.get("search_p50_us"))))
    print("per frame, p50 ms, one thread: emulated aarch64 (pre-process = crop_nv21, estimator graph, tokenizer "
          "decoder; no box = coarse + refine passes), and the x86_64 host")
    print(table(rows, ("runtime", "precision", "pre-process", "estimator", "decoder", "total", "no box",
                       "host total", "host no box")))
    print()
    insn = crop_row["insn_per_px_neon"] * KERNEL_OUT_PX
    versus = (f"; the previous chain (blur, NV21->RGB, crop, bilinear, normalize) "
              f"{chain_row['insn_per_px_neon'] * KERNEL_OUT_PX / 1e6:.2f} M" if chain_row else "")
    print(f"crop_nv21 ({CROP[2]}x{CROP[2]} box of a 640x480 NV21 frame -> 3x64x64 f32): "
          f"{insn / 1e6:.3f} M guest instructions per frame with NEON, "
          f"{crop_row['insn_per_px_ref'] * KERNEL_OUT_PX / 1e6:.2f} M scalar{versus} "
          f"(QEMU -cpu {device['emulated_cpu']})")
    print(f"  emulated: NEON {device['preprocess_ms']} ms vs scalar {device['preprocess_ref_ms']} ms; "
          f"bit-exact: {device['preprocess_bit_exact_vs_ref']}\n")
    parity = {(r["format"], r["precision"]): r for r in bundle.manifest.get("parity", [])}
    rows = []
    for r in device["tokenizer"]:
        host = parity.get((FORMAT_OF_BACKEND[r["backend"]], r["precision"]), {})
        rows.append((r["runtime"], r["precision"], f"{host.get('size_bytes', 0) / 1024:.0f} KiB",
                     f"{host.get('token_agreement', float('nan')):.4f}", f"{r['token_agreement_vs_host']:.4f}",
                     f"{r['mpjpe_px']:.3f}", f"{r['p50_us'] / 1000:.2f}"))
    reference = (bundle.manifest.get("reference") or {}).get("mpjpe_px", float("nan"))
    print(f"tokenizer round trip (keypoints -> tokens -> keypoints), {HOST_POSES} evaluation poses; torch reference "
          f"MPJPE {reference:.3f} px")
    print(table(rows, ("tokenizer (aarch64)", "precision", "enc+dec size", "tokens = torch", "tokens = host",
                       "MPJPE px", "p50 ms (emulated)")))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m posetok_converters.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "build" / "demo")
    ap.add_argument("--device-site", type=Path, default=REPO / "build" / "device-site",
                    help="where make installed the aarch64 wheel")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--checkpoint", help="tokenizer checkpoint (default: the shipped model)")
    ap.add_argument("--estimator", help="estimator checkpoint file or folder (default: the shipped estimator)")
    ap.add_argument("--bundle", type=Path, help="use this exported bundle (with an estimator) instead of exporting")
    args = ap.parse_args(argv)
    if args.bundle is None and args.estimator is None and not (DEFAULT_ESTIMATOR_DIR / CHECKPOINT_NAME).is_file():
        raise SystemExit(f"[demo] no shipped estimator at {DEFAULT_ESTIMATOR_DIR / CHECKPOINT_NAME}; pass "
                         "--estimator PATH (train one with 'posetok train-estimator')")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    bundle_dir = args.bundle or out / "bundle"

    if args.bundle:
        say(f"1/5 using the bundle {bundle_dir}")
    else:
        say("1/5 exporting the shipped tokenizer and estimator (posetok export)")
        run_logged([sys.executable, "-m", "posetok", "export", "--out", str(bundle_dir), "--force"]
                   + (["--checkpoint", args.checkpoint] if args.checkpoint else [])
                   + (["--estimator", args.estimator] if args.estimator else []))
    bundle = Bundle.load(bundle_dir)

    say("2/5 drawing a 640x480 NV21 camera frame of a figure; the host's reference tokens and timings")
    pose = sample_poses(1, seed=args.seed, distribution="upright")[0]
    y, vu = frames.rgb_to_nv21(camera_frame(pose, args.seed))
    truth = np.array(CROP[:2], np.float32) + pose * np.float32(CROP[2] / FRAME_SIZE)
    person = keypoint_boxes(truth[None])[0].astype(np.float32)    # what a detector would give
    refs, host_timing = host_references(bundle_dir, y, vu, person)
    frame_path = out / "frame.npz"
    with atomic_output(frame_path) as tmp:
        np.savez(tmp, y=y, vu=vu, box=np.array([CROP[0], CROP[1], CROP[2], CROP[2]]),
                 person_box=person, truth_frame_px=truth, truth_px64=pose, **refs)

    say("3/5 frame -> pose inside the emulated aarch64 Python (installed wheel): estimator, decoder, tokenizer")
    env = dict(os.environ, POSETOK_DEVICE_PYTHONPATH=str(args.device_site))
    result_path = out / "device.npz"
    device = json.loads(run_logged([str(REPO / "cross" / "qemu-python"), str(REPO / "cross" / "device_demo.py"),
                                    "--bundle", str(bundle_dir), "--frame", str(frame_path),
                                    "--out", str(result_path)], env=env, capture=True))

    say("4/5 counting guest instructions of crop_nv21 at 640x480 (posetok kernels-bench --kernels crop_nv21_c3)")
    kbench = json.loads(run_logged([sys.executable, "-m", "posetok", "kernels-bench", "--quick", "--json",
                                    "--pairs", "3", "--kernels", "crop_nv21_c3", "chain_nv21_c3"], capture=True))
    by_name = {k["name"]: k for k in kbench["kernels"]}

    say("5/5 summary")
    arrays = np.load(result_path)
    png = out / "demo.png"
    write_png(png, arrays, truth, device["estimator"][0])
    print_summary(bundle, device, host_timing, by_name["crop_nv21_c3"], by_name.get("chain_nv21_c3"))
    print(f"\npicture: {png.relative_to(REPO) if png.is_relative_to(REPO) else png}")
    timing = {f"{b}/{p}": t for (b, p), t in host_timing.items()}
    write_text_atomic(out / "summary.json", json.dumps({"device": device, "host_pipeline": timing, "kernels": kbench},
                                                 indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
