"""Export a tokenizer checkpoint to a verified bundle: ONNX and TFLite graphs
in fp32 / fp16 / int8w / int8, plus ``manifest.json`` with parity figures.

The bundle is built in a temporary folder beside the destination and renamed
into place at the end, so an interrupted export never leaves a half bundle.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import onnx
import torch

from posetok import bundle as bundle_lib, signing
from posetok.atomic import write_bytes_atomic
from posetok.estimator import presence_rows
from posetok.skeleton import NUM_KEYPOINTS, pixels_to_normalized

from . import estimator_export, parity as parity_lib, quantize_onnx, quantize_tflite, tflite_flatbuffer
from .checkpoint import load_checkpoint, resolve_checkpoint
from .data import calibration_poses
from .estimator import same_tokenizer
from .graphs import DECODER_INPUT, DECODER_OUTPUT, ENCODER_INPUT, ENCODER_OUTPUT, split_graphs
from .manifest import SCHEMES, artifact_record, build_manifest, codebook_storage, tensor_spec
from .util import quiet

FORMATS = bundle_lib.FORMATS
PRECISIONS = bundle_lib.PRECISIONS
ONNX_OPSET = 18
TFLITE_BATCHES = (1, 64)       # litert-torch has no dynamic batch: one file per batch size
CALIBRATION_SIZE = 512


class ExportError(RuntimeError):
    """An export that cannot proceed (bad option, existing bundle, failed check)."""


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    formats: tuple[str, ...] = FORMATS
    precisions: tuple[str, ...] = PRECISIONS
    tflite_batches: tuple[int, ...] = TFLITE_BATCHES
    onnx_int8: quantize_onnx.OnnxStaticInt8 = quantize_onnx.OnnxStaticInt8()
    tflite_int8: quantize_tflite.TfliteStaticInt8 = quantize_tflite.TfliteStaticInt8()
    calibration_size: int = CALIBRATION_SIZE
    parity: bool = True  # measure parity and record it in the manifest
    # parity and the manifest's torch reference on the first N evaluation poses (None: all of them); the
    # decoder search makes encoding the whole set cost minutes, which tests on throwaway bundles need not pay
    parity_poses: Optional[int] = None
    # the estimator's int8: convolutions and the head's layers; the frozen soft decoder stays float32
    estimator_onnx_int8: quantize_onnx.OnnxStaticInt8 = quantize_onnx.OnnxStaticInt8(
        op_types=("Conv", "MatMul", "Gemm"), float_outside_mixer=False)
    estimator_tflite_int8: quantize_tflite.TfliteStaticInt8 = quantize_tflite.TfliteStaticInt8(
        ops=("CONV_2D", "FULLY_CONNECTED"), per_channel_weights="all", float_outside_mixer=False)
    estimator_calibration_size: int = 256

    def __post_init__(self):
        for name, given, allowed in (("format", self.formats, FORMATS), ("precision", self.precisions, PRECISIONS)):
            if not given:
                raise ExportError(f"no {name}s chosen; choose from {', '.join(allowed)}")
            unknown = [g for g in given if g not in allowed]
            if unknown:
                raise ExportError(f"unknown {name}(s) {', '.join(map(repr, unknown))}; "
                                  f"choose from {', '.join(allowed)}")
        if not self.tflite_batches or any(not isinstance(b, int) or b < 1 for b in self.tflite_batches):
            raise ExportError(f"TFLite batch sizes must be positive ints, got {self.tflite_batches!r}")
        if self.parity_poses is not None and (not isinstance(self.parity_poses, int) or self.parity_poses < 1):
            raise ExportError(f"parity_poses must be None or a positive int, got {self.parity_poses!r}")
        if self.calibration_size < max(self.tflite_batches):
            raise ExportError(f"calibration_size {self.calibration_size} is smaller than the largest "
                              f"TFLite batch {max(self.tflite_batches)}")


# -- serialization --------------------------------------------------------------

def compact_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """Short tensor and node names, no value_info: the exporter's and the
    quantizer's long generated names are a large share of a small int8 file.
    Graph input/output names are kept; float-only nodes keep their scope prefix."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    short: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        return short.setdefault(name, f"t{len(short)}")

    for init in graph.initializer:
        init.name = rename(init.name)
    for i, node in enumerate(graph.node):
        scope = quantize_onnx.node_scope(node)
        node.name = f"{scope}/{i}" if scope else f"n{i}"
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
        node.doc_string = ""
    del graph.value_info[:]
    return out


