"""The bundle manifest's schema: its constants, the dataclasses that
``posetok export`` writes (``Manifest.to_dict()``) and ``Bundle.spec`` reads
back, and ``validate_manifest``, which checks any parsed JSON against them so
that ``Manifest.from_dict`` cannot fail afterwards. Every check names the
field and what it should be. ``posetok.bundle`` re-exports all of it.
"""
from __future__ import annotations

import dataclasses
import math
import re
import reprlib
from pathlib import Path
from typing import Optional

import numpy as np

from . import token_search
from .errors import PosetokError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "model.sig"  # beside the manifest; covers it and every other file (posetok.signing)
FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8w", "int8")
ROLES = ("encoder", "decoder", "estimator")
CODEBOOKS = ("shared", "per_token")
MAX_MANIFEST_BYTES = 16 << 20  # a real manifest is a few hundred KiB (the token search table)
MAX_DEPTH = 32                 # JSON nesting; a real manifest nests 6 levels
FLOAT64_MAX = float(np.finfo(np.float64).max)   # figures are printed as floats
MAX_INT = 2**31 - 1            # token layout and batch sizes (token ids are int32)
MAX_NAME_BYTES = 255           # longest file name on common file systems
_SHA256 = re.compile(r"[0-9a-f]{64}")
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlevel = 3


class BundleError(PosetokError, ValueError):
    """A bundle that cannot be used: missing, malformed, or failing verification."""


class IntegrityError(BundleError):
    """A model file whose size or sha256 differs from the manifest."""


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise BundleError(f"invalid manifest: {message}")


def _show(value: object) -> str:
    """A short repr of a manifest value for an error message (long or deep values are cut)."""
    try:
        return _short.repr(value)
    except (RecursionError, ValueError):
        return f"<{type(value).__name__}>"


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _optional(d: dict, key: str, types: type | tuple, where: str, what: str) -> None:
    """``d[key]``, when present and not null, must be of ``types``."""
    value = d.get(key)
    _require(value is None or isinstance(value, types), f"{where}{key} must be {what}, not {_show(value)}")


def _is_number(value: object) -> bool:
    """A JSON number that float32 holds (not a bool, a string, NaN or infinite)."""
    return _is_finite(value) and abs(value) <= float(np.finfo(np.float32).max)


def _is_finite(value: object) -> bool:
    """A finite JSON number: any int (JSON has no size limit), or a float that is not NaN or infinite."""
    return (isinstance(value, int) and not isinstance(value, bool)) or \
        (isinstance(value, float) and math.isfinite(value))


def _check_estimator(section: dict) -> None:
    """The ``estimator`` section: how the runtime makes the model's input and crops around a person box."""
    spec = section.get("input")
    _require(isinstance(spec, dict), f"estimator.input must be an object, not {_show(spec)}")
    size = spec.get("size")
    _require(isinstance(size, list) and len(size) == 2 and all(_is_int(v, 1, MAX_INT) for v in size),
             f"estimator.input.size must be [height, width] positive ints, not {_show(size)}")
    for key in ("layout", "channels"):
        _require(isinstance(spec.get(key), str), f"estimator.input.{key} must be a string, not {_show(spec.get(key))}")
    for key, low in (("mean", None), ("scale", 0.0)):
        v = spec.get(key)
        _require(isinstance(v, list) and len(v) == 3 and all(_is_number(x) and (low is None or x > low) for x in v),
                 f"estimator.input.{key} must be 3 finite numbers{'' if low is None else ' > 0'}, not {_show(v)}")
    share = section.get("figure_share")
    _require(_is_number(share) and 0 < share <= 1,
             f"estimator.figure_share must be a number in (0, 1], not {_show(share)}")
    _optional(section, "presence", dict, "estimator.", "an object")
    presence = section.get("presence") or {}
    _check_presence(presence, "estimator.presence")
    _optional(presence, "files", list, "estimator.presence.", "a list")
    seen: dict[tuple, int] = {}
    for i, row in enumerate(presence.get("files") or ()):
        where = f"estimator.presence.files[{i}]"
        _require(isinstance(row, dict), f"{where} must be an object, not {_show(row)}")
        for key in ("format", "precision"):
            _require(isinstance(row.get(key), str), f"{where}.{key} must be a string, not {_show(row.get(key))}")
        files = (row["format"], row["precision"])
        _require(files not in seen, f"{where} repeats {files[0]} {files[1]} (also files[{seen.get(files)}])")
        seen[files] = i
        _require(row.get("weights") is not None, f"{where} needs weights and bias")
        _check_presence(row, where)
    if section.get("parity") is not None:
        _check_parity_rows(section["parity"], ESTIMATOR_PARITY_NUMBERS, "estimator.parity")


