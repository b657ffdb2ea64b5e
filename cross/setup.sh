#!/usr/bin/env bash
# make setup: everything posetok needs on a bare Debian bookworm x86_64
# machine. Idempotent; each step says what it does and a failure names the
# step. A warm run only checks stamps.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
VENV=.venv
SERVE_VENV=.venv-serve
total=5
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
  # posetok[signing] in its own call: model-signing's sigstore-models needs typing-extensions>=4.14.1,
  # which xdsl (under litert-torch) excludes on paper (<4.13), so one resolve of both fails. The export
  # with the newer typing-extensions writes byte-identical TFLite files; pip prints the xdsl conflict.
  echo "installing posetok[signing] (model-signing, pyopenssl)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[signing]' 2>&1 \
    | { grep -v -e '^WARNING: Location' -e 'xdsl .* requires typing-extensions' -e "^ERROR: pip's dependency resolver" \
        -e 'This behaviour is the source of the following dependency conflicts' || true; }
  local log
  if ! log=$("$VENV/bin/python" -c "import torch, onnx, onnxruntime, litert_torch, model_signing" 2>&1); then
    echo "$log" | tail -20; echo "host tooling did not import"; return 1
  fi
  echo "$want" > "$VENV/.posetok-ready"
}

serve_venv_step() {
  # posetok serve's own environment: tritonserver's Python-backend stub links
  # Debian's libpython3.11, and its 2.51 backend breaks under numpy 2, so this
  # venv is made from /usr/bin/python3.11 with numpy<2; posetok goes in
  # without dependencies (no torch). tritonclient 2.51 brings perf_analyzer.
  local reqs="numpy<2 nvidia-pytriton==0.7.0 onnxruntime>=1.16 tritonclient[http,grpc]==2.51.0"
  local want have=""
  want=$(printf '%s\n' "$reqs" | cat - pyproject.toml | sha256sum | cut -c1-16)
  [ -f "$SERVE_VENV/.posetok-ready" ] && have=$(cat "$SERVE_VENV/.posetok-ready")
  if [ "$want" = "$have" ] && [ -x "$SERVE_VENV/bin/perf_analyzer" ]; then
    echo "serving venv up to date"; return 0
  fi
  [ -x "$SERVE_VENV/bin/python" ] || /usr/bin/python3.11 -m venv "$SERVE_VENV"
  echo "installing $reqs"
  # shellcheck disable=SC2086
  "$SERVE_VENV/bin/pip" install -q --disable-pip-version-check $reqs 2>&1 | { grep -v '^WARNING: Location' || true; }
  echo "installing posetok (editable, without dependencies)"
  "$SERVE_VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e . 2>&1 | { grep -v '^WARNING: Location' || true; }
  local log
  if ! log=$("$SERVE_VENV/bin/python" -c "import numpy, onnxruntime, posetok.serving.models, pytriton
assert numpy.__version__ < '2', numpy.__version__" 2>&1); then
    echo "$log" | tail -20; echo "the serving environment did not import"; return 1
  fi
  echo "$want" > "$SERVE_VENV/.posetok-ready"
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
step "serving environment .venv-serve (tritonserver, numpy<2)" serve_venv_step
step "emulated aarch64 Python (sysroot + wheels)" "$PY" cross/build_sysroot.py
step "host kernel library" host_kernels_step
printf '\n== setup complete\n'
