"""Training schedules for the pose tokenizer.

"staged" (ours), in phases:
  1. autoencoder: encoder + decoder without the quantizer (z_e goes straight
     to the decoder), so the latent space is organised before any code exists;
  2. codebook init: k-means (k = V) over encoder outputs of fresh poses, one
     k-means per token position when the codebooks are per token;
  3. vector quantization: everything trains jointly with the straight-through
     estimator, EMA codebook updates and dead-code restart (a code whose EMA
     count drops below a fraction of the expected count is moved onto a
     random batch vector of its own token position);
  4. int8 robustness (optional, off in the presets): codebook frozen,
     encoder (and decoder) fine-tuned through simulated A8W8 rounding with a
     stronger commitment weight, so z_e sits close to its code and argmin
     margins survive int8 rounding.

"joint" reproduces the seed article's first attempt: one random-normal
codebook shared by all tokens with its EMA counts at zero, encoder + decoder
+ EMA codebook trained together from step 0, Adam at 1e-4, batch 64,
smooth-L1 on pixel coordinates, beta 0.25, no restarts.

At the end the codebook is snapped onto an int8 grid (int8 codes times one
scale), so the exported files can store it in int8 without changing a distance.

Training data are fresh poses for every batch (``data.training_poses``),
never the evaluation or calibration seeds.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from posetok.skeleton import HALF_FRAME, pixels_to_normalized

from . import data
from .fakequant import ActivationRanges, calibrate, simulated_int8
from .model import TokenizerConfig, TokenizerModel

SCHEDULES = ("staged", "joint")


@dataclass
class TrainConfig:
    schedule: str = "staged"
    seed: int = 0
    batch_size: int = 256
    autoencoder_steps: int = 1000
    vq_steps: int = 2000
    robust_steps: int = 500
    lr: float = 2e-3
    robust_lr: float = 5e-4
    min_lr_ratio: float = 0.02       # cosine decay ends at lr * this
    warmup_steps: int = 100
    weight_decay: float = 0.0
    beta: float = 0.25               # commitment weight (VQ phase)
    robust_beta: float = 2.0         # float- and int8-path z_e -> float-path code, while fine-tuning for int8
    robust_margin: float = 1.0       # hinge: (2nd nearest - nearest) squared distance should exceed this
    robust_margin_weight: float = 0.5
    # Dead-code restart: a code whose EMA count falls below this fraction of the
    # expected count per code (batch vectors / codes) moves onto a batch vector (0 = off).
    restart_fraction: float = 1 / 32
    codebook_init: str = "kmeans"    # "kmeans" of encoder outputs, or "random" normal (the seed's)
    # EMA counts of a fresh random codebook (k-means init sets its own): 1, the codebook as one pseudo-observation;
    # 0, the seed article's start, which throws every code the first batch uses out of reach (README "Training")
    ema_start_count: float = 1.0
    kmeans_poses: int = 4096
    kmeans_iters: int = 25
    recon_loss: str = "l2_px"        # "l2_px": per-joint distance in px (= MPJPE); "smooth_l1_px": the seed's
    jitter_px: float = data.DEFAULT_JITTER_PX
    # Share of training poses drawn from the upright generator instead of the
    # broad one: a camera sees upright people most, and an upright figure's
    # limbs are at full length, the edge of the broad distribution.
    upright_fraction: float = 0.0
    log_every: int = 100

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.recon_loss not in ("l2_px", "smooth_l1_px"):
            raise ValueError(f"unknown recon_loss {self.recon_loss!r}; choose l2_px or smooth_l1_px")
        if self.codebook_init not in ("kmeans", "random"):
            raise ValueError(f"unknown codebook_init {self.codebook_init!r}; choose kmeans or random")
        if not self.ema_start_count >= 0.0:
            raise ValueError(f"ema_start_count must be >= 0, got {self.ema_start_count!r}")
        if not 0.0 <= self.upright_fraction <= 1.0:
            raise ValueError(f"upright_fraction must be in [0, 1], got {self.upright_fraction!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        for name in ("autoencoder_steps", "vq_steps", "robust_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    @property
    def total_steps(self) -> int:
        return self.autoencoder_steps + self.vq_steps + self.robust_steps


def joint_schedule(cfg: TrainConfig, steps: int) -> TrainConfig:
    """The seed article's joint training, same number of optimizer steps as asked."""
    return replace(cfg, schedule="joint", batch_size=64, autoencoder_steps=0, vq_steps=steps, robust_steps=0,
                   lr=1e-4, min_lr_ratio=1.0, warmup_steps=0, beta=0.25, restart_fraction=0.0, codebook_init="random",
                   ema_start_count=0.0, recon_loss="smooth_l1_px")


