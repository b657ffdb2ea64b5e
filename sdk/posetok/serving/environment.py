"""The serving environment: the venv that holds the bundled tritonserver.

``make setup`` builds ``.venv-serve`` from Debian's python3.11 with numpy<2
and the ``nvidia-pytriton`` wheel (the Python-backend stub links the system
libpython3.11); ``find_serving_env`` locates it and ``ServingEnv`` names the
files in it that ``TritonServer`` and the serving benchmark start.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional

from ..errors import PosetokError

ENV_VAR = "POSETOK_SERVE_ENV"
_PKG = Path(__file__).resolve().parents[1]          # .../posetok
_SOURCE_ROOT = _PKG.parents[1]                       # the checkout, when running from source


class ServingError(PosetokError, RuntimeError):
    """The server could not be started or stopped (the message says why and what to do)."""


@dataclasses.dataclass(frozen=True)
class ServingEnv:
    """The serving environment: a venv holding nvidia-pytriton, numpy<2, onnxruntime.

    Attributes:
        root: the venv folder.
    """

    root: Path

    @property
    def site_packages(self) -> Path:
        """The venv's site-packages (python3.11)."""
        return self.root / "lib" / "python3.11" / "site-packages"

    @property
    def tritonserver(self) -> Path:
        """The bundled tritonserver binary."""
        return self.site_packages / "pytriton" / "tritonserver" / "bin" / "tritonserver"

    @property
    def libs(self) -> Path:
        """The wheel's shared libraries (libtritonserver, libb64, libcudart, ...)."""
        return self.site_packages / "nvidia_pytriton.libs"

    @property
    def python_backend(self) -> Path:
        """The Python backend folder (libtriton_python.so, triton_python_backend_utils.py)."""
        return self.site_packages / "pytriton" / "tritonserver" / "backends" / "python"

    @property
    def stub(self) -> Path:
        """The Python-backend stub built for CPython 3.11."""
        return self.site_packages / "pytriton" / "tritonserver" / "python_backend_stubs" / "3.11" / \
            "triton_python_backend_stub"

    @property
    def perf_analyzer(self) -> Path:
        """perf_analyzer from tritonclient 2.51 (runs with ``libs`` on LD_LIBRARY_PATH)."""
        return self.root / "bin" / "perf_analyzer"

    def library_env(self) -> dict:
        """``os.environ`` with ``libs`` first on LD_LIBRARY_PATH.

        Returns:
            A new environment dict.
        """
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(self.libs), env.get("LD_LIBRARY_PATH")) if p)
        return env


def find_serving_env(path: Optional[os.PathLike | str] = None) -> ServingEnv:
    """Locate the serving environment.

    Args:
        path: the venv folder; None: ``$POSETOK_SERVE_ENV``, else ``.venv-serve``
            in the source checkout this package runs from, else in the current folder.

    Returns:
        The ``ServingEnv``.

    Raises:
        ServingError: no venv with the bundled tritonserver there (the message says how to make one).
    """
    if path is None and os.environ.get(ENV_VAR):
        path = os.environ[ENV_VAR]
    candidates = [Path(path)] if path is not None else [_SOURCE_ROOT / ".venv-serve", Path.cwd() / ".venv-serve"]
    for root in candidates:
        env = ServingEnv(root.absolute())
        if env.tritonserver.is_file() and env.stub.is_file():
            return env
    raise ServingError(f"no serving environment with the bundled tritonserver at {', '.join(map(str, candidates))}; "
                       f"run 'make setup' (it builds .venv-serve from /usr/bin/python3.11 with numpy<2 and "
                       f"nvidia-pytriton) or point {ENV_VAR} at such a venv")
