#!/usr/bin/env bash
# make setup: everything posetok needs on a bare Debian bookworm x86_64
# machine. Idempotent; each step says what it does and a failure names the
# step. A warm run only checks stamps.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
VENV=.venv
total=4
n=0
step() {
  n=$((n + 1)); local name=$1; shift
  printf '\n== setup step %d/%d: %s\n' "$n" "$total" "$name"
  local t0=$SECONDS
  if ! "$@"; then
    printf '\n== setup FAILED at step %d/%d: %s\n' "$n" "$total" "$name" >&2
    exit 1
  fi
  printf '== %s: ok (%ss)\n' "$name" $((SECONDS - t0))
}

venv_step() {
  # The stamp holds a hash of pyproject.toml: a dependency change reinstalls.
  local want have=""
  want=$(sha256sum pyproject.toml | cut -c1-16)
  [ -f "$VENV/.posetok-ready" ] && have=$(cat "$VENV/.posetok-ready")
  if [ "$want" = "$have" ] && [ -x "$VENV/bin/posetok" ] && [ -x "$VENV/bin/ruff" ]; then
    echo "venv up to date"; return 0
  fi
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  # torch first, from the CPU build on disk, so nothing later pulls CUDA.
  echo "installing torch==2.13.0 (CPU build)"
  "$VENV/bin/pip" install -q --disable-pip-version-check torch==2.13.0 2>&1 | { grep -v '^WARNING: Location' || true; }
  echo "installing posetok (editable) with the host tooling and the dev tools (pytest, auditwheel, ruff)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[convert,dev]' 2>&1 | { grep -v '^WARNING: Location' || true; }
  local log
  if ! log=$("$VENV/bin/python" -c "import torch, onnx, onnxruntime, litert_torch" 2>&1); then
    echo "$log" | tail -20; echo "host tooling did not import"; return 1
  fi
  echo "$want" > "$VENV/.posetok-ready"
}

host_kernels_step() {
  # The kernel library for the host interpreter (reference C on x86_64).
  if [ -f kernels/CMakeLists.txt ]; then
    make --no-print-directory kernels-host
  else
    echo "no kernels/ yet"
  fi
}

step "Debian packages (toolchains, cmake, QEMU >= 10)" bash cross/setup-apt.sh
step "host virtual environment .venv" venv_step
step "emulated aarch64 Python (sysroot + wheels)" "$PY" cross/build_sysroot.py
step "host kernel library" host_kernels_step
printf '\n== setup complete\n'
