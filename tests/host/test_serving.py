"""posetok serve on the real tritonserver (issue #18): one `posetok serve`
process per module on free loopback ports, driven with the real tritonclient
over HTTP and gRPC; answers compared with the local PoseTokenizer on the
same bundle (the hand-built linear bundle of test_sdk_runtime). The
estimator's model is in test_serving_estimator.py."""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from posetok import PoseTokenizer
from posetok.bundle import Bundle
from posetok.serve_cli import port_number
from posetok.serving.bench import measure_client
from posetok.serving.server import (
    OWNER_FILE,
    SHM_DIR,
    WORKDIR_PREFIX,
    ServerOptions,
    ServingError,
    TritonServer,
    find_serving_env,
    free_ports,
    group_pids,
    pid_space,
    process_start_time,
    remove_stale_workdirs,
    rss_bytes,
)
from test_sdk_runtime import M, V, linear_bundle, poses  # noqa: F401  (the module-scoped bundle fixture)

grpcclient = pytest.importorskip("tritonclient.grpc")
httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CLIENTS, REQUESTS = 16, 200  # the load test: 16 concurrent clients x 200 requests each


def stray_shm() -> set[str]:
    return {p.name for p in SHM_DIR.glob("*") if p.name.startswith(("triton_python_backend", "posetok_"))}


def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(stat.parent.name))
    return out


class Served:
    def __init__(self, process, ports, server_pid, startup_s, line):
        self.process, self.ports, self.server_pid, self.startup_s, self.line = \
            process, ports, server_pid, startup_s, line
        self.http, self.grpc, self.metrics = (f"127.0.0.1:{p}" for p in ports)


@pytest.fixture(scope="module")
def served(linear_bundle):  # noqa: F811
    try:
        find_serving_env()
    except ServingError as exc:
        pytest.fail(f"{exc}")
    shm_before = stray_shm()
    ports = free_ports(3)
    t0 = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "posetok", "serve", str(linear_bundle[0]), "--http-port", str(ports[0]),
         "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]), "--max-queue-delay-us", "2000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    startup_s = time.perf_counter() - t0
    if "ready in" not in line:
        process.kill()
        pytest.fail(f"posetok serve did not start: {line}{process.communicate(timeout=30)[1][-3000:]}")
    (server_pid,) = children_of(process.pid)
    served = Served(process, ports, server_pid, startup_s, line)
    stubs = group_pids(server_pid)
    yield served
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "shutting down" in out
    assert group_pids(server_pid) == [] and not [p for p in stubs if Path(f"/proc/{p}").exists()]
    assert stray_shm() - shm_before == set()


@pytest.fixture(scope="module")
def local(linear_bundle):  # noqa: F811
    with PoseTokenizer.from_bundle(linear_bundle[0], backend="onnxruntime") as tok:
        yield tok


def encode_http(client, kp, binary=True):
    inp = httpclient.InferInput("KEYPOINTS", list(kp.shape), "FP32")
    inp.set_data_from_numpy(kp, binary_data=binary)
    out = httpclient.InferRequestedOutput("TOKEN_IDS", binary_data=binary)
    return client.infer("posetok_encode", [inp], outputs=[out]).as_numpy("TOKEN_IDS")


def decode_grpc(client, ids):
    inp = grpcclient.InferInput("TOKEN_IDS", list(ids.shape), "INT32")
    inp.set_data_from_numpy(ids)
    return client.infer("posetok_decode", [inp]).as_numpy("KEYPOINTS")


def test_started_on_loopback_fast_with_both_models(served):
    assert served.startup_s <= 15, served.line
    assert "posetok_encode, posetok_decode" in served.line and "HTTP 127.0.0.1:" in served.line
    listening: dict[int, set[str]] = {}  # port -> addresses listening on it, from /proc/net/tcp{,6}
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local_address, state = row.split()[1], row.split()[3]
            if state == "0A":
                address, port = local_address.split(":")
                listening.setdefault(int(port, 16), set()).add(address)
    loopback = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
    for port in served.ports:  # 127.0.0.1 (gRPC shows as the IPv4-mapped ::ffff:127.0.0.1), never 0.0.0.0
        assert listening.get(port) and listening[port] <= loopback, (port, listening.get(port))


