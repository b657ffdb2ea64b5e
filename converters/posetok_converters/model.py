"""The compositional pose tokenizer: Mixer encoder -> EMA vector quantizer -> Mixer decoder.

Shapes: keypoints [B,K,2] (normalized, u = px/32 - 1), latent tokens
[B,M,D], token ids [B,M] (int64, values in [0,V)).

``encode``, ``quantize`` and ``decode`` contain no data-dependent Python
control flow, so ``torch.export`` / ONNX export trace them as they are. The
EMA codebook update and dead-code restart live in ``VectorQuantizer.update``,
which only training calls.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
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
    # One V x D codebook per token position instead of one shared by all M.
    # A shared codebook spreads its V codes over every position's latent
    # distribution, so each position uses only a part of it (the previously
    # shipped shared model: 6.9 of 8 bits per token, 0.534 px); per-position
    # codebooks let every token carry nearly its full log2(V) bits at the same
    # ids and bit count (the shipped model: 7.9 of 8 bits per token).
    codebook_per_token: bool = False
    # Sine/cosine features of each coordinate with periods 128 px, 64 px, ...
    # (one halving per band), fed to the keypoint embedding beside the raw
    # coordinates (0 = raw coordinates only). The embedding stays float in
    # every export, so the int8 layers behind it receive fine position as
    # bounded features instead of as small differences of large coordinates.
    fourier_bands: int = 0
    ema_decay: float = 0.99
    ema_eps: float = 1e-5

    _MAY_BE_ZERO = ("fourier_bands",)  # the integer fields that may be 0; the others must be >= 1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type not in (int, "int"):
                continue
            least = 0 if f.name in self._MAY_BE_ZERO else 1
            if not isinstance(value, int) or value < least:
                what = "an integer >= 0" if least == 0 else "a positive integer"
                raise ValueError(f"TokenizerConfig.{f.name} must be {what}, got {value!r}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"TokenizerConfig.ema_decay must be in (0, 1), got {self.ema_decay!r}")

    @property
    def num_codebooks(self) -> int:
        return self.num_tokens if self.codebook_per_token else 1

    @property
    def bits_per_pose(self) -> float:
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


class KeypointEmbedding(nn.Linear):
    """[B,K,2] -> [B,K,H]: a Linear of the coordinates and, with ``bands`` > 0,
    of sin/cos of them at ``bands`` frequencies (periods 4, 2, 1, ... in the
    normalized frame, i.e. 128 px halving). With 0 bands it is exactly
    nn.Linear(2, H), with the same parameter names. Cosine is sine shifted by
    pi/2, so the exported graphs need only one Sin op."""

    def __init__(self, hidden: int, bands: int):
        super().__init__(2 + 4 * bands, hidden)
        self.bands = bands
        angular = (math.pi / 2) * 2.0 ** torch.arange(bands, dtype=torch.float32)
        self.register_buffer("angular", torch.cat([angular, angular]), persistent=False)
        self.register_buffer("phase", torch.cat([torch.zeros(bands), torch.full((bands,), math.pi / 2)]),
                             persistent=False)

    def forward(self, kp: torch.Tensor) -> torch.Tensor:
        if self.bands:
            waves = torch.sin(kp.unsqueeze(-1) * self.angular + self.phase)   # [B,K,2,2*bands]
            kp = torch.cat([kp, waves.flatten(-2)], dim=-1)
        return super().forward(kp)


class Encoder(nn.Module):
    """[B,K,2] -> per-keypoint embedding -> Mixer blocks -> LayerNorm -> K-to-M tokens -> [B,M,D]."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.embed = KeypointEmbedding(cfg.hidden, cfg.fourier_bands)
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
    """G codebooks of V x D (G = 1 shared, or G = M, one per token position):
    nearest code by squared L2, EMA updates, dead-code restart.

    The codebook buffer is [V, D] when shared and [M, V, D] per token. Token
    ids are in [0, V) either way; for training bookkeeping a per-token code
    (m, v) is the flat entry m * V + v of the G*V codes.
    """

    def __init__(self, num_codes: int, code_dim: int, decay: float, eps: float, num_codebooks: int = 1):
        super().__init__()
        self.decay, self.eps = decay, eps
        self.num_codes, self.num_codebooks = num_codes, num_codebooks
        shape = (num_codes, code_dim) if num_codebooks == 1 else (num_codebooks, num_codes, code_dim)
        # Random-normal start, as in the seed article; training replaces it
        # with data (see init_from_data) unless the "joint" schedule is chosen.
        self.register_buffer("codebook", torch.randn(shape))
        # One pseudo-observation of each starting code, so ema_sum / ema_count is the codebook from the first
        # update on (init_from_data does the same). Counts of 0 under these sums, as the seed article starts,
        # make the first update divide each used code's sum by a count of a few hundredths and throw the code
        # out of reach: train.py's "joint" schedule reproduces that start (TrainConfig.ema_start_count).
        self.register_buffer("ema_count", torch.ones(shape[:-1]))
        self.register_buffer("ema_sum", self.codebook.clone())

    def grouped(self) -> torch.Tensor:
        """The codebook as [G, V, D] (a view)."""
        return self.codebook.reshape(self.num_codebooks, self.num_codes, -1)

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared L2 distance of every token vector in z [..., M, D] to every code of its codebook: [..., M, V]."""
        c = self.grouped()                                              # [G, V, D]
        cross = torch.matmul(z.unsqueeze(-2), c.transpose(1, 2)).squeeze(-2)  # [..., M, V]; G broadcasts over M
        return (z * z).sum(-1, keepdim=True) - 2.0 * cross + (c * c).sum(-1)

    def flat_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Token ids [..., M] -> entries of the flat [G*V, D] table."""
        if self.num_codebooks == 1:
            return indices
        offsets = torch.arange(self.num_codebooks, device=indices.device) * self.num_codes
        return indices + offsets

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Token ids [..., M] -> code vectors [..., M, D]."""
        return F.embedding(self.flat_indices(indices), self.grouped().reshape(-1, self.codebook.shape[-1]))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        indices = torch.argmin(self.distances(z), dim=-1)
        return indices, self.lookup(indices)

    @torch.no_grad()
    def init_from_data(self, vectors: torch.Tensor) -> None:
        """Codebook := the given vectors, shaped like the codebook (e.g. k-means centroids of encoder outputs)."""
        self.codebook.copy_(vectors.reshape(self.codebook.shape))
        self.ema_sum.copy_(self.codebook)
        self.ema_count.fill_(1.0)

    @torch.no_grad()
    def snap_to_int8_grid(self) -> float:
        """Move every code onto the grid q * scale, q an integer in [-127, 127],
        one scale for all codebooks; returns the scale.

        Exported reduced-precision files then store the codebook as int8 plus
        that scale without changing a single distance (``codebook_int8_grid``):
        the lookup still computes in float32, on the same values as this model.
        The scale is max|code| / 127 rounded up to 11 significant bits, so the
        largest code becomes exactly +-127 * scale, every q * scale is exact in
        float32 (7 + 11 bits) and max|code| / 127 gives the scale back exactly.
        Measured when this was introduced (the tokenizer of that time, scale
        0.252 on codes up to 32): the eval MPJPE went from 0.3954 (float16-rounded
        codes) to 0.3958 px.
        """
        scale = int8_grid_scale(float(self.codebook.abs().max()))
        q = torch.clamp(torch.round(self.codebook / scale), -127, 127)
        self.codebook.copy_(q * scale)
        return scale

    @torch.no_grad()
    def update(self, z: torch.Tensor, indices: torch.Tensor, restart_below: float = 0.0) -> int:
        """One EMA step from a batch z [..., M, D] with its ids [..., M]; returns
        how many dead codes were restarted.

        A code whose EMA count falls below ``restart_below`` is moved onto a
        random vector of this batch, taken from its own token position when
        codebooks are per token (restart_below=0 disables restarts).
        """
        dim = z.shape[-1]
        num_tokens = z.shape[-2]
        z = z.reshape(-1, num_tokens, dim).float()                      # [N, M, D]
        flat = self.flat_indices(indices.reshape(-1, num_tokens)).reshape(-1)
        table = self.num_codebooks * self.num_codes
        ema_count, ema_sum = self.ema_count.view(table), self.ema_sum.view(table, dim)
        counts = torch.bincount(flat, minlength=table).float()
        sums = torch.zeros_like(ema_sum).index_add_(0, flat, z.reshape(-1, dim))
        ema_count.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        ema_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        # Laplace smoothing within each codebook
        count = self.ema_count.view(self.num_codebooks, self.num_codes)
        total = count.sum(-1, keepdim=True)
        smoothed = (count + self.eps) / (total + self.num_codes * self.eps) * total
        self.codebook.copy_((self.ema_sum.view(self.num_codebooks, self.num_codes, dim)
                             / smoothed[..., None]).reshape(self.codebook.shape))
        if restart_below <= 0.0:
            return 0
        dead = torch.nonzero(ema_count < restart_below).squeeze(1)
        if len(dead):
            rows = torch.randint(0, z.shape[0], (len(dead),), device=z.device)
            slots = (dead // self.num_codes if self.num_codebooks > 1
                     else torch.randint(0, num_tokens, (len(dead),), device=z.device))
            picks = z[rows, slots]
            codebook = self.codebook.view(table, dim)
            codebook[dead] = picks
            ema_sum[dead] = picks
            ema_count[dead] = 1.0
        return len(dead)


def int8_grid_scale(peak: float) -> float:
    """The grid step for codes up to ``peak``: peak / 127 rounded up to 11
    significant bits (1.0 for an all-zero codebook)."""
    if peak == 0.0:
        return 1.0
    mantissa, exponent = np.frexp(peak / 127.0)            # peak / 127 = mantissa * 2**exponent
    scale = float(np.ldexp(np.ceil(mantissa * 2048.0) / 2048.0, exponent))
    if not (np.isfinite(scale) and np.float32(scale) == scale and np.float32(scale * 127.0) == scale * 127.0):
        raise ValueError(f"codebook values up to {peak:g} do not fit an int8 grid in float32")
    return scale


def codebook_int8_grid(codebook: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(int8 codes, scale) with codes * scale == codebook exactly in float32, or
    None when the codebook does not lie on such a grid (a checkpoint trained
    before ``VectorQuantizer.snap_to_int8_grid`` existed)."""
    values = np.asarray(codebook, dtype=np.float32)
    peak = float(np.abs(values).max()) if values.size else 0.0
    scale = np.float32(int8_grid_scale(peak))
    q = np.rint(values / scale)
    if np.abs(q).max() > 127 or not np.array_equal(q.astype(np.float32) * scale, values):
        return None
    return q.astype(np.int8), float(scale)


class TokenizerModel(nn.Module):
    """The trainable VQ-VAE (torch). Not the runtime's ``posetok.PoseTokenizer``:
    there ``encode`` means keypoints -> token ids; here ``encode`` gives the
    continuous latents z_e and ``tokenize`` the ids. Checkpoints store the
    config and the state_dict, not this class's name."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = VectorQuantizer(cfg.num_codes, cfg.code_dim, cfg.ema_decay, cfg.ema_eps,
                                         cfg.num_codebooks)
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
        return self.decode(self.quantizer.lookup(indices))

    def forward(self, kp_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction, z_e, z_q, indices); gradients reach the
        encoder through the straight-through estimator z_e + (z_q - z_e).detach()."""
        z_e = self.encode(kp_norm)
        indices, z_q = self.quantize(z_e)
        recon = self.decode(z_e + (z_q - z_e).detach())
        return recon, z_e, z_q, indices
