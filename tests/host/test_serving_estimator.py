"""posetok_estimate on the real tritonserver: frames in, poses out. The
Python API's TritonServer on conftest's estimator_bundle (the CLI path is
test_serving's), driven with the real tritonclient over HTTP and gRPC;
every answer compared with the local PoseEstimator on the same bundle."""
from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from posetok import EstimatorOptions, PoseEstimator
from posetok.serving.repository import Batching
from posetok.serving.server import ServerOptions, TritonServer, group_pids
from test_pose_estimator import camera, in_big_frame  # noqa: F401  (six rendered frames, their model-frame squares)
from test_serving import raw_post, stats

grpcclient = pytest.importorskip("tritonclient.grpc")
httpclient = pytest.importorskip("tritonclient.http")

@pytest.fixture(scope="module")
def served_estimator(estimator_bundle):
    """The Python API's TritonServer (the CLI path is ``served``'s) on the bundle with an estimator."""
    with TritonServer(estimator_bundle[0], ServerOptions(http_port=0, grpc_port=0, metrics_port=0,
                                                         batching=Batching(max_queue_delay_us=2000))) as server:
        pgid, regions = server.process.pid, server.shm_regions()
        yield server
    assert group_pids(pgid) == []
    assert regions and not [r for r in regions if r.exists()]


@pytest.fixture(scope="module")
def local_estimator(estimator_bundle):
    with PoseEstimator.from_bundle(estimator_bundle[0], backend="onnxruntime", num_threads=1) as est:
        yield est


def estimate(client, frames, boxes=None, binary=True):
    """posetok_estimate over HTTP (binary or JSON tensors) or gRPC, whichever ``client`` is."""
    lib, kw = (grpcclient, {}) if isinstance(client, grpcclient.InferenceServerClient) else \
        (httpclient, {"binary_data": binary})
    tensors = [lib.InferInput(n, list(a.shape), d) for n, d, a in (("IMAGE", "UINT8", frames), ("BOX", "INT32", boxes))
               if a is not None]
    for tensor, array in zip(tensors, (frames, boxes)):
        tensor.set_data_from_numpy(array, **kw)
    result = client.infer("posetok_estimate", tensors)
    return {name: result.as_numpy(name) for name in ("KEYPOINTS", "SCORES", "TOKEN_IDS", "PRESENCE")}


def assert_same_poses(got: dict, want: list):
    np.testing.assert_array_equal(got["KEYPOINTS"], np.stack([p.keypoints for p in want]))
    np.testing.assert_array_equal(got["SCORES"], np.stack([p.scores for p in want]))
    np.testing.assert_array_equal(got["TOKEN_IDS"], np.stack([p.token_ids for p in want]))
    np.testing.assert_array_equal(got["PRESENCE"], np.array([[p.presence] for p in want], np.float32))


def test_estimate_is_served_with_its_documented_tensors(served_estimator, local_estimator):
    h = httpclient.InferenceServerClient(served_estimator.http_url)
    try:
        assert served_estimator.models == ["posetok_encode", "posetok_decode", "posetok_estimate"]
        meta, m = h.get_model_metadata("posetok_estimate"), local_estimator.num_tokens
        assert meta["inputs"] == [{"name": "IMAGE", "datatype": "UINT8", "shape": [-1, -1, -1, 3]},
                                  {"name": "BOX", "datatype": "INT32", "shape": [-1, 4]}]
        assert meta["outputs"] == [{"name": "KEYPOINTS", "datatype": "FP32", "shape": [-1, 13, 2]},
                                   {"name": "SCORES", "datatype": "FP32", "shape": [-1, 13]},
                                   {"name": "TOKEN_IDS", "datatype": "INT32", "shape": [-1, m]},
                                   {"name": "PRESENCE", "datatype": "FP32", "shape": [-1, 1]}]
        config = h.get_model_config("posetok_estimate")
        assert [i.get("optional", False) for i in config["input"]] == [False, True]
        assert config["max_batch_size"] == 64 and "dynamic_batching" in config
    finally:
        h.close()


def test_estimate_equals_the_local_estimator(served_estimator, local_estimator, camera):  # noqa: F811
    rgb, boxes = camera
    boxes = np.array([[int(v) for v in b] for b in boxes], np.int32)
    boxes[1] = (10, 4, 60, 80)                                   # not square: the server squares it like the runtime
    big = np.stack([in_big_frame(rgb[0]), in_big_frame(rgb[3], at=(20, 30))])
    h = httpclient.InferenceServerClient(served_estimator.http_url)
    g = grpcclient.InferenceServerClient(served_estimator.grpc_url)
    try:
        with_box = estimate(h, rgb, boxes)                  # six frames and boxes in one request
        assert_same_poses(with_box, [local_estimator.estimate(f, box=b) for f, b in zip(rgb, boxes)])
        assert with_box["KEYPOINTS"].shape == (6, 13, 2) and with_box["TOKEN_IDS"].dtype == np.int32
        searched = estimate(g, big)                         # no BOX: the coarse + refine search
        want = [local_estimator.estimate(f) for f in big]
        assert_same_poses(searched, want)
        assert want[0].box[2] < 320                              # the refine pass, not the whole-frame square
        assert_same_poses(estimate(h, rgb[:2], boxes[:2], binary=False), want=[
            local_estimator.estimate(f, box=b) for f, b in zip(rgb[:2], boxes[:2])])
    finally:
        h.close()
        g.close()


