"""Finding, loading and calling the C kernel library (ctypes), and its error type."""
from __future__ import annotations

import ctypes
import os
import platform
from pathlib import Path
from typing import Optional

from ..errors import PosetokError


class KernelError(PosetokError, RuntimeError):
    """The C library returned a negative status (should not happen for inputs
    that passed the Python checks, except ``impl="neon"`` without NEON).

    Also a ``RuntimeError``, so ``except RuntimeError`` still catches it.

    Args:
        function: the C function that failed (e.g. ``posetok_gaussian3x3_u8_neon``).
        status: its negative return code.
        message: the library's text for the code (``posetok_kernels_strerror``).

    Attributes:
        status: the C return code.
    """

    def __init__(self, function: str, status: int, message: str):
        super().__init__(f"{function}: {message} (status {status})")
        self.status = status


def library_path() -> Path:
    """Where the library is looked up (the file need not exist).

    Returns:
        ``$POSETOK_KERNELS_LIB`` if set, else
        ``<package>/lib/<platform.machine()>/libposetok_kernels.so``.
    """
    env = os.environ.get("POSETOK_KERNELS_LIB")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "lib" / platform.machine() / "libposetok_kernels.so"


_lib: Optional[ctypes.CDLL] = None
_lib_path: Optional[Path] = None

_P, _I = ctypes.c_void_p, ctypes.c_int
_SIGNATURES = {
    "posetok_nv21_to_rgb888": [_P, _I, _P, _I, _P, _I, _I, _I, _I],
    "posetok_nv12_to_rgb888": [_P, _I, _P, _I, _P, _I, _I, _I, _I],
    "posetok_downscale_uv2x2_u8": [_P, _I, _P, _I, _I, _I],
    "posetok_gaussian3x3_u8": [_P, _I, _P, _I, _I, _I, _I, _I],
    "posetok_resize_bilinear_u8": [_P, _I, _I, _I, _P, _I, _I, _I, _I],
    "posetok_conv2d_f32": [_P, _I, _I, _I, _I, _P, _P, _I, _I, _I, _I, _P, _I],
    "posetok_normalize_u8_f32_chw": [_P, _I, _I, _I, _I, _P, _P, _P, _I],
    "posetok_crop_area_yuv420sp_u8": [_P, _I, _P, _I, _I, _I, _I, _I, _I, _I, _I, _I, _I, _I, _I,
                                      _P, _P, _P, _P],
    "posetok_crop_area_u8": [_P, _I, _I, _I, _I, _I, _I, _I, _I, _I, _I, _P, _P, _P, _P],
}


_functions: dict = {}
_lib_env: Optional[str] = None


def load_library() -> ctypes.CDLL:
    """Loads (once per path) and returns the kernel library.

    Reloads when ``$POSETOK_KERNELS_LIB`` names another file.

    Returns:
        The ``ctypes.CDLL`` with every kernel's argument types set.

    Raises:
        FileNotFoundError: no library at ``library_path()``.
        OSError: the file is not a loadable library for this machine.
        AttributeError: the library lacks a kernel (an older build).
    """
    global _lib, _lib_path, _lib_env
    env = os.environ.get("POSETOK_KERNELS_LIB")
    if _lib is not None and env == _lib_env:  # fast path: every kernel call comes here
        return _lib
    path = library_path()
    if _lib is not None and _lib_path == path:
        _lib_env = env
        return _lib
    if not path.is_file():
        hint = ("set POSETOK_KERNELS_LIB to an existing file" if env
                else "build it with 'make kernels-host' (x86_64) or 'make kernels-aarch64', "
                     "or set POSETOK_KERNELS_LIB")
        raise FileNotFoundError(f"posetok kernels library not found at {path}; {hint}")
    lib = ctypes.CDLL(str(path))
    functions = {}
    for name, args in _SIGNATURES.items():
        for suffix in ("", "_ref", "_neon"):
            fn = getattr(lib, name + suffix)
            fn.argtypes = args
            fn.restype = ctypes.c_int
            functions[name + suffix] = fn
    lib.posetok_kernels_strerror.argtypes = [ctypes.c_int]
    lib.posetok_kernels_strerror.restype = ctypes.c_char_p
    lib.posetok_kernels_isa.restype = ctypes.c_char_p
    lib.posetok_kernels_have_neon.restype = ctypes.c_int
    _functions.clear()
    _functions.update(functions)
    _lib, _lib_path, _lib_env = lib, path, env
    return lib


def isa() -> str:
    """Which implementation ``impl="auto"`` dispatches to.

    Returns:
        ``"neon"`` when the dispatched functions use NEON, else ``"ref"``.

    Raises:
        FileNotFoundError: the library is missing (see ``load_library``).
    """
    return load_library().posetok_kernels_isa().decode()


def have_neon() -> bool:
    """Whether the library was built with NEON and the CPU has it.

    Returns:
        True when ``impl="neon"`` can run.

    Raises:
        FileNotFoundError: the library is missing (see ``load_library``).
    """
    return bool(load_library().posetok_kernels_have_neon())


def _call(name: str, suffix: str, *args) -> None:
    lib = load_library()
    status = _functions[name + suffix](*args)
    if status:
        raise KernelError(name + suffix, status, lib.posetok_kernels_strerror(status).decode())
