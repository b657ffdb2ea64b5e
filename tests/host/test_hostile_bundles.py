"""Hostile bundles: ``Bundle.load(path, verify=True)`` ends every malformed
input in a BundleError (or IntegrityError) with a message: never another
exception type, a hang, or a read outside the bundle folder.

Each hypothesis test starts from the small valid bundle of test_sdk_runtime
(``linear_bundle``) and breaks one part of it: a manifest field (wrong type,
deleted, extra, huge), an artifact's file name (path tricks), the raw bytes
of manifest.json, or a model file. About 2,100 hostile examples run per run."""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import posetok.bundle as bundle_mod
from posetok import Bundle, BundleError, IntegrityError
from posetok.bundle import MANIFEST_NAME
from posetok.info_cli import describe
from test_sdk_runtime import linear_bundle  # noqa: F401  (the module-scoped bundle fixture)

FAST = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([10**100, -(10**100), 2**63, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.one_of(st.none(), st.integers()), max_size=2))


class Work:
    """A copy of the valid bundle to break, the pristine files to restore it
    from, and a copy of the encoder outside the bundle (same bytes, so only the
    path check can refuse reading it)."""

    def __init__(self, base: Path, source: Path):
        self.pristine = base / "pristine"
        shutil.copytree(source, self.pristine)
        self.root = base / "bundle"
        self.outside = base / "outside"
        self.outside.mkdir()
        shutil.copy(self.pristine / "encoder.fp32.onnx", self.outside / "encoder.fp32.onnx")
        self.manifest = json.loads((self.pristine / MANIFEST_NAME).read_text())
        # the figures an export records, for the mutations to reach (`posetok info` prints them)
        self.manifest["reference"] = {"mpjpe_px": 0.5, "eval_poses": 100}
        self.manifest["parity"] = [{"format": "onnx", "precision": "fp32", "size_bytes": 1234, "size_vs_fp32": 1.0,
                                    "token_agreement": 1.0, "mpjpe_px": 0.5, "decoder_max_abs_err_px": 1e-6,
                                    "meets_targets": True}]
        (self.pristine / MANIFEST_NAME).write_text(json.dumps(self.manifest))
        self.reads: list[Path] = []
        self.restore()

    def restore(self) -> None:
        if self.root.is_symlink() or self.root.is_file():
            self.root.unlink()
        elif self.root.exists():
            shutil.rmtree(self.root)
        shutil.copytree(self.pristine, self.root)

    def write_manifest(self, data: object) -> None:
        (self.root / MANIFEST_NAME).write_text(json.dumps(data))

    def load(self) -> BundleError | None:
        """Load with verification: None when it loads (and ``posetok info`` can describe it), else the
        BundleError; any other exception propagates and fails the test."""
        self.reads.clear()
        try:
            describe(Bundle.load(self.root, verify=True), verified=True)
        except BundleError as exc:
            assert str(exc).strip(), f"empty message from {type(exc).__name__}"
            return exc
        finally:
            root = self.root.resolve()
            escaped = [p for p in self.reads if not p.resolve().is_relative_to(root)]
            assert not escaped, f"read outside the bundle: {escaped}"
        return None


@pytest.fixture(scope="module")
def work(linear_bundle, tmp_path_factory):  # noqa: F811
    w = Work(tmp_path_factory.mktemp("hostile"), linear_bundle[0])
    real = bundle_mod.file_sha256

    def recording(path, *args, **kwargs):
        w.reads.append(Path(path))
        return real(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bundle_mod, "file_sha256", recording)
        yield w


@pytest.fixture
def fresh(work):
    work.restore()
    assert work.load() is None  # the starting point is valid
    return work


