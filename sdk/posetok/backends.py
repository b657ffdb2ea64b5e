"""Inference backends: one small class per runtime, one input; ``run`` returns
the first output, ``run_outputs`` every output by name.

Each backend is imported only when used, so a device needs just the runtime
it runs. LiteRT comes from ``ai_edge_litert`` and falls back to
``tflite_runtime`` (boards in the field carry either).
"""
from __future__ import annotations

import importlib.util
import platform
import threading
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .errors import PosetokError
from .manifest_schema import BundleError

BACKENDS = ("onnxruntime", "litert")
FORMAT_OF_BACKEND = {"onnxruntime": "onnx", "litert": "tflite"}


class BackendUnavailable(PosetokError, ImportError):
    """The inference runtime a backend needs is not installed.

    Also an ``ImportError``, so ``except ImportError`` still catches it. The
    message names the pip package (extra) that provides the runtime.
    """


def litert_interpreter_class() -> tuple[type, str]:
    """The LiteRT Interpreter class and the distribution it came from.

    Tries ``ai_edge_litert`` first, then ``tflite_runtime``.

    Returns:
        ``(Interpreter, distribution)``, distribution being
        ``"ai-edge-litert"`` or ``"tflite-runtime"``.

    Raises:
        BackendUnavailable: neither package is installed.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, "tflite-runtime"
    except ImportError:
        raise BackendUnavailable("LiteRT backend needs 'ai-edge-litert' or 'tflite-runtime' "
                                 "(pip install 'posetok[litert]')") from None


def installed_backends() -> list[str]:
    """The backends whose runtime is installed, without importing any runtime.

    Returns:
        A sub-list of ``BACKENDS`` in its order: ``"onnxruntime"`` if
        ``onnxruntime`` is importable, ``"litert"`` if ``ai_edge_litert`` or
        ``tflite_runtime`` is.
    """
    found = []
    if importlib.util.find_spec("onnxruntime") is not None:
        found.append("onnxruntime")
    if importlib.util.find_spec("ai_edge_litert") is not None or importlib.util.find_spec("tflite_runtime") is not None:
        found.append("litert")
    return found


def runtime_version(backend: str) -> str:
    """The name and version of the runtime behind a backend (imports it).

    Args:
        backend: ``"onnxruntime"`` or ``"litert"``.

    Returns:
        For example ``"onnxruntime 1.20.1"`` or ``"ai-edge-litert 1.4.0"``
        (``"?"`` for a version the package does not report).

    Raises:
        BackendUnavailable: the backend's runtime is not installed.
    """
    if backend == "onnxruntime":
        import onnxruntime
        return f"onnxruntime {onnxruntime.__version__}"
    _, dist = litert_interpreter_class()
    module = importlib.import_module("ai_edge_litert" if dist == "ai-edge-litert" else "tflite_runtime")
    return f"{dist} {getattr(module, '__version__', '?')}"


@lru_cache(maxsize=1)
def int8_dot_products_saturate() -> bool:
    """Whether this CPU's int8 matrix kernels can saturate: x86 without VNNI.

    x86 cores without VNNI (AVX2 or AVX-512 alone: AMD Zen 1-3, Intel before
    Cascade Lake) multiply u8 by s8 into 16-bit pair sums that clip, so
    onnxruntime's fused int8 kernels part from the graph's QDQ arithmetic (on
    such a host the shipped int8 encoder kept 0.59 of its float tokens instead
    of 0.95). Arm cores (the boards) and VNNI cores accumulate in 32 bits.
    Linux only (/proc/cpuinfo); elsewhere False.
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)


