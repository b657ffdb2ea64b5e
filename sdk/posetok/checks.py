"""Checks of the caller's number settings, shared by every public entry point.

A bool is refused where a number is meant (``True`` would pass as 1), numpy
scalars are accepted, and every setting comes back as a plain ``float``.
"""
from __future__ import annotations

import math
import numbers

import numpy as np


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