# -- graph conversion -------------------------------------------------------------

def export_onnx_fp32(graph: torch.nn.Module, example: torch.Tensor, input_name: str,
                     output_names: str | Sequence[str]) -> onnx.ModelProto:
    """torch.export-based ONNX export with a dynamic batch dimension, checked."""
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    names = [output_names] if isinstance(output_names, str) else list(output_names)
    with quiet():
        program = torch.onnx.export(graph, (example,), input_names=[input_name], output_names=names,
                                    dynamic_shapes={input_name: {0: batch}}, opset_version=ONNX_OPSET,
                                    dynamo=True, external_data=False, verbose=False)
    proto = program.model_proto
    quantize_onnx.mark_float_nodes(proto)
    return proto


def onnx_variant(fp32: onnx.ModelProto, precision: str, calibration: np.ndarray,
                 options: ExportOptions) -> onnx.ModelProto:
    if precision == "fp32":
        return fp32
    if precision == "fp16":
        body = quantize_onnx.onnx_fp16_weights(fp32)
    elif precision == "int8w":
        body = quantize_onnx.onnx_int8_weights(fp32)
    else:
        with quiet():
            body = quantize_onnx.onnx_int8_static(fp32, calibration, options.onnx_int8)
    return quantize_onnx.onnx_codebook_int8(body)


def export_tflite_fp32(graph: torch.nn.Module, example: torch.Tensor) -> bytes:
    with quiet():
        import litert_torch

        litert_torch.config.show_progress = False
        return bytes(litert_torch.convert(graph, (example,)).model_content())


def tflite_variant(fp32: bytes, precision: str, calibration: np.ndarray, options: ExportOptions) -> bytes:
    """Every batch variant is calibrated on the whole calibration set; exact
    min/max over the same samples gives the variants the same activation
    ranges (see ``quantize_tflite.tflite_calibrate``)."""
    if precision == "fp32":
        return fp32
    with quiet():
        quantized = quantize_tflite.tflite_quantize(fp32, precision, calibration, options.tflite_int8)
        return tflite_flatbuffer.tflite_codebook_int8(quantized)


def tflite_tensor_specs(model: bytes) -> tuple[list[bundle_lib.TensorSpec], list[bundle_lib.TensorSpec]]:
    """The real first input/output of a .tflite file (the converter names them, not us)."""
    interp = quantize_tflite.tflite_interpreter(model)
    spec = lambda d: tensor_spec(d["name"], [int(n) for n in d["shape"]], np.dtype(d["dtype"]).name)
    return [spec(interp.get_input_details()[0])], [spec(interp.get_output_details()[0])]


def check_onnx(model: onnx.ModelProto, what: str) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # the checker raises several types
        raise ExportError(f"{what}: onnx.checker rejected the graph: {exc}") from exc


# -- the bundle -------------------------------------------------------------------------

