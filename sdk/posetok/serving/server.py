"""Start and stop the real tritonserver on a bundle.

The server binary, its libraries and the Python-backend stub come from the
``nvidia-pytriton`` wheel in the serving environment (``.venv-serve``, made by
``make setup`` from Debian's python3.11 with numpy<2: the stub links the
system libpython3.11). This module runs in any Python: it writes a
Python-backend model repository into a temporary folder, starts
``tritonserver`` on it with the serving environment's site-packages on
``PYTHONPATH``, waits until it is ready and, on ``stop``, shuts it down
(SIGTERM, then SIGKILL of its process group after a grace period), removes
the shared-memory regions of its stubs and the temporary folder. A launcher
killed with SIGKILL cannot clean up; the next ``start`` on this machine
removes what it left (``remove_stale_workdirs``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from ..atomic import write_text_atomic
from ..bundle import Bundle
from ..checks import flag, num_threads, port, whole_number
from .environment import ENV_VAR, ServingEnv, ServingError, find_serving_env  # noqa: F401  (re-exported)
from .processes import (  # noqa: F401  (re-exported)
    die_with_parent,
    free_ports,
    group_pids,
    process_start_time,
    rss_bytes,
)
from .repository import Batching, servable_models, write_serving_repository

SHM_DIR = Path("/dev/shm")
_PKG = Path(__file__).resolve().parents[1]          # .../posetok, put on the stub's PYTHONPATH
WORKDIR_PREFIX = "posetok-serve-"                   # the temporary folder of one started server
MAX_INSTANCES = 64                                  # per model: each instance is a Python stub process
SHM_PREFIX_FORM = re.compile(r"posetok_\d+_[A-Za-z0-9_]{1,32}_")   # see start(): pid and mkdtemp suffix
OWNER_FILE = "owner.json"                           # in it: who made it, to tell a stale folder from a live one


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """How ``TritonServer`` serves a bundle.

    Attributes:
        host: the address HTTP, gRPC and metrics bind (127.0.0.1: this machine only).
        http_port: KServe v2 HTTP port, 0 to 65535; 0 picks a free one.
        grpc_port: KServe v2 gRPC port; 0 picks a free one.
        metrics_port: Prometheus metrics port; 0 picks a free one.
        batching: max batch size, dynamic batching on/off, queue delay and bound.
        instances: model instances per model (each opens its own runtime session).
        backend: the posetok runtime inside: ``"onnxruntime"``, ``"litert"`` or ``"auto"``.
        precision: the bundle graphs served (``fp32``, ``fp16``, ``int8w``, ``int8``).
        num_threads: threads per runtime session (1 suits many small requests).
        exit_timeout_s: how long tritonserver waits for in-flight requests on shutdown.
        flip_test: ``posetok_estimate`` runs each pose's pass on the crop and
            its mirror image and averages them (``EstimatorOptions.flip_test``).
        shift_test: ``posetok_estimate`` also runs each pose's pass on two
            crops moved by a pixel or two and averages the three
            (``EstimatorOptions.shift_test``).

    Raises:
        ValueError: a port outside 0..65535, fewer than one instance or
            num_threads outside 1..1024 (None: the runtime's default), a
            flip_test or shift_test that is not a bool.
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
    flip_test: bool = False
    shift_test: bool = False

    def __post_init__(self):
        for name in ("http_port", "grpc_port", "metrics_port"):
            object.__setattr__(self, name, port(getattr(self, name), name))
        object.__setattr__(self, "instances", whole_number(self.instances, "instances", 1, MAX_INSTANCES))
        object.__setattr__(self, "num_threads", num_threads(self.num_threads))
        for name in ("flip_test", "shift_test"):
            object.__setattr__(self, name, flag(getattr(self, name), name))


class TritonServer:
    """tritonserver serving one bundle; a context manager (``with TritonServer(...) as server``).

    Args:
        bundle: the bundle folder, or a ``Bundle`` already loaded (and verified) from it.
        options: ``ServerOptions``.
        env: the serving environment; None: ``find_serving_env()``.
        repository: run this existing model repository instead of writing one
            for ``bundle`` (``posetok export --triton`` output, say).
        load: with ``repository``: the models to load (explicit model control);
            the others, such as ONNX models the bundled server has no backend
            for, stay unloaded.
        public_key: check the bundle's signature with this public key before serving (with a
            folder; a loaded ``Bundle`` was checked, or not, by its ``Bundle.load``).

    Attributes:
        bundle: the loaded (verified) ``Bundle``.
        options: the options, with ports 0 replaced by the free ones picked.
        models: the model names served.
        process: the ``subprocess.Popen`` of tritonserver while it runs.
        startup_s: seconds from start to ready.

    Raises:
        BundleError, IntegrityError: the bundle cannot be used, or (without
            ``repository``) it has no graphs in ``options.precision``.
        ServingError: no serving environment.
    """

    def __init__(self, bundle: os.PathLike | str | Bundle, options: ServerOptions = ServerOptions(),
                 env: Optional[ServingEnv] = None, repository: Optional[os.PathLike | str] = None,
                 load: tuple[str, ...] = (), public_key: Optional[os.PathLike | str] = None):
        if isinstance(bundle, Bundle):
            if public_key is not None:
                raise ValueError("public_key checks a bundle folder as it loads; pass it to Bundle.load instead")
            self.bundle = bundle
        else:
            self.bundle = Bundle.load(bundle, public_key=public_key) if public_key else Bundle.load(bundle)
        self.env = env or find_serving_env()
        self.repository = Path(repository).absolute() if repository is not None else None
        self.load = tuple(load)
        if self.repository is None:  # refuse now, not after tritonserver fails on an empty repository
            servable_models(self.bundle, options.precision)
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
        remove_stale_workdirs()
        self._workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        self._shm_prefix = f"posetok_{os.getpid()}_{self._workdir.name.rsplit('-', 1)[-1]}_"
        self._write_owner()
        backends = self._workdir / "backends" / "python"
        backends.mkdir(parents=True)
        for source in (self.env.python_backend / "libtriton_python.so",
                       self.env.python_backend / "triton_python_backend_utils.py", self.env.stub):
            shutil.copy2(source, backends / source.name)
        o = self.options
        settings = {"backend": o.backend, "precision": o.precision, "num_threads": o.num_threads, "verify": False,
                    "flip_test": o.flip_test, "shift_test": o.shift_test}
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
                                            env=env, cwd=self._workdir, preexec_fn=die_with_parent)
        except OSError as exc:
            log.close()
            self._cleanup()
            raise ServingError(f"cannot start {command[0]}: {exc}") from None
        log.close()
        try:
            self._write_owner()  # now with the server's pid
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - t0
        return self

    def _write_owner(self) -> None:
        owner = {"launcher_pid": os.getpid(), "launcher_start": process_start_time(os.getpid()),
                 "server_pid": self.process.pid if self.process else None, "shm_prefix": self._shm_prefix,
                 "pid_space": pid_space()}
        write_text_atomic(self._workdir / OWNER_FILE, json.dumps(owner) + "\n")

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
        _remove_server_files(self._workdir, self._shm_prefix)
        self._workdir = None

    def __enter__(self) -> "TritonServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.process.pid}" if self.process else "stopped"
        return f"TritonServer({str(self.bundle.root)!r}, http={self.http_url}, grpc={self.grpc_url}, {state})"


