"""Model bundles: a folder of model files plus ``manifest.json``.

The manifest's schema is the dataclasses here (``Manifest`` and its parts):
``posetok export`` builds one and writes ``Manifest.to_dict()``; readers get
``Bundle.spec``, the same dataclasses parsed from the file.

The manifest is written by ``posetok export`` (host) and read here, on the
device. Loading verifies every file's size and sha256 before any runtime
sees it, so a truncated or tampered file is refused with an error that names
the file and the mismatch. Given a public key, it first checks the bundle's
signature (``model.sig``, see ``posetok.signing``), which covers every file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import reprlib
from pathlib import Path
from typing import Optional

from .atomic import write_json_atomic
from .errors import PosetokError
from .skeleton import KEYPOINT_NAMES, NORMALIZATION

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "model.sig"  # beside the manifest; covers it and every other file (posetok.signing)
FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8w", "int8")
ROLES = ("encoder", "decoder", "estimator")
CODEBOOKS = ("shared", "per_token")
MAX_MANIFEST_BYTES = 16 << 20  # a real manifest is a few tens of KiB
MAX_DEPTH = 32                 # JSON nesting; a real manifest nests 6 levels
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


def file_sha256(path: os.PathLike | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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


def _check_tensors(specs: object, where: str) -> None:
    _require(isinstance(specs, list), f"{where} must be a list of tensor specs, not {_show(specs)}")
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


def _check_file_name(name: object, where: str) -> None:
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


def _no_duplicate_keys(pairs: list) -> dict:
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

    @classmethod
    def from_dict(cls, m: dict) -> "Manifest":
        """Validate the JSON object ``m`` and parse it; raises BundleError naming the first problem."""
        validate_manifest(m)
        return cls(model=ModelInfo.from_dict(m["model"]), keypoints=tuple(m["keypoints"]),
                   normalization=dict(m["normalization"]), tokens=TokenLayout.from_dict(m["tokens"]),
                   artifacts=tuple(Artifact.from_dict(a) for a in m["artifacts"]),
                   float_lookup=m.get("float_lookup", ""), reference=dict(m.get("reference") or {}),
                   parity=tuple(m.get("parity") or ()), schema_version=m["schema_version"],
                   estimator=dict(m.get("estimator") or {}))

    def to_dict(self) -> dict:
        return {"schema_version": self.schema_version, "model": self.model.to_dict(),
                "keypoints": list(self.keypoints), "normalization": dict(self.normalization),
                "tokens": self.tokens.to_dict(), "float_lookup": self.float_lookup,
                "reference": dict(self.reference), "artifacts": [a.to_dict() for a in self.artifacts],
                "parity": [dict(r) for r in self.parity], **({"estimator": dict(self.estimator)}
                                                             if self.estimator else {})}

    def rows(self) -> list[tuple[str, str]]:
        """(format, precision) pairs with both an encoder and a decoder, in canonical order."""
        have = {(a.format, a.precision, a.role) for a in self.artifacts}
        return [(f, p) for f in FORMATS for p in PRECISIONS
                if (f, p, "encoder") in have and (f, p, "decoder") in have]


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
    for i, row in enumerate(m.get("parity") or ()):
        _require(isinstance(row, dict), f"parity[{i}] must be an object, not {_show(row)}")
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
        _check_file_name(a["file"], where)
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
        _optional(a, "quantization", str, f"{where}.", "a string")
        _optional(a, "parity", dict, f"{where}.", "an object")

def _inside(path: Path, root: Path) -> bool:
    """Whether ``path``, symlinks resolved, lies inside ``root`` (also resolved)."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):  # symlink loops, unencodable names
        return False


