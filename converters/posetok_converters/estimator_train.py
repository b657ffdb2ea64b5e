"""Training and evaluation of the image -> pose estimator.

Frames are made on the CPU (drawing, NV21, the kernel library's crop) by
worker processes while the model trains; the trainer samples its batches from
a replay buffer of the most recent frames, so a fast device reuses each frame a
few times instead of waiting. ``workers=0`` makes frames in the training
process itself, one fresh batch per step (deterministic: the tests use it).

Loss, tokens head (PCT stage 2): cross-entropy to the frozen encoder's ids of
the true pose, plus the pixel L1 of the keypoints decoded from the
softmax-weighted codebook. Regression head: the pixel L1 alone.
"""
from __future__ import annotations

import copy
import math
import multiprocessing as mp
import os
import queue
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F

from posetok.estimator import SHIFT_TEST_PX, shift_test_boxes
from posetok.skeleton import FRAME_SIZE, HALF_FRAME

from . import frames
from .estimator import EstimatorConfig, PoseEstimatorModel, estimator_macs, same_tokenizer

TRAINING_STREAM = 20251203    # frame seeds: [stream, seed, worker, chunk], disjoint from frames.EVAL_SEEDS
PRODUCER_CHUNK = 64           # frames per message from a worker


@dataclass
class EstimatorTrainConfig:
    steps: int = 3000
    batch_size: int = 128
    lr: float = 2e-3
    min_lr_ratio: float = 0.02
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    keypoint_weight: float = 1.0      # per pixel of L1, against the cross-entropy's nats
    workers: int = 1                  # frame-making processes; 0: in the training process
    buffer_frames: int = 20000        # replay buffer size (workers > 0)
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"           # a key of COMPUTE_DTYPES: the backbone and head's arithmetic in training
    # weight averaging along the run (stochastic weight averaging): when set, the run returns the mean of the
    # weights after step average_from and after every average_every steps from there, instead of the last ones
    average_from: Optional[int] = None
    average_every: int = 250
    # every snapshot_every steps the run hands its weights so far to train_estimators' snapshot callback, so a
    # run stopped early (a lease's time limit, a killed job) keeps its training
    snapshot_every: Optional[int] = None
    # the frames trained on: a key of frames.SCENES ("plain": the calibration trial's kind, to split the gap)
    scenes: str = "camera"

    def __post_init__(self) -> None:
        frames.scene_style(self.scenes)
        if self.precision not in COMPUTE_DTYPES:
            raise ValueError(f"precision must be one of {', '.join(COMPUTE_DTYPES)}, got {self.precision!r}")
        if self.average_from is not None and not 1 <= self.average_from <= self.steps:
            raise ValueError(f"average_from must be a step from 1 to steps ({self.steps}), got {self.average_from}")
        if self.average_every < 1:
            raise ValueError(f"average_every must be at least 1, got {self.average_every}")
        if self.snapshot_every is not None and self.snapshot_every < 1:
            raise ValueError(f"snapshot_every must be at least 1, got {self.snapshot_every}")

    def averages_after(self, count: int) -> bool:
        """Whether the weights after ``count`` steps go into the run's weight average."""
        return self.average_from is not None and count >= self.average_from and \
            (count - self.average_from) % self.average_every == 0

    def snapshots_after(self, count: int) -> bool:
        """Whether the run hands over its weights so far after ``count`` steps (never after the last step: the
        run's result follows)."""
        return self.snapshot_every is not None and count % self.snapshot_every == 0 and count < self.steps


# Training arithmetic of the backbone and head (PoseEstimatorModel.forward's compute_dtype). Weights, optimizer
# state, the frozen decoder and the losses stay float32 either way; exported graphs are always float32.
COMPUTE_DTYPES: dict[str, Optional[torch.dtype]] = {"fp32": None, "bf16": torch.bfloat16}


