"""TFLite int8 calibration: the fast path (the interpreter's own min/max over
every batch, in the form the recipe's per-op pass gives them) must hand the
quantizer exactly what the per-op pass over every batch would, so the int8
files are the same bytes."""
from __future__ import annotations

import numpy as np
import pytest

CALIBRATION_POSES = 48  # the per-op pass runs one batch-1 graph per pose: a few seconds


@pytest.fixture(scope="module")
def encoder_batch1():
    """The shipped tokenizer's encoder converted at batch 1, and calibration keypoints for it."""
    import torch

    from posetok.skeleton import pixels_to_normalized
    from posetok_converters.checkpoint import load_checkpoint
    from posetok_converters.data import calibration_poses
    from posetok_converters.export import export_tflite_fp32, split_graphs

    model, _ = load_checkpoint(None)
    encoder, _ = split_graphs(model)
    keypoints = pixels_to_normalized(calibration_poses(CALIBRATION_POSES))
    with torch.no_grad():
        fp32 = export_tflite_fp32(encoder, torch.from_numpy(keypoints[:1]))
    return fp32, keypoints


def test_fast_calibration_gives_the_per_op_ranges_and_the_same_int8_bytes(encoder_batch1):
    from ai_edge_quantizer import quantizer as aeq

    from posetok_converters import compat, quantize_tflite
    from posetok_converters.quantize_tflite import TfliteStaticInt8

    fp32, keypoints = encoder_batch1

    def fresh_quantizer():
        return aeq.Quantizer(bytearray(fp32), quantize_tflite._tflite_model_recipe(fp32, "int8", TfliteStaticInt8()))

    fast_q, slow_q = fresh_quantizer(), fresh_quantizer()
    fast = quantize_tflite.tflite_calibrate(fp32, keypoints, fast_q)
    slow = quantize_tflite._per_op_ranges(fp32, quantize_tflite._calibration_batches(fp32, keypoints),
                                          compat.recipe_manager(slow_q))
    assert len(slow) > 10 and sorted(fast) == sorted(slow)
    for name, qsv in slow.items():
        for key in ("min", "max"):
            got = fast[name][key]
            assert got.dtype == qsv[key].dtype and got.shape == qsv[key].shape, (name, key, got.dtype, got.shape)
            np.testing.assert_array_equal(got, qsv[key], err_msg=f"{name} {key}")
    # the ranges cover every pose, not the first batch only (the fast path learns the tensors from that one)
    first = quantize_tflite._per_op_ranges(fp32, quantize_tflite._calibration_batches(fp32, keypoints[:1]),
                                           compat.recipe_manager(fresh_quantizer()))
    assert any(not np.array_equal(first[n]["max"], slow[n]["max"]) for n in slow)

    def quantized(q, ranges) -> bytes:
        return bytes(q.quantize(ranges, enable_progress_bar=False, enable_progress_report=False).quantized_model)

    assert quantized(fast_q, fast) == quantized(slow_q, slow)


def test_calibration_refuses_a_set_smaller_than_the_batch(encoder_batch1):
    from posetok_converters import quantize_tflite

    fp32, keypoints = encoder_batch1
    with pytest.raises(ValueError, match=r"calibration set \(0\) is smaller than the model batch 1"):
        quantize_tflite._calibration_batches(fp32, keypoints[:0])
