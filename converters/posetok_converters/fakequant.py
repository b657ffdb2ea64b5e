"""Simulated full-integer int8 (A8W8) inference of the encoder, in torch.

Why: the exported int8 encoder must pick the same token ids as the float one.
This module rounds, inside torch, what the exported int8 graphs (see
quantize_onnx.py, quantize_tflite.py) hold in int8: the Linears of the Mixer blocks (the embedding of
the 2 coordinates, the keypoint-to-token map and the code projection stay
float32, see ``graphs.outside_mixer``). Of each such Linear the weight
is symmetric int8 per output channel (as in the ONNX file; the TFLite file's
per-tensor scales round a little coarser) and the activations entering and
leaving it are asymmetric per-tensor int8, with the range from calibration
min/max. LayerNorm, GELU and the residual adds run in float32 between them,
as in the exported graphs, so the simulated token agreement (metrics.json's
``sim_int8_token_agreement``) tracks the exported int8 files' (the bundle's
parity rows). Rounding is
straight-through, so the same simulation trains the encoder to be robust
(quantization-aware fine-tuning).

Nothing here is part of the model: ``simulated_int8`` puts a wrapper
(``SimulatedInt8Linear``) in place of each int8 Linear only inside a ``with``
block and puts the Linears back on exit, so the model that is saved and
exported is the plain float model. The wrapper holds the Linear itself, so
the optimizer keeps training the same parameters.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .graphs import outside_mixer


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per output channel (rows of a Linear weight), straight-through."""
    scale = w.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.0
    q = torch.clamp(torch.round(w / scale), -127, 127) * scale
    return w + (q - w).detach()


def fake_quant_act(x: torch.Tensor, lo: float, hi: float, bits: int = 8) -> torch.Tensor:
    """Asymmetric signed integers of ``bits`` bits (int8 by default) with range
    [lo, hi] (zero exactly representable), straight-through."""
    qmin, qmax = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-8) / (qmax - qmin)
    zero_point = round(qmin - lo / scale)
    q = (torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale
    return x + (q - x).detach()


class ActivationRanges:
    """Min/max of every observed tensor: 'calibrate' takes the total min/max of
    a calibration pass; during training an EMA of per-batch min/max."""

    def __init__(self, momentum: float = 0.9):
        self.momentum = momentum
        self.ranges: dict[str, tuple[float, float]] = {}
        self.mode = "fixed"  # "calibrate" | "ema" | "fixed"
        # For sensitivity analysis: round only the activation tensors named
        # here (None: all of them), and the weights only if round_weights.
        self.only: set[str] | None = None
        self.round_weights = True

    def observe(self, name: str, x: torch.Tensor) -> tuple[float, float]:
        lo, hi = float(x.detach().min()), float(x.detach().max())
        old = self.ranges.get(name)
        if old is not None:
            if self.mode == "calibrate":
                lo, hi = min(lo, old[0]), max(hi, old[1])
            elif self.mode == "ema":
                m = self.momentum
                lo, hi = m * old[0] + (1 - m) * lo, m * old[1] + (1 - m) * hi
            else:
                lo, hi = old
        self.ranges[name] = (lo, hi)
        return lo, hi

    def quant(self, name: str, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.observe(name, x)
        if self.mode == "calibrate":  # like a converter's calibration: observe the float model
            return x
        if self.only is not None and name not in self.only:
            return x
        return fake_quant_act(x, lo, hi)


class SimulatedInt8Linear(nn.Module):
    """A Linear run as the int8 graphs run it: int8-rounded input, weight and output."""

    def __init__(self, linear: nn.Linear, ranges: ActivationRanges, name: str):
        super().__init__()
        self.linear, self.ranges, self.name = linear, ranges, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        linear, ranges = self.linear, self.ranges
        weight = fake_quant_weight(linear.weight) if ranges.round_weights else linear.weight
        y = F.linear(ranges.quant(self.name + ".in", x), weight, linear.bias)
        return ranges.quant(self.name + ".out", y)


def int8_linears(encoder: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The Linears the exported int8 encoder runs in int8: those of the Mixer
    blocks (``graphs.outside_mixer`` says which stay float)."""
    linears = [(name, m) for name, m in encoder.named_modules() if isinstance(m, nn.Linear)]
    float_names = set(outside_mixer([name for name, _ in linears], reads_token_ids=False))
    return [(name, m) for name, m in linears if name not in float_names]


@contextlib.contextmanager
def simulated_int8(encoder: nn.Module, ranges: ActivationRanges):
    """Within the block, ``encoder`` runs with int8-rounded weights and activations."""
    swapped = []  # (parent module, attribute name, the original Linear)
    try:
        for name, linear in int8_linears(encoder):
            parent_name, _, attr = name.rpartition(".")
            parent = encoder.get_submodule(parent_name)
            setattr(parent, attr, SimulatedInt8Linear(linear, ranges, name))
            swapped.append((parent, attr, linear))
        yield ranges
    finally:
        for parent, attr, linear in reversed(swapped):
            setattr(parent, attr, linear)


def calibrate(encoder: nn.Module, kp_norm: torch.Tensor, batch_size: int = 512) -> ActivationRanges:
    """Activation ranges of the float encoder over a calibration set (min/max over all of it)."""
    ranges = ActivationRanges()
    ranges.mode = "calibrate"
    with torch.no_grad(), simulated_int8(encoder, ranges):
        for start in range(0, len(kp_norm), batch_size):
            encoder(kp_norm[start:start + batch_size])
    ranges.mode = "fixed"
    return ranges