class OnnxSession:
    """onnxruntime InferenceSession on the CPU provider; any batch size.

    Args:
        path: the ``.onnx`` file; its first input is fed; ``run`` returns its
            first output, ``run_outputs`` all of them.
        num_threads: intra-op threads; None keeps onnxruntime's default.

    Attributes:
        batch: None: the graph takes any batch size.
        input_dtype: numpy dtype the graph's input expects (inputs are cast
            to it).
        output_names: the graph's output names, in order.
        fuses_int8: False where a QDQ int8 graph runs unfused because this
            CPU's int8 kernels saturate (``int8_dot_products_saturate``).

    Raises:
        BackendUnavailable: onnxruntime is not installed.
    """

    def __init__(self, path: Path, num_threads: Optional[int] = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable("onnxruntime backend needs 'onnxruntime' "
                                     "(pip install 'posetok[onnxruntime]')") from None
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # A QDQ int8 graph on a CPU whose int8 kernels saturate: keep onnxruntime from fusing its
        # Quantize/Dequantize pairs into those kernels, so it computes what the graph says (dequantized
        # values in float32) and gives the tokens it gives elsewhere, at some speed.
        self.fuses_int8 = not (int8_dot_products_saturate() and b"QuantizeLinear" in Path(path).read_bytes())
        if not self.fuses_int8:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        self._session = ort.InferenceSession(str(path), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0]
        self.input_shape = tuple(d if isinstance(d, int) else None for d in self._input.shape)
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        self._output = self.output_names[0]
        self.batch: Optional[int] = None
        self.input_dtype = np.dtype({"tensor(float)": np.float32, "tensor(int32)": np.int32,
                                     "tensor(int64)": np.int64}.get(self._input.type, np.float32))

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the graph once.

        Args:
            x: the input batch; cast to ``input_dtype`` if needed.

        Returns:
            The graph's first output.
        """
        return self._session.run([self._output], {self._input.name: x.astype(self.input_dtype, copy=False)})[0]

    def run_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph once and keep every output.

        Args:
            x: the input batch; cast to ``input_dtype`` if needed.

        Returns:
            ``{output name: array}`` for every output of the graph.
        """
        feed = {self._input.name: x.astype(self.input_dtype, copy=False)}
        values = self._session.run(list(self.output_names), feed)
        return dict(zip(self.output_names, values))


class LiteRTSession:
    """A LiteRT interpreter for one fixed-batch .tflite graph.

    Args:
        path: the ``.tflite`` file; its first input is fed; ``run`` returns
            its first output, ``run_outputs`` all of them.
        num_threads: interpreter threads; None keeps LiteRT's default (1).
        outputs: the manifest's output specs (objects with ``name``,
            ``shape`` and ``dtype``, "batch" for the batch dimension). The
            converter renames outputs (``StatefulPartitionedCall:1``...) and
            may reorder them, so ``run_outputs`` maps each spec to the output
            of the same name if there is one, else to the one output of its
            shape and dtype. None: outputs keep the file's names.

    Attributes:
        batch: the batch size the graph was exported with.
        input_dtype: numpy dtype the graph's input expects.
        distribution: ``"ai-edge-litert"`` or ``"tflite-runtime"``.
        output_names: the names ``run_outputs`` returns, in order.

    Raises:
        BackendUnavailable: neither LiteRT package is installed.
        ValueError: ``outputs`` that do not match the file's outputs one to
            one (the message lists both).
    """

    def __init__(self, path: Path, num_threads: Optional[int] = None, outputs: Optional[Sequence] = None):
        # An interpreter holds one set of tensors: two threads' set/invoke/get would interleave (LiteRT raises,
        # or returns the other thread's outputs), so calls take turns.
        self._lock = threading.Lock()
        interpreter_class, self.distribution = litert_interpreter_class()
        self._interp = interpreter_class(model_path=str(path), num_threads=num_threads)
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]
        details = self._interp.get_output_details()
        self._out = details[0]
        self.batch: Optional[int] = int(self._in["shape"][0])
        self.input_shape = tuple(int(d) for d in self._in["shape"])
        self.input_dtype = np.dtype(self._in["dtype"])
        self._named = (tuple((d["name"], d["index"]) for d in details) if outputs is None
                       else _match_outputs(details, outputs, self.batch, path))
        self.output_names = tuple(name for name, _ in self._named)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the graph once.

        Args:
            x: the input batch, exactly ``batch`` rows; cast to ``input_dtype``.

        Returns:
            A copy of the graph's first output.
        """
        return self._invoke(x, (("first", self._out["index"]),))["first"]

    def run_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph once and keep every output.

        Args:
            x: the input batch, exactly ``batch`` rows; cast to ``input_dtype``.

        Returns:
            ``{name: copy of the output}``, names as in ``output_names``.
        """
        return self._invoke(x, self._named)

    def _invoke(self, x: np.ndarray, outputs: Sequence[tuple]) -> dict[str, np.ndarray]:
        """One run; copies of the (name, tensor index) ``outputs``. Calls from several threads take turns."""
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        with self._lock:
            self._interp.set_tensor(self._in["index"], x)
            self._interp.invoke()
            return {name: self._interp.get_tensor(index).copy() for name, index in outputs}