def check_coordinates(manifest: Manifest) -> None:
    """The bundle's graphs must take keypoints in the order and the coordinate
    normalization this runtime feeds them (``skeleton.KEYPOINT_NAMES``,
    ``skeleton.NORMALIZATION``); raises BundleError naming the first mismatch."""
    theirs, ours = tuple(manifest.keypoints), KEYPOINT_NAMES
    if theirs != ours:
        if len(theirs) != len(ours):
            detail = f"the bundle has {len(theirs)} keypoints, this posetok has {len(ours)}"
        else:
            i = next(i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b)
            detail = f"keypoint {i} is {theirs[i]!r} in the bundle, {ours[i]!r} in this posetok"
        raise BundleError(f"keypoint order mismatch: {detail}; the graphs would read the wrong joints")
    for key, want in NORMALIZATION.items():
        have = manifest.normalization.get(key)
        if have != want:
            raise BundleError(f"normalization mismatch: normalization.{key} is {have!r} in the bundle, "
                              f"this posetok applies {want!r}")


def write_manifest(bundle_dir: os.PathLike | str, manifest: Manifest | dict) -> Path:
    """Validate ``manifest`` against the schema and write it atomically."""
    if isinstance(manifest, dict):
        manifest = Manifest.from_dict(manifest)
    data = manifest.to_dict()
    validate_manifest(data)
    path = Path(bundle_dir) / MANIFEST_NAME
    write_json_atomic(path, data)
    return path


