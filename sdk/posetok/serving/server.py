"""Start and stop the real tritonserver on a bundle.

The server binary, its libraries and the Python-backend stub come from the
``nvidia-pytriton`` wheel in the serving environment (``.venv-serve``, made by
``make setup`` from Debian's python3.11 with numpy<2: the stub links the
system libpython3.11). This module runs in any Python: it writes a
Python-backend model repository into a temporary folder, starts
``tritonserver`` on it with the serving environment's site-packages on
``PYTHONPATH``, waits until it is ready and, on ``stop``, shuts it down
(SIGTERM, then SIGKILL of its process group after a grace period), removes
the shared-memory regions of its stubs and the temporary folder.
"""
from __future__ import annotations

import ctypes
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from ..bundle import Bundle
from ..errors import PosetokError
from .repository import Batching, write_serving_repository

ENV_VAR = "POSETOK_SERVE_ENV"
SHM_DIR = Path("/dev/shm")
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


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports nothing listens on now (the OS picks them; a race with another
    process grabbing one in between is possible but rare).

    Args:
        count: how many.
        host: the address to bind.

    Returns:
        ``count`` distinct port numbers.
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def group_pids(pgid: int) -> list[int]:
    """Live processes (not zombies) of a process group, from /proc.

    Args:
        pgid: the process group id (the server's pid: it leads its own group).

    Returns:
        Their pids.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of some processes, summed.

    Args:
        pids: process ids; ones that have exited count 0.

    Returns:
        Bytes.
    """
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _die_with_parent() -> None:  # runs in the child before exec: SIGTERM when the launcher dies
    os.setsid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """How ``TritonServer`` serves a bundle.

    Attributes:
        host: the address HTTP, gRPC and metrics bind (127.0.0.1: this machine only).
        http_port: KServe v2 HTTP port; 0 picks a free one.
        grpc_port: KServe v2 gRPC port; 0 picks a free one.
        metrics_port: Prometheus metrics port; 0 picks a free one.
        batching: max batch size, dynamic batching on/off, queue delay and bound.
        instances: model instances per model (each opens its own runtime session).
        backend: the posetok runtime inside: ``"onnxruntime"``, ``"litert"`` or ``"auto"``.
        precision: the bundle graphs served (``fp32``, ``fp16``, ``int8w``, ``int8``).
        num_threads: threads per runtime session (1 suits many small requests).
        exit_timeout_s: how long tritonserver waits for in-flight requests on shutdown.
    """

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    batching: Batching = Batching()
    instances: int = 1
    backend: str = "auto"
    precision: str = "fp32"
    num_threads: int = 1
    exit_timeout_s: int = 5