def paths_in(obj, prefix=()):
    """Every (container path, key) in a JSON value, depth first."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        yield prefix, key
        yield from paths_in(value, prefix + (key,))


def at(obj, path):
    for key in path:
        obj = obj[key]
    return obj


# ---- manifest fields: wrong types, missing keys, extra keys, huge numbers ----------

@st.composite
def field_mutations(draw, manifest):
    spots = list(paths_in(manifest))
    m = copy.deepcopy(manifest)
    for _ in range(draw(st.integers(1, 3))):
        prefix, key = draw(st.sampled_from(spots))
        try:
            parent = at(m, prefix)
        except (KeyError, IndexError, TypeError):  # an earlier mutation replaced the container
            continue
        # an earlier mutation may have removed the key, or replaced a dict by a list (a str key) or the reverse
        if not (isinstance(parent, dict) and key in parent
                or isinstance(parent, list) and isinstance(key, int) and key < len(parent)):
            continue
        action = draw(st.sampled_from(["replace", "replace", "delete", "extra"]))
        if action == "replace":
            parent[key] = draw(HOSTILE_VALUES)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(HOSTILE_VALUES)
        else:
            parent.append(draw(HOSTILE_VALUES))
    return m


@settings(max_examples=800, **FAST)
@given(data=st.data())
def test_mutated_manifest_fields_load_or_raise_bundle_error(work, data):
    work.restore()
    m = data.draw(field_mutations(work.manifest))
    work.write_manifest(m)
    work.load()


@pytest.mark.parametrize("field", ["size_bytes", "batch"])
@pytest.mark.parametrize("value", [10**100, 2**63, -1, 0, True, 1.0, float("inf"), float("nan"), "12", None])
def test_huge_or_odd_artifact_numbers(fresh, field, value):
    m = copy.deepcopy(fresh.manifest)
    m["artifacts"][0][field] = value
    fresh.write_manifest(m)
    err = fresh.load()
    if not (field == "batch" and value is None):
        assert err is not None and ("artifacts[0]" in str(err) or "encoder.fp32.onnx: size" in str(err)), err


@pytest.mark.parametrize("key", ["num_tokens", "num_codes", "code_dim"])
@pytest.mark.parametrize("value", [10**100, 2**31, 0, -5, True, 4.0, None, "4", [4]])
def test_huge_or_odd_token_layout(fresh, key, value):
    m = copy.deepcopy(fresh.manifest)
    m["tokens"][key] = value
    fresh.write_manifest(m)
    err = fresh.load()
    assert err is not None and f"tokens.{key}" in str(err)


@pytest.mark.parametrize("where, value, message", [
    (("parity", 0, "token_agreement"), "x", r"parity\[0\].token_agreement must be a finite number, not 'x'"),
    (("parity", 0, "mpjpe_px"), float("nan"), r"parity\[0\].mpjpe_px must be a finite number, not nan"),
    (("parity", 0, "format"), 3, r"parity\[0\].format must be a string, not 3"),
    (("parity", 0, "meets_targets"), "yes", r"parity\[0\].meets_targets must be true, false or null"),
    (("parity", 0, "meets_targets"), 1, r"parity\[0\].meets_targets must be true, false or null, not 1"),
    (("reference", "mpjpe_px"), "abc", r"reference.mpjpe_px must be a finite number, not 'abc'"),
    (("artifacts", 0, "inputs"), [], r"artifacts\[0\].inputs must be a non-empty list of tensor specs, not \[\]"),
    (("artifacts", 1, "inputs", 0, "shape"), ["batch", 5],
     r"artifacts\[1\]: token ids \['batch', 5\] do not hold tokens.num_tokens = 4 per pose"),
])
def test_figures_and_tensors_a_reader_prints_are_checked(fresh, where, value, message):
    m = copy.deepcopy(fresh.manifest)
    at(m, where[:-1])[where[-1]] = value
    fresh.write_manifest(m)
    err = fresh.load()
    assert err is not None and re.search(message, str(err)), err


def test_a_parity_row_without_some_figures_is_described_with_dashes(fresh):
    m = copy.deepcopy(fresh.manifest)
    for key in ("size_bytes", "token_agreement", "decoder_max_abs_err_px"):
        del m["parity"][0][key]
    fresh.write_manifest(m)
    text = describe(Bundle.load(fresh.root), verified=True)
    row = text.splitlines()[-1].split()
    assert row == ["onnx", "fp32", "-", "100.0%", "-", "0.5000", "-", "met"], text


def test_duplicate_artifacts_are_refused(fresh):
    m = copy.deepcopy(fresh.manifest)
    m["artifacts"].append(copy.deepcopy(m["artifacts"][0]))
    fresh.write_manifest(m)
    assert "artifacts[2].file 'encoder.fp32.onnx' is listed twice (also artifacts[0])" in str(fresh.load())
    m = copy.deepcopy(fresh.manifest)
    m["artifacts"][1]["file"] = m["artifacts"][0]["file"]  # the decoder entry names the encoder's file
    fresh.write_manifest(m)
    assert "is listed twice" in str(fresh.load())


# ---- artifact file names: path tricks -----------------------------------------------

def tricks(work) -> list[str]:
    target = work.outside / "encoder.fp32.onnx"
    return ["../outside/encoder.fp32.onnx", str(target), "a/../../outside/encoder.fp32.onnx", "", ".", "..",
            "x\x00y", "x" * 300, "\u00e9" * 200, "sub/encoder.fp32.onnx", "..\\outside\\encoder.fp32.onnx",
            "\\etc\\passwd", "/etc/passwd", "./encoder.fp32.onnx", "encoder.fp32.onnx/", "\ud800.onnx",
            "~/encoder.fp32.onnx", "/", "//", "manifest.json"]


@pytest.mark.parametrize("index", range(20))
def test_path_tricks_are_refused_naming_the_artifact(fresh, index):
    name = tricks(fresh)[index]
    m = copy.deepcopy(fresh.manifest)
    m["artifacts"][0]["file"] = name
    fresh.write_manifest(m)
    err = fresh.load()
    assert err is not None and "artifacts[0]" in str(err), (name, err)
    if name == "manifest.json":
        assert "is reserved" in str(err)
    if name in ("../outside/encoder.fp32.onnx", "a/../../outside/encoder.fp32.onnx",
                str(fresh.outside / "encoder.fp32.onnx")):
        assert "points outside the bundle" in str(err)


@settings(max_examples=400, **FAST)
@given(data=st.data())
def test_generated_file_names_never_escape(work, data):
    pieces = st.sampled_from(["..", ".", "", "outside", "encoder.fp32.onnx", "\\", "\x00", "~", "a"])
    name = data.draw(st.one_of(
        st.lists(pieces, min_size=1, max_size=6).map("/".join),
        st.lists(pieces, min_size=1, max_size=6).map("\\".join),
        st.text(max_size=40),
        st.sampled_from(tricks(work))))
    index = data.draw(st.sampled_from([0, 1]))
    work.restore()
    m = copy.deepcopy(work.manifest)
    m["artifacts"][index]["file"] = name
    work.write_manifest(m)
    err = work.load()
    if name != work.manifest["artifacts"][index]["file"]:
        # any other name is refused: by the name check, as a duplicate, or as a missing or mismatched file
        assert err is not None, name
        assert f"artifacts[{index}]" in str(err) or "listed twice" in str(err) or name in str(err), (name, err)


# ---- symlinks -------------------------------------------------------------------------

def test_symlink_to_a_file_outside_is_refused(fresh):
    model = fresh.root / "encoder.fp32.onnx"
    model.unlink()
    model.symlink_to(fresh.outside / "encoder.fp32.onnx")  # same bytes: only the path check can catch it
    err = fresh.load()
    assert err is not None and "encoder.fp32.onnx: points outside the bundle folder" in str(err)


def test_symlink_inside_the_bundle_is_fine(fresh):
    model = fresh.root / "encoder.fp32.onnx"
    os.replace(model, fresh.root / "real.onnx")
    model.symlink_to("real.onnx")
    assert fresh.load() is None


def test_symlink_loop_and_dangling_symlink(fresh):
    model = fresh.root / "encoder.fp32.onnx"
    model.unlink()
    model.symlink_to("encoder.fp32.onnx")
    assert "encoder.fp32.onnx" in str(fresh.load())
    model.unlink()
    model.symlink_to("nowhere.onnx")
    assert "encoder.fp32.onnx" in str(fresh.load())


def test_manifest_symlinked_outside_is_refused(fresh):
    target = fresh.outside / MANIFEST_NAME
    shutil.copy(fresh.root / MANIFEST_NAME, target)
    (fresh.root / MANIFEST_NAME).unlink()
    (fresh.root / MANIFEST_NAME).symlink_to(target)
    assert "points outside the bundle folder" in str(fresh.load())


# ---- manifest.json bytes: invalid JSON, non-UTF-8, deep nesting, wrong top level ----

@pytest.mark.parametrize("text, message", [
    ("[" * 10_000 + "]" * 10_000, "nests too deeply"),
    ('{"a": ' * 10_000 + "1" + "}" * 10_000, "nests too deeply"),
    ('{"a": ' + "[" * 100 + "]" * 100 + "}", "nests too deeply"),
    ("[1, 2]", "top level is not a JSON object but list"),
    ("3", "top level is not a JSON object but int"),
    ('"manifest"', "top level is not a JSON object but str"),
    ("null", "top level is not a JSON object but NoneType"),
    ("", "not valid JSON"),
    ("{", "not valid JSON"),
    ("1" * 5000, "not valid JSON"),
    ('{"schema_version": 1, "schema_version": 1}', "appears twice"),
])
def test_manifest_text_is_refused(fresh, text, message):
    (fresh.root / MANIFEST_NAME).write_text(text)
    assert message in str(fresh.load())


def test_non_utf8_manifest_is_refused(fresh):
    (fresh.root / MANIFEST_NAME).write_bytes(b'{"model": "\xff\xfe"}')
    assert "is not UTF-8" in str(fresh.load())


def test_manifest_that_is_a_folder_or_huge(fresh):
    path = fresh.root / MANIFEST_NAME
    path.unlink()
    path.mkdir()
    assert "is missing" in str(fresh.load())
    path.rmdir()
    with open(path, "wb") as fh:
        fh.truncate(bundle_mod.MAX_MANIFEST_BYTES + 1)  # sparse: costs no disk
    assert "more than a manifest can be" in str(fresh.load())


@settings(max_examples=600, **FAST)
@given(data=st.data())
def test_mutated_manifest_bytes_load_or_raise_bundle_error(work, data):
    work.restore()
    raw = bytearray((work.pristine / MANIFEST_NAME).read_bytes())
    kind = data.draw(st.sampled_from(["truncate", "flip", "insert", "random"]))
    if kind == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    elif kind == "insert":
        pos = data.draw(st.integers(0, len(raw)))
        raw[pos:pos] = data.draw(st.sampled_from([b"\xff", b"\x00", b"[" * 2000, b"NaN", b"-Infinity", b"1e999",
                                                  b"\\ud800", b'"', b",", b"}", b"9" * 5000]))
    else:
        raw = bytearray(data.draw(st.binary(max_size=64)))
    (work.root / MANIFEST_NAME).write_bytes(bytes(raw))
    work.load()


# ---- model files: truncated, modified, deleted, replaced by a folder ----------------

@settings(max_examples=300, **FAST)
@given(data=st.data())
def test_mutated_model_files_raise_integrity_error(work, data):
    work.restore()
    name = data.draw(st.sampled_from(["encoder.fp32.onnx", "decoder.fp32.onnx"]))
    path = work.root / name
    raw = bytearray(path.read_bytes())
    kind = data.draw(st.sampled_from(["truncate", "flip", "append", "delete", "folder", "empty"]))
    if kind == "truncate":
        path.write_bytes(bytes(raw[:data.draw(st.integers(0, len(raw) - 1))]))
    elif kind == "flip":
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] ^= data.draw(st.integers(1, 255))
        path.write_bytes(bytes(raw))
    elif kind == "append":
        path.write_bytes(bytes(raw) + data.draw(st.binary(min_size=1, max_size=8)))
    elif kind == "delete":
        path.unlink()
    elif kind == "folder":
        path.unlink()
        path.mkdir()
    else:
        path.write_bytes(b"")
    err = work.load()
    assert isinstance(err, IntegrityError) and name in str(err), (kind, err)
