"""The estimator's export graph and its place in the bundle.

One graph per file, role ``estimator``: the pre-processed crop in, and out
the keypoints decoded through the frozen tokenizer's soft codebook, a score
per keypoint and the argmax token ids:

    image      float32 [B, 3, 64, 64]  the kernel's crop: (u8 - mean) * scale per channel
    keypoints  float32 [B, 13, 2]      normalized model-frame coordinates (u = px / 32 - 1)
    scores     float32 [B, 13]         per keypoint, in [0, 1] (see ``keypoint_attribution``)
    token_ids  int32   [B, M]          argmax code of each token position

Scores: each token position's confidence is its largest softmax probability;
a keypoint's score averages those confidences weighted by how strongly the
decoder's output for that keypoint depends on each position's code (the mean
Jacobian norm over held-out poses, rows normalized to sum to one). A pose the
classifier is sure of scores near 1; an occluded limb, whose tokens spread
their probability over many codes, scores lower.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from posetok.skeleton import NUM_KEYPOINTS, pixels_to_normalized

from . import data, frames
from .estimator import PoseEstimatorModel
from .graphs import SOFT_DECODE_SCOPE
from .manifest import tensor_spec

ESTIMATOR_INPUT = "image"
ESTIMATOR_OUTPUTS = ("keypoints", "scores", "token_ids")
ATTRIBUTION_POSES = 256


def keypoint_attribution(model: PoseEstimatorModel, poses_px: np.ndarray) -> torch.Tensor:
    """[13, M] non-negative weights, rows summing to 1: mean ||d keypoint_k / d code_m|| over ``poses_px``."""
    tok = model.tokenizer
    with torch.no_grad():
        codes = tok.quantizer.lookup(tok.tokenize(torch.from_numpy(pixels_to_normalized(poses_px))))
    weights = torch.zeros(NUM_KEYPOINTS, codes.shape[1])
    with torch.enable_grad():                                         # the exporter runs with grad off
        codes = codes.clone().requires_grad_(True)
        out = tok.decode(codes)                                       # [P,13,2]
        for k in range(NUM_KEYPOINTS):
            for axis in range(2):
                (grad,) = torch.autograd.grad(out[:, k, axis].sum(), codes, retain_graph=True)
                weights[k] += grad.norm(dim=-1).mean(0)               # [M]
    return (weights / weights.sum(1, keepdim=True)).detach()


class SoftDecode(nn.Module):
    """logits [B,M,V] -> keypoints through the softmax-weighted codebook and the frozen decoder.

    Its own submodule (scope ``soft_decode``) so the int8 quantizer keeps it in float32, like the tokenizer's
    codebook steps: it is the frozen tokenizer, not the part trained for images."""

    def __init__(self, model: PoseEstimatorModel):
        super().__init__()
        self.model = model

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.model.soft_decode(logits)


class EstimatorGraph(nn.Module):
    """image -> (keypoints, scores, token_ids), in eval mode; shares the model's weights."""

    def __init__(self, model: PoseEstimatorModel, attribution: torch.Tensor):
        super().__init__()
        if model.config.head != "tokens":
            raise ValueError(f"only the tokens head exports (the {model.config.head} head is a baseline)")
        model.eval()
        self.backbone, self.head = model.backbone, model.head
        setattr(self, SOFT_DECODE_SCOPE, SoftDecode(model))
        self.register_buffer("attribution_t", attribution.t().contiguous())   # [M, 13]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.head(self.backbone(image))
        keypoints = getattr(self, SOFT_DECODE_SCOPE)(logits)
        confidence = logits.softmax(dim=-1).max(dim=-1).values          # [B, M]
        scores = torch.matmul(confidence, self.attribution_t)          # [B, 13]
        token_ids = torch.argmax(logits, dim=-1).to(torch.int32)
        return keypoints, scores, token_ids


def estimator_graph(model: PoseEstimatorModel) -> EstimatorGraph:
    """The export graph of a tokens-head estimator (attribution measured on calibration poses)."""
    return EstimatorGraph(model, keypoint_attribution(model, data.calibration_poses(ATTRIBUTION_POSES))).eval()


def estimator_io_specs(num_tokens: int, batch: int | str = "batch") -> tuple[list, list]:
    """The manifest's tensor specs of an estimator file (batch dimension symbolic unless given)."""
    inputs = [tensor_spec(ESTIMATOR_INPUT, [batch, 3, 64, 64], "float32")]
    outputs = [tensor_spec("keypoints", [batch, NUM_KEYPOINTS, 2], "float32"),
               tensor_spec("scores", [batch, NUM_KEYPOINTS], "float32"),
               tensor_spec("token_ids", [batch, num_tokens], "int32")]
    return inputs, outputs