def lr_factor(step: int, steps: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def to_inputs(pictures: torch.Tensor) -> torch.Tensor:
    """uint8 [B,64,64,3] kernel crops -> float [B,3,64,64], the same values the kernel's float output holds
    ((v - 128) / 64 is exact in float32)."""
    mean = torch.tensor(frames.INPUT_MEAN, dtype=torch.float32, device=pictures.device).view(1, 3, 1, 1)
    scale = torch.tensor(frames.INPUT_SCALE, dtype=torch.float32, device=pictures.device).view(1, 3, 1, 1)
    return (pictures.permute(0, 3, 1, 2).float() - mean) * scale


def _produce(seed: int, worker: int, out: "mp.Queue", stop: "mp.Event", parent: int, scenes: str) -> None:
    """Worker process: make frame chunks until told to stop or the trainer is gone (killed: no stop event)."""
    torch.set_num_threads(1)
    # A process leaving after put() waits at exit until its queue's feeder thread has written every chunk into the
    # pipe; with the trainer gone nobody reads it, and the worker would linger for good. The chunks still unsent
    # when a worker leaves are not wanted.
    out.cancel_join_thread()
    chunk = 0
    while not stop.is_set() and os.getppid() == parent:
        rng = np.random.default_rng([TRAINING_STREAM, seed, worker, chunk])
        batch = frames.make_frames(PRODUCER_CHUNK, rng, scenes=scenes)
        while not stop.is_set() and os.getppid() == parent:
            try:
                out.put((batch.pictures, batch.poses_px), timeout=0.5)
                break
            except queue.Full:
                continue
        chunk += 1


class FrameSource:
    """Training batches (uint8 pictures [B,64,64,3], poses px [B,13,2]) from workers or in-process."""

    def __init__(self, cfg: EstimatorTrainConfig):
        self.cfg = cfg
        self.chunk = 0
        self.procs: list[mp.Process] = []
        if cfg.workers > 0:
            ctx = mp.get_context("spawn")
            self.queue, self.stop = ctx.Queue(maxsize=8 * cfg.workers), ctx.Event()
            self.procs = [ctx.Process(target=_produce, daemon=True,
                                      args=(cfg.seed, w, self.queue, self.stop, os.getpid(), cfg.scenes))
                          for w in range(cfg.workers)]
            for p in self.procs:
                p.start()
            self.pictures = np.zeros((cfg.buffer_frames, 64, 64, 3), np.uint8)
            self.poses = np.zeros((cfg.buffer_frames, 13, 2), np.float32)
            self.filled = self.write = 0
            self.rng = np.random.default_rng([TRAINING_STREAM, cfg.seed, 1 << 20])
            self.made = 0

    def _drain(self, block: bool) -> None:
        while True:
            try:
                pics, poses = self.queue.get(block=block, timeout=60 if block else None)
            except queue.Empty:
                if block:
                    raise RuntimeError("no frames from the frame workers for 60 s") from None
                return
            n = len(pics)
            idx = (self.write + np.arange(n)) % self.cfg.buffer_frames
            self.pictures[idx], self.poses[idx] = pics, poses
            self.write = (self.write + n) % self.cfg.buffer_frames
            self.filled = min(self.cfg.buffer_frames, self.filled + n)
            self.made += n
            block = False

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        if self.cfg.workers == 0:
            rng = np.random.default_rng([TRAINING_STREAM, self.cfg.seed, 0, self.chunk])
            self.chunk += 1
            batch = frames.make_frames(self.cfg.batch_size, rng, scenes=self.cfg.scenes)
            return batch.pictures, batch.poses_px
        self._drain(block=self.filled < self.cfg.batch_size)
        idx = self.rng.integers(0, self.filled, self.cfg.batch_size)
        return self.pictures[idx], self.poses[idx]

    def frames_made(self) -> int:
        return self.made if self.cfg.workers > 0 else self.chunk * self.cfg.batch_size

    def close(self) -> None:
        if self.procs:
            self.stop.set()
            while any(p.is_alive() for p in self.procs):   # empty the queue so workers can leave put()
                try:
                    self.queue.get(timeout=0.2)
                except queue.Empty:
                    pass
            for p in self.procs:
                p.join()
            self.procs = []


class WeightAverage:
    """A running mean of estimators' trained weights and batch-norm statistics, kept in float64.

    The frozen tokenizer and integer counters (batch-norm step counts) are taken from the first model added.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean: dict[str, torch.Tensor] = {}

    @staticmethod
    def _averaged(key: str, value: torch.Tensor) -> bool:
        return value.is_floating_point() and not key.startswith("tokenizer.")

    def add(self, model: PoseEstimatorModel) -> None:
        self.count += 1
        for key, value in model.state_dict().items():
            value = value.detach()
            if self.count == 1:
                self.mean[key] = value.double().clone() if self._averaged(key, value) else value.clone()
            elif self._averaged(key, value):
                self.mean[key] += (value.double() - self.mean[key]) / self.count

    def load_into(self, model: PoseEstimatorModel) -> PoseEstimatorModel:
        """Write the mean into ``model`` (same config), in its own dtypes; returns it."""
        if self.count == 0:
            raise ValueError("no weights were added to the average")
        state = model.state_dict()
        model.load_state_dict({k: self.mean[k].to(state[k].dtype) for k in state})
        return model


def losses(model: PoseEstimatorModel, pictures: torch.Tensor, poses_px: torch.Tensor,
           keypoint_weight: float, compute_dtype: Optional[torch.dtype] = None) -> dict[str, torch.Tensor]:
    """The training losses and monitors for one batch."""
    target = poses_px / HALF_FRAME - 1.0          # the skeleton's normalization, u = px / 32 - 1
    out = model(to_inputs(pictures), compute_dtype)
    l1_px = (out["keypoints"] - target).abs().mean() * HALF_FRAME
    result = {"l1_px": l1_px, "loss": l1_px * keypoint_weight}
    if "logits" in out:
        with torch.no_grad():
            ids = model.tokenizer.tokenize(target)
        ce = F.cross_entropy(out["logits"].flatten(0, 1), ids.flatten())
        result["ce"] = ce
        result["loss"] = result["loss"] + ce
        result["token_acc"] = (out["logits"].argmax(-1) == ids).float().mean()
    return result


ProgressFn = Callable[[int, dict], None]
# (steps done, {head: the weights the run would return if it ended now}, how many points their mean holds)
SnapshotFn = Callable[[int, dict[str, PoseEstimatorModel], int], None]


def train_estimators(cfgs: list[EstimatorConfig], tcfg: EstimatorTrainConfig, tokenizer,
                     progress: Optional[ProgressFn] = None, init: Optional[dict[str, PoseEstimatorModel]] = None,
                     snapshot: Optional[SnapshotFn] = None) -> tuple[dict[str, PoseEstimatorModel], dict]:
    """Train one estimator per config against the same frozen tokenizer, every model on the same batches
    (making frames costs more than a training step on the CPU, so a head-to-head comparison shares them).

    Args:
        init: {head: trained model} to continue from (same config): its backbone and head weights are
            copied; the frozen tokenizer stays ``tokenizer``.
        snapshot: called after every ``tcfg.snapshot_every`` steps (but the last) with the weights the run
            would return if it ended there: the mean so far once weight averaging has begun (copies), else the
            training models themselves (the callback must not change them).

    Returns:
        ({head: model}, {head: history} plus the shared "train_seconds", "frames_made", "frames_seen" and
        "weights_averaged", the number of points along the run whose mean the models hold: 0 when
        ``tcfg.average_from`` is unset and they hold the last step's weights).
    """
    torch.manual_seed(tcfg.seed)
    device = torch.device(tcfg.device)
    models = {cfg.head: PoseEstimatorModel(cfg, tokenizer) for cfg in cfgs}
    if len(models) != len(cfgs):
        raise ValueError("one config per head: two configs share a head")
    for head, start in (init or {}).items():
        if start.config != models[head].config:
            raise ValueError(f"the {head} model to continue from has another config: {start.config}")
        trained = {k: v for k, v in start.state_dict().items() if not k.startswith("tokenizer.")}
        missing, unexpected = models[head].load_state_dict(trained, strict=False)
        if unexpected or any(not k.startswith("tokenizer.") for k in missing):
            raise ValueError(f"the {head} model to continue from does not fit: missing {missing}, "
                             f"unexpected {unexpected}")
    models = {head: m.to(device) for head, m in models.items()}
    opts = {head: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=tcfg.lr,
                                    weight_decay=tcfg.weight_decay) for head, m in models.items()}
    history: dict = {head: {"step": [], "loss": [], "l1_px": [], "token_acc": []} for head in models}
    averages = {head: WeightAverage() for head in models}
    source = FrameSource(tcfg)
    t0 = time.time()
    try:
        for model in models.values():
            model.train()
        for step in range(tcfg.steps):
            lr = tcfg.lr * lr_factor(step, tcfg.steps, tcfg.warmup_steps, tcfg.min_lr_ratio)
            pics, poses = source.next()
            pics, poses = torch.from_numpy(pics).to(device), torch.from_numpy(poses).to(device)
            for head, model in models.items():
                for group in opts[head].param_groups:
                    group["lr"] = lr
                stats = losses(model, pics, poses, tcfg.keypoint_weight, COMPUTE_DTYPES[tcfg.precision])
                opts[head].zero_grad(set_to_none=True)
                stats["loss"].backward()
                opts[head].step()
                if step % 50 == 0 or step == tcfg.steps - 1:
                    row = {k: float(v.detach()) for k, v in stats.items()}
                    log = history[head]
                    log["step"].append(step)
                    for key in ("loss", "l1_px", "token_acc"):
                        log[key].append(row.get(key, float("nan")))
                    if progress:
                        progress(step, {"head": head, **row, "frames": source.frames_made(),
                                        "seconds": time.time() - t0})
                if tcfg.averages_after(step + 1):
                    averages[head].add(model)
            if snapshot is not None and tcfg.snapshots_after(step + 1):
                snapshot(step + 1, {head: averages[head].load_into(copy.deepcopy(model)) if averages[head].count
                                    else model for head, model in models.items()},
                         next(iter(averages.values())).count)
    finally:
        source.close()
    for head, model in models.items():
        if averages[head].count:
            averages[head].load_into(model)
        model.eval()
    history.update(train_seconds=time.time() - t0, frames_made=source.frames_made(),
                   frames_seen=tcfg.steps * tcfg.batch_size,
                   weights_averaged=next(iter(averages.values())).count)
    return models, history


def train_estimator(cfg: EstimatorConfig, tcfg: EstimatorTrainConfig, tokenizer,
                    progress: Optional[ProgressFn] = None, snapshot: Optional[SnapshotFn] = None
                    ) -> tuple[PoseEstimatorModel, dict]:
    """Train one estimator; returns (model, history) with the history of ``train_estimators`` for its head."""
    models, history = train_estimators([cfg], tcfg, tokenizer, progress, snapshot=snapshot)
    return models[cfg.head], {**history[cfg.head], **{k: v for k, v in history.items() if k != cfg.head}}


EVAL_CHUNK = 256   # frames per forward pass when evaluating


@torch.no_grad()
def predict_in_chunks(model: PoseEstimatorModel, pictures: np.ndarray, flip_test: bool = False
                      ) -> Iterator[tuple[slice, dict]]:
    """The model's outputs on uint8 crops [n,64,64,3], ``EVAL_CHUNK`` frames at a time, in eval mode
    (``flip_test``: as the runtime's flip test, see ``PoseEstimatorModel.forward``).

    Yields:
        (the frames' slice, the model's output dict for them, on the model's device).
    """
    model.eval()
    device = next(model.parameters()).device
    for start in range(0, len(pictures), EVAL_CHUNK):
        part = slice(start, min(start + EVAL_CHUNK, len(pictures)))
        yield part, model(to_inputs(torch.from_numpy(pictures[part]).to(device)), flip_test=flip_test)


@torch.no_grad()
def keypoints_in_views(model: PoseEstimatorModel, crops_of: Callable[[list[tuple]], np.ndarray], crops: list[tuple],
                       flip_test: bool = False, shift_test: bool = False,
                       shift_px: float = SHIFT_TEST_PX) -> np.ndarray:
    """The runtime's pose from each square crop of a frame, with the torch model: the crop's pass (``flip_test``:
    with its mirror image's, see ``PoseEstimatorModel.forward``) and, with ``shift_test``, the passes on its two
    ``posetok.estimator.shift_test_boxes``, averaged in frame pixels as ``PoseEstimator`` does.

    Args:
        crops_of: boxes [n] (one per frame) -> the kernel's float32 model inputs [n,3,64,64] of the frames.
        crops: the square crops (x, y, side, side) [n], one per frame.
        shift_px: the shift test's move in model pixels (the runtime's ``SHIFT_TEST_PX``).

    Returns:
        keypoints [n,13,2] in frame pixels, float64.
    """
    model.eval()
    device = next(model.parameters()).device
    views = [list(crops)]
    if shift_test:
        moved = [shift_test_boxes(tuple(int(v) for v in box), shift_px) for box in crops]
        views += [[pair[i] for pair in moved] for i in range(2)]
    estimates = []
    for boxes in views:
        inputs = crops_of(boxes)
        out = torch.cat([model(torch.from_numpy(inputs[i:i + EVAL_CHUNK]).to(device), flip_test=flip_test)
                         ["keypoints"].cpu() for i in range(0, len(inputs), EVAL_CHUNK)]).numpy()
        estimates.append(frames.crop_to_camera((out + 1.0) * HALF_FRAME, boxes))
    return np.mean(estimates, axis=0)


def held_out_keypoints(model: PoseEstimatorModel, batch: frames.FrameBatch, flip_test: bool = False,
                       shift_test: bool = False, shift_px: float = SHIFT_TEST_PX) -> np.ndarray:
    """The model's keypoints [n,13,2] on held-out frames, in the 64-px frame of each frame's crop (float32);
    ``flip_test``, ``shift_test`` and ``shift_px`` as in ``keypoints_in_views`` (the shift test needs
    ``batch.camera``)."""
    if not shift_test:
        estimated = np.empty_like(batch.poses_px)
        for part, out in predict_in_chunks(model, batch.pictures, flip_test):
            estimated[part] = ((out["keypoints"] + 1.0) * HALF_FRAME).cpu().numpy()
        return estimated
    if batch.camera is None:
        raise ValueError("the shift test needs the camera frames: make the batch with keep_camera=True")
    crops = [tuple(int(v) for v in box) for box in batch.boxes]
    camera_px = keypoints_in_views(model, lambda boxes: frames.model_inputs(batch.camera, boxes)[0], crops,
                                   flip_test, shift_test, shift_px)
    boxes = batch.boxes.astype(np.float64)
    return ((camera_px - boxes[:, None, :2]) * (FRAME_SIZE / boxes[:, 2])[:, None, None]).astype(np.float32)


@torch.no_grad()
def evaluate_estimator(model: PoseEstimatorModel, kinds: tuple[str, ...] = ("clean", "occluded"),
                       n: int = frames.EVAL_FRAMES, flip_test: bool = False, shift_test: bool = False,
                       scenes: str = "camera") -> dict:
    """MPJPE (64-px frame pixels) on the fixed held-out frames of ``scenes``; tokens head also argmax decoding and
    token accuracy (``flip_test``, ``shift_test``: the MPJPE of those keypoints, see ``held_out_keypoints``; argmax
    and accuracy stay the frames' own pass's)."""
    device = next(model.parameters()).device
    result: dict = {"eval_frames": n}
    for kind in kinds:
        batch = frames.eval_frames(kind, n, keep_camera=shift_test, scenes=scenes)
        target = torch.from_numpy(batch.poses_px)
        errs, argmax_errs, acc = [], [], []
        # with the shift test the keypoints come from held_out_keypoints below; this pass gives the ids alone
        for part, out in predict_in_chunks(model, batch.pictures, flip_test and not shift_test):
            true = target[part].to(device)
            pred_px = (out["keypoints"] + 1.0) * HALF_FRAME
            errs.append(torch.linalg.norm(pred_px - true, dim=-1).mean(-1))
            if "logits" in out:
                ids = out["logits"].argmax(-1)
                hard = (model.tokenizer.detokenize(ids) + 1.0) * HALF_FRAME
                argmax_errs.append(torch.linalg.norm(hard - true, dim=-1).mean(-1))
                acc.append((ids == model.tokenizer.tokenize(true / HALF_FRAME - 1.0)).float().mean(-1))
        if shift_test:
            estimated = torch.from_numpy(held_out_keypoints(model, batch, flip_test, shift_test))
            errs = [torch.linalg.norm(estimated - target, dim=-1).mean(-1)]
        prefix = "" if kind == "clean" else f"{kind}_"
        result[f"{prefix}mpjpe_px"] = float(torch.cat(errs).mean())
        if argmax_errs:
            result[f"{prefix}argmax_mpjpe_px"] = float(torch.cat(argmax_errs).mean())
            result[f"{prefix}token_accuracy"] = float(torch.cat(acc).mean())
        if kind == "clean":
            mean_pose = target.mean(0, keepdim=True)
            result["mean_pose_mpjpe_px"] = float(torch.linalg.norm(target - mean_pose, dim=-1).mean())
    macs = estimator_macs(model.cpu())
    model.to(device)
    result["estimator_mflops"] = 2 * macs["estimator"] / 1e6
    result["decoder_mflops"] = 2 * macs["decoder"] / 1e6
    result["head"] = model.config.head
    result["flip_test"] = flip_test
    result["shift_test"] = shift_test
    return result


def average_estimators(models: list[PoseEstimatorModel]) -> PoseEstimatorModel:
    """One estimator whose trained weights are the mean of ``models``' (a weight average, or model soup).

    Continued runs that start from the same weights end near one another, in one basin of the loss, where the
    mean of their weights often beats each of them; runs from unrelated starts do not average. Batch-norm running
    statistics are averaged like the weights; step counters come from the first model.

    Raises:
        ValueError: fewer than two models, or models of other configs or trained against other tokenizers.
    """
    if len(models) < 2:
        raise ValueError(f"averaging needs at least two estimators, got {len(models)}")
    first = models[0]
    for i, m in enumerate(models[1:], start=2):
        if m.config != first.config:
            raise ValueError(f"estimator {i} has another config than estimator 1: {m.config} against {first.config}")
        if not same_tokenizer(m, first.tokenizer):
            raise ValueError(f"estimator {i} was trained against another tokenizer than estimator 1")
    mean = WeightAverage()
    for m in models:
        mean.add(m)
    return mean.load_into(PoseEstimatorModel(first.config, first.tokenizer)).eval()


def train_config_dict(tcfg: EstimatorTrainConfig) -> dict:
    return asdict(tcfg)
