"""The two deployable graphs cut from a trained PoseTokenizer.

Encoder graph: ``keypoints`` float32 [B, 13, 2] (normalized) -> ``token_ids``
int32 [B, M]; the nearest-code search runs inside the graph.
Decoder graph: ``token_ids`` int32 [B, M] -> ``keypoints`` float32 [B, 13, 2].

The codebook step lives in its own submodule (``nearest_code`` /
``code_gather``) so that the quantizers can find it by name in the exported
graph and leave it in float32: a quantized distance flips the argmin, and a
quantized codebook lookup is not supported by every LiteRT kernel.
"""
from __future__ import annotations

import torch
from torch import nn

# Names of the float-only submodules; exporters keep them in tensor/node names.
NEAREST_CODE_SCOPE = "nearest_code"
CODE_GATHER_SCOPE = "code_gather"
FLOAT_SCOPES = (NEAREST_CODE_SCOPE, CODE_GATHER_SCOPE)

ENCODER_INPUT = "keypoints"
ENCODER_OUTPUT = "token_ids"
DECODER_INPUT = "token_ids"
DECODER_OUTPUT = "keypoints"


def codebook_of(model: nn.Module) -> torch.Tensor:
    """The model's codebook [V, D] as a detached float32 copy."""
    codebook = torch.as_tensor(model.codebook).detach().to(torch.float32).clone()
    if codebook.ndim != 2:
        raise ValueError(f"model.codebook must be [V, D], got shape {tuple(codebook.shape)}")
    return codebook


class NearestCode(nn.Module):
    """argmin_v ||z - c_v||^2 without the ||z||^2 term, which is constant per row."""

    def __init__(self, codebook: torch.Tensor):
        super().__init__()
        self.register_buffer("codebook_t", codebook.T.contiguous())
        self.register_buffer("codebook_sq", (codebook * codebook).sum(dim=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # The literal must be a float (2.0): an int literal breaks PT2E calibration.
        scores = self.codebook_sq - 2.0 * torch.matmul(z, self.codebook_t)
        return torch.argmin(scores, dim=-1).to(torch.int32)


class CodeGather(nn.Module):
    def __init__(self, codebook: torch.Tensor):
        super().__init__()
        self.register_buffer("codebook", codebook.clone())

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(token_ids.to(torch.int64), self.codebook)


class EncoderGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.body = model
        setattr(self, NEAREST_CODE_SCOPE, NearestCode(codebook_of(model)))

    def forward(self, keypoints: torch.Tensor) -> torch.Tensor:
        return getattr(self, NEAREST_CODE_SCOPE)(self.body.encode(keypoints))


class DecoderGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.body = model
        setattr(self, CODE_GATHER_SCOPE, CodeGather(codebook_of(model)))

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.body.decode(getattr(self, CODE_GATHER_SCOPE)(token_ids))


def split_graphs(model: nn.Module) -> tuple[EncoderGraph, DecoderGraph]:
    """Encoder and decoder graphs in eval mode, sharing the model's weights."""
    model.eval()
    return EncoderGraph(model).eval(), DecoderGraph(model).eval()
