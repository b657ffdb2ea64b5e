"""posetok kernels-bench: cost of the NEON kernels vs their scalar references
(and OpenCV) on an emulated aarch64 CPU, run from the x86_64 build host.
Host tooling: it drives qemu-aarch64 and the cross binutils, so it lives with
the converters and is not part of the device wheel.

Per kernel and frame size it reports
  insn_per_px_ref / insn_per_px_neon   guest instructions per output pixel,
      counted exactly from a QEMU execution trace of the static benchmark
      driver (build/aarch64-gcc/posetok_kernels_bench), filtered with -dfilter
      to the kernel library's address range (from nm), minus a run with zero
      kernel calls — so process start, allocation and input filling are out;
  qemu_time_ratio_ref_over_neon        median over paired runs of the driver;
  opencv_time_ratio_over_neon          OpenCV's aarch64 cv2 (one thread) doing
      the same operation, over our NEON path, timed in one emulated Python
      (null where OpenCV has no equivalent).
Counting methods: "tb" (default) logs one line per executed translation block
(-d nochain,exec,in_asm) and adds each block's instruction count from its
in_asm listing; "insn" is the literal -one-insn-per-tb -d nochain,exec count,
5-10x slower. Both give identical totals (--check-count compares them).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from posetok.atomic import atomic_output

from .cli_checks import refuse_unwritable

# name -> (OpenCV operation doing the same, or None)
KERNELS: Dict[str, Optional[str]] = {
    "nv21_to_rgb888": "cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_NV21)",
    "nv12_to_rgb888": "cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_NV12)",
    "downscale_uv2x2": "cv2.resize(uv, (w/2, h/2), interpolation=cv2.INTER_AREA)",
    "gaussian3x3": "cv2.GaussianBlur(img, (3, 3), 0, borderType=cv2.BORDER_REFLECT_101)",
    "resize_bilinear_c1": "cv2.resize(img, (2w/3, 2h/3), interpolation=cv2.INTER_LINEAR)",
    "resize_bilinear_c3": "cv2.resize(rgb, (2w/3, 2h/3), interpolation=cv2.INTER_LINEAR)",
    "conv2d_3x3_c3_c8": None,
    "normalize_c3": "cv2.dnn.blobFromImage(rgb, 1/57.5, mean=(123.675, 116.28, 103.53))",
    # the one-pass kernel vs OpenCV's three calls and vs today's chain (centre box of side
    # 14/15 of the height, 448 px at 480, -> 3x64x64 f32); per px = per output pixel
    "crop_nv21_c3": "cv2.dnn.blobFromImage(cv2.resize(cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_NV21)[box], "
                    "(64, 64), interpolation=cv2.INTER_AREA), 1/57.5, mean=...)",
    "chain_nv21_c3": None,
}
FRAME_SIZES = [(640, 480), (1920, 1080)]
# ~4000 scalar instructions per pixel: camera frames would take hours to trace
CONV_SIZES = [(64, 64), (160, 120)]
CONV_NOTE = ("conv2d (3->8 channels, 3x3, stride 1, pad 1) is counted at model-input sizes: "
             "its scalar reference costs ~4000 instructions per pixel, hours of tracing at camera sizes")


def find_repo() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "cross" / "qemu-run").is_file() and (parent / "kernels").is_dir():
            return parent
    return Path.cwd()


def log(msg: str) -> None:
    print(f"[kernels-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, repo: Path, build: Path, cpu: str, method: str):
        self.repo, self.cpu, self.method = repo, cpu, method
        self.driver = build / "posetok_kernels_bench"
        self.lib = build / "libposetok_kernels.so"
        for f in (self.driver, self.lib):
            if not f.is_file():
                raise SystemExit(f"kernels-bench: {f} is missing; build it with 'make kernels-aarch64'")
        self.ld_prefix = os.environ.get("POSETOK_QEMU_LD_PREFIX", "/usr/aarch64-linux-gnu")
        self.addr_range = self._library_range()

    def _library_range(self) -> str:
        out = subprocess.run(["aarch64-linux-gnu-nm", "-S", "-n", "--defined-only", str(self.driver)],
                             check=True, capture_output=True, text=True).stdout
        spans = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[3].startswith("posetok_"):
                start = int(parts[0], 16)
                spans.append((start, start + int(parts[1], 16)))
        if not spans:
            raise SystemExit(f"kernels-bench: no posetok_* symbols in {self.driver}")
        return f"0x{min(s for s, _ in spans):x}..0x{max(e for _, e in spans) - 1:x}"

    def _qemu(self, extra: List[str], args: List[str]) -> List[str]:
        return ["qemu-aarch64", "-cpu", self.cpu, "-L", self.ld_prefix, *extra, str(self.driver), *args]

    def run_driver(self, kernel: str, impl: str, w: int, h: int, iters: int, reps: int = 1) -> dict:
        out = subprocess.run(self._qemu([], [kernel, impl, str(w), str(h), str(iters), str(reps)]),
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out.splitlines()[-1])

    def count(self, kernel: str, impl: str, w: int, h: int, iters: int, method: Optional[str] = None) -> int:
        """Guest instructions executed inside the kernel library."""
        method = method or self.method
        with tempfile.TemporaryDirectory() as tmp:
            driver_out = Path(tmp) / "driver.txt"
            flags = ["-d", "nochain,exec,in_asm"] if method == "tb" else ["-one-insn-per-tb", "-d", "nochain,exec"]
            # the trace gets its own pipe, so the driver's output cannot split a trace line
            read_fd, write_fd = os.pipe()
            cmd = self._qemu([*flags, "-dfilter", self.addr_range, "-D", f"/dev/fd/{write_fd}"],
                             [kernel, impl, str(w), str(h), str(iters)])
            with open(driver_out, "w") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, pass_fds=(write_fd,))
            os.close(write_fd)
            with os.fdopen(read_fd, "r", buffering=1 << 20) as trace:
                total = count_tb_trace(trace) if method == "tb" else count_insn_trace(trace)
            if proc.wait():
                raise SystemExit(f"kernels-bench: {' '.join(cmd)} failed:\n{driver_out.read_text()}")
        return total

    def insn_per_px(self, kernel: str, impl: str, w: int, h: int) -> float:
        pixels = self.run_driver(kernel, impl, w, h, 0)["out_pixels"]
        return (self.count(kernel, impl, w, h, 1) - self.count(kernel, impl, w, h, 0)) / pixels

    def time_ratio(self, kernel: str, w: int, h: int, pairs: int) -> float:
        iters = max(1, int(1_000_000 // (w * h)))
        ratios = []
        for _ in range(pairs):
            ref = self.run_driver(kernel, "ref", w, h, iters)["ns_per_call"][0]
            neon = self.run_driver(kernel, "neon", w, h, iters)["ns_per_call"][0]
            ratios.append(ref / neon)
        return statistics.median(ratios)


def count_tb_trace(stream) -> int:
    """Sum over executed blocks ('Trace ... [../PC/..]') of the block's
    instruction count from its 'IN:' listing."""
    sizes: Dict[int, int] = {}
    total, block_pc, block_len = 0, None, 0
    for line in stream:
        if line.startswith("Trace"):
            total += sizes[int(line.split("/", 2)[1], 16)]
        elif line.startswith("IN:"):
            block_pc, block_len = None, 0
        elif line.startswith("0x"):
            if block_pc is None:
                block_pc = int(line.split(":", 1)[0], 16)
            block_len += 1
        elif not line.strip() and block_pc is not None:
            sizes[block_pc], block_pc = block_len, None
    return total


def count_insn_trace(stream) -> int:
    return sum(1 for line in stream if line.startswith("Trace"))


OPENCV_SCRIPT = r'''
import json, statistics, sys, time
import numpy as np
import cv2
import posetok.kernels as K
cv2.setNumThreads(1)
rows, pairs = json.loads(sys.argv[1]), int(sys.argv[2])
MEAN, SCALE = (123.675, 116.28, 103.53), 1 / 57.5
out = {}
for name, w, h in rows:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    vu = rng.integers(0, 256, (h // 2, w // 2, 2), dtype=np.uint8)
    yuv = np.concatenate([img, vu.reshape(h // 2, w)], axis=0)
    uv = rng.integers(0, 256, (h, w, 2), dtype=np.uint8)
    rw, rh = w * 2 // 3, h * 2 // 3
    side = h * 14 // 15
    bx, by = (w - side) // 2, (h - side) // 2
    ops = {
        "nv21_to_rgb888": (lambda: cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_NV21), lambda: K.nv21_to_rgb888(img, vu)),
        "nv12_to_rgb888": (lambda: cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_NV12), lambda: K.nv12_to_rgb888(img, vu)),
        "downscale_uv2x2": (lambda: cv2.resize(uv, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
                            lambda: K.downscale_uv2x2(uv)),
        "gaussian3x3": (lambda: cv2.GaussianBlur(img, (3, 3), 0, borderType=cv2.BORDER_REFLECT_101),
                        lambda: K.gaussian3x3(img)),
        "resize_bilinear_c1": (lambda: cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR),
                               lambda: K.resize_bilinear(img, (rw, rh))),
        "resize_bilinear_c3": (lambda: cv2.resize(rgb, (rw, rh), interpolation=cv2.INTER_LINEAR),
                               lambda: K.resize_bilinear(rgb, (rw, rh))),
        "normalize_c3": (lambda: cv2.dnn.blobFromImage(rgb, SCALE, mean=MEAN),
                         lambda: K.normalize(rgb, MEAN, (SCALE,) * 3)),
        "crop_nv21_c3": (lambda: cv2.dnn.blobFromImage(cv2.resize(
                             cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_NV21)[by:by + side, bx:bx + side], (64, 64),
                             interpolation=cv2.INTER_AREA), SCALE, mean=MEAN),
                         lambda: K.crop_nv21(img, vu, (bx, by, side, side), (64, 64), mean=MEAN,
                                             scale=(SCALE,) * 3)),
    }
    cv_op, ours = ops[name]
    cv_op(), ours()  # warm up (first-call set-up, page faults)
    n = max(1, 1_000_000 // (w * h))
    ratios = []
    for _ in range(pairs):
        t0 = time.perf_counter()
        for _ in range(n): cv_op()
        t1 = time.perf_counter()
        for _ in range(n): ours()
        t2 = time.perf_counter()
        ratios.append((t1 - t0) / (t2 - t1))
    out[f"{name} {w}x{h}"] = statistics.median(ratios)
    print(f"opencv {name} {w}x{h}: {out[f'{name} {w}x{h}']:.2f}", file=sys.stderr, flush=True)
print(json.dumps(out))
'''


def opencv_ratios(repo: Path, lib: Path, cpu: str, rows: List[tuple], pairs: int) -> Dict[str, float]:
    env = {**os.environ, "POSETOK_QEMU_CPU": cpu, "POSETOK_KERNELS_LIB": str(lib),
           "POSETOK_DEVICE_PYTHONPATH": str(repo / "sdk")}
    proc = subprocess.run([str(repo / "cross" / "qemu-python"), "-c", OPENCV_SCRIPT, json.dumps(rows), str(pairs)],
                          env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"kernels-bench: the OpenCV comparison failed in the emulated Python:\n{proc.stderr}")
    return json.loads(proc.stdout.splitlines()[-1])


def plot(rows: List[dict], cpu: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{r['name']}\n{r['width']}x{r['height']}" for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.9), 5))
    ax.bar([i - 0.2 for i in x], [r["insn_per_px_ref"] for r in rows], 0.4, label="scalar reference")
    ax.bar([i + 0.2 for i in x], [r["insn_per_px_neon"] for r in rows], 0.4, label="NEON")
    ax.set_yscale("log")
    ax.set_ylabel("guest instructions per output pixel")
    ax.set_title(f"posetok kernels on qemu-aarch64 -cpu {cpu}")
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.legend()
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120)


def evaluate_targets(rows: List[dict]) -> dict:
    gauss = [r for r in rows if r["name"] == "gaussian3x3" and (r["width"], r["height"]) == (1920, 1080)]
    largest = {}

    def area(r: dict) -> int:
        return r["width"] * r["height"]

    for r in rows:  # each kernel judged at its largest measured size
        if r["name"] not in largest or area(r) > area(largest[r["name"]]):
            largest[r["name"]] = r
    by_name = {(r["name"], r["width"], r["height"]): r for r in rows}
    crop_vs_chain = {}
    for (name, w, h), r in by_name.items():
        chain = by_name.get(("chain_nv21_c3", w, h))
        if name == "crop_nv21_c3" and chain:
            crop_vs_chain[f"{w}x{h}"] = {
                "chain_over_crop_neon_insn": round(chain["insn_per_px_neon"] / r["insn_per_px_neon"], 2),
                "le_one_fifth": r["insn_per_px_neon"] * 5 <= chain["insn_per_px_neon"]}
    return {
        "crop_nv21_c3_vs_chain": crop_vs_chain,
        "gaussian3x3_1080p_neon_insn_per_px_le_1_5": (gauss[0]["insn_per_px_neon"] <= 1.5) if gauss else None,
        "neon_8x_fewer_insn_than_ref": {n: r["insn_ratio_ref_over_neon"] >= 8 for n, r in largest.items()},
        "not_slower_than_opencv": {n: r["opencv_time_ratio_over_neon"] >= 1.0 for n, r in largest.items()
                                   if r["opencv_time_ratio_over_neon"] is not None},
    }


def qemu_cpu_models() -> List[str]:
    """The CPU models ``qemu-aarch64 -cpu help`` lists (an unknown one makes every run fail)."""
    out = subprocess.run(["qemu-aarch64", "-cpu", "help"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines()[1:] if line.strip()]


def main(argv: List[str], prog: str) -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object (default: a table)")
    ap.add_argument("--quick", action="store_true", help="640x480 only (and conv2d at 64x64)")
    ap.add_argument("--plot", type=Path, help="write a PNG bar chart of insn/px ref vs NEON")
    ap.add_argument("--cpu", default=os.environ.get("POSETOK_QEMU_CPU", "cortex-a76"),
                    help="QEMU CPU model (default $POSETOK_QEMU_CPU or cortex-a76)")
    ap.add_argument("--kernels", nargs="+", choices=list(KERNELS), default=list(KERNELS), metavar="NAME",
                    help=f"kernels to measure (default all: {', '.join(KERNELS)})")
    ap.add_argument("--count-method", choices=("tb", "insn"), default="tb")
    ap.add_argument("--pairs", type=int, default=5, help="paired timing runs per row (median)")
    ap.add_argument("--no-opencv", action="store_true", help="skip the OpenCV timing (no emulated Python)")
    ap.add_argument("--check-count", action="store_true",
                    help="also count gaussian3x3 ref+neon 64x48 with both methods and fail if they differ")
    ap.add_argument("--build-dir", type=Path, help="aarch64 build folder (default <repo>/build/aarch64-gcc)")
    args = ap.parse_args(argv)
    if args.pairs < 1:
        ap.error("--pairs must be >= 1")
    known = qemu_cpu_models()
    if args.cpu.split(",")[0] not in known:      # a model may carry properties: max,sve=off
        ap.error(f"--cpu {args.cpu!r} is not a CPU model of qemu-aarch64 ({', '.join(known)})")
    if args.plot is not None and refuse_unwritable(prog, files=[args.plot]):
        return 2

    repo = find_repo()
    bench = Bench(repo, args.build_dir or repo / "build" / "aarch64-gcc", args.cpu, args.count_method)
    qemu_version = subprocess.run(["qemu-aarch64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    log(f"{qemu_version}, -cpu {args.cpu}, library range {bench.addr_range}, count method {args.count_method}")

    count_check = None
    if args.check_count:
        count_check = {}
        for impl in ("ref", "neon"):
            a = bench.count("gaussian3x3", impl, 64, 48, 1, "tb")
            b = bench.count("gaussian3x3", impl, 64, 48, 1, "insn")
            count_check[impl] = {"tb": a, "insn": b}
            log(f"count check gaussian3x3 {impl} 64x48: tb {a}, one-insn-per-tb {b}")
            if a != b:
                raise SystemExit(f"kernels-bench: counting methods disagree ({a} vs {b})")

    plan = []
    for name in args.kernels:
        sizes = CONV_SIZES if name.startswith("conv2d") else FRAME_SIZES
        plan += [(name, w, h) for (w, h) in (sizes[:1] if args.quick else sizes)]

    rows = []
    for i, (name, w, h) in enumerate(plan, 1):
        t0 = time.time()
        ref = bench.insn_per_px(name, "ref", w, h)
        neon = bench.insn_per_px(name, "neon", w, h)
        ratio = bench.time_ratio(name, w, h, args.pairs)
        row = {"name": name, "width": w, "height": h, "insn_per_px_ref": round(ref, 3),
               "insn_per_px_neon": round(neon, 3), "insn_ratio_ref_over_neon": round(ref / neon, 2),
               "qemu_time_ratio_ref_over_neon": round(ratio, 2), "opencv_time_ratio_over_neon": None,
               "opencv_op": KERNELS[name]}
        if name.startswith("conv2d"):
            row["note"] = CONV_NOTE
        rows.append(row)
        log(f"[{i}/{len(plan)}] {name} {w}x{h}: {ref:.2f} -> {neon:.3f} insn/px ({ref / neon:.1f}x), "
            f"qemu time ref/neon {ratio:.2f} ({time.time() - t0:.0f}s)")

    if not args.no_opencv:
        cv_rows = [(r["name"], r["width"], r["height"]) for r in rows if r["opencv_op"]]
        if cv_rows:
            log(f"OpenCV comparison in the emulated Python ({len(cv_rows)} rows)")
            ratios = opencv_ratios(repo, bench.lib, args.cpu, cv_rows, args.pairs)
            for r in rows:
                key = f"{r['name']} {r['width']}x{r['height']}"
                if key in ratios:
                    r["opencv_time_ratio_over_neon"] = round(ratios[key], 2)

    result = {"cpu": args.cpu, "qemu": qemu_version, "count_method": args.count_method,
              "driver": str(bench.driver), "kernels": rows, "targets": evaluate_targets(rows)}
    if count_check:
        result["count_check"] = count_check
    if args.plot:
        plot(rows, args.cpu, args.plot)
        log(f"wrote {args.plot}")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"cpu {args.cpu} ({qemu_version})")
        print(f"{'kernel':<20} {'size':>10} {'ref insn/px':>12} {'neon insn/px':>13} {'ratio':>7} "
              f"{'qemu t ref/neon':>16} {'opencv t/neon':>14}")
        for r in rows:
            cv = "-" if r["opencv_time_ratio_over_neon"] is None else f"{r['opencv_time_ratio_over_neon']:.2f}"
            print(f"{r['name']:<20} {r['width']:>5}x{r['height']:<4} {r['insn_per_px_ref']:>12.2f} "
                  f"{r['insn_per_px_neon']:>13.3f} {r['insn_ratio_ref_over_neon']:>7.1f} "
                  f"{r['qemu_time_ratio_ref_over_neon']:>16.2f} {cv:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="posetok kernels-bench"))