def _replace_dir(built: Path, out_dir: Path, force: bool) -> None:
    """Rename ``built`` to ``out_dir``; with ``force`` an existing bundle is moved aside first."""
    old = None
    if out_dir.exists():
        if not force:
            raise ExportError(f"{out_dir} already exists; pass --force to replace it")
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / out_dir.name)
    os.replace(built, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_bundle(out_dir: os.PathLike | str, checkpoint: Optional[os.PathLike | str] = None,
                  options: ExportOptions = ExportOptions(), force: bool = False,
                  progress: Callable[[str], None] = print, estimator=None,
                  sign_key: Optional[os.PathLike | str] = None) -> dict:
    """Export ``checkpoint`` (default: the shipped model) to the bundle folder ``out_dir``.

    ``estimator``: a tokens-head ``PoseEstimatorModel`` trained against this very tokenizer, exported beside it
    (role ``estimator``); None: tokenizer only. ``sign_key``: PEM file of an elliptic-curve private key; the
    bundle is signed (``model.sig``, posetok.signing) in the temporary folder, before the rename.

    Returns the manifest (the JSON object written). Raises ExportError if ``out_dir`` exists and not ``force``,
    or if the estimator's frozen tokenizer is not this checkpoint.
    """
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and not force:
        raise ExportError(f"{out_dir} already exists; pass --force to replace it")
    if out_dir.exists() and not (out_dir / bundle_lib.MANIFEST_NAME).is_file() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir} is a non-empty folder that is not a bundle; refusing to replace it")
    if sign_key is not None:
        signing.check_private_key(sign_key)  # a bad key fails now, not after the export
    ckpt_path = resolve_checkpoint(checkpoint)
    model, meta = load_checkpoint(ckpt_path)
    ckpt_sha = bundle_lib.file_sha256(ckpt_path)
    if estimator is not None and not same_tokenizer(estimator, model):
        raise ExportError(f"the estimator was trained against another tokenizer than {ckpt_path}; "
                          "its token ids would mean other codes (train it with --tokenizer, or continue it onto this "
                          "tokenizer with --init DIR --retarget)")
    if codebook_storage(model) == "float32":
        progress(f"note: the codebook of {ckpt_path} is not on an int8 grid (trained before codebooks were "
                 "snapped); the reduced-precision files keep it as float32")
    started = time.perf_counter()
    steps = _plan(options) + (_plan_estimator(options) if estimator is not None else 0)
    done = 0

    def step(message: str) -> None:
        nonlocal done
        done += 1
        progress(f"[{done:2d}/{steps}] {time.perf_counter() - started:6.1f}s  {message}")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    grad_was_enabled = torch.is_grad_enabled()
    try:
        torch.set_grad_enabled(False)
        encoder, decoder = split_graphs(model)
        calib_kp = pixels_to_normalized(calibration_poses(options.calibration_size))
        calib_ids = encoder(torch.from_numpy(calib_kp)).numpy()
        calibration = {"encoder": calib_kp, "decoder": calib_ids}
        graphs = {"encoder": (encoder, ENCODER_INPUT, ENCODER_OUTPUT),
                  "decoder": (decoder, DECODER_INPUT, DECODER_OUTPUT)}
        m = model.config.num_tokens
        io_specs = {"encoder": ([tensor_spec(ENCODER_INPUT, ["batch", NUM_KEYPOINTS, 2], "float32")],
                                [tensor_spec(ENCODER_OUTPUT, ["batch", m], "int32")]),
                    "decoder": ([tensor_spec(DECODER_INPUT, ["batch", m], "int32")],
                                [tensor_spec(DECODER_OUTPUT, ["batch", NUM_KEYPOINTS, 2], "float32")])}
        artifacts: list[bundle_lib.Artifact] = []
        if "onnx" in options.formats:
            artifacts += _export_onnx(graphs, calibration, io_specs, options, work, step)
        if "tflite" in options.formats:
            artifacts += _export_tflite(graphs, calibration, options, work, step)
        estimator_section = {}
        if estimator is not None:
            estimator_files, estimator_section = _export_estimator(estimator, model, options, work, step)
            artifacts += estimator_files
        reference = parity_lib.torch_reference(model, count=options.parity_poses)
        step(f"torch reference on {reference.num_poses} eval poses: mpjpe {reference.mpjpe_px:.4f} px")
        manifest = build_manifest(model, ckpt_sha, reference.summary(), artifacts, meta)
        if estimator_section:
            manifest = dataclasses.replace(manifest, estimator=estimator_section)
        bundle_lib.write_manifest(work, manifest)
        if options.parity:
            rows = []
            for fmt, precision in manifest.rows():
                row = parity_lib.measure_row(work, fmt, precision, reference)
                rows.append(row)
                step(f"parity {fmt} {precision}: tokens {row['token_agreement']:.4f}, "
                     f"mpjpe {row['mpjpe_px']:.4f} px, decoder max err {row['decoder_max_abs_err_px']:.2e} px")
            manifest = parity_lib.attach_parity(manifest, rows)
            if estimator is not None:
                manifest = dataclasses.replace(manifest, estimator={
                    **manifest.estimator, "parity": estimator_export.estimator_parity(work, manifest, estimator, step)})
            bundle_lib.write_manifest(work, manifest)
        if sign_key is not None:
            signing.sign_bundle(work, sign_key)
            progress(f"signed with {sign_key}: {signing.SIGNATURE_NAME} covers every file")
        _replace_dir(work, out_dir, force)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        torch.set_grad_enabled(grad_was_enabled)
    progress(f"wrote {out_dir} ({len(artifacts)} files) in {time.perf_counter() - started:.0f} s")
    return manifest.to_dict()


