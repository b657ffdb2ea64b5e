"""Triton model repositories: config.pbtxt text and the folders around it.

``config_text`` writes one model configuration in protobuf text format
(``inference.ModelConfig``); ``write_serving_repository`` lays out the
Python-backend repository ``posetok serve`` runs, one model per
``models.MODELS`` entry the bundle can serve. ``posetok export --triton``
(``posetok_converters.triton_repository``) uses ``config_text`` too.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional, Sequence

from ..atomic import write_text_atomic
from ..bundle import BundleError
from .models import MODELS, ServedModel

# The model file of every Python-backend model posetok writes: the class lives in the package.
PYTHON_MODEL_SOURCE = '"""A posetok model for the Triton Python backend; the code is in posetok.serving."""\n' \
                      "from posetok.serving.python_model import TritonPythonModel  # noqa: F401\n"


@dataclasses.dataclass(frozen=True)
class Batching:
    """Dynamic batching settings of a model.

    Attributes:
        enabled: write a ``dynamic_batching`` block (False: Triton runs each
            request on its own).
        max_batch_size: the largest batch one execution gets (and one request may carry).
        max_queue_delay_us: how long the batcher waits to fill a batch.
        max_queue_size: requests waiting beyond this are refused at once
            (HTTP 503 / gRPC UNAVAILABLE) instead of queueing without bound.
        preferred_batch_sizes: batch sizes the batcher forms when it can.
    """

    enabled: bool = True
    max_batch_size: int = 64
    max_queue_delay_us: int = 500
    max_queue_size: int = 256
    preferred_batch_sizes: tuple[int, ...] = ()

    def __post_init__(self):
        for name in ("max_batch_size", "max_queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_queue_delay_us < 0:
            raise ValueError(f"max_queue_delay_us must be >= 0, got {self.max_queue_delay_us}")


def _quote(text: str) -> str:
    return json.dumps(str(text))  # a protobuf text string: double quotes, backslash escapes


def _tensors(kind: str, tensors: Sequence[tuple]) -> list[str]:
    lines = [f"{kind} ["]
    for i, (name, dtype, dims, *optional) in enumerate(tensors):
        sep = "," if i < len(tensors) - 1 else ""
        flag = " optional: true" if optional and optional[0] else ""
        lines.append(f"  {{ name: {_quote(name)} data_type: TYPE_{dtype} "
                     f"dims: [ {', '.join(str(int(d)) for d in dims)} ]{flag} }}{sep}")
    lines.append("]")
    return lines


def config_text(name: str, inputs: Sequence[tuple], outputs: Sequence[tuple], *, backend: Optional[str] = None,
                platform: Optional[str] = None, batching: Optional[Batching] = None, instances: int = 1,
                parameters: Optional[dict] = None,
                ensemble_steps: Sequence[tuple[str, dict, dict]] = ()) -> str:
    """One config.pbtxt.

    Args:
        name: the model name (also its folder name).
        inputs: (name, Triton dtype without ``TYPE_``, per-item dims) per
            input, optionally a fourth item: True for an optional input.
        outputs: the same per output.
        backend: ``"python"``, ``"onnxruntime"``, ...; or None with ``platform``.
        platform: ``"onnxruntime_onnx"`` or ``"ensemble"``; or None with ``backend``.
        batching: max batch size and dynamic batching; None: ``max_batch_size: 0``
            (the tensors have no batch dimension).
        instances: model instances on the CPU (``instance_group`` count);
            ignored for an ensemble, which has none.
        parameters: string parameters the model reads (``parameters`` map).
        ensemble_steps: for ``platform="ensemble"``: (model name, {its input:
            ensemble tensor}, {its output: ensemble tensor}) per step.

    Returns:
        The text, ending in a newline.

    Raises:
        ValueError: neither or both of backend and platform, instances < 1.
    """
    if (backend is None) == (platform is None):
        raise ValueError("give exactly one of backend and platform")
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    lines = [f"name: {_quote(name)}"]
    lines.append(f"backend: {_quote(backend)}" if backend else f"platform: {_quote(platform)}")
    lines.append(f"max_batch_size: {batching.max_batch_size if batching else 0}")
    lines += _tensors("input", inputs) + _tensors("output", outputs)
    if batching and batching.enabled and platform != "ensemble":
        lines.append("dynamic_batching {")
        if batching.preferred_batch_sizes:
            lines.append(f"  preferred_batch_size: [ {', '.join(map(str, batching.preferred_batch_sizes))} ]")
        lines.append(f"  max_queue_delay_microseconds: {batching.max_queue_delay_us}")
        lines.append(f"  default_queue_policy {{ max_queue_size: {batching.max_queue_size} }}")
        lines.append("}")
    if platform != "ensemble":
        lines.append(f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]")
    for key, value in (parameters or {}).items():
        lines.append(f"parameters {{ key: {_quote(key)} value: {{ string_value: {_quote(value)} }} }}")
    if ensemble_steps:
        lines.append("ensemble_scheduling {")
        for model_name, input_map, output_map in ensemble_steps:
            lines.append(f"  step {{ model_name: {_quote(model_name)} model_version: -1")
            lines += [f"    input_map {{ key: {_quote(k)} value: {_quote(v)} }}" for k, v in input_map.items()]
            lines += [f"    output_map {{ key: {_quote(k)} value: {_quote(v)} }}" for k, v in output_map.items()]
            lines.append("  }")
        lines.append("}")
    return "\n".join(lines) + "\n"


def served_config(model: ServedModel, bundle, batching: Batching, instances: int, parameters: dict) -> str:
    """config.pbtxt of one ``MODELS`` entry as a Python-backend model.

    Args:
        model: the ``ServedModel``.
        bundle: the loaded ``posetok.Bundle`` (fills in M and V).
        batching: max batch size and dynamic batching.
        instances: model instances.
        parameters: string parameters for ``python_model.TritonPythonModel``.

    Returns:
        The config.pbtxt text.
    """
    spec = lambda tensors: [(t.name, t.dtype, t.shape(bundle), t.optional) for t in tensors]
    return config_text(model.name, spec(model.inputs), spec(model.outputs), backend="python",
                       batching=batching, instances=instances, parameters=parameters)


def write_python_model(repo: Path, name: str, config: str, version: int = 1) -> Path:
    """One Python-backend model folder: ``NAME/config.pbtxt`` and ``NAME/VERSION/model.py``.

    Args:
        repo: the model repository folder.
        name: the model name.
        config: its config.pbtxt text.
        version: the version folder's number.

    Returns:
        The model folder.
    """
    folder = Path(repo) / name
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "config.pbtxt", config)
    write_text_atomic(folder / str(version) / "model.py", PYTHON_MODEL_SOURCE)
    return folder


def servable_models(bundle, precision: Optional[str]) -> list[ServedModel]:
    """The ``MODELS`` entries a bundle can serve in one precision.

    Args:
        bundle: the loaded ``posetok.Bundle``.
        precision: the graphs to serve (``fp32``, ...); None: any.

    Returns:
        The entries whose role has graphs in ``precision``, in ``MODELS`` order
        (an estimator exported in fp32 only leaves the tokenizer's models in fp16).

    Raises:
        BundleError: none can be served; the message names the precision and
            the graphs the bundle offers (an empty repository would only make
            tritonserver fail later with "failed to stat file .../models").
    """
    found = [model for model in MODELS if model.available(bundle, precision)]
    if not found:
        offered = sorted({f"{a.format}/{a.precision}" for a in bundle.artifacts})
        raise BundleError(f"bundle {bundle.root} has no {precision} graphs; it offers "
                          f"{', '.join(offered) or 'no graphs'}")
    return found


def write_serving_repository(repo: Path, bundle, settings: dict, batching: Batching,
                             instances: int = 1) -> list[str]:
    """The repository ``posetok serve`` runs: one Python-backend model per
    ``MODELS`` entry the bundle can serve (it has the role's graphs in
    ``settings["precision"]``), each opening the bundle itself.

    Args:
        repo: an empty or new folder.
        bundle: the loaded ``posetok.Bundle``.
        settings: ``backend``, ``precision``, ``num_threads``, ``verify`` (and
            ``flip_test`` and ``shift_test``, which only the estimator reads) for the models'
            ``open`` (written as JSON into each config).
        batching: max batch size and dynamic batching.
        instances: model instances per model.

    Returns:
        The names of the models written.

    Raises:
        BundleError: the bundle has no graphs in that precision (``servable_models``).
    """
    names = []
    for model in servable_models(bundle, settings.get("precision")):
        parameters = {"posetok_model": model.name, "bundle": str(Path(bundle.root).resolve()),
                      "settings": json.dumps(settings, sort_keys=True)}
        write_python_model(Path(repo), model.name, served_config(model, bundle, batching, instances, parameters))
        names.append(model.name)
    return names
