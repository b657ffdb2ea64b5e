#!/usr/bin/env python3
"""Build posetok wheels for one target architecture.

    python cross/build_wheel.py --arch aarch64 --lib build/aarch64-gcc/libposetok_kernels.so
    python cross/build_wheel.py --arch x86_64  --lib build/host/libposetok_kernels.so --with-converters

The kernel library is loaded with ctypes, so the wheel does not depend on a
CPython ABI: it is tagged py3-none-manylinux_2_17_<arch> (glibc 2.17 is the
aarch64 baseline; `auditwheel show` confirms the library stays within it).
The device wheel holds only the runtime package ``posetok`` (numpy plus an
optional inference runtime); ``--with-converters`` adds the host tooling.
Metadata comes from pyproject.toml and the version from ``__version__`` in
sdk/posetok/__init__.py (pyproject declares it dynamic, read from there), so
each has one place.
Standard library only.
"""
from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import os
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"posetok": REPO / "sdk" / "posetok", "posetok_converters": REPO / "converters" / "posetok_converters"}
RUNTIME_EXTRAS = ("onnxruntime", "litert", "tflite", "signing")
GLIBC_BASELINE = "2_17"
# Fixed timestamp: the same inputs give a byte-identical wheel.
ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def package_files(package: str) -> list[tuple[str, Path]]:
    root = PACKAGE_DIRS[package]
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix == ".pyc" or rel.parts[0] == "lib":
            continue
        files.append((f"{package}/{rel.as_posix()}", path))
    return files


def package_version() -> str:
    """``__version__`` of sdk/posetok/__init__.py, read without importing it."""
    init = PACKAGE_DIRS["posetok"] / "__init__.py"
    for node in ast.parse(init.read_text()).body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__version__"
                                                 for t in node.targets)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    raise SystemExit(f"build_wheel: no __version__ = \"...\" string in {init}")


def metadata(project: dict, extras: dict[str, list[str]]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}",
             f"Summary: {project['description']}", f"Requires-Python: {project['requires-python']}",
             f"License: {project['license']['text']}"]
    lines += [f"Requires-Dist: {dep}" for dep in project["dependencies"]]
    for extra, deps in extras.items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f"Requires-Dist: {dep} ; extra == \"{extra}\"" for dep in deps]
    readme = (REPO / project["readme"]).read_text()
    return "\n".join(lines) + "\nDescription-Content-Type: text/markdown\n\n" + readme


def build(arch: str, lib: Path, out_dir: Path, with_converters: bool) -> Path:
    if not lib.is_file():
        target = "kernels-aarch64" if arch == "aarch64" else "kernels-host"
        raise SystemExit(f"build_wheel: kernel library {lib} not found (build it with 'make {target}')")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    if "version" in project.get("dynamic", []):
        project = {**project, "version": package_version()}
    optional = project.get("optional-dependencies", {})
    extras = {k: v for k, v in optional.items() if with_converters or k in RUNTIME_EXTRAS}
    name, version = project["name"], project["version"]
    tag = f"py3-none-manylinux_{GLIBC_BASELINE}_{arch}"
    dist_info = f"{name}-{version}.dist-info"

    entries: list[tuple[str, bytes]] = []
    packages = ["posetok"] + (["posetok_converters"] if with_converters else [])
    for package in packages:
        entries += [(arc, path.read_bytes()) for arc, path in package_files(package)]
    entries.append((f"posetok/lib/{arch}/libposetok_kernels.so", lib.read_bytes()))
    scripts = project.get("scripts", {})
    entries.append((f"{dist_info}/entry_points.txt",
                    ("[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())).encode()))
    entries.append((f"{dist_info}/METADATA", metadata(project, extras).encode()))
    entries.append((f"{dist_info}/WHEEL", (f"Wheel-Version: 1.0\nGenerator: posetok build_wheel\n"
                                          f"Root-Is-Purelib: false\nTag: {tag}\n").encode()))
    record = "".join(f"{arc},{record_hash(data)},{len(data)}\n" for arc, data in entries)
    entries.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))

    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{name}-{version}-{tag}.whl"
    fd, tmp = tempfile.mkstemp(prefix=f".{wheel.name}.", dir=out_dir)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for arc, data in entries:
                info = zipfile.ZipInfo(arc, date_time=ZIP_DATE)
                info.external_attr = (0o755 if arc.endswith(".so") else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        os.replace(tmp, wheel)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return wheel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=("aarch64", "x86_64"), required=True)
    ap.add_argument("--lib", type=Path, required=True, help="libposetok_kernels.so built for --arch")
    ap.add_argument("--out", type=Path, default=REPO / "dist")
    ap.add_argument("--with-converters", action="store_true", help="include the host tooling package")
    args = ap.parse_args()
    wheel = build(args.arch, args.lib.resolve(), args.out, args.with_converters)
    print(f"built {wheel.relative_to(REPO) if wheel.is_relative_to(REPO) else wheel} "
          f"({wheel.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    sys.exit(main())