def _remove_server_files(workdir: Optional[Path], shm_prefix: str) -> None:
    """Remove one server's stub shared-memory regions (``shm_prefix*``; none for an empty prefix) and its work
    folder (None: none)."""
    for region in sorted(SHM_DIR.glob(shm_prefix + "*")) if shm_prefix else []:
        try:
            region.unlink()
        except OSError:
            pass
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def pid_space() -> Optional[str]:
    """This process's pid namespace and machine boot, as ``"<namespace>@<boot id>"``: pids and start times
    recorded under another (a container sharing /tmp, an earlier boot) say nothing about processes here.
    None where /proc does not tell."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return f"{namespace}@{boot}"


def _cwd_users(folder: Path) -> bool:
    """Whether a live process has its working folder in ``folder`` (tritonserver and its stubs run there)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:  # gone, or another user's
                continue
            if cwd == folder or folder in cwd.parents:
                return True
    return False


def remove_stale_workdirs(tmp: Optional[os.PathLike | str] = None) -> list[Path]:
    """Remove the work folders (and stub shared memory) of launchers that died without cleaning up.

    A launcher killed with SIGKILL leaves its ``posetok-serve-*`` folder
    (about 3 MB) behind. A folder is removed only when it is this user's, its
    owner file names a launcher that no longer runs (its pid is gone or now
    belongs to a process started later), no process of its tritonserver's
    group lives and no process works inside it; a folder without a readable
    owner file (another tool's, or one being created) is kept.

    Args:
        tmp: the folder to look in; None: ``tempfile.gettempdir()``.

    Returns:
        The folders removed.
    """
    removed, here = [], pid_space()
    for folder in sorted(Path(tmp or tempfile.gettempdir()).glob(WORKDIR_PREFIX + "*")):
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            owner = json.loads((folder / OWNER_FILE).read_text())
            launcher, started = int(owner["launcher_pid"]), int(owner["launcher_start"])
            server = None if owner["server_pid"] is None else int(owner["server_pid"])
            prefix, space = str(owner["shm_prefix"]), owner["pid_space"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # no owner file yet, or not one this code wrote
        if space is None or space != here:
            continue  # another container's or machine boot's: its pids mean nothing here
        if process_start_time(launcher) == started:
            continue  # its launcher still runs
        if (server is not None and group_pids(server)) or _cwd_users(folder.resolve()):
            continue  # its tritonserver is still shutting down
        # one server's regions only: never a glob wider than that
        _remove_server_files(folder, prefix if SHM_PREFIX_FORM.fullmatch(prefix) else "")
        removed.append(folder)
    return removed