def test_live_ready_and_metadata_over_http_and_grpc(served):
    h = httpclient.InferenceServerClient(served.http)
    g = grpcclient.InferenceServerClient(served.grpc)
    try:
        assert h.is_server_live() and h.is_server_ready() and g.is_server_live() and g.is_server_ready()
        assert h.get_server_metadata()["version"] == "2.51.0"
        meta = h.get_model_metadata("posetok_encode")
        assert meta["inputs"] == [{"name": "KEYPOINTS", "datatype": "FP32", "shape": [-1, 13, 2]}]
        assert meta["outputs"] == [{"name": "TOKEN_IDS", "datatype": "INT32", "shape": [-1, M]}]
        gmeta = g.get_model_metadata("posetok_decode", as_json=True)
        assert gmeta["inputs"][0]["name"] == "TOKEN_IDS" and gmeta["inputs"][0]["shape"] == ["-1", str(M)]
        config = h.get_model_config("posetok_encode")
        assert config["max_batch_size"] == 64 and config["dynamic_batching"]["default_queue_policy"][
            "max_queue_size"] == 256
        assert g.is_model_ready("posetok_decode") and not h.is_model_ready("posetok_estimate")
    finally:
        h.close()
        g.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_equals_the_local_tokenizer(served, local, binary):
    kp = poses(9, seed=3)
    h = httpclient.InferenceServerClient(served.http)
    g = grpcclient.InferenceServerClient(served.grpc)
    try:
        ids = encode_http(h, kp, binary)
        np.testing.assert_array_equal(ids, local.encode(kp))
        assert ids.dtype == np.int32 and ids.shape == (9, M)
        np.testing.assert_array_equal(decode_grpc(g, ids), local.decode(ids))
    finally:
        h.close()
        g.close()