class TritonServer:
    """tritonserver serving one bundle; a context manager (``with TritonServer(...) as server``).

    Args:
        bundle: the bundle folder.
        options: ``ServerOptions``.
        env: the serving environment; None: ``find_serving_env()``.
        repository: run this existing model repository instead of writing one
            for ``bundle`` (``posetok export --triton`` output, say).
        load: with ``repository``: the models to load (explicit model control);
            the others, such as ONNX models the bundled server has no backend
            for, stay unloaded.
        public_key: check the bundle's signature with this public key before serving.

    Attributes:
        bundle: the loaded (verified) ``Bundle``.
        options: the options, with ports 0 replaced by the free ones picked.
        models: the model names served.
        process: the ``subprocess.Popen`` of tritonserver while it runs.
        startup_s: seconds from start to ready.

    Raises:
        BundleError, IntegrityError: the bundle cannot be used.
        ServingError: no serving environment.
    """

    def __init__(self, bundle: os.PathLike | str, options: ServerOptions = ServerOptions(),
                 env: Optional[ServingEnv] = None, repository: Optional[os.PathLike | str] = None,
                 load: tuple[str, ...] = (), public_key: Optional[os.PathLike | str] = None):
        self.env = env or find_serving_env()
        self.bundle = Bundle.load(bundle, public_key=public_key) if public_key else Bundle.load(bundle)
        self.repository = Path(repository).absolute() if repository is not None else None
        self.load = tuple(load)
        ports = [options.http_port, options.grpc_port, options.metrics_port]
        picked = iter(free_ports(ports.count(0), options.host if options.host != "0.0.0.0" else "127.0.0.1"))
        ports = [p or next(picked) for p in ports]
        self.options = dataclasses.replace(options, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2])
        self.models: list[str] = []
        self.process: Optional[subprocess.Popen] = None
        self.startup_s: Optional[float] = None
        self._workdir: Optional[Path] = None
        self._shm_prefix = ""

    # -- addresses --
    @property
    def client_host(self) -> str:
        """Where a client on this machine connects (the bound address, or 127.0.0.1 for 0.0.0.0)."""
        return "127.0.0.1" if self.options.host in ("0.0.0.0", "") else self.options.host

    @property
    def http_url(self) -> str:
        """``host:port`` of the HTTP endpoint (tritonclient.http's ``url``)."""
        return f"{self.client_host}:{self.options.http_port}"

    @property
    def grpc_url(self) -> str:
        """``host:port`` of the gRPC endpoint (tritonclient.grpc's ``url``)."""
        return f"{self.client_host}:{self.options.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """The Prometheus metrics URL."""
        return f"http://{self.client_host}:{self.options.metrics_port}/metrics"

    @property
    def log_path(self) -> Optional[Path]:
        """tritonserver's log file while it runs (removed with the work folder on stop)."""
        return self._workdir / "tritonserver.log" if self._workdir else None

    def pids(self) -> list[int]:
        """tritonserver and its Python-backend stubs.

        Returns:
            Live pids of the server's process group (empty when stopped).
        """
        return group_pids(self.process.pid) if self.process else []

    def shm_regions(self) -> list[Path]:
        """The shared-memory regions of this server's stubs.

        Returns:
            Paths under /dev/shm with this server's prefix.
        """
        return sorted(SHM_DIR.glob(self._shm_prefix + "*")) if self._shm_prefix else []

    # -- lifecycle --
    def start(self, timeout_s: float = 60.0) -> "TritonServer":
        """Write the repository, start tritonserver and wait until it and every model is ready.

        Args:
            timeout_s: the longest wait for readiness.

        Returns:
            self.

        Raises:
            ServingError: the server exited or did not become ready in time
                (the message carries the end of its log).
        """
        if self.process is not None:
            raise ServingError("this server is already started")
        t0 = time.perf_counter()
        self._workdir = Path(tempfile.mkdtemp(prefix="posetok-serve-"))
        self._shm_prefix = f"posetok_{os.getpid()}_{self._workdir.name.rsplit('-', 1)[-1]}_"
        backends = self._workdir / "backends" / "python"
        backends.mkdir(parents=True)
        for source in (self.env.python_backend / "libtriton_python.so",
                       self.env.python_backend / "triton_python_backend_utils.py", self.env.stub):
            shutil.copy2(source, backends / source.name)
        o = self.options
        settings = {"backend": o.backend, "precision": o.precision, "num_threads": o.num_threads, "verify": False}
        if self.repository is None:
            repository, control = self._workdir / "models", []
            self.models = write_serving_repository(repository, self.bundle, settings, o.batching, o.instances)
        else:
            repository, self.models = self.repository, list(self.load)
            control = ["--model-control-mode=explicit"] + [f"--load-model={name}" for name in self.load]
        command = [str(self.env.tritonserver), f"--model-repository={repository}", *control,
                   f"--backend-directory={self._workdir / 'backends'}", f"--exit-timeout-secs={o.exit_timeout_s}",
                   f"--http-address={o.host}", f"--http-port={o.http_port}",
                   f"--grpc-address={o.host}", f"--grpc-port={o.grpc_port}",
                   f"--metrics-address={o.host}", f"--metrics-port={o.metrics_port}",
                   "--allow-gpu-metrics=false", "--strict-readiness=true", "--log-verbose=0",
                   f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}"]
        env = self.env.library_env()
        env["PYTHONPATH"] = os.pathsep.join([str(_PKG.parent), str(self.env.site_packages)])
        # The stub embeds libpython3.11 and finds its prefix through PATH: the venv's python3 first.
        env["PATH"] = os.pathsep.join([str(self.env.root / "bin"), env.get("PATH", "/usr/bin:/bin")])
        env["PYTHONNOUSERSITE"] = "1"
        env.pop("PYTHONHOME", None)
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            env=env, cwd=self._workdir, preexec_fn=_die_with_parent)
        except OSError as exc:
            log.close()
            self._cleanup()
            raise ServingError(f"cannot start {command[0]}: {exc}") from None
        log.close()
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - t0
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        url = f"http://{self.http_url}/v2/health/ready"
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServingError(f"tritonserver exited with status {code} before it was ready; "
                                   f"its log ends:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ServingError(f"tritonserver was not ready after {timeout_s:.0f} s (is port "
                                   f"{self.options.http_port}, {self.options.grpc_port} or "
                                   f"{self.options.metrics_port} taken?); its log ends:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 25) -> str:
        """The end of tritonserver's log.

        Args:
            lines: how many lines.

        Returns:
            The text ('' when there is no log).
        """
        try:
            text = self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""
        all_lines = text.splitlines()
        errors = [line for line in all_lines if line.startswith("E") and line[1:5].isdigit()]  # E1130 12:00 ...
        tail = [line for line in all_lines[-lines:] if line not in errors]
        return "\n".join(errors[-lines:] + tail[-5:])

    def stop(self, timeout_s: float = 30.0) -> Optional[int]:
        """Shut the server down and clean up after it. Idempotent.

        SIGTERM lets tritonserver finish in-flight requests and unload the
        models (their stubs exit and release their shared memory); whatever
        of its process group is still alive after ``timeout_s`` is killed.

        Args:
            timeout_s: the grace period before SIGKILL.

        Returns:
            tritonserver's exit status (negative: the signal that ended it), or None when it never ran.
        """
        code = None
        if self.process is not None:
            pgid = self.process.pid
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                code = None
            deadline = time.monotonic() + 5
            while group_pids(pgid) and time.monotonic() < deadline:  # stubs exiting after the server
                time.sleep(0.05)
            if group_pids(pgid):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if code is None:
                code = self.process.wait()
            self.process = None
        self._cleanup()
        return code

    def _cleanup(self) -> None:
        for region in self.shm_regions():
            try:
                region.unlink()
            except OSError:
                pass
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> "TritonServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.process.pid}" if self.process else "stopped"
        return f"TritonServer({str(self.bundle.root)!r}, http={self.http_url}, grpc={self.grpc_url}, {state})"