@dataclass
class TrainResult:
    model: TokenizerModel
    history: list[dict] = field(default_factory=list)   # one row per log interval
    phases: dict = field(default_factory=dict)           # phase -> summary
    seconds: float = 0.0


class PoseStream:
    """Fresh training batches from numbered chunks of the seeded training stream."""

    def __init__(self, seed: int, batch_size: int, jitter_px: float, upright_fraction: float = 0.0,
                 batches_per_chunk: int = 64):
        self.seed, self.batch_size, self.jitter_px = seed, batch_size, jitter_px
        self.upright_fraction = upright_fraction
        self.batches_per_chunk = batches_per_chunk
        self.chunk = -1
        self.buffer = np.empty((0, 13, 2), np.float32)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > len(self.buffer):
            self.chunk += 1
            poses = data.training_poses(self.batch_size * self.batches_per_chunk, self.seed, self.chunk,
                                        jitter_px=self.jitter_px, upright_fraction=self.upright_fraction)
            self.buffer, self.pos = pixels_to_normalized(poses), 0
        batch = self.buffer[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return torch.from_numpy(batch)


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Computed in pixels of the 64-px frame, so loss values read as pixels."""
    diff_px = (pred - target) * HALF_FRAME
    if kind == "smooth_l1_px":
        return F.smooth_l1_loss(diff_px, torch.zeros_like(diff_px))
    # sqrt with a tiny floor: the per-joint distance (MPJPE) with a finite gradient at 0
    return torch.sqrt((diff_px * diff_px).sum(-1) + 1e-8).mean()


def lr_factor(step: int, steps: int, warmup: int, min_ratio: float) -> float:
    """Linear warmup, then cosine decay from 1 to ``min_ratio``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator) -> torch.Tensor:
    """Plain Lloyd k-means with k-means++-free random init; empty clusters take a random point."""
    if len(x) < k:
        raise ValueError(f"k-means needs at least k={k} vectors, got {len(x)}")
    centers = x[torch.randperm(len(x), generator=generator)[:k]].clone()
    for _ in range(iters):
        d = (x * x).sum(1, keepdim=True) - 2.0 * x @ centers.T + (centers * centers).sum(1)
        assign = d.argmin(1)
        counts = torch.bincount(assign, minlength=k).float()
        sums = torch.zeros_like(centers).index_add_(0, assign, x)
        empty = counts == 0
        centers = torch.where(empty[:, None], centers, sums / counts.clamp_min(1.0)[:, None])
        if empty.any():
            centers[empty] = x[torch.randint(0, len(x), (int(empty.sum()),), generator=generator)]
    return centers


def expected_count_per_code(mc: TokenizerConfig, cfg: TrainConfig) -> float:
    """Token vectors a code receives per batch if all codes were used equally."""
    return cfg.batch_size * mc.num_tokens / (mc.num_codebooks * mc.num_codes)


