"""``posetok export --triton DIR``: a Triton model repository for the NGC container.

From a bundle it writes (``M`` = tokens per pose, dims without the batch dimension):

    posetok_encoder     onnxruntime_onnx  keypoints [13,2] FP32 (model coordinates) -> token_ids [M] INT32
    posetok_decoder     onnxruntime_onnx  token_ids [M] INT32 -> keypoints [13,2] FP32 (model coordinates)
    posetok_to_model    python            KEYPOINTS [13,2] FP32 pixels -> keypoints (model coordinates)
    posetok_from_model  python            keypoints (model coordinates) -> KEYPOINTS [13,2] FP32 pixels
    posetok_encode      ensemble          KEYPOINTS pixels -> TOKEN_IDS      (to_model, encoder)
    posetok_decode      ensemble          TOKEN_IDS -> KEYPOINTS pixels      (decoder, from_model)

and, when the bundle has an estimator:

    posetok_estimator   onnxruntime_onnx  image [3,64,64] FP32 -> keypoints [13,2] FP32 (model coordinates),
                                          scores [13] FP32, token_ids [M] INT32
    posetok_preprocess  python            IMAGE [-1,-1,3] UINT8 RGB frame, BOX [4] INT32 (x, y, w, h)
                                          -> image (posetok.kernels.crop_image), crop_box [4] INT32 (the square)
    posetok_from_crop   python            keypoints, scores, crop_box -> KEYPOINTS [13,2] FP32 frame pixels,
                                          SCORES [13] FP32 clipped to [0, 1], PRESENCE [1] FP32
    posetok_estimate    ensemble          IMAGE, BOX -> KEYPOINTS, SCORES, TOKEN_IDS, PRESENCE (preprocess,
                                          estimator, from_crop)

The ensemble ``posetok_estimate`` needs a BOX (``posetok serve``'s model of
that name searches the frame without one: two passes, which an ensemble's
fixed graph of steps cannot express). The ONNX models are the bundle's files
of one precision, copied into ``NAME/1/model.onnx``; the Python-backend steps
are ``posetok.serving.models`` ``PIPELINE_STEPS`` entries, given the crop's
mean and scale and the presence model of the copied estimator files through
their ``settings`` parameter (the container has no bundle). One more graph is
one ``ONNX_MODELS`` row; one more ensemble is one ``ENSEMBLES`` row (its
Python steps go in ``PIPELINE_STEPS``). A graph whose
role the bundle lacks is left out, with the steps and ensembles that use it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

from posetok.bundle import Bundle, BundleError
from posetok.serving.models import PIPELINE_STEPS, pipeline_settings
from posetok.serving.repository import Batching, config_text, served_config, write_python_model

_DTYPES = {"float32": "FP32", "int32": "INT32", "int64": "INT64", "uint8": "UINT8", "float16": "FP16"}
# Triton model name -> bundle role of its ONNX graph
ONNX_MODELS = {"posetok_encoder": "encoder", "posetok_decoder": "decoder", "posetok_estimator": "estimator"}
OPTIONAL_ROLES = {"estimator"}  # a bundle without one gets a repository without its models
# ensemble name -> (inputs, outputs, steps); a step is (model, {its input: ensemble tensor}, {its output: tensor})
ENSEMBLES = {
    "posetok_encode": (("KEYPOINTS",), ("TOKEN_IDS",), (
        ("posetok_to_model", {"KEYPOINTS": "KEYPOINTS"}, {"keypoints": "keypoints_model"}),
        ("posetok_encoder", {"keypoints": "keypoints_model"}, {"token_ids": "TOKEN_IDS"}))),
    "posetok_decode": (("TOKEN_IDS",), ("KEYPOINTS",), (
        ("posetok_decoder", {"token_ids": "TOKEN_IDS"}, {"keypoints": "keypoints_model"}),
        ("posetok_from_model", {"keypoints": "keypoints_model"}, {"KEYPOINTS": "KEYPOINTS"}))),
    "posetok_estimate": (("IMAGE", "BOX"), ("KEYPOINTS", "SCORES", "TOKEN_IDS", "PRESENCE"), (
        ("posetok_preprocess", {"IMAGE": "IMAGE", "BOX": "BOX"}, {"image": "image", "crop_box": "crop_box"}),
        ("posetok_estimator", {"image": "image"},
         {"keypoints": "keypoints_model", "scores": "scores_model", "token_ids": "TOKEN_IDS"}),
        ("posetok_from_crop", {"keypoints": "keypoints_model", "scores": "scores_model", "crop_box": "crop_box"},
         {"KEYPOINTS": "KEYPOINTS", "SCORES": "SCORES", "PRESENCE": "PRESENCE"}))),
}


def _onnx_tensors(specs) -> list[tuple[str, str, list[int]]]:
    out = []
    for spec in specs:
        if spec.dtype not in _DTYPES:
            raise BundleError(f"tensor {spec.name}: dtype {spec.dtype} has no Triton type here")
        if not spec.shape or spec.shape[0] != "batch":
            raise BundleError(f"tensor {spec.name}: shape {list(spec.shape)} has no leading batch dimension")
        out.append((spec.name, _DTYPES[spec.dtype], [int(d) for d in spec.shape[1:]]))
    return out


def write_triton_repository(out: Path | str, bundle_dir: Path | str, precision: str = "fp32",
                            batching: Optional[Batching] = None, instances: int = 1, force: bool = False) -> list[str]:
    """Write the model repository.

    Args:
        out: the repository folder to create.
        bundle_dir: an exported bundle.
        precision: which ONNX graphs of the bundle to copy.
        batching: max batch size and dynamic batching of every non-ensemble model (None: ``Batching()``).
        instances: CPU instances per model.
        force: replace an existing ``out``.

    Returns:
        The model names written.

    Raises:
        FileExistsError: ``out`` exists and ``force`` is False.
        BundleError: the bundle has a role of ``ONNX_MODELS`` but no
            dynamic-batch ONNX graph of it in ``precision``, or no encoder or decoder at all.
    """
    out, batching = Path(out), batching or Batching()
    if out.exists():
        if not force:
            raise FileExistsError(f"{out} exists (pass --force to replace it)")
        shutil.rmtree(out)
    bundle = Bundle.load(bundle_dir)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    tensors = {}  # (model, tensor name) -> (name, dtype, dims)
    roles = {a.role for a in bundle.artifacts}
    for name, role in ONNX_MODELS.items():
        if role not in roles and role in OPTIONAL_ROLES:
            continue
        graphs = [a for a in bundle.select(role, "onnx", precision) if a.batch is None]
        if not graphs:
            raise BundleError(f"bundle {bundle.root} has no dynamic-batch {precision} ONNX {role}")
        artifact = graphs[0]
        inputs, outputs = _onnx_tensors(artifact.inputs), _onnx_tensors(artifact.outputs)
        (staging / name / "1").mkdir(parents=True)
        shutil.copyfile(bundle.path_of(artifact), staging / name / "1" / "model.onnx")
        (staging / name / "config.pbtxt").write_text(config_text(
            name, inputs, outputs, platform="onnxruntime_onnx", batching=batching, instances=instances))
        tensors.update({(name, t[0]): t for t in inputs + outputs})
    parameters = {"bundle": "", "settings": json.dumps(pipeline_settings(bundle, precision), sort_keys=True)}
    for step in PIPELINE_STEPS:
        if not step.available(bundle):
            continue
        write_python_model(staging, step.name, served_config(step, bundle, batching, instances,
                                                             {"posetok_model": step.name, **parameters}))
        tensors.update({(step.name, t.name): (t.name, t.dtype, list(t.shape(bundle)))
                        for t in step.inputs + step.outputs})
    written = {model for model, _ in tensors}
    for name, (inputs, outputs, steps) in ENSEMBLES.items():
        if any(model not in written for model, _, _ in steps):
            continue
        public = {}  # ensemble tensor -> (its name, dtype, dims) of the step tensor it is mapped to
        for model, input_map, output_map in steps:  # every step tensor exists on its model
            for tensor, outer in list(input_map.items()) + list(output_map.items()):
                if (model, tensor) not in tensors:
                    raise BundleError(f"ensemble {name}: {model} has no tensor {tensor!r}")
                public.setdefault(outer, (outer,) + tensors[(model, tensor)][1:])
        (staging / name / "1").mkdir(parents=True)
        (staging / name / "config.pbtxt").write_text(config_text(
            name, [public[t] for t in inputs], [public[t] for t in outputs], platform="ensemble",
            batching=batching, ensemble_steps=steps))
    staging.rename(out)
    return sorted(p.name for p in out.iterdir())
