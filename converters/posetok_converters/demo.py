"""make demo: the product story in one command, on the shipped default model.

1. export the default model to a bundle (ONNX + TFLite, fp32/fp16/int8w/int8);
2. (make builds and installs the aarch64 wheel into build/device-site);
3. synthesize an NV21 camera frame of a stick figure;
4. inside the emulated aarch64 Python, with the installed wheel only: run the
   NEON kernels from the frame to the model input, encode the figure's
   keypoints to tokens and decode them with onnxruntime and LiteRT;
5. count the kernels' guest instructions under QEMU;
6. print one summary table and write a PNG of the frame with the true and
   the decoded skeleton.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from posetok import PoseTokenizer
from posetok.atomic import atomic_output
from posetok.backends import FORMAT_OF_BACKEND
from posetok.bundle import Bundle
from posetok.info_cli import table as text_table
from posetok.skeleton import LIMBS

from .data import eval_poses, sample_poses
from .render import render

REPO = Path(__file__).resolve().parents[2]
FRAME_W, FRAME_H = 640, 480
CROP = (96, 16, 448)          # x0, y0, side: the person box, 7x the 64-px frame
HOST_POSES = 256              # poses for the host-vs-device token comparison
COMBOS = (("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("litert", "fp32"), ("litert", "int8"))


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def rgb_to_nv21(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BT.601 video-range RGB -> NV21 (Y plane, interleaved V,U at half size),
    what a camera driver hands over."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    half = lambda p: p.reshape(p.shape[0] // 2, 2, p.shape[1] // 2, 2).mean(axis=(1, 3))
    to_u8 = lambda p: np.clip(np.rint(p), 0, 255).astype(np.uint8)
    return to_u8(y), np.stack([to_u8(half(v)), to_u8(half(u))], axis=-1)


def camera_frame(pose_px: np.ndarray, seed: int) -> np.ndarray:
    """A 640x480 RGB frame: a lit backdrop with sensor noise and the figure
    drawn in the crop box."""
    rng = np.random.default_rng(seed)
    x0, y0, side = CROP
    rows = np.linspace(0.0, 1.0, FRAME_H, dtype=np.float32)[:, None, None]
    backdrop = (1 - rows) * np.array([70, 90, 120], np.float32) + rows * np.array([40, 45, 55], np.float32)
    frame = np.broadcast_to(backdrop, (FRAME_H, FRAME_W, 3)).copy()
    alpha = render(pose_px[None], size=side)[0].astype(np.float32)[..., None] / 255.0
    box = frame[y0:y0 + side, x0:x0 + side]
    frame[y0:y0 + side, x0:x0 + side] = box * (1 - alpha) + alpha * np.array([245, 170, 60], np.float32)
    frame += rng.normal(0.0, 4.0, frame.shape).astype(np.float32)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def run_logged(cmd: list[str], env: dict | None = None, capture: bool = False) -> str:
    proc = subprocess.run(cmd, env=env, text=True, stdout=subprocess.PIPE if capture else None)
    if proc.returncode != 0:
        raise SystemExit(f"[demo] FAILED: {' '.join(map(str, cmd))} exited {proc.returncode}")
    return proc.stdout if capture else ""


def to_frame_px(kp64: np.ndarray) -> np.ndarray:
    x0, y0, side = CROP
    return kp64 * (side / 64.0) + np.array([x0, y0], np.float32)


def write_png(path: Path, rgb: np.ndarray, model_input: np.ndarray, truth: np.ndarray, decoded: np.ndarray,
              label: str, ids: list[int]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_frame, ax_input) = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [4, 3]})
    ax_frame.imshow(rgb)
    for kp, colour, style, name in ((to_frame_px(truth), "#2ecc40", "-", "ground truth"),
                                    (to_frame_px(decoded), "#ff4136", "--", f"decoded ({label})")):
        for a, b in LIMBS:
            ax_frame.plot(kp[[a, b], 0], kp[[a, b], 1], style, color=colour, lw=2.2)
        ax_frame.scatter(kp[:, 0], kp[:, 1], s=18, color=colour, label=name, zorder=3)
    ax_frame.legend(loc="lower left", fontsize=9)
    ax_frame.set_title("NV21 frame -> RGB by the NEON kernels (aarch64, QEMU)")
    ax_frame.axis("off")
    ax_input.imshow(model_input, interpolation="nearest")
    ax_input.set_title("64x64 model input (blur, crop, bilinear resize)")
    ax_input.axis("off")
    fig.suptitle(f"{len(ids)} tokens: " + " ".join(map(str, ids)), fontsize=9)
    fig.tight_layout()
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)


def table(rows: list[tuple], header: tuple) -> str:
    return "\n".join(text_table(list(header), [[str(c) for c in r] for r in rows]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m posetok_converters.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "build" / "demo")
    ap.add_argument("--device-site", type=Path, default=REPO / "build" / "device-site",
                    help="where make installed the aarch64 wheel")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--checkpoint", help="tokenizer checkpoint (default: the shipped model)")
    args = ap.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    bundle_dir = out / "bundle"

    say("1/5 exporting the shipped default model (posetok export)")
    run_logged([sys.executable, "-m", "posetok", "export", "--out", str(bundle_dir), "--force"]
               + (["--checkpoint", args.checkpoint] if args.checkpoint else []))
    bundle = Bundle.load(bundle_dir)

    say("2/5 synthesizing an NV21 camera frame and the host's reference tokens")
    pose = sample_poses(1, seed=args.seed)[0]
    y, vu = rgb_to_nv21(camera_frame(pose, args.seed))
    poses = eval_poses()[:HOST_POSES]
    host_ids = {}
    for backend, precision in COMBOS:
        with PoseTokenizer.from_bundle(bundle_dir, backend=backend, precision=precision, verify=False) as tok:
            host_ids[f"host_ids_{backend}_{precision}"] = tok.encode(poses)
    frame_path = out / "frame.npz"
    np.savez(frame_path, y=y, vu=vu, crop=np.array(CROP), keypoints_px=pose, eval_poses=poses, **host_ids)

    say("3/5 running kernels + tokenizer inside the emulated aarch64 Python (installed wheel)")
    env = dict(os.environ, POSETOK_DEVICE_PYTHONPATH=str(args.device_site))
    result_path = out / "device.npz"
    device = json.loads(run_logged([str(REPO / "cross" / "qemu-python"), str(REPO / "cross" / "device_demo.py"),
                                    "--bundle", str(bundle_dir), "--frame", str(frame_path),
                                    "--out", str(result_path)], env=env, capture=True))

    say("4/5 counting guest instructions of the kernels at 640x480 (posetok kernels-bench --quick)")
    kbench = json.loads(run_logged([sys.executable, "-m", "posetok", "kernels-bench", "--quick", "--json",
                                    "--pairs", "3"], capture=True))

    say("5/5 summary")
    arrays = np.load(result_path)
    png = out / "demo.png"
    best = next(r for r in device["tokenizer"] if (r["backend"], r["precision"]) == ("onnxruntime", "int8"))
    write_png(png, arrays["rgb"], arrays["model_input_u8"], pose, arrays["decoded_onnxruntime_int8"],
              "onnxruntime int8", best["token_ids"])

    parity = {(r["format"], r["precision"]): r for r in bundle.manifest.get("parity", [])}
    print()
    print(f"posetok demo — {bundle.num_tokens} tokens x {bundle.num_codes} codes "
          f"({bundle.num_tokens * int(np.log2(bundle.num_codes))} bits per pose vs 832 for 26 float32); "
          f"torch reference MPJPE {bundle.manifest['reference']['mpjpe_px']:.3f} px")
    print(f"device: {device['machine']} under QEMU -cpu {device['emulated_cpu']}, kernels {device['kernels_isa']}\n")
    rows = []
    for r in device["tokenizer"]:
        fmt = FORMAT_OF_BACKEND[r["backend"]]
        host = parity.get((fmt, r["precision"]), {})
        rows.append((r["runtime"], r["precision"], f"{host.get('size_bytes', 0) / 1024:.0f} KiB",
                     f"{host.get('token_agreement', float('nan')):.4f}", f"{r['token_agreement_vs_host']:.4f}",
                     f"{r['mpjpe_px']:.3f}", f"{r['frame_pose_error_px']:.3f}", f"{r['p50_us'] / 1000:.2f}"))
    print(table(rows, ("runtime (aarch64)", "precision", "enc+dec size", "tokens = torch", "tokens = host",
                       f"MPJPE px ({HOST_POSES} poses)", "frame pose err px", "p50 ms (emulated)")))
    print()
    krows = [(k["name"], f"{k['width']}x{k['height']}", f"{k['insn_per_px_ref']:.2f}", f"{k['insn_per_px_neon']:.2f}",
              f"{k['insn_per_px_ref'] / k['insn_per_px_neon']:.1f}x") for k in kbench["kernels"]]
    print(table(krows, ("kernel", "size", "insn/px scalar", "insn/px NEON", "fewer")))
    print()
    print(f"pre-processing 640x480 NV21 -> 3x64x64 tensor: NEON {device['preprocess_ms']} ms vs scalar "
          f"{device['preprocess_ref_ms']} ms under emulation; bit-exact: {device['preprocess_bit_exact_vs_ref']}")
    print(f"picture: {png.relative_to(REPO) if png.is_relative_to(REPO) else png}")
    (out / "summary.json").write_text(json.dumps({"device": device, "kernels": kbench}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
