"""The only place that reaches into private APIs of the converter libraries.

Each call below has no public equivalent in the versions we checked against:

  ai-edge-litert     2.3.0   ``Interpreter._get_ops_details()``: the ops of a
                             loaded .tflite model (name, input/output tensors).
  ai-edge-quantizer  0.10.0  ``Quantizer._recipe_manager``: the calibrator
                             needs it to know which tensors the recipe quantizes.

A newer release that renames either fails here, with a message that says so,
instead of deep inside a quantization pass.
"""
from __future__ import annotations

CHECKED_VERSIONS = {"ai-edge-litert": "2.3.0", "ai-edge-quantizer": "0.10.0"}


def _missing(what: str, package: str) -> RuntimeError:
    return RuntimeError(f"{what} is gone from the installed {package}; posetok was checked against "
                        f"{package} {CHECKED_VERSIONS[package]} (see posetok_converters/compat.py)")


def tflite_ops(interpreter) -> list[dict]:
    """The ops of a LiteRT ``Interpreter``, in graph order: dicts with
    ``op_name``, ``inputs`` and ``outputs`` (tensor indices)."""
    get = getattr(interpreter, "_get_ops_details", None)
    if get is None:
        raise _missing("Interpreter._get_ops_details", "ai-edge-litert")
    return get()


def recipe_manager(quantizer):
    """The recipe manager of an ai_edge_quantizer ``Quantizer`` (what
    ``calibrator.Calibrator.calibrate`` takes)."""
    manager = getattr(quantizer, "_recipe_manager", None)
    if manager is None:
        raise _missing("Quantizer._recipe_manager", "ai-edge-quantizer")
    return manager