def check_tflite_estimator(path: Path, num_tokens: int, batch: int) -> tuple[list, list]:
    """The manifest specs of a written estimator .tflite, after checking that the runtime can read it: a float32
    image input and one output per spec (the converter renames outputs; the runtime matches them by shape and
    dtype, so the three must stay distinct and no quantizer may have turned the input into int8).

    Raises:
        ValueError: the file's input or outputs break the contract (the message names the file).
    """
    from posetok import backends
    inputs, outputs = estimator_io_specs(num_tokens, batch)
    session = backends.LiteRTSession(path, outputs=outputs)     # matches the outputs or raises, naming both
    if session.input_dtype != np.float32 or session.batch != batch:
        raise ValueError(f"{path.name}: input is {session.input_dtype} batch {session.batch}, "
                         f"the bundle contract needs float32 batch {batch}")
    return inputs, outputs


def estimator_input_contract() -> dict:
    """How the runtime must make the graph's input (the manifest's ``estimator`` section)."""
    return {"size": [64, 64], "channels": "rgb", "layout": "NCHW", "mean": list(frames.INPUT_MEAN),
            "scale": list(frames.INPUT_SCALE),
            "crop": "area (box-filter) downscale of a square person box by posetok.kernels.crop_nv21 / "
                    "crop_nv12 / crop_image; outside the frame reads as black"}


def calibration_inputs(n: int) -> np.ndarray:
    """Held-out-style frames for int8 calibration, from their own seed (not training, not evaluation)."""
    return frames.make_frames(n, np.random.default_rng(frames.CALIBRATION_SEED)).inputs


# figure crops of each kind (clean, behind two occluders) that fit the presence model, and twice as many crops of
# backdrop alone (so the two classes weigh alike); as many fresh ones again measure it
PRESENCE_FRAMES = 256
# the ridge on the presence model's weights (not its bias), per crop: it keeps the fit finite where the features
# part the crops completely
PRESENCE_L2 = 1e-3
_NEWTON_STEPS = 50


def presence_frames(n: int = PRESENCE_FRAMES, seed: int = frames.PRESENCE_SEEDS["fit"]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs for the presence model: crops around a figure (``n`` clean, then ``n`` behind two occluders)
    and ``2 n`` crops of backdrop alone (what a tracked crop that lost the figure sees)."""
    rng = np.random.default_rng(seed)
    figure = np.concatenate([frames.make_frames(n, rng, occluders=k).inputs for k in (0, 2)])
    return figure, frames.backdrop_frames(2 * n, rng)[0]


def fit_presence(figure: np.ndarray, backdrop: np.ndarray, l2: float = PRESENCE_L2) -> dict:
    """A logistic regression that parts figure crops (1) from backdrop crops (0) by their ``presence_features``
    [n, F]: Newton's method on the mean log loss plus ``l2`` times the squared weights (deterministic, no
    learning rate).

    Returns:
        ``{"weights": F floats, "bias": float}``.
    """
    x = np.concatenate([figure, backdrop]).astype(np.float64)
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    y = np.concatenate([np.ones(len(figure)), np.zeros(len(backdrop))])
    ridge = np.diag(np.r_[np.full(x.shape[1] - 1, l2), 0.0])
    w = np.zeros(x.shape[1])
    for _ in range(_NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -60.0, 60.0)))
        gradient = x.T @ (p - y) / len(y) + ridge @ w
        hessian = (x * (p * (1.0 - p))[:, None]).T @ x / len(y) + ridge
        w -= np.linalg.solve(hessian, gradient)
    return {"weights": [float(v) for v in w[:-1]], "bias": float(w[-1])}


def presence_models(model: PoseEstimatorModel, bundle_dir=None, artifacts: Sequence = (),
                    n: int = PRESENCE_FRAMES) -> dict:
    """The manifest's ``estimator.presence``: the torch model's presence model, and one per (format, precision)
    of the estimator ``artifacts`` in ``bundle_dir`` (``files``), which the runtime prefers for the files it runs.

    Scores are token confidences, so their scale moves with the weights, and int8 files score higher than
    float ones: each model is fitted on the outputs of the model or files it ships with, and measured on fresh
    crops (``figure_kept`` and ``backdrop_caught``: the shares each side of presence 0.5).
    """
    from posetok.estimator import presence_features, presence_probability
    fit, test = presence_frames(n), presence_frames(n, frames.PRESENCE_SEEDS["test"])

    def features(run: Callable[[np.ndarray], dict], inputs: np.ndarray) -> np.ndarray:
        out = run(inputs)
        return presence_features(out["keypoints"], out["scores"], 2.0)   # the graph's keypoints span 2 per crop

    def row(run: Callable[[np.ndarray], dict]) -> dict:
        fitted = fit_presence(*(features(run, x) for x in fit))
        figure, backdrop = (presence_probability(features(run, x), fitted) for x in test)
        return {**fitted, "figure_kept": float(np.mean(figure >= 0.5)),
                "backdrop_caught": float(np.mean(backdrop < 0.5))}
    files = [{"format": fmt, "precision": precision, **row(file_runner(bundle_dir, group).run_outputs)}
             for (fmt, precision), group in estimator_file_groups(artifacts).items()]
    return {**row(lambda x: torch_estimates(model, x)), "frames": {"figure": len(fit[0]), "backdrop": len(fit[1])},
            "files": files}


def estimator_file_groups(artifacts: Sequence) -> dict[tuple[str, str], list]:
    """The estimator ``artifacts`` by (format, precision): one file per batch size."""
    groups: dict[tuple[str, str], list] = {}
    for a in artifacts:
        if a.role == "estimator":
            groups.setdefault((a.format, a.precision), []).append(a)
    return groups


def file_runner(bundle_dir, artifacts: list):
    """A runtime ``BatchRunner`` over estimator files of one (format, precision), any batch size."""
    from posetok import backends
    sessions = [backends.open_session(Path(bundle_dir) / f.file, f.format, outputs=f.outputs) for f in artifacts]
    return backends.BatchRunner(sessions)


PARITY_FRAMES = 512
# int8 may cost this much MPJPE over the torch model (issue target: int8 estimator <= fp32 + 0.15 px)
INT8_MPJPE_MARGIN_PX = 0.15


def torch_estimates(model: PoseEstimatorModel, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """The export graph's outputs in torch for ``inputs`` [N,3,64,64] (the parity reference)."""
    graph = estimator_graph(model)
    with torch.no_grad():
        outs = [graph(torch.from_numpy(inputs[i:i + 256])) for i in range(0, len(inputs), 256)]
    return {name: torch.cat([o[k] for o in outs]).numpy() for k, name in enumerate(ESTIMATOR_OUTPUTS)}


