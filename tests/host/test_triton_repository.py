"""posetok export --triton (issue #18, item 2): every config.pbtxt parses as
Triton's ModelConfig and agrees with the ONNX files; the Python-backend steps
load and run in the bundled tritonserver (which has no onnxruntime backend).
The tokenizer-only linear bundle gets no estimator models; conftest's
estimator_bundle adds the frame -> pose ensemble, whose Python steps around
the ONNX estimator (run here with onnxruntime) reproduce the local PoseEstimator."""
from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from google.protobuf import text_format

from posetok import PoseEstimator, kernels
from posetok.bundle import Bundle
from posetok.serving.repository import Batching, write_serving_repository
from posetok.serving.server import SHM_DIR, ServerOptions, TritonServer, group_pids
from posetok.skeleton import normalized_to_pixels, pixels_to_normalized
from test_pose_estimator import camera, in_big_frame  # noqa: F401  (six rendered frames, their model-frame squares)
from test_sdk_runtime import M, linear_bundle, poses  # noqa: F401  (the module-scoped bundle fixture)

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
httpclient = pytest.importorskip("tritonclient.http")

ONNX_TYPES = {onnx.TensorProto.FLOAT: model_config_pb2.TYPE_FP32, onnx.TensorProto.INT32: model_config_pb2.TYPE_INT32}
NAMES = {"posetok_encoder", "posetok_decoder", "posetok_to_model", "posetok_from_model", "posetok_encode",
         "posetok_decode"}
ESTIMATOR_NAMES = {"posetok_estimator", "posetok_preprocess", "posetok_from_crop", "posetok_estimate"}


