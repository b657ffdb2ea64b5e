"""Signed bundles: one signature over every file of a bundle folder.

The signature is OpenSSF model-signing's sigstore bundle (a DSSE envelope
around an in-toto statement that lists each file's sha256), made offline with
an elliptic-curve private key (P-256, P-384 or P-521) and written as
``model.sig`` beside ``manifest.json``. It covers every file in the folder but
itself, the manifest included, so with the public key ``Bundle.load`` refuses
a bundle in which any file was changed, added or removed after signing.

A signed bundle holds exactly ``manifest.json``, the files it lists and
``model.sig``: ``sign_bundle`` refuses a folder with anything else in it, and
verification refuses a file added later (the signature does not cover it).

model-signing is the optional extra ``posetok[signing]``; it is imported only
when a bundle is signed or a public key is given.
"""
from __future__ import annotations

import ast
import base64
import binascii
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

from .atomic import write_bytes_atomic
from .bundle import MANIFEST_NAME, SIGNATURE_NAME, Bundle, BundleError, reading_bundle_folder
from .errors import SignatureError, SigningUnavailable

__all__ = ["sign_bundle", "verify_bundle", "check_private_key", "require", "SIGNATURE_NAME", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'posetok[signing]'"
MAX_SIGNATURE_BYTES = 1 << 20  # a real one is about 1.5 KB plus 150 bytes per file
_MISMATCH = "Signature mismatch: "


def require():
    """Import model-signing, the optional dependency of signed bundles.

    Returns:
        The ``model_signing`` package, with its ``signing``, ``verifying`` and
        ``hashing`` modules loaded.

    Raises:
        SigningUnavailable: model-signing (or pyopenssl, which it needs but
            does not declare) is not installed; the message says how to install it.
    """
    try:
        import model_signing
        from model_signing import hashing, signing, verifying  # noqa: F401
    except ImportError as exc:
        raise SigningUnavailable(f"signed bundles need the model-signing package, which does not import here "
                                 f"({exc}); install it with: {INSTALL_HINT}") from exc
    return model_signing


def _hashing_config(ms):
    """What the signature covers: every file of the folder but ``model.sig``, by sha256; symlinks and
    folders are refused, and files model-signing would skip by default (.git*) are covered too."""
    return (ms.hashing.Config()
            .use_file_serialization(hashing_algorithm="sha256", allow_symlinks=False)
            .set_ignored_paths(paths=[SIGNATURE_NAME], ignore_git_paths=False))


def _key_error(kind: str, path: os.PathLike | str, exc: Exception) -> ValueError:
    if isinstance(exc, OSError):
        return ValueError(f"{kind} key {path}: cannot be read: {exc.strerror or exc}")
    return ValueError(f"{kind} key {path}: not a usable elliptic-curve {kind} key in PEM "
                      f"(P-256, P-384 or P-521): {exc or type(exc).__name__}")


def _signer(ms, private_key: os.PathLike | str, password: Optional[bytes]):
    try:
        config = ms.signing.Config().set_hashing_config(_hashing_config(ms))
        return config.use_elliptic_key_signer(private_key=private_key, password=password)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise _key_error("private", private_key, exc) from None


def check_private_key(private_key: os.PathLike | str, password: Optional[bytes] = None) -> None:
    """Fail early (before a long export, say) if ``sign_bundle`` could not use this key.

    Args:
        private_key: PEM file of an elliptic-curve private key.
        password: the key's password, if it is encrypted.

    Raises:
        SigningUnavailable: model-signing is not installed.
        ValueError: the key file cannot be read or is not such a key (or the password is wrong).
    """
    _signer(require(), private_key, password)


def _unlisted(bundle: Bundle) -> list[str]:
    """Entries of the bundle folder that are neither the manifest, a listed file nor the signature."""
    keep = {a.file for a in bundle.artifacts} | {MANIFEST_NAME, SIGNATURE_NAME}
    return sorted(entry.name for entry in bundle.root.iterdir() if entry.name not in keep)


def sign_bundle(path: os.PathLike | str, private_key: os.PathLike | str,
                password: Optional[bytes] = None) -> Path:
    """Sign a bundle: write ``model.sig`` (atomically) covering every file in the folder.

    The bundle is loaded and verified first (manifest, sizes, sha256), so a
    broken bundle is never signed; an existing ``model.sig`` is replaced.

    Args:
        path: the bundle folder.
        private_key: PEM file of an elliptic-curve private key (P-256, P-384 or P-521).
        password: the key's password, if it is encrypted.

    Returns:
        The path of the signature written.

    Raises:
        SigningUnavailable: model-signing is not installed.
        BundleError: the folder is not a valid bundle, holds entries the
            manifest does not list (they are named), or its ``model.sig`` is a
            link or a folder.
        OSError: ``model.sig`` cannot be written (a read-only folder).
        IntegrityError: a listed file does not match the manifest.
        ValueError: the key file cannot be read or is not such a key (or the password is wrong).
    """
    ms = require()
    root = Path(path)
    bundle = Bundle.load(root)
    existing = root / SIGNATURE_NAME
    if existing.is_symlink() or (existing.exists() and not existing.is_file()):
        raise BundleError(f"{root}: {SIGNATURE_NAME} is {'a link' if existing.is_symlink() else 'not a file'}; "
                          "a signature is a regular file (remove it first)")
    extra = _unlisted(bundle)
    if extra:
        raise BundleError(f"{root}: {', '.join(extra)} not listed in {MANIFEST_NAME}; a signed bundle holds only "
                          f"the manifest, the files it lists and {SIGNATURE_NAME} (remove the others first)")
    config = _signer(ms, private_key, password)
    with tempfile.TemporaryDirectory(prefix="posetok-sign-") as tmp:
        out = Path(tmp) / SIGNATURE_NAME  # outside the folder being hashed
        config.sign(root, out)
        raw = out.read_bytes()
    _check_form(raw)  # what posetok writes, posetok reads back
    target = root / SIGNATURE_NAME
    write_bytes_atomic(target, raw)
    return target


def _check_form(raw: bytes) -> None:
    """The signature file must be exactly what model-signing writes: compact JSON and canonical base64.

    The cryptographic check reads the decoded values only, so this is what
    refuses a changed byte that decodes to the same value (a base64 padding
    bit, JSON spacing or escapes)."""
    try:
        text = raw.decode("utf-8")
        obj = json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError alike
        raise SignatureError(f"{SIGNATURE_NAME}: not a JSON sigstore bundle ({exc})", SIGNATURE_NAME) from None
    if not isinstance(obj, dict) or json.dumps(obj, separators=(",", ":"), ensure_ascii=False) != text:
        raise SignatureError(f"{SIGNATURE_NAME}: altered: not the compact JSON that signing writes",
                             SIGNATURE_NAME)
    envelope = obj.get("dsseEnvelope")
    envelope = envelope if isinstance(envelope, dict) else {}
    fields = [("dsseEnvelope.payload", envelope.get("payload"))]
    signatures = envelope.get("signatures")
    for i, entry in enumerate(signatures if isinstance(signatures, list) else ()):
        fields.append((f"dsseEnvelope.signatures[{i}].sig", entry.get("sig") if isinstance(entry, dict) else None))
    for where, value in fields:
        if not isinstance(value, str):
            continue  # a missing or mistyped field: the verifier names it
        try:
            canonical = base64.b64encode(base64.b64decode(value, validate=True)).decode("ascii") == value
        except (binascii.Error, ValueError):
            canonical = False
        if not canonical:
            raise SignatureError(f"{SIGNATURE_NAME}: altered: {where} is not canonical base64", SIGNATURE_NAME)


def _mismatch(root: Path, diffs: list) -> SignatureError:
    """model-signing's list of differences -> an error naming the first file."""
    first, more = str(diffs[0]) if diffs else "", len(diffs) - 1
    tail = f" (and {more} more difference{'s' * (more > 1)})" if more > 0 else ""
    for prefix, what in (("Extra files found in model ", "not covered by the signature (added after signing)"),
                         ("Missing files in model ", "signed, but missing from the bundle")):
        if first.startswith(prefix) and "': " in first:
            name = first.split("': ", 1)[1].split(", ")[0]
            return SignatureError(f"{root}: {name}: {what}{tail}", name)
    if first.startswith("Hash mismatch for '") and "': " in first:
        name = first[len("Hash mismatch for '"):first.rindex("': ")]
        return SignatureError(f"{root}: {name}: changed since signing (its sha256 differs from the signed one){tail}",
                              name)
    return SignatureError(f"{root}: the files differ from the signed ones: {first}{tail}")


def _explain(root: Path, public_key: os.PathLike | str, exc: Exception) -> SignatureError:
    message = str(exc)
    if isinstance(exc, ValueError) and message.startswith(_MISMATCH):
        try:
            diffs = ast.literal_eval(message[len(_MISMATCH):])
        except (ValueError, SyntaxError):
            diffs = [message[len(_MISMATCH):]]
        return _mismatch(root, diffs if isinstance(diffs, list) else [diffs])
    if message.startswith("Key mismatch"):
        return SignatureError(f"{root}: {SIGNATURE_NAME} was made with another key than {public_key}",
                              SIGNATURE_NAME)
    if type(exc).__name__ == "InvalidSignature":
        return SignatureError(f"{root}: {SIGNATURE_NAME}: the signature does not verify with {public_key} "
                              "(the signature or its signed statement was altered)", SIGNATURE_NAME)
    if "symlink" in message:
        return SignatureError(f"{root}: a symlink in the bundle folder: {message}")
    return SignatureError(f"{root}: {SIGNATURE_NAME} cannot be checked: {type(exc).__name__}: "
                          f"{message.splitlines()[0] if message else ''}".rstrip(": "), SIGNATURE_NAME)


def verify_bundle(path: os.PathLike | str, public_key: os.PathLike | str) -> None:
    """Check a bundle's ``model.sig`` against ``public_key`` and every file in the folder.

    ``Bundle.load(path, public_key=...)`` calls this before it reads the
    manifest; call it directly to check the signature alone.

    Args:
        path: the bundle folder.
        public_key: PEM file of the elliptic-curve public key paired with the signing key.

    Raises:
        SigningUnavailable: model-signing is not installed.
        BundleError: the folder does not exist or cannot be read.
        SignatureError: ``model.sig`` is missing, altered or made with another
            key, or a file or folder was changed, added or removed after
            signing; the message (and ``.file``) names the first such entry.
        ValueError: the key file cannot be read or is not such a public key.
    """
    ms = require()
    root = Path(path)
    sig = root / SIGNATURE_NAME
    with reading_bundle_folder(root):
        if sig.is_symlink() or not sig.is_file():
            state = "is not a regular file" if sig.exists() or sig.is_symlink() else "is missing"
            raise SignatureError(f"{root}: the bundle is not signed: {SIGNATURE_NAME} {state} "
                                 "(sign it with 'posetok sign')", SIGNATURE_NAME)
        # A signed bundle holds files only; model-signing hashes files and passes over an empty folder.
        folders = sorted(e.name for e in root.iterdir() if e.is_dir() and not e.is_symlink())
    try:
        config = ms.verifying.Config().set_hashing_config(_hashing_config(ms))
        config.use_elliptic_key_verifier(public_key=public_key)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise _key_error("public", public_key, exc) from None
    try:
        if sig.stat().st_size > MAX_SIGNATURE_BYTES:
            raise SignatureError(f"{root}: {SIGNATURE_NAME} is larger than a signature can be "
                                 f"({MAX_SIGNATURE_BYTES} bytes)", SIGNATURE_NAME)
        _check_form(sig.read_bytes())
        config.verify(root, sig)       # names a file added in a folder; an empty folder passes it
        if folders:
            raise SignatureError(f"{root}: {folders[0]}/: a folder not covered by the signature (added after "
                                 "signing)", folders[0])
    except SignatureError:
        raise
    except OSError as exc:
        name = Path(exc.filename).name if exc.filename else SIGNATURE_NAME
        raise SignatureError(f"{root}: {name}: cannot be read: {exc.strerror or exc}", name) from None
    except Exception as exc:  # model-signing and its parsers raise many types for a bad signature
        raise _explain(root, public_key, exc) from None