def measure_estimator_row(bundle_dir, artifacts: list, batch: "frames.FrameBatch",
                          reference: dict[str, np.ndarray]) -> dict:
    """One (format, precision) row: MPJPE from image against the truth, token agreement and the largest
    keypoint difference against torch, for the estimator files ``artifacts`` (one per batch size)."""
    a = artifacts[0]
    out = file_runner(bundle_dir, artifacts).run_outputs(batch.inputs)
    by_shape = {tuple(v.shape[1:]): v for v in out.values()}       # TFLite renames outputs; shapes are distinct
    keypoints = by_shape[(NUM_KEYPOINTS, 2)]
    token_ids = by_shape[tuple(reference["token_ids"].shape[1:])]
    pred_px = (keypoints + 1.0) * 32.0
    ref_px = (reference["keypoints"] + 1.0) * 32.0
    return {"format": a.format, "precision": a.precision, "frames": len(batch.inputs),
            "mpjpe_px": float(np.linalg.norm(pred_px - batch.poses_px, axis=-1).mean()),
            "torch_mpjpe_px": float(np.linalg.norm(ref_px - batch.poses_px, axis=-1).mean()),
            "token_agreement": float((token_ids == reference["token_ids"]).mean()),
            "max_keypoint_diff_px": float(np.abs(pred_px - ref_px).max())}


def estimator_parity(bundle_dir, manifest, model: PoseEstimatorModel,
                     step: Callable[[str], None] = print) -> list[dict]:
    """Parity rows of every estimator file set in the bundle, on fixed held-out clean frames."""
    batch = frames.eval_frames("clean", PARITY_FRAMES)
    reference = torch_estimates(model, batch.inputs)
    rows = []
    for (fmt, precision), files in estimator_file_groups(manifest.artifacts).items():
        row = measure_estimator_row(bundle_dir, files, batch, reference)
        margin = INT8_MPJPE_MARGIN_PX if precision == "int8" else 0.05
        row["meets_targets"] = bool(row["mpjpe_px"] <= row["torch_mpjpe_px"] + margin)
        rows.append(row)
        step(f"parity estimator {fmt} {precision}: mpjpe {row['mpjpe_px']:.3f} px (torch "
             f"{row['torch_mpjpe_px']:.3f}), tokens {row['token_agreement']:.4f}")
    return rows