def raw_post(address, path, body: bytes, headers: dict) -> tuple[int, dict]:
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def json_infer(name, datatype, shape, data):
    return json.dumps({"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}).encode()


@pytest.mark.parametrize("case, path, body, headers, status, message", [
    ("wrong shape", "/v2/models/posetok_encode/infer", json_infer("KEYPOINTS", "FP32", [1, 13, 3], [0.0] * 39), {},
     400, "unexpected shape"),
    ("wrong dtype", "/v2/models/posetok_encode/infer", json_infer("KEYPOINTS", "FP64", [1, 13, 2], [0.0] * 26), {},
     400, "data-type"),
    ("token id >= V", "/v2/models/posetok_decode/infer", json_infer("TOKEN_IDS", "INT32", [1, M], [0, 1, 2, V]), {},
     400, rf"token.ids must lie in \[0, {V}\), got values in \[0, {V}\]"),
    ("negative token id", "/v2/models/posetok_decode/infer", json_infer("TOKEN_IDS", "INT32", [1, M], [-1, 0, 0, 0]),
     {}, 400, r"got values in \[-1, 0\]"),
    ("NaN keypoint", "/v2/models/posetok_encode/infer", b'{"inputs":[{"name":"KEYPOINTS","datatype":"FP32",'
     b'"shape":[1,13,2],"data":[' + b",".join([b"1.0"] * 25 + [b"NaN"]) + b"]}]}", {}, 400, "NaN"),
    ("unknown model", "/v2/models/posetok_nothing/infer", json_infer("KEYPOINTS", "FP32", [1, 13, 2], [0.0] * 26),
     {}, 404, "posetok_nothing"),
    ("batch over max", "/v2/models/posetok_encode/infer", json_infer("KEYPOINTS", "FP32", [65, 13, 2], [0.0] * 1690),
     {}, 400, "batch-size must be <= 64"),
])
def test_bad_requests_get_a_4xx_with_a_message_and_the_server_keeps_serving(served, local, case, path, body,
                                                                           headers, status, message):
    got, answer = raw_post(served.http, path, body, {"Content-Type": "application/json", **headers})
    assert got == status, answer
    assert re.search(message, answer["error"]), answer
    h = httpclient.InferenceServerClient(served.http)
    try:
        kp = poses(2, seed=5)
        np.testing.assert_array_equal(encode_http(h, kp), local.encode(kp))
    finally:
        h.close()


def test_truncated_binary_body_is_a_400(served, local):
    header = json.dumps({"inputs": [{"name": "KEYPOINTS", "datatype": "FP32", "shape": [2, 13, 2],
                                     "parameters": {"binary_data_size": 208}}]}).encode()
    body = header + poses(2).tobytes()[:100]  # 100 of the 208 bytes announced
    got, answer = raw_post(served.http, "/v2/models/posetok_encode/infer", body,
                           {"Inference-Header-Content-Length": str(len(header))})
    assert got == 400, (got, answer)
    assert re.search(r"unexpected size for input 'KEYPOINTS', expecting 108 additional bytes", answer["error"]), answer
    got, _ = raw_post(served.http, "/v2/models/posetok_encode/infer", header + poses(2).tobytes(),
                      {"Inference-Header-Content-Length": str(len(header))})
    assert got == 200


def test_grpc_errors_carry_the_message(served):
    g = grpcclient.InferenceServerClient(served.grpc)
    try:
        with pytest.raises(InferenceServerException, match=r"token.ids must lie in") as info:
            decode_grpc(g, np.array([[0, 1, V + 5, 2]], np.int32))
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert decode_grpc(g, np.zeros((1, M), np.int32)).shape == (1, 13, 2)
    finally:
        g.close()


def stats(address, model):
    with urllib.request.urlopen(f"http://{address}/v2/models/{model}/stats", timeout=10) as r:
        s = json.load(r)["model_stats"][0]
    return s["inference_count"], s["execution_count"]


def test_load_loses_and_mixes_up_nothing_and_batches(served, local):
    """16 clients (8 HTTP, 8 gRPC) x 200 requests of distinct poses: every
    answer is the local encoding of its own request; RSS stays flat."""
    all_poses = poses(CLIENTS * REQUESTS, seed=11)
    want = local.encode(all_poses)
    pids = group_pids(served.server_pid)
    warm = all_poses[:64]
    h = httpclient.InferenceServerClient(served.http)
    for _ in range(20):
        encode_http(h, warm)
    h.close()
    rss_before = rss_bytes(pids)
    infer_before, exec_before = stats(served.http, "posetok_encode")
    failures: list[str] = []
    mismatched = []

    def client(k):
        grpc_side = k % 2 == 1
        c = (grpcclient if grpc_side else httpclient).InferenceServerClient(served.grpc if grpc_side else served.http)
        try:
            for i in range(REQUESTS):
                n = k * REQUESTS + i
                kp = all_poses[n:n + 1]
                try:
                    if grpc_side:
                        inp = grpcclient.InferInput("KEYPOINTS", [1, 13, 2], "FP32")
                        inp.set_data_from_numpy(kp)
                        got = c.infer("posetok_encode", [inp], request_id=str(n)).as_numpy("TOKEN_IDS")
                    else:
                        got = encode_http(c, kp)
                except Exception as exc:  # noqa: BLE001  counted as a lost response
                    failures.append(f"client {k} request {i}: {exc}")
                    continue
                if not np.array_equal(got, want[n:n + 1]):
                    mismatched.append(n)
        finally:
            c.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    infer_after, exec_after = stats(served.http, "posetok_encode")
    rss_after = rss_bytes(pids)
    print(f"\nload: {CLIENTS * REQUESTS} requests in {seconds:.1f} s; {infer_after - infer_before} inferences in "
          f"{exec_after - exec_before} executions; server RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB")
    assert failures == [] and mismatched == []
    assert infer_after - infer_before == CLIENTS * REQUESTS
    assert exec_after - exec_before < (infer_after - infer_before) / 2, "dynamic batching formed no batches"
    assert rss_after < rss_before * 1.10 + 16 * 2**20, (rss_before, rss_after)


def test_metrics_expose_the_request_counters(served):
    with urllib.request.urlopen(f"http://{served.metrics}/metrics", timeout=10) as r:
        text = r.read().decode()
    success = re.search(r'nv_inference_request_success\{model="posetok_encode",version="1"\} (\d+)', text)
    assert success and int(success.group(1)) >= CLIENTS * REQUESTS, text[:2000]  # the load test ran before
    # Triton 2.51 counts a Python-backend response carrying an error as a success; the
    # failure counters are still exported, by reason.
    for reason in ("OTHER", "BACKEND", "REJECTED"):
        assert f'nv_inference_request_failure{{model="posetok_decode",reason="{reason}",version="1"}}' in text
    assert "nv_inference_exec_count" in text and "nv_inference_queue_duration_us" in text


def readme_block(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"README.md has no python block after <!-- {marker} -->"
    return match.group(1)


def test_readme_board_client_example_runs(served, linear_bundle, tmp_path):  # noqa: F811
    """The board encodes locally and sends only token ids; the server decodes."""
    code = readme_block("serving-client-example: run by tests/host/test_serving.py")
    code = code.replace('"bundle/"', repr(str(linear_bundle[0]))).replace('"127.0.0.1:8000"', repr(served.http))
    script = tmp_path / "board.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert re.search(rf"{4 * M} bytes of token ids per pose", out.stdout), out.stdout
    err = re.search(r"max error after decoding on the server: ([0-9.]+) px", out.stdout)
    assert err and float(err.group(1)) < 1e-3, out.stdout


def test_a_refused_request_counts_as_a_success_in_the_metrics(served):
    """Triton 2.51 counts a Python-backend response carrying an error (here a 400) as
    nv_inference_request_success (upstream issue 7713): the README says so; this fails once that changes."""
    def counters():
        with urllib.request.urlopen(f"http://{served.metrics}/metrics", timeout=10) as r:
            text = r.read().decode()
        found = re.findall(r'nv_inference_request_(success|failure)\{model="posetok_decode",(?:reason="(\w+)",)?'
                           r'version="1"\} (\d+)', text)
        return {(kind, reason): int(n) for kind, reason, n in found}

    before = counters()
    got, answer = raw_post(served.http, "/v2/models/posetok_decode/infer",
                           json_infer("TOKEN_IDS", "INT32", [1, M], [0, 0, 0, V]), {"Content-Type": "application/json"})
    assert got == 400, answer
    deadline = time.monotonic() + 5      # the counters may be updated just after the answer goes out
    while (after := counters())[("success", "")] == before[("success", "")] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert after[("success", "")] == before[("success", "")] + 1
    assert {k: v for k, v in after.items() if k[0] == "failure"} == \
        {k: v for k, v in before.items() if k[0] == "failure"}


def serve_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "posetok", *args], capture_output=True, text=True, timeout=timeout)


def work_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob(WORKDIR_PREFIX + "*"))