def _export_onnx(graphs: dict, calibration: dict, io_specs: dict, options: ExportOptions, work: Path,
                 step: Callable[[str], None]) -> list[bundle_lib.Artifact]:
    artifacts = []
    for role, (graph, in_name, out_name) in graphs.items():
        example = torch.from_numpy(calibration[role][:4])
        fp32 = export_onnx_fp32(graph, example, in_name, out_name)
        step(f"onnx {role}: exported fp32 (opset {ONNX_OPSET}, dynamic batch)")
        artifacts += _write_onnx_precisions(role, fp32, calibration[role], options, io_specs[role], work, step)
    return artifacts


def _write_onnx_precisions(role: str, fp32: onnx.ModelProto, calibration: np.ndarray, options: ExportOptions,
                           io_specs: tuple, work: Path, step: Callable[[str], None]) -> list[bundle_lib.Artifact]:
    """``role.<precision>.onnx`` for every precision asked for, checked, with its manifest record."""
    artifacts = []
    for precision in options.precisions:
        proto = compact_onnx(onnx_variant(fp32, precision, calibration, options))
        what = f"{role}.{precision}.onnx"
        check_onnx(proto, what)
        path = work / what
        write_bytes_atomic(path, proto.SerializeToString())
        scheme = options.onnx_int8.describe() if precision == "int8" else SCHEMES[("onnx", precision)]
        artifacts.append(artifact_record(path, role, "onnx", precision, None, *io_specs, scheme))
        step(f"onnx {role} {precision}: {path.stat().st_size / 1024:.0f} KiB, checker ok")
    return artifacts


def _export_tflite(graphs: dict, calibration: dict, options: ExportOptions, work: Path,
                   step: Callable[[str], None]) -> list[bundle_lib.Artifact]:
    artifacts = []
    for role, (graph, _, _) in graphs.items():
        def specs(path: Path, data: bytes, batch: int, role=role) -> tuple[list, list]:
            inputs, outputs = tflite_tensor_specs(data)
            _check_tflite_io(path.name, inputs[0], outputs[0], role)
            return inputs, outputs
        artifacts += _write_tflite_batches(role, graph, calibration[role], options, work, step, specs)
    return artifacts


def _write_tflite_batches(role: str, graph: torch.nn.Module, calibration: np.ndarray, options: ExportOptions,
                          work: Path, step: Callable[[str], None],
                          specs: Callable[[Path, bytes, int], tuple[list, list]]) -> list[bundle_lib.Artifact]:
    """``role.<precision>.b<batch>.tflite`` for every batch size and precision; ``specs(path, data, batch)``
    checks a written file and returns its manifest (inputs, outputs)."""
    artifacts = []
    for batch in sorted(options.tflite_batches, reverse=True):
        fp32 = export_tflite_fp32(graph, torch.from_numpy(calibration[:batch]))
        step(f"tflite {role} batch {batch}: converted fp32")
        for precision in options.precisions:
            data = tflite_flatbuffer.compact_tflite(tflite_variant(fp32, precision, calibration, options))
            path = work / f"{role}.{precision}.b{batch}.tflite"
            write_bytes_atomic(path, data)
            inputs, outputs = specs(path, data, batch)
            scheme = options.tflite_int8.describe() if precision == "int8" else SCHEMES[("tflite", precision)]
            artifacts.append(artifact_record(path, role, "tflite", precision, batch, inputs, outputs, scheme))
            step(f"tflite {role} {precision} batch {batch}: {path.stat().st_size / 1024:.0f} KiB")
    return artifacts


