# Sourced by the QEMU runners: where the emulated aarch64 Python lives and
# which CPU QEMU emulates. Mirrors default_root() in build_sysroot.py.
cross_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# cortex-a76 (Raspberry Pi 5 class) on purpose: QEMU's default "max" CPU
# advertises SVE/SVE2/SME, which no Cortex-A board in the field has.
export POSETOK_QEMU_CPU=${POSETOK_QEMU_CPU:-cortex-a76}
if [ -z "${POSETOK_AARCH64_ROOT:-}" ]; then
  _key=$(sha256sum "$cross_dir/build_sysroot.py" | cut -c1-12)
  _base=${POSETOK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/posetok}
  POSETOK_AARCH64_ROOT="$_base/aarch64-$_key"
fi
command -v qemu-aarch64 >/dev/null 2>&1 || {
  echo "posetok: qemu-aarch64 not found; run 'make setup'" >&2; exit 127; }