@pytest.mark.parametrize("args, message", [
    (["--precision", "fp16"], r"bundle .* has no fp16 graphs; it offers onnx/fp32$"),
    (["--http-port", "70000"], r"--http-port: port must be an integer in 0\.\.65535 \(0: a free one\), got 70000"),
    (["--http-port", "-1"], r"--http-port: port must be an integer in 0\.\.65535 \(0: a free one\), got -1"),
    (["--grpc-port", "65536"], r"argument --grpc-port: port must be an integer in 0\.\.65535"),
    (["--metrics-port", "-5"], r"argument --metrics-port: port must be an integer in 0\.\.65535"),
    (["--grpc-port", "80a"], r"argument --grpc-port: port must be an integer, got '80a'"),
    (["--instances", "0"], r"error: instances must be an integer in 1\.\.64, got 0$"),
    (["--num-threads", "0"], r"error: num_threads must be None or an integer in 1\.\.1024, got 0$"),
], ids=["fp16", "http 70000", "http -1", "grpc 65536", "metrics -5", "grpc 80a", "instances 0", "threads 0"])
def test_serve_refuses_bad_settings_before_starting_tritonserver(linear_bundle, args, message):  # noqa: F811
    before = work_folders()
    run = serve_cli("serve", str(linear_bundle[0]), *args)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert re.search(message, run.stderr.strip(), re.M), run.stderr
    assert "Traceback" not in run.stderr and "ready in" not in run.stdout
    assert work_folders() - before == set()  # refused before a repository was written


@pytest.mark.parametrize("args, message", [
    (["--precision", "int8"], r"bundle .* has no int8 graphs; it offers onnx/fp32$"),
    (["--instances", "0"], r"error: instances must be an integer in 1\.\.64, got 0$"),
], ids=["int8", "instances 0"])
def test_serve_bench_refuses_bad_settings_before_starting_tritonserver(linear_bundle, args, message):  # noqa: F811
    before = work_folders()
    run = serve_cli("serve-bench", str(linear_bundle[0]), "--interval-ms", "100", "--concurrency", "1", *args)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert re.search(message, run.stderr.strip(), re.M), run.stderr
    assert "Traceback" not in run.stderr and work_folders() - before == set()