# Figures a parity row, the reference or the estimator section may hold (what ``posetok info`` prints): numbers
# where present.
PARITY_NUMBERS = ("size_bytes", "size_vs_fp32", "token_agreement", "mpjpe_px", "decoder_max_abs_err_px")
ESTIMATOR_PARITY_NUMBERS = ("frames", "mpjpe_px", "torch_mpjpe_px", "token_agreement", "max_keypoint_diff_px")
REFERENCE_NUMBERS = ("mpjpe_px", "eval_poses")
PRESENCE_SHARES = ("figure_kept", "backdrop_caught")


def _check_figures(row: dict, numbers: tuple, where: str) -> None:
    for key in numbers:
        value = row.get(key)
        _require(value is None or (_is_finite(value) and abs(value) <= FLOAT64_MAX),
                 f"{where}.{key} must be a finite number, not {_show(value)}")


def _check_presence(model: dict, where: str) -> None:
    """A presence model (weights and bias, both or neither) and the shares of crops it sorts right: numbers in
    [0, 1] where present."""
    # imported here, not at the top: estimator imports backends, which imports this module
    from .estimator import PRESENCE_FEATURES
    weights, bias = model.get("weights"), model.get("bias")
    _require((weights is None) == (bias is None), f"{where} needs weights and bias together, not one of them")
    if weights is not None:
        _require(isinstance(weights, list) and len(weights) == PRESENCE_FEATURES
                 and all(_is_finite(w) and abs(w) <= FLOAT64_MAX for w in weights),
                 f"{where}.weights must be {PRESENCE_FEATURES} finite numbers, not {_show(weights)}")
        _require(_is_finite(bias) and abs(bias) <= FLOAT64_MAX,
                 f"{where}.bias must be a finite number, not {_show(bias)}")
    for key in PRESENCE_SHARES:
        value = model.get(key)
        _require(value is None or (_is_number(value) and 0 <= value <= 1),
                 f"{where}.{key} must be a number in [0, 1], not {_show(value)}")


def _check_parity_rows(rows: object, numbers: tuple, where: str) -> None:
    """Rows of a parity report: objects naming their format and precision, figures numbers where present."""
    _require(isinstance(rows, (list, tuple)), f"{where} must be a list, not {_show(rows)}")
    for i, row in enumerate(rows):
        _require(isinstance(row, dict), f"{where}[{i}] must be an object, not {_show(row)}")
        _check_figures(row, numbers, f"{where}[{i}]")
        for key in ("format", "precision"):
            _require(isinstance(row.get(key), str), f"{where}[{i}].{key} must be a string, not {_show(row.get(key))}")
        _require(row.get("meets_targets") is None or isinstance(row["meets_targets"], bool),
                 f"{where}[{i}].meets_targets must be true, false or null, not {_show(row.get('meets_targets'))}")


def _check_tensors(specs: object, where: str) -> None:
    _require(isinstance(specs, list) and specs, f"{where} must be a non-empty list of tensor specs, not "
             f"{_show(specs)}")
    for j, spec in enumerate(specs):
        at = f"{where}[{j}]"
        _require(isinstance(spec, dict), f"{at} must be an object, not {_show(spec)}")
        for key in ("name", "shape", "dtype"):
            _require(key in spec, f"{at} is missing {key!r}")
        _require(isinstance(spec["name"], str), f"{at}.name must be a string, not {_show(spec['name'])}")
        _require(isinstance(spec["dtype"], str), f"{at}.dtype must be a string, not {_show(spec['dtype'])}")
        shape = spec["shape"]
        _require(isinstance(shape, list) and all(d == "batch" or _is_int(d, 0, MAX_INT) for d in shape),
                 f"{at}.shape must be a list of sizes (ints, or \"batch\"), not {_show(shape)}")