def test_estimate_under_concurrent_mixed_requests(served_estimator, local_estimator, camera):  # noqa: F811
    """8 clients send frames of two sizes, with and without boxes, at once: Triton groups only equal shapes
    and the same inputs; every answer is its own frame's pose."""
    rgb, boxes = camera
    frames = [rgb[i % 6] if i % 2 else in_big_frame(rgb[i % 6]) for i in range(8)]
    box_of = [np.array(boxes[i % 6], np.int32)[None] if i % 2 else None for i in range(8)]  # 96-px frames: a box
    before = stats(served_estimator.http_url, "posetok_estimate")

    def client(k):
        c = httpclient.InferenceServerClient(served_estimator.http_url)
        try:
            return [estimate(c, frames[k][None], box_of[k]) for _ in range(6)]
        finally:
            c.close()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(client, range(8)))
    for k, got in enumerate(answers):
        want = local_estimator.estimate(frames[k], box=None if box_of[k] is None else box_of[k][0])
        for answer in got:
            assert_same_poses(answer, [want])
    assert stats(served_estimator.http_url, "posetok_estimate")[0] - before[0] == 48


def image_input(shape=(1, 16, 16, 3), dtype="UINT8"):
    return ("IMAGE", dtype, list(shape), [9] * int(np.prod(shape)))


def box_input(*values):
    return ("BOX", "INT32", [1, len(values)], list(values))


@pytest.mark.parametrize("case, inputs, message", [
    ("frame under 16 px", [image_input((1, 8, 8, 3))], "at least 16x16"),
    ("box outside the frame", [image_input(), box_input(40, 40, 8, 8)], "lies outside the 16x16 frame"),
    ("empty box", [image_input(), box_input(0, 0, 0, 8)], r"1 pixel, got \(0, 0, 0, 8\)"),
    ("huge box", [image_input(), box_input(0, 0, 10**9, 8)], "box is too large"),
    ("box of 3", [image_input(), box_input(0, 0, 8)], "unexpected shape for input 'BOX'"),
    ("a box per frame", [image_input((2, 16, 16, 3)), box_input(0, 0, 8, 8)], "'IMAGE' batch size does not match"),
    ("float frame", [image_input(dtype="FP32")], "data-type"),
    ("four channels", [image_input((1, 16, 16, 4))], "unexpected shape"),
    ("no frame", [box_input(0, 0, 8, 8)], "the request has no input IMAGE"),
])
def test_bad_estimate_requests_get_a_400_and_the_server_keeps_serving(served_estimator, local_estimator,
                                                                      camera, case, inputs, message):  # noqa: F811
    body = json.dumps({"inputs": [{"name": n, "datatype": d, "shape": s, "data": v} for n, d, s, v in inputs]})
    got, answer = raw_post(served_estimator.http_url, "/v2/models/posetok_estimate/infer", body.encode(),
                           {"Content-Type": "application/json"})
    assert got == 400, answer
    assert re.search(message, answer["error"]), answer
    h = httpclient.InferenceServerClient(served_estimator.http_url)
    try:
        frame, box = camera[0][2], np.array(camera[1][2], np.int32)
        assert_same_poses(estimate(h, frame[None], box[None]), [local_estimator.estimate(frame, box=box)])
    finally:
        h.close()


def test_the_flip_and_shift_tests_are_served_when_asked(estimator_bundle, camera):  # noqa: F811
    """ServerOptions.flip_test and shift_test reach the served PoseEstimator (posetok serve --flip-test
    --shift-test sets them)."""
    with pytest.raises(ValueError, match=r"^flip_test must be True or False, got 1$"):
        ServerOptions(flip_test=1)
    with pytest.raises(ValueError, match=r"^shift_test must be True or False, got 'no'$"):
        ServerOptions(shift_test="no")
    assert ServerOptions(flip_test=np.bool_(True)).flip_test is True
    rgb, boxes = camera
    boxes = np.array([[int(v) for v in b] for b in boxes], np.int32)
    local = EstimatorOptions(backend="onnxruntime", num_threads=1, flip_test=True, shift_test=True)
    with TritonServer(estimator_bundle[0], ServerOptions(http_port=0, grpc_port=0, metrics_port=0,
                                                         flip_test=True, shift_test=True)) as server, \
            PoseEstimator.from_bundle(estimator_bundle[0], options=local) as both, \
            PoseEstimator.from_bundle(estimator_bundle[0], backend="onnxruntime", num_threads=1) as plain:
        pgid = server.process.pid
        h = httpclient.InferenceServerClient(server.http_url)
        try:
            got = estimate(h, rgb, boxes)
        finally:
            h.close()
        assert_same_poses(got, [both.estimate(f, box=b) for f, b in zip(rgb, boxes)])
        single = np.stack([plain.estimate(f, box=b).keypoints for f, b in zip(rgb, boxes)])
        assert np.abs(got["KEYPOINTS"] - single).max() > 1e-3
    assert group_pids(pgid) == []
