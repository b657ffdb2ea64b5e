"""Building blocks of test_hostile_inputs.py (no tests here): pools of hostile
values, dtypes and memory layouts, the hostile-call record ``Case`` and
``judge``, the one rule every hostile call is held to:

  * a call whose arguments are all valid returns the reference result;
  * a call with an argument that must be refused raises ValueError or
    TypeError whose message names that argument (as a word);
  * a call with an argument that may go either way (an odd layout, a size-1
    axis, an extra axis) does one of the two.

Anything else (another exception type, a wrong result, a crash) fails. Every
judged call is counted in ``CALLS`` per group, so the module can prove how
many hostile calls one run made."""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, strategies as st

REPO = Path(__file__).resolve().parents[2]

FAST = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
OK, MAYBE, REFUSE = 0, 1, 2
CALLS: Counter = Counter()  # group -> hostile calls judged in this process
RAN: set = set()  # names of the hypothesis tests that ran in this process

# every kind of numpy dtype: bool, all integer widths, float16..longdouble,
# complex, object, str, bytes, datetime, timedelta, structured, byte-swapped
ALL_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
              np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128, object, "U3",
              "S3", "datetime64[s]", "timedelta64[ms]", [("a", "u1"), ("b", "f4")], ">f4", ">i4", ">u2"]
# things that are not arrays at all
NON_ARRAYS = [None, 0, 7, 1.5, float("nan"), True, 1j, "abc", "", b"ab", (), [], [[1, 2], [3]],
              {"a": 1}, object(), range(3), Ellipsis]
LAYOUTS = ["padded_rows", "read_only", "contiguous_copy", "strided_cols", "reversed_rows", "reversed_cols",
           "fortran", "broadcast", "misaligned", "byteswapped", "masked", "every_other_row"]


def cast(a: np.ndarray, dtype) -> np.ndarray:
    """``a`` in ``dtype`` (zeros where numpy cannot convert the values)."""
    try:
        with np.errstate(all="ignore"):
            return a.astype(dtype)
    except (TypeError, ValueError):
        return np.zeros(a.shape, dtype)


def relayout(a: np.ndarray, kind: str) -> np.ndarray:
    """A view of (about) the same values with another memory layout."""
    if kind == "padded_rows" and a.ndim >= 2:  # a crop: only the row stride differs
        big = np.zeros((a.shape[0], a.shape[1] + 5) + a.shape[2:], a.dtype)
        big[:, :a.shape[1]] = a
        return big[:, :a.shape[1]]
    if kind == "read_only":
        b = a.copy()
        b.flags.writeable = False
        return b
    if kind == "strided_cols" and a.ndim >= 1:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if kind == "every_other_row" and a.ndim >= 1:
        big = np.zeros((2 * a.shape[0],) + a.shape[1:], a.dtype)
        big[::2] = a
        return big[::2]
    if kind == "reversed_rows" and a.ndim >= 1:
        return a[::-1].copy()[::-1]
    if kind == "reversed_cols" and a.ndim >= 1:
        return a[..., ::-1].copy()[..., ::-1]
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "broadcast" and a.ndim >= 1 and a.shape[0] > 0:
        return np.broadcast_to(a[:1], a.shape)  # zero row stride, read-only
    if kind == "misaligned":
        raw = np.zeros(a.nbytes + 1, np.uint8)
        b = np.frombuffer(raw.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        np.copyto(b, a) if a.size else None
        return b
    if kind == "byteswapped":
        return a.astype(a.dtype.newbyteorder())
    if kind == "masked":
        return np.ma.masked_array(a, mask=np.zeros(a.shape, bool))
    return np.ascontiguousarray(a)


@dataclasses.dataclass
class Case:
    """One hostile call: keyword arguments, per argument how strict the
    outcome is (OK, MAYBE or REFUSE), extra names a refusal may give, whether
    a result is compared with the reference (not for finite but absurd values
    where float summation orders differ), and exception types also allowed."""

    kwargs: dict
    levels: dict = dataclasses.field(default_factory=dict)
    extra: set = dataclasses.field(default_factory=set)
    checked: bool = True
    also: tuple = ()  # impl="neon" without NEON: the library's KernelError

    def mark(self, name: str, level: int, replace: bool = False) -> None:
        """Record a broken argument; ``replace`` when its shape became
        anything (an earlier shape verdict no longer holds)."""
        self.levels[name] = level if replace else max(level, self.levels.get(name, OK))

    @property
    def expect(self) -> int:
        return max(self.levels.values(), default=OK)

    @property
    def suspects(self) -> set:
        return {n for n, level in self.levels.items() if level > OK} | (self.extra if self.expect else set())


def names(message: str, candidates) -> bool:
    """Whether ``message`` names one of ``candidates`` as a word."""
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9])", message) for n in candidates)