def _match_outputs(details: Sequence[dict], specs: Sequence, batch: int, path: Path) -> tuple:
    """((spec name, tensor index), ...): each spec to the output of its name, else of its shape and dtype."""
    def shape_of(spec) -> tuple:
        return tuple(batch if d == "batch" else int(d) for d in spec.shape)

    def describe() -> str:
        have = ", ".join(f"{d['name']} {list(d['shape'])} {np.dtype(d['dtype']).name}" for d in details)
        want = ", ".join(f"{s.name} {list(shape_of(s))} {s.dtype}" for s in specs)
        return f"{path.name}: outputs [{have}] do not match the manifest's [{want}]"

    if len(specs) != len(details):
        raise ValueError(describe())
    by_name = {d["name"]: d["index"] for d in details}
    pairs, used = [], set()
    for spec in specs:
        index = by_name.get(spec.name)
        if index is None:
            fits = [d["index"] for d in details if d["index"] not in used
                    and tuple(int(n) for n in d["shape"]) == shape_of(spec)
                    and np.dtype(d["dtype"]) == np.dtype(spec.dtype)]
            if len(fits) != 1:
                raise ValueError(describe() + (" (two outputs share a shape and dtype)" if fits else ""))
            index = fits[0]
        if index in used:
            raise ValueError(describe())
        used.add(index)
        pairs.append((spec.name, index))
    return tuple(pairs)


