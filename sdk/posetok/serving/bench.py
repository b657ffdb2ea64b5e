"""``posetok serve-bench``: Triton throughput and latency, dynamic batching on and off.

The server is started once per batching mode; each (model, concurrency)
point is measured with ``perf_analyzer`` from the serving environment
(tritonclient 2.51's C++ load generator, over gRPC) when it runs, else with
a closed loop of tritonclient gRPC clients in threads. Every request carries
one pose (encode) or one pose's token ids (decode), valid inputs drawn once.
Rates and latencies count answered requests only; refused or failed ones
(a full queue's UNAVAILABLE, say) are counted apart, per point.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np

from .server import ServerOptions, ServingEnv, TritonServer

INPUT_POSES = 64  # distinct valid requests perf_analyzer cycles through
CLIENT_WARMUP_LIMIT_S = 30.0  # the thread clients' warm-up waits at most this long for every first answer


def _inputs(model: str, num_tokens: int, num_codes: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    if model == "posetok_encode":
        kp = rng.uniform(8, 56, size=(INPUT_POSES, 13, 2)).astype(np.float32)
        return [{"KEYPOINTS": {"content": k.ravel().tolist(), "shape": [13, 2]}} for k in kp]
    ids = rng.integers(0, num_codes, size=(INPUT_POSES, num_tokens), dtype=np.int32)
    return [{"TOKEN_IDS": {"content": i.tolist(), "shape": [num_tokens]}} for i in ids]


def _library_links(env: ServingEnv, folder: Path) -> str:
    """perf_analyzer wants libb64.so.0d and libcudart.so.12; the wheel has them under hashed names."""
    for want, pattern in (("libb64.so.0d", "libb64-*.so.0d"), ("libcudart.so.12", "libcudart-*.so.12*")):
        found = sorted(env.libs.glob(pattern))
        if found and not (folder / want).exists():
            (folder / want).symlink_to(found[0])
    return os.pathsep.join([str(folder), str(env.libs)])


def perf_analyzer_runs(env: ServingEnv) -> bool:
    """Whether the serving environment's perf_analyzer starts here.

    Args:
        env: the serving environment.

    Returns:
        True when ``perf_analyzer --version`` exits 0.
    """
    if not env.perf_analyzer.is_file():
        return False
    with tempfile.TemporaryDirectory() as tmp:
        run_env = dict(os.environ, LD_LIBRARY_PATH=_library_links(env, Path(tmp)))
        try:
            return subprocess.run([str(env.perf_analyzer), "--version"], env=run_env, capture_output=True,
                                  timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


def measure_perf_analyzer(server: TritonServer, model: str, concurrency: int, interval_ms: int) -> dict:
    """One point with perf_analyzer.

    Args:
        server: a started ``TritonServer``.
        model: the model name.
        concurrency: requests in flight.
        interval_ms: the length of one measurement window.

    Returns:
        ``throughput_per_s``, ``p50_ms``, ``p99_ms``; ``failed`` 0 and ``failure``
        None (perf_analyzer exits non-zero when a request fails).

    Raises:
        RuntimeError: perf_analyzer failed (the message carries its output).
    """
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = _inputs(model, server.bundle.num_tokens, server.bundle.num_codes)
        (tmp / "input.json").write_text(json.dumps({"data": data}))
        command = [str(server.env.perf_analyzer), "-m", model, "-u", server.grpc_url, "-i", "grpc", "-b", "1",
                   "--concurrency-range", str(concurrency), "--input-data", str(tmp / "input.json"),
                   "--measurement-interval", str(interval_ms), "--max-trials", "10", "--stability-percentage", "100",
                   "--percentile", "99", "-f", str(tmp / "out.csv")]
        out = subprocess.run(command, env=dict(os.environ, LD_LIBRARY_PATH=_library_links(server.env, tmp)),
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0 or not (tmp / "out.csv").is_file():
            raise RuntimeError(f"perf_analyzer failed ({out.returncode}): {(out.stdout + out.stderr)[-2000:]}")
        with open(tmp / "out.csv", newline="") as fh:
            row = next(csv.DictReader(fh))
    return {"throughput_per_s": round(float(row["Inferences/Second"]), 1),
            "p50_ms": round(float(row["p50 latency"]) / 1e3, 3), "p99_ms": round(float(row["p99 latency"]) / 1e3, 3),
            "failed": 0, "failure": None}


def measure_client(server: TritonServer, model: str, concurrency: int, interval_ms: int) -> dict:
    """One point with tritonclient gRPC clients in threads (the fallback without perf_analyzer).

    A request counts when it ends inside the measurement window. One that
    fails (the server refuses it, say, when the queue is full) is counted in
    ``failed`` and the client goes on with the next request; a client that
    breaks (it cannot connect, say) stops, and its error counts as a failure.

    Args:
        server: a started ``TritonServer``.
        model: the model name.
        concurrency: client threads, one request in flight each.
        interval_ms: how long to measure, after a warm-up that lasts until
            every client's first request has ended (at most
            ``CLIENT_WARMUP_LIMIT_S``).

    Returns:
        ``throughput_per_s`` (answered requests per second), ``p50_ms`` and
        ``p99_ms`` (of answered requests; None when none was answered),
        ``succeeded``, ``failed`` and ``seconds`` (the window), and
        ``failure``: the first failure's message, or None.

    Raises:
        ValueError: concurrency is not an integer >= 1.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    data = _inputs(model, server.bundle.num_tokens, server.bundle.num_codes)
    name = next(iter(data[0]))
    arrays = [np.asarray(d[name]["content"], np.float32 if name == "KEYPOINTS" else np.int32)
              .reshape([1] + d[name]["shape"]) for d in data]
    latencies: list[float] = []
    failures: list[str] = []
    stop, measuring, warm = threading.Event(), threading.Event(), threading.Event()
    lock = threading.Lock()
    first_ended = [0]       # clients whose first request has ended (answered or failed) or that stopped

    def first_request_ended() -> None:
        with lock:
            first_ended[0] += 1
            if first_ended[0] == concurrency:
                warm.set()

    def loop(k: int) -> None:
        mine, failed, client, waiting = [], [], None, True
        try:
            client = grpcclient.InferenceServerClient(server.grpc_url)
            i = k
            while not stop.is_set():
                a = arrays[i % len(arrays)]
                tensor = grpcclient.InferInput(name, list(a.shape), "FP32" if name == "KEYPOINTS" else "INT32")
                tensor.set_data_from_numpy(a)
                t0 = time.perf_counter()
                try:
                    client.infer(model, [tensor])
                except InferenceServerException as exc:  # refused or failed: counted, not fatal to the thread
                    if measuring.is_set():
                        failed.append(f"{exc.status() or ''} {exc.message()}".strip())
                else:
                    if measuring.is_set():
                        mine.append(time.perf_counter() - t0)
                if waiting:
                    waiting = False
                    first_request_ended()
                i += concurrency
        except Exception as exc:  # the client itself broke: the point says so instead of a thread traceback
            failed.append(f"client {k} stopped: {type(exc).__name__}: {exc}")
        finally:
            if waiting:
                first_request_ended()
            if client is not None:
                client.close()
            with lock:
                latencies.extend(mine)
                failures.extend(failed)

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    # warm-up: every client connected and its first request ended (a loaded host takes seconds for that)
    warm.wait(timeout=CLIENT_WARMUP_LIMIT_S)
    time.sleep(0.2)
    measuring.set()
    t0 = time.perf_counter()
    time.sleep(interval_ms / 1e3)
    measuring.clear()  # requests ending after the window would inflate the rate
    seconds = time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join()
    lat = np.asarray(latencies) * 1e3
    percentile = lambda q: round(float(np.percentile(lat, q)), 3) if len(lat) else None
    return {"throughput_per_s": round(len(lat) / seconds, 1), "p50_ms": percentile(50), "p99_ms": percentile(99),
            "succeeded": len(lat), "failed": len(failures), "seconds": round(seconds, 6),
            "failure": failures[0] if failures else None}


