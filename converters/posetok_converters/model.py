"""The compositional pose tokenizer: Mixer encoder -> EMA vector quantizer -> Mixer decoder.

Shapes: keypoints [B,K,2] (normalized, u = px/32 - 1), latent tokens
[B,M,D], token ids [B,M] (int64, values in [0,V)).

``encode``, ``quantize`` and ``decode`` contain no data-dependent Python
control flow, so ``torch.export`` / ONNX export trace them as they are. The
EMA codebook update and dead-code restart live in ``VectorQuantizer.update``,
which only training calls.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from posetok.skeleton import NUM_KEYPOINTS


@dataclass
class TokenizerConfig:
    num_keypoints: int = NUM_KEYPOINTS  # K
    num_tokens: int = 32                # M
    num_codes: int = 256                # V
    code_dim: int = 8                   # D
    hidden: int = 128                   # H, per-keypoint / per-token feature width
    channel_hidden: int = 256           # inner width of the channel-mixing MLP
    token_hidden: int = 64              # inner width of the token-mixing MLP
    num_blocks: int = 4                 # Mixer blocks in the encoder and in the decoder
    ema_decay: float = 0.99
    ema_eps: float = 1e-5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in (int, "int") and (not isinstance(value, int) or value < 1):
                raise ValueError(f"TokenizerConfig.{f.name} must be a positive integer, got {value!r}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"TokenizerConfig.ema_decay must be in (0, 1), got {self.ema_decay!r}")

    @property
    def bits_per_pose(self) -> float:
        import math
        return self.num_tokens * math.log2(self.num_codes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TokenizerConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TokenizerConfig field(s): {', '.join(unknown)}")
        return cls(**d)


class MixerBlock(nn.Module):
    """Pre-norm MLP-Mixer block over [B, tokens, features]."""

    def __init__(self, num_tokens: int, features: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.token_norm = nn.LayerNorm(features)
        self.token_mlp = nn.Sequential(nn.Linear(num_tokens, token_hidden), nn.GELU(),
                                       nn.Linear(token_hidden, num_tokens))
        self.channel_norm = nn.LayerNorm(features)
        self.channel_mlp = nn.Sequential(nn.Linear(features, channel_hidden), nn.GELU(),
                                         nn.Linear(channel_hidden, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.token_norm(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.channel_norm(x))


class Encoder(nn.Module):
    """[B,K,2] -> per-keypoint embedding -> Mixer blocks -> LayerNorm -> K-to-M tokens -> [B,M,D]."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.embed = nn.Linear(2, cfg.hidden)
        self.blocks = nn.ModuleList(MixerBlock(cfg.num_keypoints, cfg.hidden, cfg.token_hidden, cfg.channel_hidden)
                                    for _ in range(cfg.num_blocks))
        self.norm = nn.LayerNorm(cfg.hidden)
        self.to_tokens = nn.Linear(cfg.num_keypoints, cfg.num_tokens)
        self.to_code = nn.Linear(cfg.hidden, cfg.code_dim)

    def forward(self, kp: torch.Tensor) -> torch.Tensor:
        x = self.embed(kp)
        for block in self.blocks:
            x = block(x)
        x = self.to_tokens(self.norm(x).transpose(1, 2)).transpose(1, 2)
        return self.to_code(x)


class Decoder(nn.Module):
    """Mirror of the encoder: [B,M,D] -> D-to-H -> M-to-K keypoints -> Mixer blocks -> LayerNorm -> [B,K,2]."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.from_code = nn.Linear(cfg.code_dim, cfg.hidden)
        self.to_keypoints = nn.Linear(cfg.num_tokens, cfg.num_keypoints)
        self.blocks = nn.ModuleList(MixerBlock(cfg.num_keypoints, cfg.hidden, cfg.token_hidden, cfg.channel_hidden)
                                    for _ in range(cfg.num_blocks))
        self.norm = nn.LayerNorm(cfg.hidden)
        self.head = nn.Linear(cfg.hidden, 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.to_keypoints(self.from_code(z).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


class VectorQuantizer(nn.Module):
    """V x D codebook, nearest code by squared L2, EMA updates, dead-code restart."""

    def __init__(self, num_codes: int, code_dim: int, decay: float, eps: float):
        super().__init__()
        self.decay, self.eps = decay, eps
        # Random-normal start, as in the seed article; training replaces it
        # with data (see init_from_data) unless the "joint" schedule is chosen.
        self.register_buffer("codebook", torch.randn(num_codes, code_dim))
        self.register_buffer("ema_count", torch.zeros(num_codes))
        self.register_buffer("ema_sum", self.codebook.clone())

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared L2 distance of every vector in z [..., D] to every code: [..., V]."""
        c = self.codebook
        return (z * z).sum(-1, keepdim=True) - 2.0 * z @ c.transpose(0, 1) + (c * c).sum(-1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        indices = torch.argmin(self.distances(z), dim=-1)
        return indices, F.embedding(indices, self.codebook)

    @torch.no_grad()
    def init_from_data(self, vectors: torch.Tensor) -> None:
        """Codebook := the given [V,D] vectors (e.g. k-means centroids of encoder outputs)."""
        self.codebook.copy_(vectors)
        self.ema_sum.copy_(vectors)
        self.ema_count.fill_(1.0)

    @torch.no_grad()
    def update(self, z: torch.Tensor, indices: torch.Tensor, restart_below: float = 0.0) -> int:
        """One EMA step from a batch; returns how many dead codes were restarted.

        A code whose EMA count falls below ``restart_below`` is moved onto a
        random vector of this batch (restart_below=0 disables restarts).
        """
        z = z.reshape(-1, z.shape[-1]).float()
        indices = indices.reshape(-1)
        num_codes = self.codebook.shape[0]
        counts = torch.bincount(indices, minlength=num_codes).float()
        sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, z)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + num_codes * self.eps) * total  # Laplace smoothing
        self.codebook.copy_(self.ema_sum / smoothed[:, None])
        if restart_below <= 0.0:
            return 0
        dead = self.ema_count < restart_below
        num_dead = int(dead.sum())
        if num_dead:
            picks = z[torch.randint(0, z.shape[0], (num_dead,), device=z.device)]
            self.codebook[dead] = picks
            self.ema_sum[dead] = picks
            self.ema_count[dead] = 1.0
        return num_dead


class PoseTokenizer(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = VectorQuantizer(cfg.num_codes, cfg.code_dim, cfg.ema_decay, cfg.ema_eps)
        self.decoder = Decoder(cfg)

    @property
    def codebook(self) -> torch.Tensor:
        return self.quantizer.codebook

    def encode(self, kp_norm: torch.Tensor) -> torch.Tensor:
        """[B,K,2] normalized keypoints -> continuous tokens z_e [B,M,D]."""
        return self.encoder(kp_norm)

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_e [B,M,D] -> (indices [B,M] int64, z_q [B,M,D]) by nearest code (squared L2)."""
        return self.quantizer(z_e)

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """[B,M,D] -> normalized keypoints [B,K,2]."""
        return self.decoder(z_q)

    def tokenize(self, kp_norm: torch.Tensor) -> torch.Tensor:
        return self.quantize(self.encode(kp_norm))[0]

    def detokenize(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decode(F.embedding(indices, self.codebook))

    def forward(self, kp_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction, z_e, z_q, indices); gradients reach the
        encoder through the straight-through estimator z_e + (z_q - z_e).detach()."""
        z_e = self.encode(kp_norm)
        indices, z_q = self.quantize(z_e)
        recon = self.decode(z_e + (z_q - z_e).detach())
        return recon, z_e, z_q, indices
