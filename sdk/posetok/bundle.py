"""Model bundles: a folder of model files plus ``manifest.json``.

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

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8w", "int8")
ROLES = ("encoder", "decoder")
FLOAT_LOOKUP = ("The codebook, the squared-L2 distances, the argmin and the codebook gather "
                "run in float32 in every precision; quantization applies to the Mixer layers only.")
# How the reduced-precision files store the codebook (appended to FLOAT_LOOKUP in the manifest).
CODEBOOK_STORAGE = {
    "int8": ("The fp16, int8w and int8 files store the codebook as int8 codes times one scale "
             "(training leaves the codes on that grid) and turn it into the same float32 values at load."),
    "float32": ("The codebook is not on an int8 grid (a checkpoint from before training snapped it), "
                "so every file stores it as float32."),
}


class BundleError(ValueError):
    """A bundle that cannot be used: missing, malformed, or failing verification."""


class IntegrityError(BundleError):
    """A model file whose size or sha256 differs from the manifest."""


def file_sha256(path: os.PathLike | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(bundle_dir: os.PathLike | str, manifest: dict) -> Path:
    """Validate ``manifest`` against the schema and write it atomically."""
    validate_manifest(manifest)
    path = Path(bundle_dir) / MANIFEST_NAME
    write_json_atomic(path, manifest)
    return path


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, or "batch" for the batch dimension
    dtype: str


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
    parity: dict

    @classmethod
    def from_dict(cls, d: dict) -> "Artifact":
        specs = lambda key: tuple(TensorSpec(s["name"], tuple(s["shape"]), s["dtype"]) for s in d[key])
        return cls(file=d["file"], role=d["role"], format=d["format"], precision=d["precision"],
                   batch=d.get("batch"), sha256=d["sha256"], size_bytes=int(d["size_bytes"]),
                   inputs=specs("inputs"), outputs=specs("outputs"), parity=dict(d.get("parity") or {}))


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise BundleError(f"invalid manifest: {message}")


def validate_manifest(m: dict) -> None:
    """Check the manifest's structure; raises BundleError naming the first problem."""
    _require(isinstance(m, dict), "top level is not a JSON object")
    version = m.get("schema_version")
    _require(version == SCHEMA_VERSION,
             f"schema_version {version!r} is not supported (this posetok reads {SCHEMA_VERSION})")
    for key in ("model", "keypoints", "normalization", "tokens", "artifacts"):
        _require(key in m, f"missing key {key!r}")
    tokens = m["tokens"]
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


class Bundle:
    """A verified bundle on disk. ``Bundle.load(path)`` is the only constructor."""

    def __init__(self, root: Path, manifest: dict):
        self.root = root
        self.manifest = manifest
        self.artifacts = tuple(Artifact.from_dict(a) for a in manifest["artifacts"])
        tokens = manifest["tokens"]
        self.num_tokens: int = tokens["num_tokens"]
        self.num_codes: int = tokens["num_codes"]
        self.code_dim: int = tokens["code_dim"]
        self.keypoints: tuple[str, ...] = tuple(manifest["keypoints"])

    @classmethod
    def load(cls, path: os.PathLike | str, verify: bool = True) -> "Bundle":
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
        validate_manifest(manifest)
        bundle = cls(root, manifest)
        if verify:
            for artifact in bundle.artifacts:
                bundle.verify_file(artifact)
        return bundle

    def path_of(self, artifact: Artifact) -> Path:
        return self.root / artifact.file

    def verify_file(self, artifact: Artifact) -> None:
        """Size first (cheap, catches truncation), then sha256."""
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
        """(format, precision) pairs that have both an encoder and a decoder."""
        pairs = {(a.format, a.precision, a.role) for a in self.artifacts}
        return sorted({(f, p) for f, p, _ in pairs if (f, p, "encoder") in pairs and (f, p, "decoder") in pairs})

    def select(self, role: str, format: str, precision: str) -> list[Artifact]:
        """All batch variants of one graph, dynamic-batch first, then by batch size."""
        found = [a for a in self.artifacts if (a.role, a.format, a.precision) == (role, format, precision)]
        if not found:
            raise BundleError(f"bundle {self.root} has no {precision} {format} {role}; "
                              f"it offers {', '.join(f'{f}/{p}' for f, p in self.offers()) or 'nothing'}")
        return sorted(found, key=lambda a: (a.batch is not None, a.batch or 0))