def test_ports_are_checked_and_0_still_means_a_free_one():
    assert port_number("0") == 0 and port_number("65535") == 65535
    for bad in ("65536", "-1"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"0\.\.65535"):
            port_number(bad)
    with pytest.raises(ValueError, match=r"grpc_port must be an integer in 0\.\.65535 \(0: a free one\), got 70000"):
        ServerOptions(grpc_port=70000)
    with pytest.raises(ValueError, match=r"instances must be an integer in 1\.\.64, got 0"):
        ServerOptions(instances=0)
    for threads in (-2, True, 1.5):
        with pytest.raises(ValueError, match=r"num_threads must be None or an integer in 1\.\.1024"):
            ServerOptions(num_threads=threads)
    with pytest.raises(ValueError, match=r"instances must be an integer in 1\.\.64, got '2'"):
        ServerOptions(instances="2")
    assert ServerOptions(num_threads=np.int64(2), instances=np.int32(3)).num_threads == 2
    assert ServerOptions(num_threads=None).num_threads is None
    assert ServerOptions(http_port=0, grpc_port=0, metrics_port=0).http_port == 0  # TritonServer picks free ones


def test_a_loaded_bundle_is_served_as_is_and_a_key_for_it_is_refused(linear_bundle, tmp_path):  # noqa: F811
    loaded = Bundle.load(linear_bundle[0])
    with pytest.raises(ValueError, match="public_key checks a bundle folder as it loads; pass it to Bundle.load"):
        TritonServer(loaded, public_key=tmp_path / "key.pem")
    server = TritonServer(loaded, ServerOptions(http_port=0, grpc_port=0, metrics_port=0))
    assert server.bundle is loaded and server.process is None  # nothing started before start()


def test_bench_client_counts_answered_and_failed_requests_apart(served, linear_bundle):  # noqa: F811
    server = types.SimpleNamespace(grpc_url=served.grpc, bundle=Bundle.load(linear_bundle[0]))
    # the window is long enough for a request to end in it on a loaded two-core host, where one
    # answer has taken over 300 ms (a CI run saw none end in a 300 ms window)
    ok = measure_client(server, "posetok_decode", 2, 2000)
    assert ok["failed"] == 0 and ok["failure"] is None and ok["succeeded"] > 0, ok
    assert ok["throughput_per_s"] == pytest.approx(ok["succeeded"] / ok["seconds"], abs=0.06)
    assert 0 < ok["p50_ms"] <= ok["p99_ms"]
    # every request fails (no such model): the threads go on, nothing counts as answered
    bad = measure_client(server, "posetok_nothing", 2, 1000)
    assert bad["succeeded"] == 0 and bad["throughput_per_s"] == 0 and bad["p50_ms"] is None
    assert bad["p99_ms"] is None and bad["failed"] > 0
    assert "posetok_nothing" in bad["failure"], bad["failure"]


def test_bench_client_counts_a_server_that_is_not_there_as_failures():
    # nothing listens on the port: every request fails at once, the warm-up ends with the first failures
    from posetok.serving.processes import free_ports
    server = types.SimpleNamespace(grpc_url=f"127.0.0.1:{free_ports(1)[0]}",
                                   bundle=types.SimpleNamespace(num_tokens=32, num_codes=256))
    got = measure_client(server, "posetok_decode", 2, 300)
    assert got["succeeded"] == 0 and got["failed"] > 0 and "UNAVAILABLE" in got["failure"], got
    with pytest.raises(ValueError, match=r"^concurrency must be an integer >= 1, got 0$"):
        measure_client(server, "posetok_decode", 0, 300)


