"""The two deployable graphs cut from a trained TokenizerModel (model.py).

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

from posetok.skeleton import NUM_KEYPOINTS

# Names of the float-only submodules; exporters keep them in tensor/node names.
NEAREST_CODE_SCOPE = "nearest_code"
CODE_GATHER_SCOPE = "code_gather"
SOFT_DECODE_SCOPE = "soft_decode"   # the estimator's softmax-weighted codebook + frozen decoder
FLOAT_SCOPES = (NEAREST_CODE_SCOPE, CODE_GATHER_SCOPE, SOFT_DECODE_SCOPE)
FLOAT_SCOPE_REGEX = "|".join(FLOAT_SCOPES)  # matches a tensor/node name inside a float-only scope

ENCODER_INPUT = "keypoints"
ENCODER_OUTPUT = "token_ids"
DECODER_INPUT = "token_ids"
DECODER_OUTPUT = "keypoints"


def outside_mixer(names: list, reads_token_ids: bool) -> list:
    """Of a graph's matrix multiplies in graph order (codebook step aside),
    the ones outside the Mixer blocks, which the int8 graphs keep float: the
    coordinate layer at the keypoint end (encoder embedding, decoder head) and,
    at the token end, the code projection and the keypoint<->token map next to
    it. Why: int8 rounding of the 2 input coordinates alone is 0.25 px, and the
    encoder's last two layers feed the argmin directly. Measured once
    (``posetok parity``, on the tokenizer shipped at commit f89c1c4): with the
    keypoint<->token maps in int8 too, the int8 files kept 0.870 / 0.858 (ONNX /
    TFLite) of the token ids instead of 0.877 / 0.865, at 0.474 / 0.486 px
    instead of 0.464 / 0.476."""
    if not names:
        return []
    token_end = names[:2] if reads_token_ids else names[-2:]
    coordinate_end = names[-1:] if reads_token_ids else names[:1]
    return list(dict.fromkeys(coordinate_end + token_end))


# How the int8 rows' manifest descriptions say ``outside_mixer``.
OUTSIDE_MIXER_TEXT = ("layers outside the Mixer blocks (coordinate embedding or head, keypoint<->token map, "
                      "code projection) kept float32")


def mixes_keypoints(weight_shape) -> bool:
    """A weight with a keypoint dimension: the token-mixing MLPs and the
    keypoint<->token maps (~4% of the weights)."""
    return NUM_KEYPOINTS in list(weight_shape)


def codebook_of(model: nn.Module) -> torch.Tensor:
    """The model's codebooks as a detached float32 copy, [G, V, D] (G = 1 when shared)."""
    return model.quantizer.grouped().detach().to(torch.float32).clone()


class NearestCode(nn.Module):
    """argmin_v ||z_m - c_{m,v}||^2 without the ||z_m||^2 term, which is constant per row.

    A shared codebook is one MatMul [B,M,D] x [D,V]; per-token codebooks are a
    batched MatMul [B,M,1,D] x [M,D,V], one codebook per token position.
    """

    def __init__(self, codebook: torch.Tensor):
        super().__init__()
        self.shared = codebook.shape[0] == 1
        codebook_t = codebook.transpose(1, 2).contiguous()                # [G, D, V]
        self.register_buffer("codebook_t", codebook_t[0] if self.shared else codebook_t)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # ||c||^2 is computed in the graph from the one stored codebook:
        # onnxruntime folds it at load, so a file that stores the codebook in
        # int8 keeps no float32 copy of the norms (the TFLite converter folds
        # it at conversion; tflite_flatbuffer.tflite_codebook_int8 undoes that).
        codebook_sq = (self.codebook_t * self.codebook_t).sum(dim=-2)
        # The literal must be a float (2.0): an int literal breaks PT2E calibration.
        if self.shared:
            cross = torch.matmul(z, self.codebook_t)
        else:
            # Not z.transpose(0, 1) @ codebook_t: litert-torch 0.10 converts that
            # to a batch-64 graph with wrong results (batch 1 is right).
            cross = torch.matmul(z.unsqueeze(-2), self.codebook_t).squeeze(-2)
        scores = codebook_sq - 2.0 * cross
        return torch.argmin(scores, dim=-1).to(torch.int32)


class CodeGather(nn.Module):
    """Token ids [B,M] -> code vectors [B,M,D]; per-token codebooks are one flat
    [M*V, D] table indexed by id + V * position."""

    def __init__(self, codebook: torch.Tensor):
        super().__init__()
        groups, num_codes, dim = codebook.shape
        self.register_buffer("codebook", codebook.reshape(groups * num_codes, dim).clone())
        self.register_buffer("offsets", None if groups == 1
                             else torch.arange(groups, dtype=torch.int32) * num_codes)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        if self.offsets is not None:
            token_ids = token_ids + self.offsets
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
