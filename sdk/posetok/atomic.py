"""Atomic file output: everything posetok writes goes to a temporary file in the
target's folder and is renamed into place, so an interrupted run never leaves a
half-written artifact under the real name (a rename within one folder is atomic).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

FILE_MODE = 0o644  # mkstemp creates 0600; artifacts are meant to be shared


@contextlib.contextmanager
def atomic_output(path: os.PathLike | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    The temporary name keeps ``path``'s extension, for writers that pick the
    format from it (matplotlib's savefig, numpy's savez). Missing parent
    folders are created; the file ends up with mode 0644.

    Args:
        path: the file to write.

    Returns:
        A context manager whose value is the temporary ``Path`` to write to.

    Raises:
        IsADirectoryError: ``path`` is a folder (before anything is written).
        OSError: the folder cannot be created or the rename fails; any
            exception raised inside the ``with`` block propagates after the
            temporary file is removed.
    """
    path = Path(path)
    refuse_folder(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def refuse_folder(path: os.PathLike | str) -> None:
    """Refuse a folder where a file is to be written (``atomic_output`` checks it; a command checks it before
    work whose result the failed write would lose).

    Args:
        path: the file to be written.

    Raises:
        IsADirectoryError: ``path`` is a folder (the message names it).
    """
    if Path(path).is_dir():
        raise IsADirectoryError(f"{path} is a folder; name a file to write")


def write_bytes_atomic(path: os.PathLike | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_output``).

    Args:
        path: the file to write; parent folders are created.
        data: the file's whole content.

    Raises:
        OSError: the file cannot be written.
    """
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: os.PathLike | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically, in the locale's encoding.

    Args:
        path: the file to write; parent folders are created.
        text: the file's whole content.

    Raises:
        OSError: the file cannot be written.
    """
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: os.PathLike | str, obj: Any) -> None:
    """Write ``obj`` as indented JSON plus a final newline, atomically.

    Args:
        path: the file to write; parent folders are created.
        obj: anything ``json.dumps`` accepts.

    Raises:
        TypeError: ``obj`` is not JSON serializable (nothing is written).
        OSError: the file cannot be written.
    """
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")