class Bundle:
    """A verified bundle on disk. ``Bundle.load(path)`` is the only constructor.

    Args:
        root: the bundle folder.
        manifest: the parsed ``manifest.json``; validated against the schema here.

    Raises:
        BundleError: the manifest breaks the schema.

    Attributes:
        root: the bundle folder.
        manifest: ``manifest.json`` as read (a dict).
        spec: the same manifest, typed (``Manifest``).
        artifacts: every model file the manifest lists (``Artifact``).
        num_tokens, num_codes, code_dim: the token layout M, V and D.
        keypoints: the keypoint names in the order the graphs use.
    """

    def __init__(self, root: Path, manifest: dict):
        self.root = root
        self.manifest = manifest              # the JSON object as read
        self.spec = Manifest.from_dict(manifest)  # the same, typed (validates)
        self.artifacts = self.spec.artifacts
        self.num_tokens: int = self.spec.tokens.num_tokens
        self.num_codes: int = self.spec.tokens.num_codes
        self.code_dim: int = self.spec.tokens.code_dim
        self.keypoints: tuple[str, ...] = self.spec.keypoints

    @classmethod
    def load(cls, path: os.PathLike | str, verify: bool = True,
             public_key: os.PathLike | str | None = None) -> "Bundle":
        """Check the signature (with ``public_key``), parse and validate the
        manifest, check that its keypoint order and normalization are the ones
        this runtime applies, and (``verify``) check every file's size and sha256.

        Args:
            path: the bundle folder (holding ``manifest.json``).
            verify: check each listed file's size and sha256 against the manifest.
            public_key: PEM file of the elliptic-curve public key the bundle was
                signed for: ``model.sig`` must hold and cover every file in the
                folder (checked before the manifest is parsed, whatever ``verify``
                says). None: signatures are not looked at.

        Returns:
            The loaded ``Bundle``.

        Raises:
            BundleError: missing folder or manifest; a manifest that is not UTF-8,
                not valid JSON, nested too deeply, too large, or breaks the schema
                (every field's type and range is checked); an artifact file name or
                symlink that points outside the bundle folder; or a keypoint order /
                normalization other than this runtime's.
            IntegrityError: (``verify``) a listed file missing, a folder, truncated or modified.
            SignatureError: (``public_key``) the signature is missing, made with
                another key, or a file was changed, added or removed since signing.
            SigningUnavailable: (``public_key``) model-signing is not installed.
            ValueError: (``public_key``) the key file is unreadable or not such a key.
        """
        root = Path(path)
        if not root.is_dir():
            raise BundleError(f"bundle folder not found: {root}")
        mpath = root / MANIFEST_NAME
        if not mpath.is_file():
            raise BundleError(f"{mpath} is missing: not a posetok bundle (make one with 'posetok export')")
        if not _inside(mpath, root):
            raise BundleError(f"{mpath} points outside the bundle folder")
        if public_key is not None:  # before the manifest is parsed; model-signing loads only here
            from .signing import verify_bundle
            verify_bundle(root, public_key)
        try:
            size = mpath.stat().st_size
            if size > MAX_MANIFEST_BYTES:
                raise BundleError(f"{mpath} is {size} bytes, more than a manifest can be ({MAX_MANIFEST_BYTES})")
            raw = mpath.read_bytes()
        except OSError as exc:
            raise BundleError(f"{mpath} cannot be read: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BundleError(f"{mpath} is not UTF-8 (byte {exc.start}: {exc.reason})") from None
        try:
            manifest = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except BundleError:  # a key repeated in one object
            raise
        except json.JSONDecodeError as exc:
            raise BundleError(f"{mpath} is not valid JSON: {exc}") from None
        except RecursionError:
            raise BundleError(f"{mpath}: {MANIFEST_NAME} nests too deeply to parse") from None
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            raise BundleError(f"{mpath} is not valid JSON: {exc}") from None
        bundle = cls(root, manifest)
        check_coordinates(bundle.spec)
        if verify:
            for artifact in bundle.artifacts:
                bundle.verify_file(artifact)
        return bundle

    def path_of(self, artifact: Artifact) -> Path:
        """Where a listed file lies.

        Args:
            artifact: one of ``artifacts``.

        Returns:
            Its path inside the bundle folder.

        Raises:
            BundleError: the path (through a symlink, say) resolves outside the bundle folder.
        """
        _check_file_name(artifact.file, "artifact")
        path = self.root / artifact.file
        if not _inside(path, self.root):
            raise BundleError(f"{artifact.file}: points outside the bundle folder {self.root} (a symlink?)")
        return path

    def verify_file(self, artifact: Artifact) -> None:
        """Check one file against the manifest: size first (cheap, catches
        truncation), then sha256.

        Args:
            artifact: one of ``artifacts``.

        Raises:
            BundleError: the file's path resolves outside the bundle folder.
            IntegrityError: the file is missing, a folder, unreadable, or its size or sha256 differs.
        """
        path = self.path_of(artifact)
        if path.is_dir():
            raise IntegrityError(f"{artifact.file}: is a folder, not a model file")
        if not path.is_file():
            raise IntegrityError(f"{artifact.file}: listed in the manifest but missing from {self.root}")
        try:
            size = path.stat().st_size
            digest = file_sha256(path) if size == artifact.size_bytes else ""
        except OSError as exc:
            raise IntegrityError(f"{artifact.file}: cannot be read: {exc.strerror or exc}") from None
        if size != artifact.size_bytes:
            raise IntegrityError(f"{artifact.file}: size {size} bytes, manifest says {artifact.size_bytes} "
                                 f"(truncated or replaced file)")
        if digest != artifact.sha256:
            raise IntegrityError(f"{artifact.file}: sha256 {digest[:16]}... does not match the manifest's "
                                 f"{artifact.sha256[:16]}... (modified file)")

    def offers(self) -> list[tuple[str, str]]:
        """The graphs a tokenizer can run.

        Returns:
            Sorted (format, precision) pairs that have both an encoder and a decoder.
        """
        pairs = {(a.format, a.precision, a.role) for a in self.artifacts}
        return sorted({(f, p) for f, p, _ in pairs if (f, p, "encoder") in pairs and (f, p, "decoder") in pairs})

    def select(self, role: str, format: str, precision: str) -> list[Artifact]:
        """All batch variants of one graph.

        Args:
            role: "encoder" or "decoder".
            format: "onnx" or "tflite".
            precision: one of ``PRECISIONS``.

        Returns:
            The matching artifacts, dynamic-batch first, then by batch size.

        Raises:
            BundleError: the bundle has no such graph (the message lists what it offers).
        """
        found = [a for a in self.artifacts if (a.role, a.format, a.precision) == (role, format, precision)]
        if not found:
            raise BundleError(f"bundle {self.root} has no {precision} {format} {role}; "
                              f"it offers {', '.join(f'{f}/{p}' for f, p in self.offers()) or 'nothing'}")
        return sorted(found, key=lambda a: (a.batch is not None, a.batch or 0))