def check_file_name(name: object, where: str) -> None:
    """An artifact's ``file``: a plain file name inside the bundle folder, no path."""
    _require(isinstance(name, str), f"{where}.file must be a string, not {_show(name)}")
    _require(name not in ("", ".", ".."), f"{where}.file {_show(name)} is not a file name")
    _require("\x00" not in name, f"{where}.file {_show(name)} contains a NUL byte")
    parts = re.split(r"[/\\]", name)
    _require(not name.startswith(("/", "\\")) and ".." not in parts,
             f"{where}.file {_show(name)} points outside the bundle")
    _require(len(parts) == 1 and Path(name).name == name,
             f"{where}.file {_show(name)} must be a plain file name (no folders)")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise BundleError(f"invalid manifest: {where}.file {_show(name)} is not valid Unicode") from None
    _require(size <= MAX_NAME_BYTES, f"{where}.file is {size} bytes long (at most {MAX_NAME_BYTES})")


def _check_depth(obj: object) -> None:
    """Refuse JSON nested deeper than ``MAX_DEPTH`` (walked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise BundleError(f"{MANIFEST_NAME} nests too deeply (more than {MAX_DEPTH} levels)")
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))


def no_duplicate_keys(pairs: list) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise BundleError(f"{MANIFEST_NAME}: key {_show(key)} appears twice in one object")
        out[key] = value
    return out


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, or "batch" for the batch dimension
    dtype: str

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        return cls(d["name"], tuple(d["shape"]), d["dtype"])

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclasses.dataclass(frozen=True)
class Artifact:
    file: str
    role: str
    format: str
    precision: str
    batch: Optional[int]  # None: any batch size
    sha256: str
    size_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    quantization: str = ""  # how this precision was made, in words
    parity: dict = dataclasses.field(default_factory=dict)  # this file's row of the parity report

    @classmethod
    def from_dict(cls, d: dict) -> "Artifact":
        specs = lambda key: tuple(TensorSpec.from_dict(s) for s in d[key])
        return cls(file=d["file"], role=d["role"], format=d["format"], precision=d["precision"],
                   batch=d.get("batch"), sha256=d["sha256"], size_bytes=int(d["size_bytes"]),
                   inputs=specs("inputs"), outputs=specs("outputs"), quantization=d.get("quantization", ""),
                   parity=dict(d.get("parity") or {}))

    def to_dict(self) -> dict:
        return {"file": self.file, "role": self.role, "format": self.format, "precision": self.precision,
                "batch": self.batch, "sha256": self.sha256, "size_bytes": self.size_bytes,
                "inputs": [s.to_dict() for s in self.inputs], "outputs": [s.to_dict() for s in self.outputs],
                "quantization": self.quantization, "parity": dict(self.parity)}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    checkpoint_sha256: Optional[str] = None
    config: dict = dataclasses.field(default_factory=dict)    # the tokenizer's hyperparameters
    training: dict = dataclasses.field(default_factory=dict)  # preset, schedule, seed

    @classmethod
    def from_dict(cls, d: dict) -> "ModelInfo":
        return cls(name=d.get("name", ""), version=d.get("version", ""), checkpoint_sha256=d.get("checkpoint_sha256"),
                   config=dict(d.get("config") or {}), training=dict(d.get("training") or {}))

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "checkpoint_sha256": self.checkpoint_sha256,
                "config": dict(self.config), "training": dict(self.training)}


@dataclasses.dataclass(frozen=True)
class TokenLayout:
    num_tokens: int  # M token ids per pose
    num_codes: int   # V codes per codebook
    code_dim: int    # D
    codebooks: str = "shared"  # "shared" or "per_token"

    @classmethod
    def from_dict(cls, d: dict) -> "TokenLayout":
        return cls(d["num_tokens"], d["num_codes"], d["code_dim"], d.get("codebooks", "shared"))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Everything ``manifest.json`` holds. ``reference`` is the torch model's
    score on the eval set; ``parity`` one row per (format, precision)."""
    model: ModelInfo
    keypoints: tuple[str, ...]
    normalization: dict
    tokens: TokenLayout
    artifacts: tuple[Artifact, ...]
    float_lookup: str = ""  # how the codebook step runs and is stored, in words
    reference: dict = dataclasses.field(default_factory=dict)
    parity: tuple[dict, ...] = ()
    schema_version: int = SCHEMA_VERSION
    # image -> pose: how to make the estimator's input, its training figures (absent: no estimator files)
    estimator: dict = dataclasses.field(default_factory=dict)
    # the encoder-side search (posetok.token_search): {"sweeps": S, "code_neighbours": [G][V][C] ids}
    # (absent: the encoder graph's nearest codes are the ids)
    token_search: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, m: dict) -> "Manifest":
        """Validate the JSON object ``m`` and parse it; raises BundleError naming the first problem."""
        validate_manifest(m)
        return cls(model=ModelInfo.from_dict(m["model"]), keypoints=tuple(m["keypoints"]),
                   normalization=dict(m["normalization"]), tokens=TokenLayout.from_dict(m["tokens"]),
                   artifacts=tuple(Artifact.from_dict(a) for a in m["artifacts"]),
                   float_lookup=m.get("float_lookup", ""), reference=dict(m.get("reference") or {}),
                   parity=tuple(m.get("parity") or ()), schema_version=m["schema_version"],
                   estimator=dict(m.get("estimator") or {}), token_search=dict(m.get("token_search") or {}))

    def to_dict(self) -> dict:
        return {"schema_version": self.schema_version, "model": self.model.to_dict(),
                "keypoints": list(self.keypoints), "normalization": dict(self.normalization),
                "tokens": self.tokens.to_dict(), "float_lookup": self.float_lookup,
                "reference": dict(self.reference), "artifacts": [a.to_dict() for a in self.artifacts],
                "parity": [dict(r) for r in self.parity],
                **({"estimator": dict(self.estimator)} if self.estimator else {}),
                **({"token_search": dict(self.token_search)} if self.token_search else {})}

    def rows(self) -> list[tuple[str, str]]:
        """(format, precision) pairs with both an encoder and a decoder, in canonical order."""
        have = {(a.format, a.precision, a.role) for a in self.artifacts}
        return [(f, p) for f in FORMATS for p in PRECISIONS
                if (f, p, "encoder") in have and (f, p, "decoder") in have]


