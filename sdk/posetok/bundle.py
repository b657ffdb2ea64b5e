"""Model bundles: a folder of model files plus ``manifest.json``.

The manifest's schema is the dataclasses here (``Manifest`` and its parts):
``posetok export`` builds one and writes ``Manifest.to_dict()``; readers get
``Bundle.spec``, the same dataclasses parsed from the file.

The manifest is written by ``posetok export`` (host) and read here, on the
device. Loading verifies every file's size and sha256 before any runtime
sees it, so a truncated or tampered file is refused with an error that names
the file and the mismatch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Optional

from .atomic import write_json_atomic
from .errors import PosetokError
from .skeleton import KEYPOINT_NAMES, NORMALIZATION

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8w", "int8")
ROLES = ("encoder", "decoder")


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

    @classmethod
    def from_dict(cls, m: dict) -> "Manifest":
        """Validate the JSON object ``m`` and parse it; raises BundleError naming the first problem."""
        validate_manifest(m)
        return cls(model=ModelInfo.from_dict(m["model"]), keypoints=tuple(m["keypoints"]),
                   normalization=dict(m["normalization"]), tokens=TokenLayout.from_dict(m["tokens"]),
                   artifacts=tuple(Artifact.from_dict(a) for a in m["artifacts"]),
                   float_lookup=m.get("float_lookup", ""), reference=dict(m.get("reference") or {}),
                   parity=tuple(m.get("parity") or ()), schema_version=m["schema_version"])

    def to_dict(self) -> dict:
        return {"schema_version": self.schema_version, "model": self.model.to_dict(),
                "keypoints": list(self.keypoints), "normalization": dict(self.normalization),
                "tokens": self.tokens.to_dict(), "float_lookup": self.float_lookup,
                "reference": dict(self.reference), "artifacts": [a.to_dict() for a in self.artifacts],
                "parity": [dict(r) for r in self.parity]}

    def rows(self) -> list[tuple[str, str]]:
        """(format, precision) pairs with both an encoder and a decoder, in canonical order."""
        have = {(a.format, a.precision, a.role) for a in self.artifacts}
        return [(f, p) for f in FORMATS for p in PRECISIONS
                if (f, p, "encoder") in have and (f, p, "decoder") in have]


def validate_manifest(m: dict) -> None:
    """Check the manifest's structure; raises BundleError naming the first problem."""
    _require(isinstance(m, dict), "top level is not a JSON object")
    version = m.get("schema_version")
    _require(version == SCHEMA_VERSION,
             f"schema_version {version!r} is not supported (this posetok reads {SCHEMA_VERSION})")
    for key in ("model", "keypoints", "normalization", "tokens", "artifacts"):
        _require(key in m, f"missing key {key!r}")
    _require(isinstance(m["model"], dict), "model must be an object")
    _require(isinstance(m["keypoints"], list) and all(isinstance(k, str) for k in m["keypoints"]),
             "keypoints must be a list of names")
    _require(isinstance(m["normalization"], dict), "normalization must be an object")
    tokens = m["tokens"]
    _require(isinstance(tokens, dict), "tokens must be an object")
    for key in ("num_tokens", "num_codes", "code_dim"):
        _require(isinstance(tokens.get(key), int) and tokens[key] > 0, f"tokens.{key} must be a positive int")
    _require(isinstance(m["artifacts"], list) and m["artifacts"], "artifacts must be a non-empty list")
    for i, a in enumerate(m["artifacts"]):
        where = f"artifacts[{i}]"
        for key in ("file", "role", "format", "precision", "sha256", "size_bytes", "inputs", "outputs"):
            _require(key in a, f"{where} is missing {key!r}")
        _require(a["role"] in ROLES, f"{where}.role {a['role']!r} not in {ROLES}")
        _require(a["format"] in FORMATS, f"{where}.format {a['format']!r} not in {FORMATS}")
        _require(a["precision"] in PRECISIONS, f"{where}.precision {a['precision']!r} not in {PRECISIONS}")
        _require(Path(a["file"]).name == a["file"], f"{where}.file {a['file']!r} must be a plain file name")
        _require(a.get("batch") is None or (isinstance(a["batch"], int) and a["batch"] > 0),
                 f"{where}.batch must be null or a positive int")


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
    def load(cls, path: os.PathLike | str, verify: bool = True) -> "Bundle":
        """Parse and validate the manifest, check that its keypoint order and
        normalization are the ones this runtime applies, and (``verify``) check
        every file's size and sha256.

        Args:
            path: the bundle folder (holding ``manifest.json``).
            verify: check each listed file's size and sha256 against the manifest.

        Returns:
            The loaded ``Bundle``.

        Raises:
            BundleError: missing folder or manifest, invalid JSON, a manifest that
                breaks the schema, or a keypoint order / normalization other than
                this runtime's.
            IntegrityError: (``verify``) a listed file missing, truncated or modified.
        """
        root = Path(path)
        if not root.is_dir():
            raise BundleError(f"bundle folder not found: {root}")
        mpath = root / MANIFEST_NAME
        if not mpath.is_file():
            raise BundleError(f"{mpath} is missing: not a posetok bundle (make one with 'posetok export')")
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as exc:
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
        """
        return self.root / artifact.file

    def verify_file(self, artifact: Artifact) -> None:
        """Check one file against the manifest: size first (cheap, catches
        truncation), then sha256.

        Args:
            artifact: one of ``artifacts``.

        Raises:
            IntegrityError: the file is missing, or its size or sha256 differs.
        """
        path = self.path_of(artifact)
        if not path.is_file():
            raise IntegrityError(f"{artifact.file}: listed in the manifest but missing from {self.root}")
        size = path.stat().st_size
        if size != artifact.size_bytes:
            raise IntegrityError(f"{artifact.file}: size {size} bytes, manifest says {artifact.size_bytes} "
                                 f"(truncated or replaced file)")
        digest = file_sha256(path)
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
