"""The base of every error posetok raises on purpose.

``except posetok.PosetokError`` catches all of them; each subclass also keeps
the built-in base it had before (``BundleError`` is a ``ValueError``,
``BackendUnavailable`` an ``ImportError``, ``KernelError`` a
``RuntimeError``), so existing ``except`` clauses keep working.

Errors from checking the caller's arguments (a wrong shape, dtype or option)
stay plain ``ValueError``/``TypeError``, as in numpy and onnxruntime.
"""
from __future__ import annotations

__all__ = ["PosetokError", "SignatureError", "SigningUnavailable"]


class PosetokError(Exception):
    """Base class of posetok's own errors.

    Subclasses: ``posetok.BundleError`` (and its ``IntegrityError``),
    ``posetok.BackendUnavailable``, ``posetok.KernelError``,
    ``posetok.SignatureError`` and ``posetok.SigningUnavailable``.
    """


class SignatureError(PosetokError, ValueError):
    """A bundle whose signature (``model.sig``) is missing, was made with
    another key, or no longer matches the files: a file changed, was added or
    removed after signing, or the signature itself was altered.

    Args:
        message: what failed, naming the file or signature field.
        file: the first file (relative to the bundle folder) that differs, or
            None when the failure is not about one file.

    Attributes:
        file: as given.
    """

    def __init__(self, message: str, file: "str | None" = None):
        super().__init__(message)
        self.file = file


class SigningUnavailable(PosetokError, ImportError):
    """Signing or checking a signature needs the optional ``model-signing``
    package, which is not installed: ``pip install 'posetok[signing]'``."""