@torch.no_grad()
def init_codebook_kmeans(model: TokenizerModel, stream: "PoseStream", cfg: TrainConfig, gen: torch.Generator) -> None:
    """Codebook := k-means centroids of the current encoder's outputs on fresh
    poses: one k-means over all tokens for a shared codebook, one per token
    position for per-token codebooks."""
    mc = model.config
    kp = torch.cat([stream.next() for _ in range(max(1, cfg.kmeans_poses // cfg.batch_size))])
    z = model.encode(kp)                                               # [N, M, D]
    groups = z.reshape(1, -1, mc.code_dim) if mc.num_codebooks == 1 else z.transpose(0, 1)
    model.quantizer.init_from_data(torch.stack([kmeans(g, mc.num_codes, cfg.kmeans_iters, gen) for g in groups]))
    # EMA counts start at the expected count per code, so no code counts as
    # dead before it had a chance to be picked.
    model.quantizer.ema_count.fill_(expected_count_per_code(mc, cfg))
    model.quantizer.ema_sum.copy_(model.quantizer.codebook * model.quantizer.ema_count[..., None])


# --- one training step of each phase: (model, batch, cfg, ranges) -> (loss, stats) ---

def autoencoder_step(model: TokenizerModel, kp: torch.Tensor, cfg: TrainConfig,
                     ranges: ActivationRanges | None) -> tuple[torch.Tensor, dict]:
    """Encoder straight into the decoder, no quantizer."""
    recon = model.decode(model.encode(kp))
    loss = reconstruction_loss(recon, kp, cfg.recon_loss)
    return loss, {"recon_px": float(loss.detach())}


def vq_step(model: TokenizerModel, kp: torch.Tensor, cfg: TrainConfig,
            ranges: ActivationRanges | None) -> tuple[torch.Tensor, dict]:
    """Straight-through VQ with commitment loss; EMA codebook update and dead-code restart."""
    recon, z_e, z_q, idx = model(kp)
    rec = reconstruction_loss(recon, kp, cfg.recon_loss)
    commit = F.mse_loss(z_e, z_q.detach())
    restart_below = cfg.restart_fraction * expected_count_per_code(model.config, cfg)
    restarted = model.quantizer.update(z_e.detach(), idx, restart_below)
    used = int(torch.unique(idx).numel())
    return rec + cfg.beta * commit, {"recon_px": float(rec.detach()), "commit": float(commit.detach()),
                                     "batch_codes_used": used, "restarted": restarted}


def robust_step(model: TokenizerModel, kp: torch.Tensor, cfg: TrainConfig,
                ranges: ActivationRanges | None) -> tuple[torch.Tensor, dict]:
    """Codebook fixed. The float path picks the codes and trains the decoder;
    the simulated-int8 path (activation ``ranges``) is pulled onto the float
    path's codes, and a hinge keeps the float path's nearest code clearly
    nearer than the next."""
    recon, z_e, z_q, idx = model(kp)
    with simulated_int8(model.encoder, ranges):
        z_e_int8 = model.encode(kp)
    rec = reconstruction_loss(recon, kp, cfg.recon_loss)
    commit = F.mse_loss(z_e, z_q.detach())
    commit_int8 = F.mse_loss(z_e_int8, z_q.detach())
    nearest2 = model.quantizer.distances(z_e).topk(2, dim=-1, largest=False).values
    gap = nearest2[..., 1] - nearest2[..., 0]
    hinge = F.relu(cfg.robust_margin - gap).mean()
    loss = rec + cfg.robust_beta * 0.5 * (commit + commit_int8) + cfg.robust_margin_weight * hinge
    with torch.no_grad():
        agree = float((model.quantizer(z_e_int8)[0] == idx).float().mean())
    return loss, {"recon_px": float(rec.detach()), "commit": float(commit.detach()),
                  "commit_int8": float(commit_int8.detach()), "hinge": float(hinge.detach()),
                  "int8_agreement": agree}


StepFn = Callable[[TokenizerModel, torch.Tensor, TrainConfig, "ActivationRanges | None"], tuple[torch.Tensor, dict]]


@dataclass(frozen=True)
class Phase:
    name: str
    steps: int
    lr: float
    step_fn: StepFn
    init_codebook: bool = False   # k-means codebook init before the phase (even with 0 steps)
    calibrate_int8: bool = False  # calibrate int8 activation ranges on one batch before the phase


def phase_plan(cfg: TrainConfig, fresh_model: bool) -> list[Phase]:
    """The phases ``train`` runs, in order (see the module docstring)."""
    if cfg.schedule == "joint":
        return [Phase("joint", cfg.vq_steps, cfg.lr, vq_step)]
    return [Phase("autoencoder", cfg.autoencoder_steps, cfg.lr, autoencoder_step),
            Phase("vq", cfg.vq_steps, cfg.lr, vq_step, init_codebook=fresh_model and cfg.codebook_init == "kmeans"),
            Phase("int8_robust", cfg.robust_steps, cfg.robust_lr, robust_step, calibrate_int8=True)]


ProgressFn = Callable[[int, dict], None]


def train(model_cfg: TokenizerConfig, cfg: TrainConfig, progress: ProgressFn | None = None,
          model: TokenizerModel | None = None,
          on_phase_end: Callable[[str, TokenizerModel], None] | None = None) -> TrainResult:
    """Train a tokenizer; ``progress(step, stats)`` is called after every step.

    With ``model`` given, training continues from it (its codebook is kept).
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    plan = phase_plan(cfg, fresh_model=model is None)
    if model is None:
        model = TokenizerModel(model_cfg)
        model.quantizer.ema_count.fill_(cfg.ema_start_count)
    stream = PoseStream(cfg.seed, cfg.batch_size, cfg.jitter_px, cfg.upright_fraction)
    result = TrainResult(model=model)
    started = time.perf_counter()
    step = 0
    model.train()
    for phase in plan:
        if phase.init_codebook:
            init_codebook_kmeans(model, stream, cfg, gen)
        if phase.steps <= 0:
            continue
        ranges = None
        if phase.calibrate_int8:
            ranges = calibrate(model.encoder, stream.next())
            ranges.mode = "ema"  # follow the encoder as it adapts
        params = list(model.encoder.parameters()) + list(model.decoder.parameters())
        opt = torch.optim.AdamW(params, lr=phase.lr, weight_decay=cfg.weight_decay)
        warmup = min(cfg.warmup_steps, phase.steps // 4)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s, n=phase.steps, w=warmup: lr_factor(s, n, w, cfg.min_lr_ratio))
        window: dict[str, list[float]] = {}
        phase_start = time.perf_counter()
        for i in range(phase.steps):
            kp = stream.next()
            loss, stats = phase.step_fn(model, kp, cfg, ranges)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            for k, v in stats.items():
                window.setdefault(k, []).append(v)
            if progress is not None:
                progress(step, {"phase": phase.name, **stats})
            if (i + 1) % cfg.log_every == 0 or i + 1 == phase.steps:
                row = {"step": step, "phase": phase.name, "lr": sched.get_last_lr()[0]}
                row.update({k: float(np.mean(v)) for k, v in window.items()})
                result.history.append(row)
                window = {}
        result.phases[phase.name] = {"steps": phase.steps, "seconds": round(time.perf_counter() - phase_start, 1),
                                     "last": result.history[-1]}
        if on_phase_end is not None:
            model.eval()
            on_phase_end(phase.name, model)
            model.train()
    model.quantizer.snap_to_int8_grid()
    model.eval()
    result.seconds = time.perf_counter() - started
    return result


# --- presets -----------------------------------------------------------------

PRESETS: dict[str, tuple[TokenizerConfig, TrainConfig]] = {
    # ~20 s on one core: what the tests train.
    "quick": (TokenizerConfig(num_tokens=32, num_codes=256, code_dim=4, hidden=48, channel_hidden=96,
                              token_hidden=32, num_blocks=2, codebook_per_token=True),
              # Per-token codebooks see batch/V = 0.5 vectors per code and step, so a
              # short run needs a quicker dead-code restart. Measured (800 steps): usage
              # 0.963 / 0.986 / 0.999 and 1.47 / 1.38 / 1.36 px for fractions 1/32, 1/4, 1/2.
              TrainConfig(batch_size=128, autoencoder_steps=300, vq_steps=500, robust_steps=0, lr=3e-3,
                          restart_fraction=0.5, upright_fraction=0.25)),
    # The shipped model: one run of about an hour on one core. A quarter of the
    # training poses upright (quick preset, 800 steps: upright eval 1.45 -> 1.20 px,
    # broad eval 1.33 -> 1.39 px against none).
    "full": (TokenizerConfig(num_tokens=32, num_codes=256, code_dim=4, hidden=96, channel_hidden=192,
                             token_hidden=64, num_blocks=3, codebook_per_token=True),
             TrainConfig(batch_size=256, autoencoder_steps=600, vq_steps=21400, robust_steps=0,
                         upright_fraction=0.25)),
}


def preset(name: str, schedule: str = "staged", seed: int = 0) -> tuple[TokenizerConfig, TrainConfig]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    model_cfg, cfg = PRESETS[name]
    cfg = replace(cfg, seed=seed)
    if schedule == "joint":
        # the seed article's model: one codebook shared by all tokens
        cfg = joint_schedule(cfg, cfg.total_steps)
        model_cfg = replace(model_cfg, codebook_per_token=False)
    elif schedule != "staged":
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    return replace(model_cfg), cfg


def train_config_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)
