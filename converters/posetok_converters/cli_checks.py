"""Range checks of numeric command-line options, made before a command does any work.

A command lists its options as rows and refuses the first value outside its
range with one line on stderr that names the option, the range and the value
(exit status 2), worded as argparse words its own refusals. NaN is outside every range.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

from posetok.cli import refuse

Number = Union[int, float]
# (flag, value or None when not given, ">=" or ">", bound, what the bound is or "")
Limit = tuple[str, Optional[Number], str, Number, str]


def first_out_of_range(limits: Sequence[Limit]) -> Optional[str]:
    """The message for the first given value outside its range, or None when all are inside.

    Raises:
        ValueError: a row's relation is not ">=" or ">".
    """
    for flag, value, relation, bound, what in limits:
        if relation not in (">=", ">"):
            raise ValueError(f"relation must be '>=' or '>', got {relation!r}")
        if value is None:
            continue
        inside = value >= bound if relation == ">=" else value > bound
        if not inside:
            return f"{flag} must be {relation} {bound}{f' ({what})' if what else ''}, got {value}"
    return None


def refuse_out_of_range(prog: str, limits: Sequence[Limit]) -> bool:
    """Print ``PROG: error: MESSAGE`` on stderr for the first value outside its range; True when one was."""
    message = first_out_of_range(limits)
    if message is not None:
        refuse(prog, message)
    return message is not None


def refuse_unwritable(prog: str, files: Sequence = (), folders: Sequence = ()) -> bool:
    """Print ``PROG: error: MESSAGE`` on stderr for the first output that cannot be written; True when one
    cannot. Commands call it before their work, whose result a failed write at the end would lose.

    Args:
        prog: the command's name.
        files: files the command will write (None entries are skipped); see
            ``posetok.atomic.check_output_file``.
        folders: folders it will write files in (made when missing).
    """
    from posetok.atomic import check_output_file, check_output_folder
    try:
        for path in files:
            if path is not None:
                check_output_file(path)
        for folder in folders:
            if folder is not None:
                check_output_folder(folder)
    except OSError as exc:
        refuse(prog, str(exc))
        return True
    return False
