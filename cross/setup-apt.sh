#!/usr/bin/env bash
# Installs the Debian packages posetok builds and tests with.
# Idempotent: does nothing when every package (and QEMU >= 10) is present.
set -euo pipefail

PACKAGES=(build-essential cmake ninja-build pkg-config
          gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross
          clang lld llvm libclang-rt-14-dev clang-format
          binutils-aarch64-linux-gnu dpkg-dev file patchelf
          python3.11-venv libpython3.11)
BACKPORTS_LIST=/etc/apt/sources.list.d/posetok-bookworm-backports.sources

log() { printf '[setup-apt] %s\n' "$*"; }

qemu_major() {
  command -v qemu-aarch64 >/dev/null 2>&1 || { echo 0; return; }
  qemu-aarch64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ] && [ "$(qemu_major)" -ge 10 ]; then
  log "all packages present (qemu-aarch64 $(qemu-aarch64 --version | head -n1 | awk '{print $3}'))"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# QEMU 7.2 in bookworm crashes on onnxruntime import; QEMU 10 lives in
# bookworm-backports. The suite is derived from the machine's own Debian
# source entry so the repository never names a mirror.
if [ ! -f "$BACKPORTS_LIST" ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { log "ERROR: cannot find the machine's Debian bookworm apt source to derive bookworm-backports from"; exit 1; }
  log "enabling bookworm-backports from the machine's existing source entry"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
    | $SUDO tee "$BACKPORTS_LIST" >/dev/null
fi

log "apt-get update"
$SUDO apt-get update -q >/dev/null
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$(qemu_major)" -lt 10 ]; then
  log "installing qemu-user from bookworm-backports"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-user >/dev/null
fi
[ "$(qemu_major)" -ge 10 ] || { log "ERROR: qemu-aarch64 >= 10 is required, found $(qemu-aarch64 --version | head -n1)"; exit 1; }
log "done (qemu-aarch64 $(qemu-aarch64 --version | head -n1 | awk '{print $3}'))"
