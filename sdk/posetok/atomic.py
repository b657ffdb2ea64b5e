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
    folders are created; the file ends up with mode 0644. A symbolic link, a
    device, FIFO or socket in ``path``'s place is refused (``output_target``).

    Args:
        path: the file to write.

    Returns:
        A context manager whose value is the temporary ``Path`` to write to.

    Raises:
        IsADirectoryError: ``path`` is a folder (before anything is written).
        OSError: ``path`` is a link or special file (``output_target``), the
            folder cannot be created or the rename fails; any
            exception raised inside the ``with`` block propagates after the
            temporary file is removed.
    """
    path = output_target(path)
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


def output_target(path: os.PathLike | str) -> Path:
    """``path``, checked as a place ``atomic_output`` may rename a new file to.

    A symbolic link is refused rather than followed: the rename would replace
    the link, and following it (in Python, past the kernel's guard on links
    in shared folders such as /tmp) would write wherever another user points
    it. A device, FIFO or socket is refused, as the rename would replace it.

    Args:
        path: the file to be written.

    Returns:
        ``path`` as a Path.

    Raises:
        IsADirectoryError: ``path`` is a folder (the message names it).
        OSError: ``path`` is a symbolic link, or exists and is not a regular
            file.
    """
    path = Path(path)
    if path.is_symlink():
        raise OSError(f"{path} is a symbolic link; name the file itself (posetok writes a new file and renames "
                      "it into place, which would replace the link)")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; name a file to write")
    if path.exists() and not path.is_file():
        raise OSError(f"{path} is not a regular file (a device, FIFO or socket); name a file to write")
    return path


def check_output_file(path: os.PathLike | str) -> None:
    """Check, before work whose result a failed write would lose, that ``atomic_output`` can write ``path``:
    it is not a folder or special file and its folder takes a new file (see ``check_output_folder``).

    Args:
        path: the file to be written.

    Raises:
        IsADirectoryError, OSError: as ``output_target``, or the folder
            cannot be made or written in (the message names it).
    """
    check_output_folder(output_target(path).parent)


def check_output_folder(folder: os.PathLike | str) -> None:
    """Check that ``folder`` takes a new file, by making and removing one in it or, where it does not exist yet,
    in its nearest existing ancestor (nothing is left behind, no folder made).

    Args:
        folder: where files will be written.

    Raises:
        NotADirectoryError: ``folder`` is a file.
        OSError: it cannot be made or written in (the message names it and
            the reason).
    """
    folder = Path(folder)
    # os.path answers False where Path.exists raises (a folder that may not be searched); mkstemp then says why
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(f"{folder} is a file, not a folder")
    existing = folder.absolute()
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    try:                    # in a file (a/notes.txt/b): ENOTDIR, named below
        fd, name = tempfile.mkstemp(prefix=".posetok-write-check.", dir=existing)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OSError(f"cannot write in {folder}: {exc.strerror or exc}") from None


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
