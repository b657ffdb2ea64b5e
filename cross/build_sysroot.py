#!/usr/bin/env python3
"""Build the emulated aarch64 CPython used by the device test suite.

The result is a folder (by default ``~/.cache/posetok/aarch64-<key>``) with
  sysroot/        Debian bookworm arm64 packages unpacked with ``dpkg-deb -x``
                  (CPython 3.11, libc, libstdc++ ...), the ``-L`` root for QEMU
  site/           aarch64 wheels: numpy 2, onnxruntime, ai-edge-litert, pytest,
                  opencv-python-headless (the kernel benchmark's peer),
                  model-signing + pyopenssl (posetok[signing]: signed bundles)
  site-tflite/    tflite-runtime 2.14 with numpy<2, for boards that carry it
  READY           stamp written last; its presence means the build completed

The key is a hash of this file, so editing the package lists rebuilds.
Only the Python standard library is used: this runs before any venv exists.
Packages come from the machine's own Debian source and from the package
index pip is configured with; no host is named here.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEBIAN_PACKAGES = [
    "libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libffi8", "libssl3",
    "libexpat1", "libbz2-1.0", "liblzma5", "libsqlite3-0",
    "libuuid1", "libncursesw6", "libtinfo6", "libreadline8", "libcrypt1",
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
    "media-types", "ca-certificates",
]
# ai-edge-litert ships Linux aarch64 wheels for CPython 3.11 only up to 1.4.0
# (tagged manylinux_2_17); onnxruntime and numpy use manylinux_2_28;
# tflite-runtime 2.14 uses manylinux_2_34. Debian bookworm has glibc 2.36.
PLATFORM_TAGS = ["manylinux_2_17_aarch64", "manylinux2014_aarch64",
                 "manylinux_2_28_aarch64", "manylinux_2_34_aarch64",
                 "manylinux_2_36_aarch64"]
SITE_REQUIREMENTS = ["numpy>=2,<3", "onnxruntime==1.32.*", "ai-edge-litert==1.4.0",
                     "opencv-python-headless==5.0.*", "pytest>=8", "model-signing==1.1.1", "pyopenssl"]
TFLITE_SITE_REQUIREMENTS = ["numpy<2", "tflite-runtime==2.14.0", "pytest>=8"]

STEPS = 6


def step(n: int, text: str) -> None:
    print(f"[sysroot {n}/{STEPS}] {text}", flush=True)


def run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"[sysroot] FAILED while {what}: {' '.join(cmd[:4])} ... exit {proc.returncode}")
    return proc


def cache_key() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def default_root() -> Path:
    base = os.environ.get("POSETOK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "posetok")
    return Path(base) / f"aarch64-{cache_key()}"


def machine_debian_uri() -> str:
    """The URI of the machine's bookworm entry (deb822 or one-line format)."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.exists():
        for line in deb822.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[-2 if "[" in line else 2] == "bookworm":
                return parts[1] if not parts[1].startswith("[") else parts[2]
    raise SystemExit("[sysroot] FAILED: no Debian bookworm apt source on this machine to fetch arm64 packages from")


def download_debs(work: Path) -> list[Path]:
    """apt-get download the arm64 packages with a private apt configuration,
    so the host's dpkg architecture list is left untouched."""
    apt = work / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "etc/sources.list.d", "etc/preferences.d"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "status").touch()
    (apt / "etc/sources.list").write_text(
        f"deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        f"{machine_debian_uri()} bookworm main\n")
    conf = apt / "apt.conf"
    conf.write_text("\n".join([
        'APT::Architecture "arm64";',
        'APT::Architectures { "arm64"; };',
        f'Dir::State "{apt}";',
        f'Dir::State::Lists "{apt}/lists";',
        f'Dir::State::status "{apt}/status";',
        f'Dir::Cache "{apt}/cache";',
        f'Dir::Etc::SourceList "{apt}/etc/sources.list";',
        f'Dir::Etc::SourceParts "{apt}/etc/sources.list.d";',
        f'Dir::Etc::Preferences "{apt}/etc/preferences";',
        f'Dir::Etc::PreferencesParts "{apt}/etc/preferences.d";',
        'Acquire::Languages "none";',
    ]) + "\n")
    env = dict(os.environ, APT_CONFIG=str(conf))
    run(["apt-get", "update", "-q"], "reading the arm64 package index", env=env)
    debs = work / "debs"
    debs.mkdir(exist_ok=True)
    run(["apt-get", "download", "-q", *[f"{p}:arm64" for p in DEBIAN_PACKAGES]],
        "downloading arm64 packages", env=env, cwd=debs)
    found = sorted(debs.glob("*.deb"))
    if len(found) != len(DEBIAN_PACKAGES):
        raise SystemExit(f"[sysroot] FAILED: expected {len(DEBIAN_PACKAGES)} .deb files, got {len(found)}")
    return found


def pip_target(target: Path, requirements: list[str], what: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "--no-warn-script-location", "--target", str(target), "--only-binary=:all:",
           "--implementation", "cp", "--python-version", "3.11", "--abi", "cp311"]
    for tag in PLATFORM_TAGS:
        cmd += ["--platform", tag]
    run(cmd + requirements, what)


def build(root: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=root.parent))
    try:
        step(1, "reading the Debian arm64 package index and downloading packages")
        debs = download_debs(tmp)
        step(2, f"unpacking {len(debs)} packages into sysroot/")
        sysroot = tmp / "sysroot"
        sysroot.mkdir()
        for deb in debs:
            run(["dpkg-deb", "-x", str(deb), str(sysroot)], f"unpacking {deb.name}")
        if not (sysroot / "usr/bin/python3.11").exists():
            raise SystemExit("[sysroot] FAILED: usr/bin/python3.11 missing after unpacking")
        step(3, "installing aarch64 wheels into site/: " + ", ".join(SITE_REQUIREMENTS))
        pip_target(tmp / "site", SITE_REQUIREMENTS, "installing aarch64 wheels into site/")
        step(4, "installing tflite-runtime 2.14 (numpy<2) into site-tflite/")
        pip_target(tmp / "site-tflite", TFLITE_SITE_REQUIREMENTS, "installing tflite-runtime into site-tflite/")
        shutil.rmtree(tmp / "debs")
        shutil.rmtree(tmp / "apt")
        (tmp / "READY").write_text(cache_key() + "\n")
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)  # the finished tree appears atomically
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def smoke_test(root: Path) -> None:
    step(5, "starting the emulated Python (numpy, onnxruntime, ai_edge_litert)")
    runner = Path(__file__).resolve().parent / "qemu-python"
    env = dict(os.environ, POSETOK_AARCH64_ROOT=str(root))
    code = ("import platform, numpy, onnxruntime, ai_edge_litert; "
            "print(platform.machine(), numpy.__version__, onnxruntime.__version__)")
    out = run([str(runner), "-c", code], "running the emulated Python", env=env).stdout.strip()
    if not out.startswith("aarch64"):
        raise SystemExit(f"[sysroot] FAILED: emulated Python reports {out!r}, expected aarch64")
    step(6, f"ok: {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=None, help="output folder (default: the cache)")
    ap.add_argument("--print-root", action="store_true", help="print the folder and exit")
    ap.add_argument("--force", action="store_true", help="rebuild even if READY exists")
    args = ap.parse_args()
    root = (args.root or default_root()).resolve()
    if args.print_root:
        print(root)
        return
    if (root / "READY").exists() and not args.force:
        print(f"[sysroot] up to date: {root}", flush=True)
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    print(f"[sysroot] building {root}", flush=True)
    build(root)
    smoke_test(root)


if __name__ == "__main__":
    main()