def test_serve_bench_reports_refused_requests_and_exits_3(linear_bundle):  # noqa: F811
    """A queue of 1 with a 100 ms batching delay refuses most of 8 clients' requests (batching on only:
    without dynamic batching there is no queue bound): counted, left out of the rates, no speedup, status 3."""
    before = work_folders()
    run = serve_cli("serve-bench", str(linear_bundle[0]), "--concurrency", "8", "--interval-ms", "1000",
                    "--max-queue-size", "1", "--max-queue-delay-us", "100000", "--json", timeout=300)
    assert run.returncode == 3, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    result = json.loads(run.stdout)
    on = [p for p in result["points"] if p["batching"] == "on"]
    off = [p for p in result["points"] if p["batching"] == "off"]
    assert len(on) == len(off) == 2
    for point in on:
        assert point["failed"] > 0 and "Exceeds maximum queue size" in point["failure"], point
    for point in off:
        assert point["failed"] == 0 and point["failure"] is None and point["succeeded"] > 0, point
    for point in result["points"]:
        assert point["throughput_per_s"] == pytest.approx(point["succeeded"] / point["seconds"], abs=0.06), point
    assert result["failed"] == sum(p["failed"] for p in on)
    assert result["batching_speedup"] == {"posetok_encode@8": None, "posetok_decode@8": None}
    assert re.search(rf"{result['failed']} requests failed in 2 of 4 points \(first: .*Exceeds maximum queue size\)",
                     run.stderr), run.stderr[-2000:]
    assert work_folders() - before == set()


def owner_of(folder: Path) -> dict:
    try:
        return json.loads((folder / OWNER_FILE).read_text())
    except (OSError, ValueError):  # another run's folder being made or removed
        return {}


def test_a_killed_launchers_work_folder_is_removed_by_the_next_start(linear_bundle):  # noqa: F811
    process = subprocess.Popen([sys.executable, "-m", "posetok", "serve", str(linear_bundle[0]), "--http-port", "0",
                                "--grpc-port", "0", "--metrics-port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "ready in" in line, line
        (folder,) = [d for d in work_folders() if owner_of(d).get("launcher_pid") == process.pid]
        owner = owner_of(folder)
        assert owner["server_pid"] in children_of(process.pid)
        assert folder not in remove_stale_workdirs()  # its launcher runs
    except BaseException:
        process.kill()
        process.wait()
        raise
    process.kill()  # SIGKILL: the launcher cleans nothing up; its server gets SIGTERM
    process.wait()
    process.stdout.close()
    deadline = time.monotonic() + 60
    while group_pids(owner["server_pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group_pids(owner["server_pid"]) == [] and folder.is_dir()
    assert folder in remove_stale_workdirs() and not folder.exists()


def test_stale_work_folders_only_of_dead_launchers_are_removed(tmp_path):
    here = pid_space()
    assert here is not None and here.startswith("pid:[")

    def folder(name, launcher, started, server=None, owner=True, space=here):
        path = tmp_path / f"{WORKDIR_PREFIX}{name}"
        (path / "models").mkdir(parents=True)
        if owner:
            (path / OWNER_FILE).write_text(json.dumps({"launcher_pid": launcher, "launcher_start": started,
                                                       "server_pid": server, "pid_space": space,
                                                       "shm_prefix": f"posetok_{launcher}_{name}_"}))
        return path

    gone = subprocess.Popen(["sleep", "30"])
    gone_start = process_start_time(gone.pid)
    gone.kill()
    gone.wait()
    group = subprocess.Popen(["sleep", "30"], start_new_session=True)  # a server still shutting down
    me = os.getpid()
    dead = folder("dead", gone.pid, gone_start)
    region = SHM_DIR / f"posetok_{gone.pid}_dead_test_{me}"
    region.write_bytes(b"x")
    elsewhere = folder("elsewhere", gone.pid, gone_start, space="pid:[1]@another-boot")   # its pids: not ours
    garbled = folder("garbled", gone.pid, gone_start, server="n/a")
    reused = folder("reused", me, process_start_time(me) - 1)        # the pid now names a later process
    live = folder("live", me, process_start_time(me))
    serving = folder("serving", gone.pid, gone_start, server=group.pid)
    worked_in = folder("cwd", gone.pid, gone_start)
    unknown = folder("unknown", gone.pid, gone_start, owner=False)
    user = subprocess.Popen(["sleep", "30"], cwd=worked_in / "models")
    try:
        removed = remove_stale_workdirs(tmp_path)
    finally:
        for p in (group, user):
            p.kill()
            p.wait()
        region.unlink(missing_ok=True)
    assert sorted(removed) == sorted([dead, reused])
    assert not dead.exists() and not reused.exists() and not region.exists()
    assert live.is_dir() and serving.is_dir() and worked_in.is_dir() and unknown.is_dir()
    assert elsewhere.is_dir() and garbled.is_dir()
