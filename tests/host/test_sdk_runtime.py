"""The on-device runtime (posetok.bundle, posetok.backends, PoseTokenizer)
on a hand-built bundle: a random linear encoder with an in-graph
nearest-code search and a linear decoder, written directly as ONNX so these
tests need no trained model."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import posetok
from posetok import Bundle, BundleError, IntegrityError, PoseTokenizer
from posetok.backends import BatchRunner
from posetok.bundle import MANIFEST_NAME, SCHEMA_VERSION, file_sha256, write_manifest
from posetok.skeleton import KEYPOINT_NAMES, NORMALIZATION, normalized_to_pixels, pixels_to_normalized

M, V, D = 4, 8, 3


def linear_tokenizer_graphs(rng):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w_enc = rng.standard_normal((26, M * D)).astype(np.float32)
    codebook = rng.standard_normal((V, D)).astype(np.float32)
    w_dec = rng.standard_normal((M * D, 26)).astype(np.float32) * 0.1
    c = lambda name, arr: numpy_helper.from_array(np.asarray(arr), name)
    enc_nodes = [
        helper.make_node("Reshape", ["keypoints", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w_enc"], ["z_flat"]),
        helper.make_node("Reshape", ["z_flat", "z_shape"], ["z"]),            # [B, M, D]
        helper.make_node("Unsqueeze", ["z", "axis2"], ["z4"]),                # [B, M, 1, D]
        helper.make_node("Sub", ["z4", "codebook"], ["diff"]),                # [B, M, V, D]
        helper.make_node("Mul", ["diff", "diff"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "axis3"], ["dist"], keepdims=0),  # [B, M, V]
        helper.make_node("ArgMin", ["dist"], ["idx"], axis=2, keepdims=0),
        helper.make_node("Cast", ["idx"], ["token_ids"], to=TensorProto.INT32),
    ]
    enc = helper.make_graph(
        enc_nodes, "enc",
        [helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, ["batch", 13, 2])],
        [helper.make_tensor_value_info("token_ids", TensorProto.INT32, ["batch", M])],
        [c("w_enc", w_enc), c("codebook", codebook), c("flat_shape", np.array([-1, 26], np.int64)),
         c("z_shape", np.array([-1, M, D], np.int64)), c("axis2", np.array([2], np.int64)),
         c("axis3", np.array([3], np.int64))])
    dec_nodes = [
        helper.make_node("Gather", ["codebook", "token_ids"], ["zq"], axis=0),  # [B, M, D]
        helper.make_node("Reshape", ["zq", "flat_shape"], ["zq_flat"]),
        helper.make_node("MatMul", ["zq_flat", "w_dec"], ["out_flat"]),
        helper.make_node("Reshape", ["out_flat", "kp_shape"], ["keypoints"]),
    ]
    dec = helper.make_graph(
        dec_nodes, "dec",
        [helper.make_tensor_value_info("token_ids", TensorProto.INT32, ["batch", M])],
        [helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, ["batch", 13, 2])],
        [c("codebook", codebook), c("w_dec", w_dec), c("flat_shape", np.array([-1, M * D], np.int64)),
         c("kp_shape", np.array([-1, 13, 2], np.int64))])
    models = []
    for g in (enc, dec):
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        models.append(m)

    def decode(ids):
        return (codebook[ids].reshape(-1, M * D) @ w_dec).reshape(-1, 13, 2)

    def reference(kp_norm):
        z = (kp_norm.reshape(-1, 26) @ w_enc).reshape(-1, M, D)
        ids = ((z[:, :, None, :] - codebook) ** 2).sum(-1).argmin(-1).astype(np.int32)
        return ids, decode(ids)
    reference.decode, reference.codebook = decode, codebook
    return models, reference


@pytest.fixture(scope="module")
def linear_bundle(tmp_path_factory):
    import onnx
    root = tmp_path_factory.mktemp("bundle")
    (enc, dec), reference = linear_tokenizer_graphs(np.random.default_rng(7))
    artifacts = []
    for role, model, spec_in, spec_out in (
            ("encoder", enc, ("keypoints", ["batch", 13, 2], "float32"), ("token_ids", ["batch", M], "int32")),
            ("decoder", dec, ("token_ids", ["batch", M], "int32"), ("keypoints", ["batch", 13, 2], "float32"))):
        name = f"{role}.fp32.onnx"
        onnx.save(model, str(root / name))
        artifacts.append({"file": name, "role": role, "format": "onnx", "precision": "fp32", "batch": None,
                          "sha256": file_sha256(root / name), "size_bytes": (root / name).stat().st_size,
                          "inputs": [dict(zip(("name", "shape", "dtype"), spec_in))],
                          "outputs": [dict(zip(("name", "shape", "dtype"), spec_out))], "parity": {}})
    write_manifest(root, {"schema_version": SCHEMA_VERSION,
                          "model": {"name": "linear-test", "version": posetok.__version__},
                          "keypoints": list(KEYPOINT_NAMES), "normalization": NORMALIZATION,
                          "tokens": {"num_tokens": M, "num_codes": V, "code_dim": D},
                          "artifacts": artifacts, "parity": []})
    return root, reference


def poses(n, seed=0):
    return np.random.default_rng(seed).uniform(8, 56, size=(n, 13, 2)).astype(np.float32)


def test_encode_decode_match_the_numpy_reference(linear_bundle):
    root, reference = linear_bundle
    kp = poses(37)
    want_ids, want_kp_norm = reference(pixels_to_normalized(kp))
    with PoseTokenizer.from_bundle(root, backend="onnxruntime") as tok:
        ids = tok.encode(kp)
        assert ids.dtype == np.int32 and ids.shape == (37, M)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(tok.decode(ids), normalized_to_pixels(want_kp_norm), atol=1e-4)
        # one pose in, one pose out; roundtrip is decode(encode(.))
        np.testing.assert_array_equal(tok.encode(kp[3]), want_ids[3])
        np.testing.assert_allclose(tok.roundtrip(kp[3]), normalized_to_pixels(want_kp_norm[3]), atol=1e-4)
        assert tok.backend == "onnxruntime" and tok.precision == "fp32"


@pytest.mark.parametrize("bad, message", [
    (np.zeros((13, 3), np.float32), r"shape \(13, 2\) or \(B, 13, 2\), got \(13, 3\)"),
    (np.zeros((2, 12, 2), np.float32), r"got \(2, 12, 2\)"),
    (np.zeros((0, 13, 2), np.float32), "batch is empty"),
    (np.array([["a"] * 2] * 13), "real numeric array, got dtype <U1"),
    (np.full((13, 2), np.nan, np.float32), r"NaN or inf \(first at index \(0, 0, 0\)\)"),
])
def test_bad_keypoints_are_refused_with_a_clear_error(linear_bundle, bad, message):
    with PoseTokenizer.from_bundle(linear_bundle[0]) as tok:
        with pytest.raises(ValueError, match=message):
            tok.encode(bad)


@pytest.mark.parametrize("bad, message", [
    (np.array([0, 1, 2, V], np.int32), rf"lie in \[0, {V}\), got values in \[0, {V}\]"),
    (np.array([-1, 0, 0, 0]), r"got values in \[-1, 0\]"),
    (np.zeros(M, np.float32), "integer array, got dtype float32"),
    (np.zeros((2, M + 1), np.int32), rf"shape \({M},\) or \(B, {M}\), got \(2, {M + 1}\)"),
])
def test_bad_token_ids_are_refused_with_a_clear_error(linear_bundle, bad, message):
    with PoseTokenizer.from_bundle(linear_bundle[0]) as tok:
        with pytest.raises(ValueError, match=message):
            tok.decode(bad)


def tampered_copy(src, tmp_path, mutate):
    dst = tmp_path / "bundle"
    shutil.copytree(src, dst)
    mutate(dst / "encoder.fp32.onnx")
    return dst


def test_truncated_file_is_refused_naming_file_and_size(linear_bundle, tmp_path):
    def truncate(p):
        p.write_bytes(p.read_bytes()[:-10])
    dst = tampered_copy(linear_bundle[0], tmp_path, truncate)
    with pytest.raises(IntegrityError, match=r"encoder\.fp32\.onnx: size \d+ bytes, manifest says \d+"):
        PoseTokenizer.from_bundle(dst)


def test_modified_file_is_refused_naming_file_and_hash(linear_bundle, tmp_path):
    def flip(p):
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    dst = tampered_copy(linear_bundle[0], tmp_path, flip)
    with pytest.raises(IntegrityError, match=r"encoder\.fp32\.onnx: sha256 [0-9a-f]{16}\.\.\. does not match"):
        PoseTokenizer.from_bundle(dst)


def test_manifest_problems_are_named(linear_bundle, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(linear_bundle[0], dst)
    manifest = json.loads((dst / MANIFEST_NAME).read_text())
    manifest["schema_version"] = 99
    (dst / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="schema_version 99 is not supported"):
        Bundle.load(dst)
    (dst / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(dst)
    with pytest.raises(BundleError, match="not a posetok bundle"):
        Bundle.load(tmp_path)


def _with_manifest(src, dst, edit):
    shutil.copytree(src, dst)
    manifest = json.loads((dst / MANIFEST_NAME).read_text())
    edit(manifest)
    (dst / MANIFEST_NAME).write_text(json.dumps(manifest))
    return dst


def test_manifest_with_another_keypoint_order_is_refused(linear_bundle, tmp_path):
    def swap(m):
        m["keypoints"][2], m["keypoints"][3] = m["keypoints"][3], m["keypoints"][2]
    dst = _with_manifest(linear_bundle[0], tmp_path / "b", swap)
    with pytest.raises(BundleError, match="keypoint order mismatch: keypoint 2 is 'right_shoulder' in the bundle, "
                                          "'left_shoulder' in this posetok"):
        PoseTokenizer.from_bundle(dst)
    dst = _with_manifest(linear_bundle[0], tmp_path / "c", lambda m: m["keypoints"].pop())
    with pytest.raises(BundleError, match="the bundle has 12 keypoints, this posetok has 13"):
        Bundle.load(dst)


def test_manifest_with_another_normalization_is_refused(linear_bundle, tmp_path):
    def other(m):
        m["normalization"]["formula"] = "u = px / 64"
    dst = _with_manifest(linear_bundle[0], tmp_path / "b", other)
    with pytest.raises(BundleError, match=r"normalization mismatch: normalization.formula is 'u = px / 64' in the "
                                          r"bundle, this posetok applies 'u = px / 32 - 1'"):
        PoseTokenizer.from_bundle(dst)
    dst = _with_manifest(linear_bundle[0], tmp_path / "c", lambda m: m["normalization"].pop("frame_px"))
    with pytest.raises(BundleError, match="normalization.frame_px is None in the bundle"):
        Bundle.load(dst)


def test_manifest_round_trips_through_the_typed_schema(linear_bundle):
    from posetok.bundle import Manifest
    bundle = Bundle.load(linear_bundle[0])
    spec = bundle.spec
    assert isinstance(spec, Manifest) and spec.tokens.num_tokens == M and spec.keypoints == KEYPOINT_NAMES
    assert Manifest.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["artifacts"] == bundle.manifest["artifacts"]


def test_missing_precision_names_what_the_bundle_offers(linear_bundle):
    with pytest.raises(BundleError, match="has no int8 graphs; it offers onnx/fp32"):
        PoseTokenizer.from_bundle(linear_bundle[0], precision="int8")


def test_closed_tokenizer_refuses_work(linear_bundle):
    tok = PoseTokenizer.from_bundle(linear_bundle[0])
    tok.close()
    with pytest.raises(RuntimeError, match="closed"):
        tok.encode(poses(1))


class FixedBatchDouble:
    """Stands in for a fixed-batch LiteRT graph: doubles its input and
    records the batch sizes it was called with."""

    def __init__(self, batch):
        self.batch, self.calls = batch, []

    def run(self, x):
        assert x.shape[0] == self.batch, "fixed-batch graph fed the wrong batch"
        self.calls.append(x.shape[0])
        return x * 2


@pytest.mark.parametrize("n, big_calls, small_calls", [(1, 0, 1), (64, 1, 0), (130, 2, 2), (100, 2, 0), (3, 0, 3)])
def test_batch_runner_splits_and_pads_for_fixed_batches(n, big_calls, small_calls):
    small, big = FixedBatchDouble(1), FixedBatchDouble(64)
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    np.testing.assert_array_equal(BatchRunner([small, big]).run(x), x * 2)
    assert (len(big.calls), len(small.calls)) == (big_calls, small_calls)


class AnyBatchDouble:
    batch = None

    def __init__(self):
        self.calls = []

    def run(self, x):
        self.calls.append(x.shape[0])
        return x * 2

    def run_outputs(self, x):
        return {"doubled": self.run(x), "first": x[:, :1]}


def test_batch_runner_feeds_an_any_batch_graph_bounded_chunks():
    # onnxruntime's arena keeps a call's peak for good: 8,000 poses in one call held 4 GB
    step = BatchRunner.MAX_DYNAMIC_BATCH
    session = AnyBatchDouble()
    x = np.arange((2 * step + 3) * 2, dtype=np.float32).reshape(-1, 2)
    np.testing.assert_array_equal(BatchRunner([session]).run(x), x * 2)
    assert session.calls == [step, step, 3]
    out = BatchRunner([session]).run_outputs(x[:step])
    np.testing.assert_array_equal(out["first"], x[:step, :1])
    assert session.calls[3:] == [step] and out["doubled"].shape == (step, 2)


def test_bench_prints_one_json_object_with_the_perf_fields(linear_bundle, capsys):
    from posetok.bench_cli import main as bench_main
    assert bench_main([str(linear_bundle[0]), "--batch", "8", "--iterations", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("backend", "precision", "batch", "load_ms", "first_inference_ms", "p50_us", "p90_us",
                "p99_us", "throughput_per_s", "peak_rss_mb"):
        assert key in result, key
    assert (result["backend"], result["precision"], result["batch"]) == ("onnxruntime", "fp32", 8)
    assert 0 < result["p50_us"] <= result["p90_us"] <= result["p99_us"]
    assert result["throughput_per_s"] > 0 and result["peak_rss_mb"] > 10


def _with_search(linear_bundle, dst, sweeps=1, count=2):
    from posetok.token_search import code_neighbours
    table = code_neighbours(linear_bundle[1].codebook[None], count)
    return _with_manifest(linear_bundle[0], dst,
                          lambda m: m.update(token_search={"sweeps": sweeps, "code_neighbours": table.tolist()})), table


def test_encode_runs_the_manifest_search_and_can_skip_it(linear_bundle, tmp_path):
    from posetok.token_search import pose_error, refine_token_ids
    root, table = _with_search(linear_bundle, tmp_path / "b")
    reference = linear_bundle[1]
    kp_norm = pixels_to_normalized(poses(64, seed=3))
    nearest, _ = reference(kp_norm)
    want, want_error = refine_token_ids(nearest, kp_norm, reference.decode, table, 1)
    assert (want != nearest).any()            # the search moves some ids on this bundle
    with PoseTokenizer.from_bundle(root, backend="onnxruntime") as tok:
        assert tok.search_sweeps == 1 and "search_sweeps=1" in repr(tok)
        ids = tok.encode_normalized(kp_norm)
        np.testing.assert_array_equal(ids, want)
        np.testing.assert_array_equal(tok.encode(normalized_to_pixels(kp_norm)), want)
        np.testing.assert_allclose(pose_error(tok.decode_normalized(ids), kp_norm), want_error, rtol=1e-5)
    with PoseTokenizer.from_bundle(root, backend="onnxruntime", search=False) as tok:
        assert tok.search_sweeps == 0
        np.testing.assert_array_equal(tok.encode_normalized(kp_norm), nearest)
    with PoseTokenizer.from_bundle(linear_bundle[0], backend="onnxruntime") as tok:   # no search in the manifest
        assert tok.search_sweeps == 0
        np.testing.assert_array_equal(tok.encode_normalized(kp_norm), nearest)
    with pytest.raises(ValueError, match="search must be True or False, got 1"):
        posetok.TokenizerOptions(search=1)


def test_bench_times_the_search_unless_told_not_to(linear_bundle, tmp_path, capsys):
    from posetok.bench_cli import main as bench_main
    root, _ = _with_search(linear_bundle, tmp_path / "b")
    for flags, sweeps in (([], 1), (["--no-search"], 0)):
        assert bench_main([str(root), "--iterations", "3", "--json", *flags]) == 0
        assert json.loads(capsys.readouterr().out)["search_sweeps"] == sweeps


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(sweeps=-1), r"token_search\.sweeps must be an int in \[0, 8\], not -1"),
    (lambda s: s.update(sweeps=True), r"token_search\.sweeps must be an int in \[0, 8\], not True"),
    (lambda s: s.pop("code_neighbours"), "token_search is missing 'code_neighbours'"),
    (lambda s: s.update(code_neighbours=[[[0.5] * 2] * V]),
     "token_search.code_neighbours must hold integers, got dtype float64"),
    (lambda s: s.update(code_neighbours=[[[1, 2]] * (V - 1)]),
     rf"token_search.code_neighbours must have shape \[1 or {M}, {V}, C >= 1\], got \[1, {V - 1}, 2\]"),
    (lambda s: s.update(code_neighbours=[[[1, V]] * V]), rf"token_search.code_neighbours ids must lie in \[0, {V}\)"),
    (lambda s: s.update(code_neighbours=[[[1, 2], [3]] * 4]), "token_search.code_neighbours must be a"),
])
def test_a_bad_search_in_the_manifest_is_named(linear_bundle, tmp_path, edit, message):
    root, _ = _with_search(linear_bundle, tmp_path / "b")
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    edit(manifest["token_search"])
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="invalid manifest: " + message):
        Bundle.load(root)


def test_options_take_numpy_scalars_and_refuse_thread_counts_no_runtime_takes():
    from posetok import TokenizerOptions
    options = TokenizerOptions(num_threads=np.int64(3), verify=np.bool_(False), search=np.True_)
    assert (options.num_threads, options.verify, options.search) == (3, False, True)
    assert type(options.num_threads) is int and type(options.verify) is bool and type(options.search) is bool
    for bad in (0, 1025, 2**31, True, 2.0):
        with pytest.raises(ValueError, match=rf"^num_threads must be None or an integer in 1..1024, got {bad!r}$"):
            TokenizerOptions(num_threads=bad)
    for bad in (0, "no", None):
        with pytest.raises(ValueError, match=rf"^verify must be True or False, got {bad!r}$"):
            TokenizerOptions(verify=bad)


def test_a_file_the_runtime_cannot_open_or_listed_under_another_entry_is_named(linear_bundle, tmp_path):
    garbage = tampered_copy(linear_bundle[0], tmp_path / "garbage", lambda p: p.write_bytes(b"not a model" * 9))
    with pytest.raises(BundleError, match=r"^encoder\.fp32\.onnx: onnx runtime cannot open it as a model: "):
        PoseTokenizer.from_bundle(garbage, verify=False)       # sizes and sha256 unchecked: the runtime sees it

    def swap(manifest):       # the encoder's and decoder's files exchanged, each entry's hash and size with them
        enc, dec = manifest["artifacts"]
        for key in ("file", "sha256", "size_bytes"):
            enc[key], dec[key] = dec[key], enc[key]
    swapped = _with_manifest(linear_bundle[0], tmp_path / "swapped", swap)
    with pytest.raises(BundleError, match=r"^decoder\.fp32\.onnx: the graph's input is \[batch,4\] int32, the "
                                          r"manifest says \[batch,13,2\] float32"):
        PoseTokenizer.from_bundle(swapped)


def test_a_folder_that_cannot_be_searched_is_a_bundle_error(linear_bundle, monkeypatch):
    import pathlib
    real = pathlib.Path.is_file

    def denied(self):     # what Path.is_file raises in a folder without search permission (root ignores chmod)
        if self.name == MANIFEST_NAME:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)
    monkeypatch.setattr(pathlib.Path, "is_file", denied)
    with pytest.raises(BundleError, match=r"bundle folder .* cannot be read: Permission denied$"):
        Bundle.load(linear_bundle[0])


def test_bench_answers_user_errors_with_a_message_and_exit_2(linear_bundle, tmp_path, capsys):
    from posetok.bench_cli import main as bench_main
    cases = [([str(tmp_path / "none")], "bundle folder not found"),
             ([str(linear_bundle[0]), "--num-threads", "0"], "num_threads must be None or an integer in 1..1024"),
             ([str(linear_bundle[0]), "--precision", "fp16"], "has no fp16 graphs; it offers onnx/fp32"),
             ([str(linear_bundle[0]), "--pipeline"], "has no estimator; --pipeline needs one")]
    for args, message in cases:
        assert bench_main(args + ["--iterations", "1", "--warmup", "0"]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("posetok bench: error: ") and message in err and "Traceback" not in err, err
    with pytest.raises(SystemExit) as exit_info:       # refused before a 66000 x 4000 frame is made
        bench_main([str(linear_bundle[0]), "--pipeline", "--frame", "66000x4000"])
    assert exit_info.value.code == 2
    assert "at most 65536 pixels on a side (an NV21 frame), got 66000x4000" in capsys.readouterr().err
