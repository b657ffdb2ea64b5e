"""Model bundles: a folder of model files plus ``manifest.json``.

The manifest's schema (``Manifest`` and its parts, ``validate_manifest``)
lives in ``posetok.manifest_schema`` and is re-exported here: ``posetok
export`` builds one and writes ``Manifest.to_dict()``; readers get
``Bundle.spec``, the same dataclasses parsed from the file.

The manifest is written by ``posetok export`` (host) and read here, on the
device. Loading verifies every file's size and sha256 before any runtime
sees it, so a truncated or tampered file is refused with an error that names
the file and the mismatch. Given a public key, it first checks the bundle's
signature (``model.sig``, see ``posetok.signing``), which covers every file.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from .atomic import write_json_atomic
from .manifest_schema import (  # noqa: F401  (re-exported: the schema is part of this module's API)
    CODEBOOKS,
    FORMATS,
    MANIFEST_NAME,
    MAX_DEPTH,
    MAX_INT,
    MAX_MANIFEST_BYTES,
    MAX_NAME_BYTES,
    PRECISIONS,
    ROLES,
    SCHEMA_VERSION,
    SIGNATURE_NAME,
    Artifact,
    BundleError,
    IntegrityError,
    Manifest,
    ModelInfo,
    TensorSpec,
    TokenLayout,
    check_file_name,
    no_duplicate_keys,
    search_neighbours,
    validate_manifest,
)
from .skeleton import KEYPOINT_NAMES, NORMALIZATION


def file_sha256(path: os.PathLike | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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



@contextlib.contextmanager
def reading_bundle_folder(root: Path):
    """Check that ``root`` is a folder, then run the block that reads it.

    Path.is_file and friends raise, rather than answer False, inside a folder
    that may not be searched; such an OSError becomes a BundleError naming the
    folder.
    """
    try:
        if not root.is_dir():
            raise BundleError(f"bundle folder not found: {root}")
        yield
    except OSError as exc:
        raise BundleError(f"bundle folder {root} cannot be read: {exc.strerror or exc}") from None

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
        search_sweeps: passes of the encoder-side search (``posetok.token_search``) the bundle was
            measured with; 0 when the manifest has no ``token_search``.
        code_neighbours: int32 [G, V, C], each code's candidate swaps for that search, or None.
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
        # the encoder-side search the exporter chose: sweeps (0: none) and each code's candidate swaps
        self.search_sweeps, self.code_neighbours = (
            search_neighbours(self.spec.token_search, self.num_tokens, self.num_codes) if self.spec.token_search
            else (0, None))

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
            BundleError: missing or unreadable folder or manifest; a manifest that is not UTF-8,
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
        mpath = root / MANIFEST_NAME
        with reading_bundle_folder(root):
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
            manifest = json.loads(text, object_pairs_hook=no_duplicate_keys)
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
        check_file_name(artifact.file, "artifact")
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