def judge(group: str, fn: Callable, case: Case, check: Callable[[object], None]) -> Optional[object]:
    """Call ``fn(**case.kwargs)`` and hold the outcome to the module rule;
    ``check(result)`` compares an accepted call's result with the reference.
    Returns the result, or None when refused."""
    CALLS[group] += 1
    try:
        out = fn(**case.kwargs)
    except (ValueError, TypeError) + tuple(case.also) as exc:
        msg = str(exc)
        if not isinstance(exc, (ValueError, TypeError)):  # one of case.also: the library refused
            assert case.expect != REFUSE, f"bad {sorted(case.suspects)} reached the C library: {msg}"
            assert "neon" in msg, msg
            return None
        assert case.expect != OK, f"refused valid arguments: {type(exc).__name__}: {msg}"
        assert names(msg, case.suspects), f"{type(exc).__name__} names none of {sorted(case.suspects)}: {msg}"
        return None
    assert case.expect != REFUSE, f"accepted arguments it must refuse ({sorted(case.suspects)})"
    if case.checked:
        check(out)
    return out


# ---- strategies ---------------------------------------------------------------------

def arrays_like(data, shape, dtype=np.uint8) -> np.ndarray:
    """Random values of ``shape``: all of u8, normal floats otherwise (seeded by hypothesis)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    if np.dtype(dtype) == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(dtype)


def hostile_array(data, case: Case, name: str, a: np.ndarray, fine_layouts=("padded_rows", "read_only",
                                                                               "contiguous_copy")) -> object:
    """``a`` unchanged, or broken one way (recorded in ``case``): a layout
    (fine, or maybe refused), a wrong dtype, an extra or missing axis, an
    empty axis, or no array at all."""
    kind = data.draw(st.sampled_from(["keep", "keep", "layout", "layout", "dtype", "ndim", "empty", "not_array"]),
                     label=f"{name} kind")
    if kind == "keep":
        return a
    if kind == "layout":
        lay = data.draw(st.sampled_from(LAYOUTS), label=f"{name} layout")
        case.mark(name, OK if lay in fine_layouts else MAYBE)
        return relayout(a, lay)
    if kind == "dtype":
        dt = np.dtype(data.draw(st.sampled_from(ALL_DTYPES), label=f"{name} dtype"))
        case.mark(name, OK if dt == a.dtype else REFUSE)
        return cast(a, dt)
    if kind == "ndim":
        case.mark(name, MAYBE, replace=True)
        # An array that is already empty (a chroma plane of a 1-row frame) has no first row or element to take.
        ways = ["append", "prepend", "flatten"] + (["drop_first", "scalar"] if a.size else [])
        how = data.draw(st.sampled_from(ways))
        return {"append": lambda: a[..., None], "prepend": lambda: a[None],
                "drop_first": lambda: a[0], "flatten": lambda: a.reshape(-1),
                "scalar": lambda: a.reshape(-1)[:1].reshape(())}[how]()
    if kind == "empty":
        case.mark(name, REFUSE)
        axis = data.draw(st.integers(0, a.ndim - 1))
        return np.take(a, [], axis=axis)
    case.mark(name, REFUSE)
    return data.draw(st.sampled_from([a.tolist()] + NON_ARRAYS), label=f"{name} value")


def hostile_option(data, case: Case, name: str, valid: list, hostile: list, maybe: list = ()) -> object:
    """A valid value of a keyword option (most of the time), else a hostile one."""
    pool = data.draw(st.sampled_from(["valid", "valid", "hostile", "maybe"] if maybe else
                                      ["valid", "valid", "hostile"]), label=f"{name} pool")
    if pool == "valid":
        return data.draw(st.sampled_from(valid), label=name)
    case.mark(name, REFUSE if pool == "hostile" else MAYBE)
    return data.draw(st.sampled_from(hostile if pool == "hostile" else list(maybe)), label=name)


# ---- running a command against the ASan+UBSan build of the kernels -----------------

def asan_runtime(lib: Path) -> str:
    """The ASan runtime the library links (it must be loaded first, so preloaded)."""
    ldd = subprocess.run(["ldd", str(lib)], capture_output=True, text=True).stdout
    found = re.search(r"(\S*libasan\.so\S*) => (\S+)", ldd)
    if found:
        return found.group(2)
    gcc = shutil.which("gcc")
    path = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip() \
        if gcc else ""
    if not os.path.isabs(path):
        pytest.skip(f"no ASan runtime found for {lib} (ldd: {ldd.strip()!r}; gcc -print-file-name: {path!r})")
    return path


def sanitized(tmp_path: Path, argv: list) -> tuple:
    """Run argv with the ASan+UBSan library; returns (process, sanitizer report text)."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed: cannot build the ASan+UBSan kernels (build/host-asan)")
    build = REPO / "build" / "host-asan"
    for step in ([cmake, "-S", str(REPO / "kernels"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Debug",
                  "-DPOSETOK_SANITIZE=ON"], [cmake, "--build", str(build), "-j2", "--target", "posetok_kernels"]):
        done = subprocess.run(step, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(step)}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    lib = build / "libposetok_kernels.so"
    logs = tmp_path / "san"
    logs.mkdir(parents=True)
    env = dict(os.environ, POSETOK_KERNELS_LIB=str(lib), LD_PRELOAD=asan_runtime(lib),
               ASAN_OPTIONS=f"detect_leaks=0:halt_on_error=1:log_path={logs}/asan",
               UBSAN_OPTIONS=f"halt_on_error=1:print_stacktrace=1:log_path={logs}/ubsan")
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=500)
    return proc, "".join(p.read_text(errors="replace") for p in sorted(logs.iterdir()))
