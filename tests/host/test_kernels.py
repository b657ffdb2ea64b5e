"""posetok.kernels on the host (x86_64 library = the scalar references):
parity with the numpy transcription of the spec for every width 1..67 and
height 1..9, accuracy against real-valued formulas and torch, strided inputs,
argument errors, library lookup — and the saved results the device suite
compares the aarch64 library with."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import posetok.kernels as K
from posetok.kernels import numpy_ref as R
from test_kernels_cases import RESULTS_FILE, fixed_inputs, kernel_outputs, sweep_cases


def test_host_library_is_the_reference_build():
    assert K.library_path().is_file(), K.library_path()
    assert K.isa() == "ref" and not K.have_neon()
    img = np.zeros((4, 4), np.uint8)
    with pytest.raises(K.KernelError, match="built without NEON.*status -7"):
        K.gaussian3x3(img, impl="neon")


def test_integer_kernels_match_the_numpy_spec_for_every_small_size():
    count = 0
    for label, name, args, kwargs in sweep_cases():
        np.testing.assert_array_equal(getattr(K, name)(*args, **kwargs),
                                      getattr(R, name)(*args, **kwargs), err_msg=label)
        count += 1
    assert count > 67 * 9 * 10


@pytest.mark.parametrize("w, h", [(640, 480), (1920, 1080)])
def test_integer_kernels_match_the_numpy_spec_on_camera_frames(w, h):
    rng = np.random.default_rng(w)
    img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    for border in K.BORDERS:
        np.testing.assert_array_equal(K.gaussian3x3(img, border=border, border_value=3),
                                      R.gaussian3x3(img, border=border, border_value=3))
    vu = rng.integers(0, 256, (h // 2, w // 2, 2), dtype=np.uint8)
    np.testing.assert_array_equal(K.nv21_to_rgb888(img, vu), R.nv21_to_rgb888(img, vu))
    np.testing.assert_array_equal(K.downscale_uv2x2(vu), R.downscale_uv2x2(vu))
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    np.testing.assert_array_equal(K.resize_bilinear(rgb, (224, 224)), R.resize_bilinear(rgb, (224, 224)))


@pytest.mark.parametrize("full", [False, True])
def test_yuv_within_2_lsb_of_real_bt601(full):
    # every (Y, U, V) combination on a coarse grid, one pixel pair per chroma sample
    y, u, v = np.meshgrid(np.arange(0, 256, 3), np.arange(0, 256, 5), np.arange(0, 256, 5), indexing="ij")
    y, u, v = (a.reshape(-1).astype(np.uint8) for a in (y, u, v))
    luma = np.repeat(y, 2)[None]
    uv = np.stack([u, v], axis=-1)[None]
    got = K.nv12_to_rgb888(luma, uv, full_range=full)[0, ::2].astype(np.float64)
    exact = np.clip(R.bt601_float(y, u, v, full), 0, 255)
    err = np.abs(got - exact).max()
    print(f"nv12 full_range={full}: max |fixed point - real BT.601| = {err:.3f} LSB")
    assert err <= 2.0


def test_resize_within_3_lsb_of_real_bilinear():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    worst = 0.0
    for size in ((64, 48), (131 * 2, 97 * 2), (17, 150), (300, 11)):
        err = np.abs(K.resize_bilinear(img, size) - R.resize_bilinear_float(img, size)).max()
        worst = max(worst, float(err))
    print(f"resize: max |fixed point - real bilinear| = {worst:.3f} LSB")
    assert worst <= 3.0


def test_conv2d_matches_torch():
    torch = pytest.importorskip("torch")  # the host tooling always has torch (make setup)
    rng = np.random.default_rng(7)
    for (n, cin, cout, h, w, k, stride, pad, with_bias) in [
            (1, 3, 8, 31, 45, 3, 1, 1, True), (2, 2, 5, 9, 67, 5, 2, 2, False),
            (1, 1, 1, 1, 1, 1, 1, 0, True), (1, 4, 3, 17, 16, 3, 3, 0, True), (1, 3, 6, 8, 70, 7, 1, 3, True)]:
        x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
        wt = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
        b = rng.standard_normal(cout).astype(np.float32) if with_bias else None
        got = K.conv2d(x, wt, b, stride=stride, padding=pad)
        want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(wt),
                                          None if b is None else torch.from_numpy(b),
                                          stride=stride, padding=pad).numpy()
        assert got.shape == want.shape
        scale = float(np.abs(want).max())
        assert np.abs(got - want).max() <= 1e-4 * scale, (n, cin, cout, h, w, k, stride, pad)
        np.testing.assert_allclose(got, R.conv2d(x, wt, b, stride=stride, padding=pad),
                                   rtol=0, atol=1e-5 * scale)


def test_normalize_is_bit_exact_with_numpy_float32():
    rng = np.random.default_rng(8)
    for c in (1, 2, 3, 4):
        img = rng.integers(0, 256, (13, 37, c), dtype=np.uint8)
        mean, scale = rng.uniform(0, 255, c), rng.uniform(0.001, 1, c)
        np.testing.assert_array_equal(K.normalize(img, mean, scale), R.normalize(img, mean, scale))
    gray = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    assert K.normalize(gray, [0.5], [2.0]).shape == (1, 5, 6)


def test_strided_crops_equal_their_contiguous_copies():
    rng = np.random.default_rng(9)
    frame = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    crop = frame[5:50, 7:80]
    assert not crop.flags.c_contiguous
    copy = np.ascontiguousarray(crop)
    np.testing.assert_array_equal(K.resize_bilinear(crop, (33, 21)), K.resize_bilinear(copy, (33, 21)))
    np.testing.assert_array_equal(K.normalize(crop, [1, 2, 3], [0.5, 0.25, 2]),
                                  K.normalize(copy, [1, 2, 3], [0.5, 0.25, 2]))
    gray = frame[3:40, 4:70, 1].copy()[::1]
    big = np.zeros((40, 128), np.uint8)
    big[:37, :66] = gray
    np.testing.assert_array_equal(K.gaussian3x3(big[:37, :66]), K.gaussian3x3(gray))
    x = np.zeros((2, 12, 20), np.float32)
    x[:, :, :15] = rng.standard_normal((2, 12, 15))
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    planes_ok = x[:, :, :15]  # rows strided, planes still H * row stride apart
    np.testing.assert_array_equal(K.conv2d(planes_ok, w, padding=1),
                                  K.conv2d(np.ascontiguousarray(planes_ok), w, padding=1))


U8 = np.zeros((4, 6), np.uint8)
RGB = np.zeros((4, 6, 3), np.uint8)
F32 = np.zeros((2, 5, 5), np.float32)
W33 = np.zeros((3, 2, 3, 3), np.float32)
BAD_CALLS = [
    ("img must have dtype uint8", lambda: K.gaussian3x3(U8.astype(np.int16))),
    ("img must be 2-D", lambda: K.gaussian3x3(RGB)),
    ("img must not be empty", lambda: K.gaussian3x3(np.zeros((0, 5), np.uint8))),
    ("img must be a numpy array", lambda: K.gaussian3x3([[1, 2], [3, 4]])),
    ("img must have contiguous rows", lambda: K.gaussian3x3(U8[:, ::2])),
    ("img rows must be stored top to bottom", lambda: K.gaussian3x3(U8[::-1])),
    ("border must be one of", lambda: K.gaussian3x3(U8, border="wrap")),
    ("border_value must be an integer in 0..255", lambda: K.gaussian3x3(U8, border="constant", border_value=300)),
    ("impl must be one of", lambda: K.gaussian3x3(U8, impl="sse")),
    ("vu must have shape \\(2, 3, 2\\)", lambda: K.nv21_to_rgb888(U8, np.zeros((2, 2, 2), np.uint8))),
    ("uv must have shape \\(2, 6\\)", lambda: K.nv12_to_rgb888(U8, np.zeros((2, 4), np.uint8))),
    ("y must be 2-D", lambda: K.nv12_to_rgb888(RGB, np.zeros((2, 3, 2), np.uint8))),
    ("full_range must be True or False", lambda: K.nv12_to_rgb888(U8, np.zeros((2, 3, 2), np.uint8), full_range="yes")),
    ("uv needs an even height and width", lambda: K.downscale_uv2x2(np.zeros((3, 4, 2), np.uint8))),
    ("uv must have shape \\(H, W, 2\\)", lambda: K.downscale_uv2x2(np.zeros((4, 4, 3), np.uint8))),
    ("img must have 1 or 3 channels", lambda: K.resize_bilinear(np.zeros((4, 4, 2), np.uint8), (2, 2))),
    ("size must be two positive integers", lambda: K.resize_bilinear(U8, (0, 3))),
    ("size must be \\(width, height\\)", lambda: K.resize_bilinear(U8, 5)),
    ("x must have dtype float32", lambda: K.conv2d(F32.astype(np.float64), W33)),
    ("weight expects 2 input channels but x has 3", lambda: K.conv2d(np.zeros((3, 5, 5), np.float32), W33)),
    ("weight must have a square kernel", lambda: K.conv2d(F32, np.zeros((3, 2, 3, 1), np.float32))),
    ("bias must be a contiguous \\(3,\\) array", lambda: K.conv2d(F32, W33, np.zeros(4, np.float32))),
    ("stride must be >= 1", lambda: K.conv2d(F32, W33, stride=0)),
    ("padding must be in 0..2", lambda: K.conv2d(F32, W33, padding=3)),
    ("smaller than the 3x3 kernel", lambda: K.conv2d(np.zeros((2, 1, 5), np.float32), W33)),
    ("x must be C-contiguous", lambda: K.conv2d(np.zeros((5, 5, 2), np.float32).transpose(2, 0, 1), W33)),
    ("mean must have 3 values", lambda: K.normalize(RGB, [1, 2], [1, 1, 1])),
    ("scale must have 3 values", lambda: K.normalize(RGB, [1, 2, 3], [1])),
    ("img must have 1 or 2 or 3 or 4 channels", lambda: K.normalize(np.zeros((2, 2, 5), np.uint8), [0] * 5, [1] * 5)),
]


@pytest.mark.parametrize("message, call", BAD_CALLS, ids=[m for m, _ in BAD_CALLS])
def test_bad_arguments_raise_value_error_naming_the_argument(message, call):
    with pytest.raises(ValueError, match=message):
        call()


def test_missing_library_names_the_path(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere" / "libposetok_kernels.so"
    monkeypatch.setenv("POSETOK_KERNELS_LIB", str(missing))
    monkeypatch.setattr(K.library, "_lib", None)
    with pytest.raises(FileNotFoundError, match=f"not found at {missing}"):
        K.gaussian3x3(U8)


def test_kernels_never_import_torch():
    code = ("import sys, numpy as np, posetok.kernels as K; "
            "K.gaussian3x3(np.zeros((4, 4), np.uint8)); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": ""})


def test_save_results_for_the_device_suite(host_results_dir):
    inputs = fixed_inputs()
    outputs = kernel_outputs(inputs)
    target = host_results_dir / RESULTS_FILE
    tmp = target.with_suffix(".tmp.npz")
    np.savez(tmp, **{f"in_{k}": v for k, v in inputs.items()}, **{f"out_{k}": v for k, v in outputs.items()})
    os.replace(tmp, target)
    saved = np.load(target)
    assert sorted(k[4:] for k in saved.files if k.startswith("out_")) == sorted(outputs)


def test_block_trace_count_weights_each_execution_by_block_length():
    from posetok_converters.kernels_bench import count_tb_trace
    trace = [
        "IN: posetok_a\n", "0x00401000:  add x0, x0, #1\n", "0x00401004:  b.ne #0x401000\n", "\n",
        "Trace 0: 0x7f00 [00000000/0000000000401000/00000000/ff000000] posetok_a\n",
        "Trace 0: 0x7f00 [00000000/0000000000401000/00000000/ff000000] posetok_a\n",
        "IN: posetok_b\n", "0x00402000:  ret\n", "\n",
        "Trace 0: 0x7f40 [00000000/0000000000402000/00000000/ff000000] posetok_b\n",
        '{"kernel": "not a trace line"}\n',
    ]
    assert count_tb_trace(iter(trace)) == 2 + 2 + 1


def test_qemu_instruction_counts_are_exact_and_neon_is_cheaper():
    """Both counting methods on a real (tiny) run agree to the instruction."""
    from posetok_converters.kernels_bench import Bench, find_repo
    repo = find_repo()
    bench = Bench(repo, repo / "build" / "aarch64-gcc", "cortex-a76", "tb")
    counts = {impl: (bench.count("gaussian3x3", impl, 64, 48, 1, "tb"),
                     bench.count("gaussian3x3", impl, 64, 48, 1, "insn")) for impl in ("ref", "neon")}
    for impl, (tb, insn) in counts.items():
        assert tb == insn > 0, (impl, tb, insn)
    assert counts["neon"][0] * 8 < counts["ref"][0], counts
    assert bench.count("gaussian3x3", "neon", 64, 48, 0) == 0  # set-up is outside the library


def test_kernels_bench_refuses_a_cpu_model_qemu_does_not_know(capsys):
    # every run under an unknown -cpu failed with a CalledProcessError traceback
    from posetok_converters.kernels_bench import main as bench_main, qemu_cpu_models
    assert {"cortex-a76", "neoverse-n1"} <= set(qemu_cpu_models())
    with pytest.raises(SystemExit) as exit_:
        bench_main(["--cpu", "bogus", "--quick", "--no-opencv"], "posetok kernels-bench")
    assert exit_.value.code == 2
    assert "error: --cpu 'bogus' is not a CPU model of qemu-aarch64 (" in capsys.readouterr().err