def _export_estimator(estimator, tokenizer, options: ExportOptions, work: Path,
                      step: Callable[[str], None]) -> tuple[list[bundle_lib.Artifact], dict]:
    """The estimator's files (ONNX and TFLite; every precision asked for) and the manifest's ``estimator``
    section. int8 covers the convolutions and the head's layers; the frozen soft decoder stays float32."""
    graph = estimator_export.estimator_graph(estimator)
    calibration = estimator_export.calibration_inputs(options.estimator_calibration_size)
    num_tokens = tokenizer.config.num_tokens
    artifacts = []
    if "onnx" in options.formats:
        fp32 = export_onnx_fp32(graph, torch.from_numpy(calibration[:4]), estimator_export.ESTIMATOR_INPUT,
                                estimator_export.ESTIMATOR_OUTPUTS)
        step(f"onnx estimator: exported fp32 (opset {ONNX_OPSET}, dynamic batch)")
        settings = dataclasses.replace(options, onnx_int8=options.estimator_onnx_int8)
        artifacts += _write_onnx_precisions("estimator", fp32, calibration, settings,
                                            estimator_export.estimator_io_specs(num_tokens), work, step)
    if "tflite" in options.formats:
        def specs(path: Path, data: bytes, batch: int) -> tuple[list, list]:
            return estimator_export.check_tflite_estimator(path, num_tokens, batch)
        settings = dataclasses.replace(options, tflite_int8=options.estimator_tflite_int8)
        artifacts += _write_tflite_batches("estimator", graph, calibration, settings, work, step, specs)
    presence = estimator_export.presence_models(estimator, work, artifacts)
    step("estimator presence models (on fresh crops: figure crops kept, backdrop crops caught): " +
         ", ".join(f"{name} {m['figure_kept']:.0%}, {m['backdrop_caught']:.0%}" for name, m in presence_rows(presence)))
    section = {"input": estimator_export.estimator_input_contract(), "config": estimator.config.to_dict(),
               "figure_share": estimator_export.frames.FIGURE_SHARE, "presence": presence}
    return artifacts, section


def _check_tflite_io(file: str, inp: bundle_lib.TensorSpec, out: bundle_lib.TensorSpec, role: str) -> None:
    """Quantizers may turn graph inputs into int8; the runtime contract is float/int32 I/O."""
    want_in, want_out = ("float32", "int32") if role == "encoder" else ("int32", "float32")
    if inp.dtype != want_in or out.dtype != want_out:
        raise ExportError(f"{file}: input/output dtypes are {inp.dtype}/{out.dtype}, "
                          f"the bundle contract needs {want_in}/{want_out}")


def _plan(options: ExportOptions) -> int:
    """Number of progress steps, so every line can say where the export stands."""
    n = 1  # reference
    if "onnx" in options.formats:
        n += 2 * (1 + len(options.precisions))
    if "tflite" in options.formats:
        n += 2 * len(options.tflite_batches) * (1 + len(options.precisions))
    if options.parity:
        n += len(options.formats) * len(options.precisions)
    return n


def _plan_estimator(options: ExportOptions) -> int:
    n = 1  # presence models
    n += (1 + len(options.precisions)) if "onnx" in options.formats else 0
    if "tflite" in options.formats:
        n += len(options.tflite_batches) * (1 + len(options.precisions))
    if options.parity:
        n += len(options.formats) * len(options.precisions)
    return n
