"""The exporter's side of the bundle manifest: it fills the dataclasses of
``posetok.bundle`` (the one schema, which the runtime reads) and owns the
prose the manifest carries (quantization schemes, codebook lookup)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import posetok
from posetok import bundle as bundle_lib, token_search
from posetok.skeleton import KEYPOINT_NAMES, NORMALIZATION

from .metrics import search_table
from .model import codebook_int8_grid

MODEL_NAME = "posetok-stick13"

# One description per format/precision (the int8 rows describe their settings
# themselves: ``OnnxStaticInt8.describe``, ``TfliteStaticInt8.describe``).
SCHEMES = {
    ("onnx", "fp32"): "float32 weights and activations",
    ("onnx", "fp16"): "float16 weights cast to float32 at load; float32 activations",
    ("onnx", "int8w"): "int8 weights (symmetric, per output channel) restored to float32 by Cast+Mul at load; "
                       "float32 activations; keypoint-mixing matrices (~4% of the weights) kept float32",
    ("tflite", "fp32"): "float32 weights and activations",
    ("tflite", "fp16"): "float16 weights (ai-edge-quantizer float casting); float32 compute; "
                        "last layer of each graph kept float32",
    ("tflite", "int8w"): "int8 weights (per channel) explicitly dequantized; float32 compute "
                         "(ai-edge-quantizer weight-only); keypoint-mixing matrices (~4% of the weights) "
                         "and the last layer of each graph kept float32",
}
FLOAT_LOOKUP = ("The codebook, the squared-L2 distances, the argmin and the codebook gather "
                "run in float32 in every precision; quantization applies to the Mixer layers only.")
# How the reduced-precision files store the codebook (appended to FLOAT_LOOKUP in the manifest).
CODEBOOK_STORAGE = {
    "int8": ("The fp16, int8w and int8 files store the codebook as int8 codes times one scale "
             "(training leaves the codes on that grid) and turn it into the same float32 values at load."),
    "float32": ("The codebook is not on an int8 grid (a checkpoint from before training snapped it), "
                "so every file stores it as float32."),
}


def tensor_spec(name: str, shape: Sequence, dtype: str) -> bundle_lib.TensorSpec:
    return bundle_lib.TensorSpec(name, tuple(shape), dtype)


def artifact_record(path: Path, role: str, fmt: str, precision: str, batch: Optional[int],
                    inputs: Sequence[bundle_lib.TensorSpec], outputs: Sequence[bundle_lib.TensorSpec],
                    scheme: str) -> bundle_lib.Artifact:
    return bundle_lib.Artifact(file=path.name, role=role, format=fmt, precision=precision, batch=batch,
                               sha256=bundle_lib.file_sha256(path), size_bytes=path.stat().st_size,
                               inputs=tuple(inputs), outputs=tuple(outputs), quantization=scheme)


def codebook_storage(model) -> str:
    """"int8" when the reduced precisions can store the codebook losslessly as int8, else "float32"."""
    return "float32" if codebook_int8_grid(model.quantizer.codebook.numpy()) is None else "int8"


def build_manifest(model, checkpoint_sha256: str, reference: dict, artifacts: Sequence[bundle_lib.Artifact],
                   meta: dict) -> bundle_lib.Manifest:
    cfg = model.config
    info = bundle_lib.ModelInfo(name=MODEL_NAME, version=posetok.__version__, checkpoint_sha256=checkpoint_sha256,
                                config=cfg.to_dict(),
                                training={k: meta[k] for k in ("preset", "schedule", "seed") if k in meta})
    tokens = bundle_lib.TokenLayout(num_tokens=cfg.num_tokens, num_codes=cfg.num_codes, code_dim=cfg.code_dim,
                                    codebooks="per_token" if cfg.codebook_per_token else "shared")
    return bundle_lib.Manifest(model=info, keypoints=tuple(KEYPOINT_NAMES), normalization=dict(NORMALIZATION),
                               tokens=tokens, artifacts=tuple(artifacts),
                               float_lookup=FLOAT_LOOKUP + " " + CODEBOOK_STORAGE[codebook_storage(model)],
                               reference=dict(reference), token_search=search_section(model))


def search_section(model) -> dict:
    """The manifest's ``token_search``: what ``PoseTokenizer.encode`` runs after the encoder graph, the same search
    ``metrics.tokens_and_reconstruction`` runs on the torch model (so the parity rows compare like with like)."""
    return {"method": "greedy swaps of each position's code for a neighbouring code, kept when the decoded "
                      "pose moves closer to the input (posetok.token_search)",
            "sweeps": token_search.DEFAULT_SWEEPS,
            "code_neighbours": search_table(model).tolist()}
