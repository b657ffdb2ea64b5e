"""The models ``posetok serve`` puts on Triton, one ``ServedModel`` entry each.

An entry names the Triton model, the bundle role whose graphs it needs, its
input and output tensors (per item, without the batch dimension) and two
functions: ``open`` (bundle folder + settings -> a runtime object, once per
model instance) and ``run`` (runtime + {input name: batched array} ->
{output name: batched array}). The repository writer, the Python-backend
model and the tests all read this table, so serving one more model is one
more entry in ``MODELS``.

Tensors (B is the batch dimension, up to ``--max-batch``):

    posetok_encode    KEYPOINTS [B,13,2] FP32 pixels of the 64-px frame -> TOKEN_IDS [B,M] INT32
    posetok_decode    TOKEN_IDS [B,M] INT32, ids in [0, V)              -> KEYPOINTS [B,13,2] FP32 pixels
    posetok_estimate  IMAGE [B,H,W,3] UINT8 RGB frames (H, W >= 16),
                      BOX [B,4] INT32 (x, y, w, h) frame pixels, optional
                                                    -> KEYPOINTS [B,13,2] FP32 frame pixels,
                                                       SCORES [B,13] FP32 in [0, 1], TOKEN_IDS [B,M] INT32,
                                                       PRESENCE [B,1] FP32 in [0, 1]

``posetok_estimate`` is ``PoseEstimator.estimate(frame, box)`` per item (served
only when the bundle has an estimator): with a BOX (a person box) one pass on
the crop around it (``posetok.estimator.person_crop``), without one the coarse + refine
search over the whole frame; with the server's ``flip_test`` each pass that gives
the pose also runs the crop's mirror image (``EstimatorOptions.flip_test``), with
its ``shift_test`` two crops moved by a pixel or two (``EstimatorOptions.shift_test``).
IMAGE takes whole frames of any size rather than a fixed-size crop because
the crop and the area downscale need the frame's full-resolution pixels (the
posetok kernels do them in one pass on the server) and because the search
without a box needs the whole frame. Triton's dynamic batcher groups only
requests whose IMAGE shapes are equal (a camera sends one size), and only
requests that all carry a BOX or all omit it; a request may carry several
frames of one size.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional, Union

import numpy as np

from .. import kernels
from ..checks import is_real_number
from ..estimator import (
    PRESENCE_FEATURES,
    EstimatorOptions,
    PoseEstimator,
    bundle_presence_model,
    presence_features,
    presence_probability,
)
from ..person_boxes import _check_box, _check_frame, person_crop
from ..skeleton import FRAME_SIZE, NUM_KEYPOINTS, normalized_to_pixels, pixels_to_normalized
from ..tokenizer import PoseTokenizer, TokenizerOptions

# Triton data type (config.pbtxt spells it TYPE_<name>, the protocol <name>) -> numpy dtype
DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
          "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
Dim = Union[int, str]


@dataclasses.dataclass(frozen=True)
class TensorDef:
    """One input or output tensor of a served model.

    Attributes:
        name: the tensor name clients use (``KEYPOINTS``).
        dtype: the Triton data type without ``TYPE_`` (``FP32``, ``INT32``, ...).
        dims: the shape of one item, without the batch dimension; a str entry
            is a ``Bundle`` attribute read when the repository is written
            (``"num_tokens"`` is M); -1 is a dimension of any size.
        optional: a request may leave this input out (inputs only).
    """

    name: str
    dtype: str
    dims: tuple[Dim, ...]
    optional: bool = False

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"{self.name}: dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")

    def shape(self, bundle: Any) -> tuple[int, ...]:
        """The per-item shape with the bundle's numbers filled in.

        Args:
            bundle: a ``posetok.Bundle`` (or anything with the named attributes).

        Returns:
            The dims as ints.
        """
        return tuple(int(getattr(bundle, d)) if isinstance(d, str) else int(d) for d in self.dims)

    @property
    def numpy_dtype(self) -> np.dtype:
        """The numpy dtype of ``dtype``."""
        return np.dtype(DTYPES[self.dtype])


@dataclasses.dataclass(frozen=True)
class ServedModel:
    """One model ``posetok serve`` offers.

    Attributes:
        name: the Triton model name.
        role: the bundle role whose graphs it runs; the model is served only
            when the bundle has an artifact of that role.
        inputs: the input tensors.
        outputs: the output tensors.
        open: ``open(bundle_dir, settings)`` -> the runtime object one model
            instance keeps; ``settings`` holds ``backend``, ``precision``,
            ``num_threads`` (None or int) and ``verify``.
        run: ``run(runtime, inputs)`` -> outputs, both dicts of batched numpy
            arrays keyed by tensor name. A ``ValueError`` is the client's
            fault (HTTP 400, gRPC INVALID_ARGUMENT); anything else is a 500.
        description: one line for the model's documentation.
    """

    name: str
    role: str
    inputs: tuple[TensorDef, ...]
    outputs: tuple[TensorDef, ...]
    open: Callable[[str, dict], Any]
    run: Callable[[Any, dict], dict]
    description: str = ""

    def available(self, bundle: Any, precision: Optional[str] = None) -> bool:
        """Whether the bundle has the graphs this model needs.

        Args:
            bundle: a loaded ``posetok.Bundle``.
            precision: also require a graph of this precision (``fp32``, ...); None: any.

        Returns:
            True when the bundle lists an artifact of ``role`` (and ``precision``).
        """
        return any(a.role == self.role and precision in (None, a.precision) for a in bundle.artifacts)


def _options(cls, settings: dict):
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in settings.items() if k in known and v is not None})


def open_tokenizer(bundle_dir: str, settings: dict) -> PoseTokenizer:
    """The runtime of the tokenizer models: a ``PoseTokenizer`` on the bundle.

    Args:
        bundle_dir: the bundle folder.
        settings: ``backend``, ``precision``, ``num_threads`` and ``verify``
            (missing keys take ``TokenizerOptions``' defaults).

    Returns:
        An open ``PoseTokenizer``.
    """
    return PoseTokenizer.from_bundle(bundle_dir, options=_options(TokenizerOptions, settings))


def open_estimator(bundle_dir: str, settings: dict) -> PoseEstimator:
    """The runtime of ``posetok_estimate``: a ``PoseEstimator`` on the bundle, in image mode.

    Args:
        bundle_dir: the bundle folder.
        settings: ``backend``, ``precision``, ``num_threads``, ``verify`` and
            ``flip_test`` and ``shift_test`` (missing keys take ``EstimatorOptions``'
            defaults).

    Returns:
        An open ``PoseEstimator``.
    """
    return PoseEstimator.from_bundle(bundle_dir, options=_options(EstimatorOptions, settings))


def _encode(tok: PoseTokenizer, inputs: dict) -> dict:
    return {"TOKEN_IDS": tok.encode(inputs["KEYPOINTS"])}


def _decode(tok: PoseTokenizer, inputs: dict) -> dict:
    return {"KEYPOINTS": tok.decode(inputs["TOKEN_IDS"])}


def _boxes(inputs: dict, images: np.ndarray) -> list:
    boxes = inputs.get("BOX")
    if boxes is None:
        return [None] * len(images)
    if len(boxes) != len(images):
        raise ValueError(f"BOX has {len(boxes)} rows for {len(images)} IMAGE frames; give one box per frame")
    return [tuple(int(v) for v in box) for box in boxes]


def _estimate(est: PoseEstimator, inputs: dict) -> dict:
    images = inputs["IMAGE"]
    poses = [est.estimate(image, box=box) for image, box in zip(images, _boxes(inputs, images))]
    return {"KEYPOINTS": np.stack([p.keypoints for p in poses]), "SCORES": np.stack([p.scores for p in poses]),
            "TOKEN_IDS": np.stack([p.token_ids for p in poses]),
            "PRESENCE": np.asarray([[p.presence] for p in poses], np.float32)}


KEYPOINTS = TensorDef("KEYPOINTS", "FP32", (NUM_KEYPOINTS, 2))
TOKEN_IDS = TensorDef("TOKEN_IDS", "INT32", ("num_tokens",))
IMAGE = TensorDef("IMAGE", "UINT8", (-1, -1, 3))
SCORES = TensorDef("SCORES", "FP32", (NUM_KEYPOINTS,))
PRESENCE = TensorDef("PRESENCE", "FP32", (1,))

MODELS: tuple[ServedModel, ...] = (
    ServedModel("posetok_encode", "encoder", (KEYPOINTS,), (TOKEN_IDS,), open_tokenizer, _encode,
                "keypoints in pixels of the 64-px frame -> token ids"),
    ServedModel("posetok_decode", "decoder", (TOKEN_IDS,), (KEYPOINTS,), open_tokenizer, _decode,
                "token ids -> keypoints in pixels of the 64-px frame"),
    ServedModel("posetok_estimate", "estimator", (IMAGE, TensorDef("BOX", "INT32", (4,), optional=True)),
                (KEYPOINTS, SCORES, TOKEN_IDS, PRESENCE), open_estimator, _estimate,
                "RGB frames (+ optional person boxes) -> keypoints in frame pixels, scores, token ids, presence"),
)


def _no_runtime(bundle_dir: str, settings: dict) -> None:
    return None


def pipeline_settings(bundle: Any, precision: str = "fp32") -> dict:
    """What the ``PIPELINE_STEPS`` need from the bundle, which the NGC container does not have.

    Args:
        bundle: a loaded ``posetok.Bundle``.
        precision: the precision of the ONNX estimator the ensemble runs.

    Returns:
        ``{"mean": [3 floats], "scale": [3 floats], "figure_share": float,
        "presence": {"weights": [...], "bias": float}}`` of the manifest's
        ``estimator`` section (the crop's normalization and size around a
        person box, the presence model of the ONNX files of ``precision``),
        or {} without an estimator.
    """
    section = bundle.spec.estimator or {}
    spec = section.get("input") or {}
    settings = {k: [float(v) for v in spec[k]] for k in ("mean", "scale") if k in spec}
    if "figure_share" in section:
        settings["figure_share"] = float(section["figure_share"])
    if section:
        settings["presence"] = bundle_presence_model(section.get("presence"), "onnx", precision)
    return settings


def _open_preprocess(bundle_dir: str, settings: dict) -> tuple:
    try:
        mean, scale = (np.asarray(settings[k], np.float32).reshape(3) for k in ("mean", "scale"))
        share = float(settings["figure_share"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"posetok_preprocess needs settings mean and scale (3 numbers each) and figure_share, "
                         f"got {settings}") from None
    if not 0 < share <= 1:
        raise ValueError(f"posetok_preprocess: figure_share must be in (0, 1], got {share}")
    return mean, scale, share


def _preprocess(norm: tuple, inputs: dict) -> dict:
    """Frames + boxes -> the estimator's input, as ``PoseEstimator.estimate(frame, box)`` makes it."""
    images, crops, squares = inputs["IMAGE"], [], []
    for image, box in zip(images, _boxes(inputs, images)):
        frame = _check_frame("IMAGE", image, (3,))
        square = person_crop(_check_box(box, frame.shape[1], frame.shape[0]), frame.shape[1], frame.shape[0], norm[2])
        crops.append(kernels.crop_image(frame, square, (FRAME_SIZE, FRAME_SIZE), mean=norm[0], scale=norm[1]))
        squares.append(square)
    return {"image": np.stack(crops), "crop_box": np.asarray(squares, np.int32).reshape(-1, 4)}


def _open_from_crop(bundle_dir: str, settings: dict) -> dict:
    model = settings.get("presence")
    weights = model.get("weights") if isinstance(model, dict) else None
    if not (isinstance(weights, list) and len(weights) == PRESENCE_FEATURES and
            all(is_real_number(w) and math.isfinite(w) for w in weights + [model.get("bias")])):
        raise ValueError(f"posetok_from_crop needs the setting presence: {{\"weights\": {PRESENCE_FEATURES} finite "
                         f"numbers, \"bias\": a finite number}}, got {model!r}")
    return model


def _from_crop(presence: dict, inputs: dict) -> dict:
    """Model-frame keypoints of a crop -> frame pixels (``PoseEstimator``'s formula), scores clipped to [0, 1],
    the presence of the pass (``PoseEstimator``'s model, at box_scale 1)."""
    boxes = inputs["crop_box"]
    px64 = normalized_to_pixels(np.asarray(inputs["keypoints"], np.float32))
    side = (boxes[:, 2] / FRAME_SIZE).astype(np.float32)
    keypoints = boxes[:, None, :2].astype(np.float32) + px64 * side[:, None, None]
    scores = np.clip(np.asarray(inputs["scores"], np.float32), 0.0, 1.0)
    chance = presence_probability(presence_features(px64, scores, FRAME_SIZE), presence)
    return {"KEYPOINTS": keypoints, "SCORES": scores, "PRESENCE": chance.astype(np.float32).reshape(-1, 1)}


# Python-backend steps of the ``posetok export --triton`` ensembles (the ONNX graphs
# run in Triton's onnxruntime backend and take model coordinates u = px / 32 - 1):
# pixel conversion around the tokenizer; frame crop before the estimator (the posetok
# kernels, mean and scale from ``pipeline_settings``) and frame pixels after it.
KEYPOINTS_MODEL = TensorDef("keypoints", "FP32", (NUM_KEYPOINTS, 2))
CROP_BOX = TensorDef("crop_box", "INT32", (4,))
PIPELINE_STEPS: tuple[ServedModel, ...] = (
    ServedModel("posetok_to_model", "encoder", (KEYPOINTS,), (KEYPOINTS_MODEL,), _no_runtime,
                lambda _, i: {"keypoints": pixels_to_normalized(i["KEYPOINTS"])},
                "keypoints in pixels -> model coordinates (the encoder's input)"),
    ServedModel("posetok_from_model", "decoder", (KEYPOINTS_MODEL,), (KEYPOINTS,), _no_runtime,
                lambda _, i: {"KEYPOINTS": normalized_to_pixels(i["keypoints"])},
                "model coordinates (the decoder's output) -> keypoints in pixels"),
    ServedModel("posetok_preprocess", "estimator", (IMAGE, TensorDef("BOX", "INT32", (4,))),
                (TensorDef("image", "FP32", (3, FRAME_SIZE, FRAME_SIZE)), CROP_BOX), _open_preprocess, _preprocess,
                "RGB frames + person boxes -> the estimator's input (posetok.kernels.crop_image) and the square box"),
    ServedModel("posetok_from_crop", "estimator",
                (KEYPOINTS_MODEL, TensorDef("scores", "FP32", (NUM_KEYPOINTS,)), CROP_BOX),
                (KEYPOINTS, SCORES, PRESENCE), _open_from_crop, _from_crop,
                "the estimator's model-frame keypoints and the square box -> frame pixels, presence"),
)


def served_model(name: str) -> ServedModel:
    """The ``MODELS`` entry called ``name``.

    Args:
        name: a Triton model name (``posetok_encode``), of ``MODELS`` or ``PIPELINE_STEPS``.

    Returns:
        Its ``ServedModel``.

    Raises:
        KeyError: no such model (the message lists the known ones).
    """
    for model in MODELS + PIPELINE_STEPS:
        if model.name == name:
            return model
    raise KeyError(f"no served model {name!r}; known: {', '.join(m.name for m in MODELS + PIPELINE_STEPS)}")


def run_batched(model: ServedModel, runtime: Any, requests: list[dict]) -> list[Union[dict, Exception]]:
    """Run the requests Triton's dynamic batcher grouped, as one batch when
    they all succeed, else one by one so a bad request fails alone.

    Args:
        model: the served model.
        runtime: what ``model.open`` returned.
        requests: one {input name: array with a leading batch dimension} per
            request (an optional input a request left out is absent); only
            requests with the same inputs and equal shapes are joined.

    Returns:
        One {output name: array} or the exception its request raised, per request, in order.
    """
    if len(requests) > 1 and all(r.keys() == requests[0].keys() for r in requests):
        sizes = [len(next(iter(r.values()))) for r in requests]
        try:
            joined = {name: np.concatenate([r[name] for r in requests]) for name in requests[0]}
            outputs = _typed(model, model.run(runtime, joined))
        except Exception:  # noqa: BLE001  one bad request: fall through and run each alone
            pass
        else:
            bounds = np.cumsum([0] + sizes)
            return [{k: v[lo:hi] for k, v in outputs.items()} for lo, hi in zip(bounds[:-1], bounds[1:])]
    results: list[Union[dict, Exception]] = []
    for request in requests:
        try:
            missing = [t.name for t in model.inputs if not t.optional and t.name not in request]
            if missing:  # Triton 2.51 lets a request of a model with optional inputs leave out a required one
                raise ValueError(f"the request has no input {', '.join(missing)}; {model.name} needs "
                                 f"{', '.join(t.name for t in model.inputs if not t.optional)}")
            results.append(_typed(model, model.run(runtime, request)))
        except Exception as exc:  # noqa: BLE001  reported to the client in its own response
            results.append(exc)
    return results


def _typed(model: ServedModel, outputs: dict) -> dict:
    return {t.name: np.ascontiguousarray(outputs[t.name], dtype=t.numpy_dtype) for t in model.outputs}