class BatchRunner:
    """Runs any batch size on sessions that may only take fixed batch sizes.

    A dynamic-batch session takes the batch in chunks of at most
    ``MAX_DYNAMIC_BATCH`` rows: onnxruntime's memory arena keeps its largest
    allocation for the session's life, so one call on thousands of rows would
    hold gigabytes afterwards. Otherwise the batch is cut into chunks of the largest fixed batch, and the
    remainder goes to whichever fixed batch costs least, padding its last
    call: cost = calls * (batch + CALL_OVERHEAD), the overhead of one invoke
    counted as that many extra rows.

    Args:
        sessions: ``OnnxSession``/``LiteRTSession`` objects of one graph
            (anything with ``batch`` and ``run``); a session with ``batch``
            None takes every batch.

    Raises:
        ValueError: ``sessions`` is empty.
    """

    CALL_OVERHEAD = 8
    MAX_DYNAMIC_BATCH = 256

    def __init__(self, sessions: Sequence):
        if not sessions:
            raise ValueError("BatchRunner needs at least one session")
        dynamic = [s for s in sessions if s.batch is None]
        self._dynamic = dynamic[0] if dynamic else None
        self._by_batch = {s.batch: s for s in sessions if s.batch is not None}

    def _remainder_batch(self, rest: int) -> int:
        def cost(b: int) -> int:
            return -(-rest // b) * (b + self.CALL_OVERHEAD)
        return min(sorted(self._by_batch, reverse=True), key=cost)

    def _dynamic_chunks(self, x: np.ndarray) -> list:
        step = self.MAX_DYNAMIC_BATCH
        return [x] if x.shape[0] <= step else [x[i:i + step] for i in range(0, x.shape[0], step)]

    def _calls(self, x: np.ndarray):
        """(session, input chunk, rows to keep) per call for a fixed-batch set of sessions."""
        n = x.shape[0]
        big = max(self._by_batch)
        full = n - n % big
        for i in range(0, full, big):
            yield self._by_batch[big], x[i:i + big], big
        if full < n:
            b = self._remainder_batch(n - full)
            for i in range(full, n, b):
                chunk = x[i:i + b]
                if chunk.shape[0] < b:
                    pad = np.zeros((b - chunk.shape[0],) + x.shape[1:], dtype=x.dtype)
                    chunk = np.concatenate([chunk, pad])
                yield self._by_batch[b], chunk, min(b, n - i)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run a batch of any size through the sessions.

        Args:
            x: the input batch, batch on axis 0 (at least one row).

        Returns:
            The first output for the ``x.shape[0]`` rows, concatenated on
            axis 0 (padding rows removed).
        """
        if self._dynamic is not None:
            return np.concatenate([self._dynamic.run(chunk) for chunk in self._dynamic_chunks(x)], axis=0)
        return np.concatenate([session.run(chunk)[:keep] for session, chunk, keep in self._calls(x)], axis=0)

    def run_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Like ``run``, keeping every output (sessions need ``run_outputs``).

        Args:
            x: the input batch, batch on axis 0 (at least one row).

        Returns:
            ``{output name: array}``, each for the ``x.shape[0]`` rows.
        """
        if self._dynamic is not None:
            parts = [(self._dynamic.run_outputs(chunk), len(chunk)) for chunk in self._dynamic_chunks(x)]
        else:
            parts = [(session.run_outputs(chunk), keep) for session, chunk, keep in self._calls(x)]
        return {name: np.concatenate([out[name][:keep] for out, keep in parts], axis=0) for name in parts[0][0]}


def open_session(path: Path, format: str, num_threads: Optional[int] = None,
                 outputs: Optional[Sequence] = None, inputs: Optional[Sequence] = None
                 ) -> "OnnxSession | LiteRTSession":
    """Open one model file with the runtime for its format.

    Args:
        path: the model file.
        format: ``"onnx"`` (onnxruntime) or ``"tflite"`` (LiteRT).
        num_threads: runtime threads; None keeps the runtime's default.
        outputs: the manifest's output specs, for LiteRT's ``run_outputs``
            (see ``LiteRTSession``); ONNX keeps its output names and ignores it.
        inputs: the manifest's input specs: the graph's first input must
            have the first one's rank, dtype and fixed sizes.

    Returns:
        An ``OnnxSession`` or a ``LiteRTSession``.

    Raises:
        ValueError: an unknown format.
        BackendUnavailable: the format's runtime is not installed.
        BundleError: the runtime cannot open the file (not a model of that
            format), or its input is not the one ``inputs`` describes; the
            message names the file.
    """
    if format not in FORMAT_OF_BACKEND.values():
        raise ValueError(f"unknown model format {format!r}; expected 'onnx' or 'tflite'")
    try:
        session = OnnxSession(path, num_threads) if format == "onnx" else LiteRTSession(path, num_threads, outputs)
    except (BackendUnavailable, BundleError):
        raise
    except Exception as exc:      # each runtime has its own errors for a file it cannot read as a model
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BundleError(f"{Path(path).name}: {format} runtime cannot open it as a model: {first}") from None
    if inputs:
        _check_input(session, inputs[0], Path(path))
    return session


def _check_input(session, spec, path: Path) -> None:
    """The graph's first input against the manifest's spec (rank, dtype, every size the spec fixes)."""
    want = tuple(None if d == "batch" else int(d) for d in spec.shape)
    got = session.input_shape
    fits = len(got) == len(want) and all(w is None or g is None or g == w for g, w in zip(got, want))
    if not fits or session.input_dtype != np.dtype(spec.dtype):
        show = lambda shape: "[" + ",".join("batch" if d is None else str(d) for d in shape) + "]"
        raise BundleError(f"{path.name}: the graph's input is {show(got)} {session.input_dtype}, the manifest "
                          f"says {show(want)} {spec.dtype} (a file listed under another's entry?)")