def export_triton(bundle, out):
    run = subprocess.run([sys.executable, "-m", "posetok", "export", "--triton", str(out), "--bundle", str(bundle)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "wrote the Triton model repository" in run.stdout
    return out


@pytest.fixture(scope="module")
def repo(linear_bundle, tmp_path_factory):  # noqa: F811
    return export_triton(linear_bundle[0], tmp_path_factory.mktemp("triton") / "repo")


@pytest.fixture(scope="module")
def est_repo(estimator_bundle, tmp_path_factory):
    return export_triton(estimator_bundle[0], tmp_path_factory.mktemp("triton") / "repo")


def configs(repo):
    return {d.name: text_format.Parse((d / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
            for d in repo.iterdir()}


@pytest.mark.parametrize("which", ["linear", "estimator"])
def test_every_config_parses_and_names_its_folder(request, which):
    repo = request.getfixturevalue("repo" if which == "linear" else "est_repo")
    parsed = configs(repo)
    assert set(parsed) == (NAMES if which == "linear" else NAMES | ESTIMATOR_NAMES)
    for name, config in parsed.items():
        assert config.name == name and config.max_batch_size == 64
        assert (repo / name / "1").is_dir()
        if config.platform != "ensemble":
            assert config.dynamic_batching.default_queue_policy.max_queue_size == 256
            assert [(g.kind, g.count) for g in config.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU,
                                                                            1)]


def check_onnx_configs(repo, names):
    parsed = configs(repo)
    for name in names:
        config = parsed[name]
        assert config.platform == "onnxruntime_onnx"
        graph = onnx.load(str(repo / name / "1" / "model.onnx")).graph
        for declared, actual in ((config.input, graph.input), (config.output, graph.output)):
            assert [t.name for t in declared] == [t.name for t in actual]
            for t, a in zip(declared, actual):
                dims = [d.dim_value for d in a.type.tensor_type.shape.dim[1:]]
                assert list(t.dims) == dims and t.data_type == ONNX_TYPES[a.type.tensor_type.elem_type]
    return parsed


def test_onnx_configs_match_the_onnx_files(repo):
    parsed = check_onnx_configs(repo, ("posetok_encoder", "posetok_decoder"))
    assert list(parsed["posetok_encoder"].output[0].dims) == [M]


def test_estimator_onnx_config_matches_its_onnx_file(est_repo, estimator_bundle):
    parsed = check_onnx_configs(est_repo, ("posetok_encoder", "posetok_decoder", "posetok_estimator"))
    estimator = parsed["posetok_estimator"]
    m = Bundle.load(estimator_bundle[0]).num_tokens
    assert [(t.name, list(t.dims)) for t in estimator.input] == [("image", [3, 64, 64])]
    assert [(t.name, list(t.dims), t.data_type) for t in estimator.output] == [
        ("keypoints", [13, 2], model_config_pb2.TYPE_FP32), ("scores", [13], model_config_pb2.TYPE_FP32),
        ("token_ids", [m], model_config_pb2.TYPE_INT32)]
    with open(est_repo / "posetok_estimator" / "1" / "model.onnx", "rb") as copied, \
            open(next(estimator_bundle[0].glob("*estimator*fp32*.onnx")), "rb") as original:
        assert copied.read() == original.read()


def check_ensembles(parsed, names):
    for name in names:
        config = parsed[name]
        assert config.platform == "ensemble"
        produced = {t.name for t in config.input}
        for step in config.ensemble_scheduling.step:
            model = parsed[step.model_name]
            assert set(step.input_map) == {t.name for t in model.input}
            assert set(step.input_map.values()) <= produced, (name, step)
            assert set(step.output_map) <= {t.name for t in model.output}
            produced |= set(step.output_map.values())
        assert {t.name for t in config.output} <= produced
        for tensor in list(config.input) + list(config.output):  # declared like the step tensor it maps to
            step_side = [(s.model_name, k) for s in config.ensemble_scheduling.step
                         for k, v in list(s.input_map.items()) + list(s.output_map.items()) if v == tensor.name]
            model, key = step_side[0]
            (inner,) = [t for t in list(parsed[model].input) + list(parsed[model].output) if t.name == key]
            assert (list(tensor.dims), tensor.data_type) == (list(inner.dims), inner.data_type), (name, tensor)


def test_ensembles_chain_tensors_that_exist(repo):
    parsed = configs(repo)
    check_ensembles(parsed, ("posetok_encode", "posetok_decode"))
    assert [t.name for t in parsed["posetok_encode"].input] == ["KEYPOINTS"]
    assert list(parsed["posetok_decode"].input[0].dims) == [M]


def test_serving_repository_follows_the_bundles_roles_and_precision(estimator_bundle, linear_bundle,  # noqa: F811
                                                                     tmp_path):
    """A model is written only when the bundle has its role's graphs in the served precision, so a bundle
    whose estimator lacks that precision still serves the tokenizer instead of failing to start."""
    bundle = Bundle.load(estimator_bundle[0])
    fp16 = copy.copy(bundle)  # as if the tokenizer, not the estimator, had been exported in fp16 too
    fp16.artifacts = bundle.artifacts + tuple(dataclasses.replace(a, precision="fp16") for a in bundle.artifacts
                                              if a.role != "estimator")
    write = lambda b, precision, name: write_serving_repository(tmp_path / name, b, {"precision": precision},
                                                                Batching())
    assert write(bundle, "fp32", "a") == ["posetok_encode", "posetok_decode", "posetok_estimate"]
    assert write(fp16, "fp16", "b") == ["posetok_encode", "posetok_decode"]
    assert write(Bundle.load(linear_bundle[0]), "fp32", "c") == ["posetok_encode", "posetok_decode"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["posetok_decode", "posetok_encode",
                                                                  "posetok_estimate"]


def test_existing_repository_is_refused_without_force(repo, linear_bundle):  # noqa: F811
    run = subprocess.run([sys.executable, "-m", "posetok", "export", "--triton", str(repo), "--bundle",
                          str(linear_bundle[0])], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "exists (pass --force" in run.stderr


def test_python_steps_load_and_run_in_the_bundled_tritonserver(repo, linear_bundle):  # noqa: F811
    before = {p.name for p in SHM_DIR.glob("*")}
    server = TritonServer(linear_bundle[0], ServerOptions(http_port=0, grpc_port=0, metrics_port=0),
                          repository=repo, load=("posetok_to_model", "posetok_from_model"))
    with server:
        pgid = server.process.pid
        client = httpclient.InferenceServerClient(server.http_url)
        try:
            kp = poses(5, seed=2)
            tensor = httpclient.InferInput("KEYPOINTS", list(kp.shape), "FP32")
            tensor.set_data_from_numpy(kp)
            norm = client.infer("posetok_to_model", [tensor]).as_numpy("keypoints")
            np.testing.assert_allclose(norm, pixels_to_normalized(kp), rtol=1e-6)
            tensor = httpclient.InferInput("keypoints", list(norm.shape), "FP32")
            tensor.set_data_from_numpy(norm)
            back = client.infer("posetok_from_model", [tensor]).as_numpy("KEYPOINTS")
            np.testing.assert_allclose(back, normalized_to_pixels(norm), rtol=1e-6)
            assert not client.is_model_ready("posetok_encoder")  # no onnxruntime backend in the bundled server
        finally:
            client.close()
    assert group_pids(pgid) == []  # the server and its stubs are gone
    assert {p.name for p in SHM_DIR.glob("*")} - before == set()


def test_frame_to_pose_ensemble_is_declared_and_chained(est_repo, estimator_bundle):
    parsed = configs(est_repo)
    check_ensembles(parsed, ("posetok_encode", "posetok_decode", "posetok_estimate"))
    config = parsed["posetok_estimate"]
    assert [s.model_name for s in config.ensemble_scheduling.step] == ["posetok_preprocess", "posetok_estimator",
                                                                        "posetok_from_crop"]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        ("IMAGE", model_config_pb2.TYPE_UINT8, [-1, -1, 3]), ("BOX", model_config_pb2.TYPE_INT32, [4])]
    assert [t.name for t in config.output] == ["KEYPOINTS", "SCORES", "TOKEN_IDS", "PRESENCE"]
    pre = parsed["posetok_preprocess"]
    assert pre.backend == "python" and pre.parameters["bundle"].string_value == ""
    settings = json.loads(pre.parameters["settings"].string_value)
    section = Bundle.load(estimator_bundle[0]).spec.estimator
    onnx_fp32 = section["presence"]["files"][0]
    assert (onnx_fp32["format"], onnx_fp32["precision"]) == ("onnx", "fp32")
    assert settings == {"mean": section["input"]["mean"], "scale": section["input"]["scale"], "figure_share": 0.5,
                        "presence": {"weights": onnx_fp32["weights"], "bias": onnx_fp32["bias"]}}
    assert len(settings["mean"]) == 3


def test_from_crop_step_refuses_settings_without_a_presence_model():
    from posetok.serving.models import served_model
    step = served_model("posetok_from_crop")
    good = {"weights": [0.5] * 15, "bias": -1.0}
    assert step.open("", {"presence": good}) == good
    for bad in (None, [0.5] * 15, {"weights": [0.5] * 14, "bias": 0.0}, {"weights": [0.5] * 15},
                {"weights": [0.5] * 14 + ["x"], "bias": 0.0}, {"weights": [0.5] * 15, "bias": True},
                {"weights": [0.5] * 14 + [float("nan")], "bias": 0.0}):
        with pytest.raises(ValueError, match=r"^posetok_from_crop needs the setting presence: \{\"weights\": 15 "
                                             r"finite numbers, \"bias\": a finite number\}, got "):
            step.open("", {} if bad is None else {"presence": bad})


def infer(client, model, tensors: dict, outputs):
    inputs = []
    for name, array in tensors.items():
        inputs.append(httpclient.InferInput(name, list(array.shape), {np.uint8: "UINT8", np.int32: "INT32",
                                                                      np.float32: "FP32"}[array.dtype.type]))
        inputs[-1].set_data_from_numpy(array)
    result = client.infer(model, inputs)
    return [result.as_numpy(name) for name in outputs]


def test_frame_to_pose_steps_run_in_the_bundled_tritonserver(est_repo, estimator_bundle, camera):  # noqa: F811
    """posetok_preprocess -> (the ONNX estimator, here onnxruntime on the client) -> posetok_from_crop
    equals PoseEstimator.estimate(frame, box) on the same bundle."""
    import onnxruntime as ort

    rgb, boxes = camera
    frames = np.stack([in_big_frame(f, at=(30 * i, 20 * i)) for i, f in enumerate(rgb[:4])])
    boxes = np.array([[b[0] + 30 * i, b[1] + 20 * i, b[2], b[3]] for i, b in enumerate(boxes[:4])], np.int32)
    boxes[3] = (100, 50, 40, 90)                                  # not square
    session = ort.InferenceSession(str(est_repo / "posetok_estimator" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    before = {p.name for p in SHM_DIR.glob("*")}
    server = TritonServer(estimator_bundle[0], ServerOptions(http_port=0, grpc_port=0, metrics_port=0),
                          repository=est_repo, load=("posetok_preprocess", "posetok_from_crop"))
    with server, PoseEstimator.from_bundle(estimator_bundle[0], backend="onnxruntime") as est:
        pgid = server.process.pid
        client = httpclient.InferenceServerClient(server.http_url)
        try:
            image, crop_box = infer(client, "posetok_preprocess", {"IMAGE": frames, "BOX": boxes},
                                    ("image", "crop_box"))
            want = [est.estimate(f, box=b) for f, b in zip(frames, boxes)]
            np.testing.assert_array_equal(crop_box, [p.box for p in want])
            contract = est.bundle.spec.estimator["input"]
            for f, square, crop in zip(frames, crop_box, image):
                np.testing.assert_array_equal(crop, kernels.crop_image(f, tuple(int(v) for v in square), (64, 64),
                                                                       mean=contract["mean"], scale=contract["scale"]))
            keypoints, scores, token_ids = session.run(["keypoints", "scores", "token_ids"], {"image": image})
            kp, sc, presence = infer(client, "posetok_from_crop", {"keypoints": keypoints, "scores": scores,
                                                                   "crop_box": crop_box},
                                     ("KEYPOINTS", "SCORES", "PRESENCE"))
            np.testing.assert_allclose(kp, np.stack([p.keypoints for p in want]), atol=1e-3)
            np.testing.assert_allclose(sc, np.stack([p.scores for p in want]), atol=1e-5)
            assert presence.shape == (4, 1)
            np.testing.assert_allclose(presence[:, 0], [p.presence for p in want], atol=1e-4)
            assert (token_ids == np.stack([p.token_ids for p in want])).mean() >= 0.95
            with pytest.raises(httpclient.InferenceServerException, match="lies outside the 320x240 frame") as bad:
                infer(client, "posetok_preprocess", {"IMAGE": frames[:1], "BOX": np.array([[400, 0, 9, 9]],
                                                                                            np.int32)}, ("image",))
            assert bad.value.status() == "400"
            again, = infer(client, "posetok_preprocess", {"IMAGE": frames[:1], "BOX": boxes[:1]}, ("image",))
            np.testing.assert_array_equal(again, image[:1])   # still serving
            assert not client.is_model_ready("posetok_estimator") and not client.is_model_ready("posetok_estimate")
        finally:
            client.close()
    assert group_pids(pgid) == []
    assert {p.name for p in SHM_DIR.glob("*")} - before == set()
