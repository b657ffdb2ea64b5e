"""Checks of the caller's number settings, shared by every public entry point.

A bool is refused where a number is meant (``True`` would pass as 1), numpy
scalars are accepted, and a setting comes back as a plain ``float`` (real
numbers) or ``int`` (whole numbers, ports, thread counts).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

MAX_THREADS = 1024   # far above any board's cores; the runtimes' own limits are C ints
MAX_PORT = 65535


def is_real_number(value) -> bool:
    """Whether ``value`` is a real number other than a bool (inf and NaN included)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def real_number(value, name: str, minimum: float | None = None, maximum: float | None = None,
                above: float | None = None) -> float:
    """A finite real number setting, checked against its bounds.

    Args:
        value: what the caller passed.
        name: the setting's name, for the error.
        minimum, maximum: inclusive bounds, or None.
        above: an exclusive lower bound, or None.

    Returns:
        ``value`` as a float.

    Raises:
        ValueError: ``value`` is not a finite real number (a bool, a string,
            inf or NaN) or lies outside the bounds; the message names the
            setting and the range it needs.
    """
    ok = is_real_number(value) and math.isfinite(value)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum) \
        and (above is None or value > above)
    if not ok:
        if minimum is not None and maximum is not None:
            need = f"a number in [{minimum:g}, {maximum:g}]"
        else:
            need = "a finite number" + "".join(f" {op} {bound:g}" for op, bound in
                                               ((">=", minimum), ("<=", maximum), (">", above))
                                               if bound is not None)
        raise ValueError(f"{name} must be {need}, got {value!r}")
    return float(value)


def whole_number(value, name: str, minimum: int, maximum: int, allow_none: bool = False,
                 note: str = "") -> int | None:
    """An integer setting (numpy integers accepted, bools refused) in ``minimum..maximum``.

    Args:
        value: what the caller passed.
        name: the setting's name, for the error.
        minimum, maximum: inclusive bounds.
        allow_none: whether None (the default of a runtime) is allowed.
        note: what a bound means, added to the message (e.g. "0: a free one").

    Returns:
        ``value`` as an int, or None.

    Raises:
        ValueError: ``value`` is not such an integer; the message names the
            setting and the range.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)) \
            or not minimum <= value <= maximum:
        need = ("None or " if allow_none else "") + f"an integer in {minimum}..{maximum}"
        raise ValueError(f"{name} must be {need}{f' ({note})' if note else ''}, got {value!r}")
    return int(value)


def flag(value, name: str) -> bool:
    """A True/False setting: a bool or a numpy bool, returned as a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def num_threads(value) -> int | None:
    """A runtime's thread count: None (its default) or 1..MAX_THREADS."""
    return whole_number(value, "num_threads", 1, MAX_THREADS, allow_none=True)


def port(value, name: str = "port") -> int:
    """A TCP port, 0..65535; 0 asks for a free one. tritonserver takes a port above 65535 modulo 65536 and
    waits forever on a negative one, so both are refused here."""
    return whole_number(value, name, 0, MAX_PORT, note="0: a free one")
