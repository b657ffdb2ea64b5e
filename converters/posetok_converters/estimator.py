"""Image -> pose estimator (PCT stage 2): a small CNN and a token classification head.

The head predicts, for each of the tokenizer's M token positions, logits over
its V codes. Keypoints come from the frozen tokenizer decoder fed the
softmax-weighted codebook (a soft code per position), so the pixel loss reaches
the classifier through the decoder; the argmax of each position gives the token
ids. The baseline head regresses the 26 coordinates from the same backbone.

Budget: the backbone and head stay under 50 MFLOPs per 64x64 frame (one
multiply-add counts as two FLOPs; ``count_macs`` measures it). The frozen
decoder runs after them and is counted separately.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from posetok.estimator import flip_test_mean
from posetok.skeleton import NUM_KEYPOINTS

from .model import MixerBlock, TokenizerModel

HEADS = ("tokens", "regression")


@dataclass
class EstimatorConfig:
    head: str = "tokens"
    in_channels: int = 3
    widths: tuple[int, ...] = (16, 32, 64, 128)   # stem at 32x32, then 16x16, 8x8, 4x4
    head_width: int = 128                         # features per token in the classification head
    head_hidden: int = 128                        # the head Mixer's channel MLP width
    regression_hidden: int = 256
    num_tokens: int = 32                          # M and V are the frozen tokenizer's
    num_codes: int = 256

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        self.widths = tuple(int(w) for w in self.widths)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EstimatorConfig":
        return cls(**{**d, "widths": tuple(d["widths"])})


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (ResNet basic block)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = conv_bn(width, width)
        self.conv2 = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(self.conv1(x)))


class Backbone(nn.Module):
    """64x64 -> stride-2 stem -> per stage: stride-2 conv then a residual block -> [B, C, 4, 4]."""

    def __init__(self, cfg: EstimatorConfig):
        super().__init__()
        layers: list[nn.Module] = [conv_bn(cfg.in_channels, cfg.widths[0], stride=2)]
        for cin, cout in zip(cfg.widths[:-1], cfg.widths[1:]):
            layers += [conv_bn(cin, cout, stride=2), ResidualBlock(cout)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TokenHead(nn.Module):
    """[B,C,4,4] -> 16 spatial features mixed into M tokens -> a Mixer block -> logits [B,M,V]."""

    def __init__(self, cfg: EstimatorConfig, spatial: int):
        super().__init__()
        self.reduce = nn.Conv2d(cfg.widths[-1], cfg.head_width, 1)
        self.to_tokens = nn.Linear(spatial, cfg.num_tokens)
        self.mixer = MixerBlock(cfg.num_tokens, cfg.head_width, cfg.num_tokens * 2, cfg.head_hidden)
        self.norm = nn.LayerNorm(cfg.head_width)
        self.classify = nn.Linear(cfg.head_width, cfg.num_codes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.reduce(features).flatten(2)                 # [B, C, S]
        x = self.to_tokens(x).transpose(1, 2)               # [B, M, C]
        return self.classify(self.norm(self.mixer(x)))      # [B, M, V]


class RegressionHead(nn.Module):
    """[B,C,4,4] -> MLP -> 26 normalized coordinates [B,13,2] (the baseline)."""

    def __init__(self, cfg: EstimatorConfig, spatial: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(cfg.widths[-1] * spatial, cfg.regression_hidden),
                                 nn.ReLU(inplace=True), nn.Linear(cfg.regression_hidden, NUM_KEYPOINTS * 2))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features).view(-1, NUM_KEYPOINTS, 2)


class PoseEstimatorModel(nn.Module):
    """Backbone + head; with the tokens head also the frozen tokenizer for soft decoding.

    ``forward(images)`` returns a dict: ``keypoints`` [B,13,2] normalized, and for
    the tokens head ``logits`` [B,M,V]. The tokenizer's weights never train.
    """

    def __init__(self, cfg: EstimatorConfig, tokenizer: TokenizerModel, image_size: int = 64):
        super().__init__()
        self.config = cfg
        self.backbone = Backbone(cfg)
        spatial = (image_size // 2 ** len(cfg.widths)) ** 2
        self.head = TokenHead(cfg, spatial) if cfg.head == "tokens" else RegressionHead(cfg, spatial)
        self.tokenizer = tokenizer
        for p in self.tokenizer.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "PoseEstimatorModel":
        super().train(mode)
        self.tokenizer.eval()          # frozen: no dropout/BN statistics change, whatever the mode
        return self

    def soft_decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits [B,M,V] -> keypoints [B,13,2] through the softmax-weighted codebook (one soft code per position)."""
        probs = logits.softmax(dim=-1)
        codes = self.tokenizer.quantizer.grouped()                     # [G,V,D], G = 1 or M
        soft = torch.einsum("bmv,gvd->bmd", probs, codes) if codes.shape[0] == 1 else \
            torch.einsum("bmv,mvd->bmd", probs, codes)
        return self.tokenizer.decode(soft)

    def forward(self, images: torch.Tensor, compute_dtype: Optional[torch.dtype] = None, flip_test: bool = False
                ) -> dict[str, torch.Tensor]:
        """Args:
            images: [B,C,64,64] float32, the kernel's normalized crops.
            compute_dtype: None for float32 throughout; torch.bfloat16 runs the backbone and head under
                autocast (training on CPUs with bfloat16 dot products and on GPUs). The head's output is cast
                back to float32 before the softmax and the frozen decoder, which keep their precision.
            flip_test: also run the images' mirror images (in the same batch) and return the mean keypoints
                (``posetok.estimator.flip_test_mean``, as the runtime's flip test); logits stay the images' own.
        """
        if flip_test:
            both = self(torch.cat([images, images.flip(-1)]), compute_dtype)
            own = {key: value[:len(images)] for key, value in both.items()}
            own["keypoints"] = flip_test_mean(own["keypoints"], both["keypoints"][len(images):])
            return own
        if compute_dtype is None:
            raw = self.head(self.backbone(images))
        else:
            with torch.autocast(images.device.type, dtype=compute_dtype):
                raw = self.head(self.backbone(images))
            raw = raw.float()
        if self.config.head == "regression":
            return {"keypoints": raw}
        return {"logits": raw, "keypoints": self.soft_decode(raw)}


def same_tokenizer(model: PoseEstimatorModel, tokenizer: nn.Module) -> bool:
    """Whether the estimator was trained against exactly this tokenizer (every weight equal)."""
    mine, theirs = model.tokenizer.state_dict(), tokenizer.state_dict()
    return mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def count_macs(module: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of the convolutions and linear layers in one forward pass (per batch of ``example``)."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out):
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m: nn.Linear, _inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    handles = [m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
               for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad(), _eval_mode(module):
            module(example)
    finally:
        for h in handles:
            h.remove()
    return total


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode for a counting forward pass, the module's mode restored after: in training mode a forward
    would move the batch-norm running statistics, changing the model it only measures."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def estimator_macs(model: PoseEstimatorModel, image_size: int = 64) -> dict[str, int]:
    """Per-frame multiply-adds: ``estimator`` (backbone + head) and ``decoder`` (the frozen tokenizer decoder)."""
    x = torch.zeros(1, model.config.in_channels, image_size, image_size)
    with torch.no_grad(), _eval_mode(model):
        features = model.backbone(x)
    est = count_macs(model.backbone, x) + count_macs(model.head, features)
    if model.config.head == "regression":
        return {"estimator": est, "decoder": 0}
    z = torch.zeros(1, model.config.num_tokens, model.tokenizer.config.code_dim)
    return {"estimator": est, "decoder": count_macs(model.tokenizer.decoder, z)}
