"""The base of every error posetok raises on purpose.

``except posetok.PosetokError`` catches all of them; each subclass also keeps
the built-in base it had before (``BundleError`` is a ``ValueError``,
``BackendUnavailable`` an ``ImportError``, ``KernelError`` a
``RuntimeError``), so existing ``except`` clauses keep working.

Errors from checking the caller's arguments (a wrong shape, dtype or option)
stay plain ``ValueError``/``TypeError``, as in numpy and onnxruntime.
"""
from __future__ import annotations

__all__ = ["PosetokError"]


class PosetokError(Exception):
    """Base class of posetok's own errors.

    Subclasses: ``posetok.BundleError`` (and its ``IntegrityError``),
    ``posetok.BackendUnavailable`` and ``posetok.KernelError``.
    """
