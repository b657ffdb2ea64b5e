"""Inference backends: one small class per runtime, one input and one output.

Each backend is imported only when used, so a device needs just the runtime
it runs. LiteRT comes from ``ai_edge_litert`` and falls back to
``tflite_runtime`` (boards in the field carry either).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

BACKENDS = ("onnxruntime", "litert")
FORMAT_OF_BACKEND = {"onnxruntime": "onnx", "litert": "tflite"}


class BackendUnavailable(ImportError):
    pass


def litert_interpreter_class():
    """The LiteRT Interpreter class and the distribution it came from."""
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
    found = []
    if importlib.util.find_spec("onnxruntime") is not None:
        found.append("onnxruntime")
    if importlib.util.find_spec("ai_edge_litert") is not None or importlib.util.find_spec("tflite_runtime") is not None:
        found.append("litert")
    return found


def runtime_version(backend: str) -> str:
    if backend == "onnxruntime":
        import onnxruntime
        return f"onnxruntime {onnxruntime.__version__}"
    _, dist = litert_interpreter_class()
    module = importlib.import_module("ai_edge_litert" if dist == "ai-edge-litert" else "tflite_runtime")
    return f"{dist} {getattr(module, '__version__', '?')}"


class OnnxSession:
    """onnxruntime InferenceSession on the CPU provider; any batch size."""

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
        self._session = ort.InferenceSession(str(path), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0]
        self._output = self._session.get_outputs()[0].name
        self.batch: Optional[int] = None
        self.input_dtype = np.dtype({"tensor(float)": np.float32, "tensor(int32)": np.int32,
                                     "tensor(int64)": np.int64}.get(self._input.type, np.float32))

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._session.run([self._output], {self._input.name: x.astype(self.input_dtype, copy=False)})[0]


class LiteRTSession:
    """A LiteRT interpreter for one fixed-batch .tflite graph."""

    def __init__(self, path: Path, num_threads: Optional[int] = None):
        interpreter_class, self.distribution = litert_interpreter_class()
        self._interp = interpreter_class(model_path=str(path), num_threads=num_threads)
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self.batch: Optional[int] = int(self._in["shape"][0])
        self.input_dtype = np.dtype(self._in["dtype"])

    def run(self, x: np.ndarray) -> np.ndarray:
        self._interp.set_tensor(self._in["index"], np.ascontiguousarray(x, dtype=self.input_dtype))
        self._interp.invoke()
        return self._interp.get_tensor(self._out["index"]).copy()


class BatchRunner:
    """Runs any batch size on sessions that may only take fixed batch sizes.

    With a dynamic-batch session the whole batch goes in at once. Otherwise
    the batch is cut into chunks of the largest fixed batch, and the
    remainder goes to whichever fixed batch costs least, padding its last
    call: cost = calls * (batch + CALL_OVERHEAD), the overhead of one invoke
    counted as that many extra rows.
    """

    CALL_OVERHEAD = 8

    def __init__(self, sessions: Sequence):
        if not sessions:
            raise ValueError("BatchRunner needs at least one session")
        dynamic = [s for s in sessions if s.batch is None]
        self._dynamic = dynamic[0] if dynamic else None
        self._by_batch = {s.batch: s for s in sessions if s.batch is not None}

    def _remainder_batch(self, rest: int) -> int:
        cost = lambda b: -(-rest // b) * (b + self.CALL_OVERHEAD)
        return min(sorted(self._by_batch, reverse=True), key=cost)

    def run(self, x: np.ndarray) -> np.ndarray:
        if self._dynamic is not None:
            return self._dynamic.run(x)
        n = x.shape[0]
        big = max(self._by_batch)
        full = n - n % big
        outputs = [self._by_batch[big].run(x[i:i + big]) for i in range(0, full, big)]
        if full < n:
            b = self._remainder_batch(n - full)
            for i in range(full, n, b):
                chunk = x[i:i + b]
                if chunk.shape[0] < b:
                    pad = np.zeros((b - chunk.shape[0],) + x.shape[1:], dtype=x.dtype)
                    chunk = np.concatenate([chunk, pad])
                outputs.append(self._by_batch[b].run(chunk)[:min(b, n - i)])
        return np.concatenate(outputs, axis=0)


def open_session(path: Path, format: str, num_threads: Optional[int] = None):
    if format == "onnx":
        return OnnxSession(path, num_threads)
    if format == "tflite":
        return LiteRTSession(path, num_threads)
    raise ValueError(f"unknown model format {format!r}; expected 'onnx' or 'tflite'")