def serve_bench(bundle: str, options: ServerOptions, env: ServingEnv, concurrencies: tuple[int, ...] = (1, 4, 16),
                models: tuple[str, ...] = ("posetok_encode", "posetok_decode"), interval_ms: int = 1500,
                tool: Optional[str] = None, progress=None) -> dict:
    """Measure every (batching, model, concurrency) point.

    Args:
        bundle: the bundle folder.
        options: server options; ``batching.enabled`` is set per mode, ports are picked free.
        env: the serving environment.
        concurrencies: requests in flight per point.
        models: the models to measure.
        interval_ms: one measurement window.
        tool: ``"client"`` (default) or ``"perf_analyzer"`` (needs a quiet machine: it
            fails when its measurement windows are not stable).
        progress: a callable taking one line of progress, or None.

    Returns:
        ``{"tool", "bundle", "points": [...], "startup_s": {...}, "batching_speedup": {...}, "failed"}``;
        a point has ``batching``, ``model``, ``concurrency``, ``throughput_per_s``, ``p50_ms``, ``p99_ms``
        (answered requests only), ``failed`` (requests refused or failed in the window), ``failure`` (the
        first one's message) and ``executions_per_inference`` (below 1: requests were batched).
        ``failed`` at the top is the sum over the points; a speedup is None when either of its two
        points had failures, since refused requests make a rate that compares nothing.

    Raises:
        BundleError: the bundle cannot serve one of ``models`` in ``options.precision``.
        ServingError: a server did not start.
        RuntimeError: perf_analyzer failed.
    """
    import dataclasses

    from ..bundle import Bundle, BundleError
    from .repository import servable_models

    loaded = Bundle.load(bundle)  # verified once; both servers serve this copy's checked files
    servable = [m.name for m in servable_models(loaded, options.precision)]
    missing = [m for m in models if m not in servable]
    if missing:  # before minutes of starting servers whose every request would be a 404
        raise BundleError(f"bundle {bundle} cannot serve {', '.join(missing)} in {options.precision} "
                          f"(it serves {', '.join(servable)})")
    tool = tool or "client"
    measure = measure_perf_analyzer if tool == "perf_analyzer" else measure_client
    points, startup = [], {}
    for enabled in (True, False):
        mode = "on" if enabled else "off"
        opts = dataclasses.replace(options, http_port=0, grpc_port=0, metrics_port=0,
                                   batching=dataclasses.replace(options.batching, enabled=enabled))
        with TritonServer(loaded, opts, env) as server:
            startup[mode] = round(server.startup_s, 2)
            for model in models:
                for c in concurrencies:
                    before = _stats(server, model)
                    point = {"batching": mode, "model": model, "concurrency": c,
                             **measure(server, model, c, interval_ms)}
                    after = _stats(server, model)
                    point["executions_per_inference"] = round((after[1] - before[1]) / max(1, after[0] - before[0]), 3)
                    points.append(point)
                    if progress:
                        progress(point_line(point))
    speedup = {}
    for model in models:
        c = max(concurrencies)
        on, off = (next(p for p in points if (p["batching"], p["model"], p["concurrency"]) == (m, model, c))
                   for m in ("on", "off"))
        clean = on["failed"] == 0 and off["failed"] == 0
        speedup[f"{model}@{c}"] = round(on["throughput_per_s"] / off["throughput_per_s"], 2) \
            if clean and off["throughput_per_s"] else None
    return {"tool": tool, "bundle": str(bundle), "precision": options.precision, "num_threads": options.num_threads,
            "instances": options.instances, "max_batch": options.batching.max_batch_size,
            "max_queue_delay_us": options.batching.max_queue_delay_us,
            "max_queue_size": options.batching.max_queue_size, "cpus": os.cpu_count(),
            "startup_s": startup, "points": points, "batching_speedup": speedup,
            "failed": sum(p["failed"] for p in points)}


def point_line(point: dict) -> str:
    """One measured point as a line of ``posetok serve-bench``'s table.

    Args:
        point: a point of ``serve_bench``'s result.

    Returns:
        The line: rate, p50 and p99 of answered requests, then the failed count
        and the first failure's message when any failed.
    """
    ms = lambda v: "-" if v is None else f"{v:.3f}"
    line = (f"batching {point['batching']:<3} {point['model']:<15} concurrency {point['concurrency']:>2}: "
            f"{point['throughput_per_s']:>8.1f}/s  p50 {ms(point['p50_ms'])} ms  p99 {ms(point['p99_ms'])} ms  "
            f"failed {point['failed']}")
    return line + (f" (first: {point['failure']})" if point["failed"] else "")


def _stats(server: TritonServer, model: str) -> tuple[int, int]:
    import urllib.request

    with urllib.request.urlopen(f"http://{server.http_url}/v2/models/{model}/stats", timeout=10) as r:
        s = json.load(r)["model_stats"][0]
    return int(s["inference_count"]), int(s["execution_count"])