def search_neighbours(search: dict, num_tokens: int, num_codes: int) -> tuple[int, np.ndarray]:
    """(sweeps, code_neighbours int32 [G, V, C]) of a manifest's ``token_search`` object; raises BundleError
    naming the bad field."""
    sweeps = search.get("sweeps")
    _require(_is_int(sweeps, 0, token_search.MAX_SWEEPS),
             f"token_search.sweeps must be an int in [0, {token_search.MAX_SWEEPS}], not {_show(sweeps)}")
    _require("code_neighbours" in search, "token_search is missing 'code_neighbours'")
    try:
        table = token_search.check_neighbours(search["code_neighbours"], num_tokens, num_codes)
    except ValueError as exc:
        raise BundleError(f"invalid manifest: token_search.{exc}") from None
    return sweeps, table


def validate_manifest(m: dict) -> None:
    """Check the manifest's structure and every field's type and range, so that
    ``Manifest.from_dict`` cannot fail afterwards.

    Args:
        m: the parsed ``manifest.json`` (any JSON value).

    Raises:
        BundleError: names the first problem (the field, and what it should be).
    """
    _require(isinstance(m, dict), f"top level is not a JSON object but {type(m).__name__}")
    _check_depth(m)
    version = m.get("schema_version")
    _require(_is_int(version, SCHEMA_VERSION, SCHEMA_VERSION),
             f"schema_version {_show(version)} is not supported (this posetok reads {SCHEMA_VERSION})")
    for key in ("model", "keypoints", "normalization", "tokens", "artifacts"):
        _require(key in m, f"missing key {key!r}")
    model = m["model"]
    _require(isinstance(model, dict), "model must be an object")
    for key in ("name", "version", "checkpoint_sha256"):
        _optional(model, key, str, "model.", "a string")
    for key in ("config", "training"):
        _optional(model, key, dict, "model.", "an object")
    _require(isinstance(m["keypoints"], list) and all(isinstance(k, str) for k in m["keypoints"]),
             "keypoints must be a list of names")
    _require(isinstance(m["normalization"], dict), "normalization must be an object")
    tokens = m["tokens"]
    _require(isinstance(tokens, dict), "tokens must be an object")
    for key in ("num_tokens", "num_codes", "code_dim"):
        _require(_is_int(tokens.get(key), 1, MAX_INT),
                 f"tokens.{key} must be a positive int up to {MAX_INT}, not {_show(tokens.get(key))}")
    _require(tokens.get("codebooks", "shared") in CODEBOOKS,
             f"tokens.codebooks {_show(tokens.get('codebooks'))} not in {CODEBOOKS}")
    _optional(m, "float_lookup", str, "", "a string")
    _optional(m, "reference", dict, "", "an object")
    _optional(m, "parity", list, "", "a list")
    _optional(m, "estimator", dict, "", "an object")
    if m.get("estimator"):
        _check_estimator(m["estimator"])
    _optional(m, "token_search", dict, "", "an object")
    if m.get("token_search"):
        search_neighbours(m["token_search"], tokens["num_tokens"], tokens["num_codes"])
    if m.get("reference"):
        _check_figures(m["reference"], REFERENCE_NUMBERS, "reference")
    _check_parity_rows(m.get("parity") or (), PARITY_NUMBERS, "parity")
    _require(isinstance(m["artifacts"], list) and m["artifacts"], "artifacts must be a non-empty list")
    seen: dict[str, int] = {}
    for i, a in enumerate(m["artifacts"]):
        where = f"artifacts[{i}]"
        _require(isinstance(a, dict), f"{where} must be an object, not {_show(a)}")
        for key in ("file", "role", "format", "precision", "sha256", "size_bytes", "inputs", "outputs"):
            _require(key in a, f"{where} is missing {key!r}")
        _require(a["role"] in ROLES, f"{where}.role {_show(a['role'])} not in {ROLES}")
        _require(a["format"] in FORMATS, f"{where}.format {_show(a['format'])} not in {FORMATS}")
        _require(a["precision"] in PRECISIONS, f"{where}.precision {_show(a['precision'])} not in {PRECISIONS}")
        check_file_name(a["file"], where)
        _require(a["file"] not in (MANIFEST_NAME, SIGNATURE_NAME),
                 f"{where}.file {_show(a['file'])} is reserved for the bundle's own manifest or signature")
        _require(a["file"] not in seen,
                 f"{where}.file {_show(a['file'])} is listed twice (also artifacts[{seen.get(a['file'])}])")
        seen[a["file"]] = i
        _require(a.get("batch") is None or _is_int(a["batch"], 1, MAX_INT),
                 f"{where}.batch must be null or a positive int up to {MAX_INT}, not {_show(a.get('batch'))}")
        _require(isinstance(a["sha256"], str) and _SHA256.fullmatch(a["sha256"]) is not None,
                 f"{where}.sha256 must be 64 lowercase hex digits, not {_show(a['sha256'])}")
        _require(_is_int(a["size_bytes"], 0, 2**63 - 1),
                 f"{where}.size_bytes must be a non-negative int, not {_show(a['size_bytes'])}")
        _check_tensors(a["inputs"], f"{where}.inputs")
        _check_tensors(a["outputs"], f"{where}.outputs")
        # token ids travel as [batch, M]: the encoder's first output, the decoder's first input
        ids = {"encoder": a["outputs"][0], "decoder": a["inputs"][0]}.get(a["role"])
        _require(ids is None or (len(ids["shape"]) == 2 and ids["shape"][1] == tokens["num_tokens"]),
                 f"{where}: token ids {_show(ids and ids['shape'])} do not hold tokens.num_tokens = "
                 f"{tokens['num_tokens']} per pose")
        _optional(a, "quantization", str, f"{where}.", "a string")
        _optional(a, "parity", dict, f"{where}.", "an object")
