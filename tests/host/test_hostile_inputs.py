"""Hostile inputs at the API edge: PoseTokenizer.encode/decode (and the
_normalized and roundtrip variants) and every function of posetok.kernels,
fed wrong shapes and ndims, every numpy dtype, NaN/inf/huge values, empty
axes, odd memory layouts (strided, reversed, Fortran, broadcast, misaligned,
byte-swapped, read-only, masked), Python lists, scalars and None, token ids
out of range, and hostile options (sizes, strides, paddings, borders, means,
scales, impl strings).

Each call either returns the right result (the kernels against
posetok.kernels.numpy_ref; the tokenizer against the same call on a plain
contiguous copy, plus shape, dtype and id range) or raises ValueError or
TypeError naming the broken argument; the rule is ``hostile_cases.judge``.
About 2,400 hostile calls run per run (``test_hostile_call_count``).

An empty batch is refused (ValueError naming the argument), as documented.

The kernel part also runs against the ASan+UBSan build of the library
(``test_kernels_hostile_under_asan``, slow): any sanitizer report fails it."""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import hostile_cases as H
import posetok.kernels as K
from hostile_cases import FAST, OK, REFUSE, Case, arrays_like, hostile_array, hostile_option, judge
from posetok import PoseTokenizer
from posetok.kernels import numpy_ref as R
from test_sdk_runtime import M, V, linear_bundle  # noqa: F401  (the module-scoped bundle fixture)

KERNEL_EXAMPLES, CROP_EXAMPLES, TOKENIZER_EXAMPLES = 230, 120, 400  # 6 + 2 kernel tests, 2 tokenizer: 2,420 calls
BAD_IMPLS = ["NEON", "", None, 1, ["ref"], b"ref", "ref ", "scalar"]
SMALL = st.one_of(st.integers(1, 6), st.integers(7, 70))


def impl(data, case: Case) -> object:
    value = hostile_option(data, case, "impl", ["auto", "ref", "neon"], BAD_IMPLS)
    if value == "neon" and not K.have_neon():
        case.also = (K.KernelError,)  # documented: the library refuses NEON it was not built with
    return value


def kernel(name: str, data, case: Case, compare=None) -> None:
    """Judge one kernel call against numpy_ref on plain copies of its arguments."""
    def check(out):
        clean = {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in case.kwargs.items() if k != "impl"}
        for k in ("size", "box"):
            if k in clean:
                clean[k] = tuple(int(v) for v in clean[k])
        wants = getattr(R, name)(**clean)
        outs, wants = (out, wants) if isinstance(wants, tuple) else ((out,), (wants,))
        assert isinstance(outs, tuple) and len(outs) == len(wants)
        for got, want in zip(outs, wants):
            assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
            (compare or np.testing.assert_array_equal)(got, want)
    judge("kernels", getattr(K, name), case, check)


def ran(request) -> None:
    H.RAN.add(request.node.originalname)


# ---- kernels -----------------------------------------------------------------------

@settings(max_examples=KERNEL_EXAMPLES, **FAST)
@given(data=st.data(), name=st.sampled_from(["nv21_to_rgb888", "nv12_to_rgb888"]))
def test_kernel_yuv_hostile(request, data, name):
    ran(request)
    chroma = "vu" if name.startswith("nv21") else "uv"
    h, w = data.draw(SMALL), data.draw(SMALL)
    ch, cw = (h + 1) // 2, (w + 1) // 2
    case = Case({})
    shape = data.draw(st.sampled_from([(ch, cw, 2), (ch, 2 * cw), (h // 2, cw, 2), (ch, w // 2, 2),
                                       (ch + 1, 2 * cw), (ch, cw, 3), (ch, 2 * cw + 1), (ch, cw, 1)]))
    if shape not in [(ch, cw, 2), (ch, 2 * cw)]:
        case.mark(chroma, REFUSE)
    case.kwargs = {"y": hostile_array(data, case, "y", arrays_like(data, (h, w))),
                   chroma: hostile_array(data, case, chroma, arrays_like(data, shape)),
                   "full_range": hostile_option(data, case, "full_range", [True, False, np.bool_(True)],
                                                [0, 1, "yes", None, 1.0, np.int8(1)]),
                   "impl": impl(data, case)}
    kernel(name, data, case)


@settings(max_examples=KERNEL_EXAMPLES, **FAST)
@given(data=st.data())
def test_kernel_downscale_uv2x2_hostile(request, data):
    ran(request)
    case = Case({})
    h, w, c = 2 * data.draw(SMALL), 2 * data.draw(SMALL), 2
    odd = data.draw(st.sampled_from([None, None, "h", "w", "c"]))
    if odd:
        h, w, c = h + (odd == "h"), w + (odd == "w"), data.draw(st.sampled_from([1, 3])) if odd == "c" else c
        case.mark("uv", REFUSE)
    case.kwargs = {"uv": hostile_array(data, case, "uv", arrays_like(data, (h, w, c))), "impl": impl(data, case)}
    kernel("downscale_uv2x2", data, case)


@settings(max_examples=KERNEL_EXAMPLES, **FAST)
@given(data=st.data())
def test_kernel_gaussian3x3_hostile(request, data):
    ran(request)
    case = Case({})
    img = hostile_array(data, case, "img", arrays_like(data, (data.draw(SMALL), data.draw(SMALL))))
    case.kwargs = {
        "img": img,
        "border": hostile_option(data, case, "border", list(K.BORDERS),
                                 ["REFLECT_101", "", None, ["constant"], {"constant": 1}, 0, b"constant", "wrap"]),
        "border_value": hostile_option(data, case, "border_value", [0, 77, 255, np.uint8(9), np.int64(200)],
                                       [-1, 256, 2**70, 1.5, float("nan"), "0", None, np.float32(3), [1]],
                                       maybe=[True, False]),
        "impl": impl(data, case)}
    kernel("gaussian3x3", data, case)


BAD_SIZES = [(0, 5), (-1, 5), (5, 0), (5, -3), (2.5, 3), (2.0, 3), (3, float("nan")), (float("inf"), 3),
             (2**31, 1), (1, 2**31), (10**100, 1), (2**20, 2**20), (2**16, 2**16), (True, 4), ("4", 4), (5,),
             (5, 5, 5), 5, None, "55", b"55", [None, 4], (np.float64(4), 4), (1j, 2), ((4, 4), 4), {4: 1, 5: 2}]


@settings(max_examples=KERNEL_EXAMPLES, **FAST)
@given(data=st.data())
def test_kernel_resize_bilinear_hostile(request, data):
    ran(request)
    case = Case({})
    h, w = data.draw(SMALL), data.draw(SMALL)
    shape = data.draw(st.sampled_from([(h, w), (h, w, 1), (h, w, 3), (h, w, 2), (h, w, 4)]))
    if shape[2:] in [(2,), (4,)]:
        case.mark("img", REFUSE)
    dw, dh = data.draw(st.integers(1, 80)), data.draw(st.integers(1, 80))
    case.kwargs = {"img": hostile_array(data, case, "img", arrays_like(data, shape)),
                   "size": hostile_option(data, case, "size", [(dw, dh), [dw, dh], np.array([dw, dh]),
                                                               (np.int32(dw), np.uint16(dh))], BAD_SIZES),
                   "impl": impl(data, case)}
    kernel("resize_bilinear", data, case)


PACKED = ("read_only", "contiguous_copy")  # conv2d: only x's row stride may vary (not tested here)


def close(out, want):
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


@settings(max_examples=KERNEL_EXAMPLES, **FAST)
@given(data=st.data())
def test_kernel_conv2d_hostile(request, data):
    ran(request)
    case = Case({})
    cin, cout, k = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    h, w = k + data.draw(st.integers(0, 9)), k + data.draw(st.integers(0, 9))
    batch = data.draw(st.sampled_from([(), (1,), (3,)]))
    x = arrays_like(data, batch + (cin, h, w), np.float32)
    values = data.draw(st.sampled_from(["plain", "plain", "nan", "inf", "huge"]))
    if values != "plain":
        x.reshape(-1)[data.draw(st.integers(0, x.size - 1))] = {"nan": np.nan, "inf": -np.inf, "huge": 3e37}[values]
        case.checked = values != "huge"  # finite overflow depends on the summation order
    wshape = data.draw(st.sampled_from([(cout, cin, k, k)] * 4 + [(cout, cin + 1, k, k), (cout, cin, k, k + 1)]))
    if wshape != (cout, cin, k, k):
        case.mark("weight", REFUSE)
    bias = data.draw(st.sampled_from(["none", "ok", "ok", "long", "2d"]))
    case.kwargs = {
        "x": hostile_array(data, case, "x", x, PACKED),
        "weight": hostile_array(data, case, "weight", arrays_like(data, wshape, np.float32), PACKED),
        "bias": None if bias == "none" else arrays_like(data, {"ok": (cout,), "long": (cout + 1,),
                                                                 "2d": (1, cout)}[bias], np.float32),
        "stride": hostile_option(data, case, "stride", [1, 2, 3, np.int64(2)],
                                 [0, -1, 2**31, 2**32 + 1, 2**40, 1.0, "1", None, 2.5, [1]], maybe=[True]),
        "padding": hostile_option(data, case, "padding", list(range(k)) + [np.int32(k - 1)],
                                  [k, -1, 2**40, 1.0, None, "0"], maybe=[False, True]),
        "impl": impl(data, case)}
    if bias in ("long", "2d"):
        case.mark("bias", REFUSE)
    elif bias == "ok":
        case.kwargs["bias"] = hostile_array(data, case, "bias", case.kwargs["bias"], PACKED)
        if case.kwargs["bias"] is None:
            case.levels.pop("bias", None)  # None is a valid bias
    kernel("conv2d", data, case, close)


@settings(max_examples=KERNEL_EXAMPLES, **FAST)
@given(data=st.data())
def test_kernel_normalize_hostile(request, data):
    ran(request)
    case = Case({})
    h, w, c = data.draw(SMALL), data.draw(SMALL), data.draw(st.integers(1, 4))
    shape = data.draw(st.sampled_from([(h, w, c), (h, w, c), (h, w), (h, w, 5)]))
    if len(shape) == 2:
        c = 1
    elif shape[2] == 5:
        case.mark("img", REFUSE)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    good = rng.uniform(-300, 300, c).round(2)

    def per_channel(name):
        return hostile_option(
            data, case, name,
            [good.tolist(), tuple(good), good, good.astype(np.float32), np.zeros(c), np.arange(c)],
            [good.tolist() + [1.0], good[:-1].tolist() or None, [np.nan] * c, [np.inf] * c, [-np.inf] * c,
             [1e40] * c, None, "abc", [object()] * c, [1j] * c, [good.tolist()] * 2, {"a": 1}, [None] * c,
             np.full(c, np.nan, np.float32)],
            maybe=[0.5, [True] * c, good.astype(np.float16)])
    case.kwargs = {"img": hostile_array(data, case, "img", arrays_like(data, shape)),
                   "mean": per_channel("mean"), "scale": per_channel("scale"), "impl": impl(data, case)}
    if case.levels.get("img"):
        case.extra = {"mean", "scale"}  # another channel count makes their lengths wrong
    kernel("normalize", data, case)


BAD_BOXES = [(0, 0, 0, 4), (0, 0, 4, -1), (0.5, 0, 4, 4), (0, 0, 4), (0, 0, 4, 4, 4), None, "abcd", 4,
             (True, 0, 4, 4), (0, 0, 2**17, 4), (2**31, 0, 4, 4), (-(2**40), 0, 4, 4), (0, 0, 4, float("nan"))]


def crop_options(data, case: Case, c: int, h: int, w: int) -> dict:
    """box, size, mean, scale, u8 and impl of the crop kernels."""
    bx, by = data.draw(st.integers(-8, w + 4)), data.draw(st.integers(-8, h + 4))
    bw, bh = data.draw(st.integers(1, 2 * w + 3)), data.draw(st.integers(1, 2 * h + 3))
    ow, oh = data.draw(st.integers(1, 24)), data.draw(st.integers(1, 24))
    good = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).uniform(-200, 200, c).round(3)
    per_channel = dict(valid=[good.tolist(), tuple(good), good, [float(good[0])], float(good[0])],
                       hostile=[good.tolist() + [1.0, 2.0], [], "abc", [object()] * c, [1j] * c, {"a": 1}],
                       maybe=[[np.nan] * c, [np.inf] * c, [1e40] * c, None, good[:2].tolist()])
    return {"box": hostile_option(data, case, "box", [(bx, by, bw, bh), [bx, by, bw, bh], np.array([bx, by, bw, bh])],
                                  BAD_BOXES),
            "size": hostile_option(data, case, "size", [(ow, oh), [ow, oh]],
                                   [v for v in BAD_SIZES if not isinstance(v, (bytes, dict))]),  # see below
            "mean": hostile_option(data, case, "mean", **per_channel),
            "scale": hostile_option(data, case, "scale", **per_channel),
            "u8": hostile_option(data, case, "u8", [True, False], [0, 1, None, "yes"]),
            "impl": impl(data, case)}


@settings(max_examples=CROP_EXAMPLES, **FAST)
@given(data=st.data(), name=st.sampled_from(["crop_nv21", "crop_nv12"]))
def test_kernel_crop_yuv_hostile(request, data, name):
    ran(request)
    chroma = "vu" if name == "crop_nv21" else "uv"
    h, w = 2 * data.draw(st.integers(1, 20)), 2 * data.draw(st.integers(1, 20))
    case = Case({})
    shape = data.draw(st.sampled_from([(h // 2, w // 2, 2), (h // 2, w), (h // 2 + 1, w), (h // 2, w // 2, 3)]))
    if shape[0] != h // 2 or shape[-1] == 3:
        case.mark(chroma, REFUSE)
    odd = data.draw(st.booleans())
    if odd:
        case.mark("y", REFUSE)
    channels = hostile_option(data, case, "channels", [1, 3, np.int64(3)], [2, 0, "3", None, True])  # 3.0: see below
    case.kwargs = {"y": hostile_array(data, case, "y", arrays_like(data, (h + odd, w))),
                   chroma: hostile_array(data, case, chroma, arrays_like(data, shape)),
                   "channels": channels,
                   "full_range": hostile_option(data, case, "full_range", [True, False], [0, "no", None]),
                   **crop_options(data, case, 1 if case.levels.get("channels") is None and channels == 1 else 3, h, w)}
    if case.levels.get("channels"):
        case.extra = {"mean", "scale"}
    kernel(name, data, case)


@settings(max_examples=CROP_EXAMPLES, **FAST)
@given(data=st.data())
def test_kernel_crop_image_hostile(request, data):
    ran(request)
    case = Case({})
    h, w = data.draw(SMALL), data.draw(SMALL)
    shape = data.draw(st.sampled_from([(h, w), (h, w, 1), (h, w, 3), (h, w, 3), (h, w, 2), (h, w, 4)]))
    if shape[2:] in [(2,), (4,)]:
        case.mark("img", REFUSE)
    case.kwargs = {"img": hostile_array(data, case, "img", arrays_like(data, shape)),
                   **crop_options(data, case, 3 if shape[2:] == (3,) else 1, h, w)}
    if case.levels.get("img"):
        case.extra = {"mean", "scale"}
    kernel("crop_image", data, case)


@pytest.mark.parametrize("arg, kwargs", [("size", {"size": b"55"}), ("channels", {"channels": 3.0})])
def test_kernel_crop_refuses_bytes_size_and_float_channels(arg, kwargs):
    y, vu = np.zeros((8, 8), np.uint8), np.zeros((4, 8), np.uint8)
    with pytest.raises(ValueError, match=arg):
        K.crop_nv21(y, vu, (0, 0, 8, 8), **{"size": (4, 4), **kwargs})


def test_kernel_resize_to_huge_sizes_computes_taps_without_overflow():
    """A 1 x 2^24 row resized to its own size must come back unchanged: the
    tap position (2i+1) * src_len * 65536 passes 2^63 there unless the C
    splits it (it did not: UBSan reported the overflow, the row came back wrong)."""
    img = (np.arange(2**24) % 251).astype(np.uint8).reshape(1, -1)
    np.testing.assert_array_equal(K.resize_bilinear(img, (2**24, 1), impl="ref"), img)


# ---- PoseTokenizer -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tok(linear_bundle):  # noqa: F811
    with PoseTokenizer.from_bundle(linear_bundle[0], backend="onnxruntime") as t:
        yield t


RAGGED = [[[1.0, 2.0]] * 12 + [[1.0]], [[0.5, 0.5]] * 12 + [None]]
NOT_REAL = [np.bool_, np.complex64, np.complex128, object, "U3", "S3", "datetime64[s]", "timedelta64[ms]",
            [("a", "u1"), ("b", "f4")]]


def hostile_input(data, case: Case, name: str, a: np.ndarray, bad_shapes: list, bad_values: list) -> object:
    """Tokenizer inputs: anything array-like of a real (keypoints) or integer
    (ids) dtype and the right shape is fine, in any layout or container."""
    kind = data.draw(st.sampled_from(["keep", "layout", "layout", "dtype", "list", "shape", "values", "junk"]),
                     label=f"{name} kind")
    if kind == "layout":
        return H.relayout(a, data.draw(st.sampled_from(H.LAYOUTS), label="layout"))
    if kind == "dtype":
        dt = np.dtype(data.draw(st.sampled_from(H.ALL_DTYPES), label="dtype"))
        fine = dt.kind in ("iuf" if name == "keypoints" else "iu")
        case.mark(name, OK if fine else REFUSE)
        return H.cast(a, dt)
    if kind == "list":
        return data.draw(st.sampled_from([a.tolist(), tuple(a.tolist()), list(a)]), label="container")
    if kind == "shape":
        case.mark(name, REFUSE)
        return np.zeros(data.draw(st.sampled_from(bad_shapes), label="shape"), a.dtype)
    if kind == "values":
        case.mark(name, REFUSE)
        b = a.astype(object)  # Python numbers, so any value fits; numpy infers the dtype again
        b.flat[data.draw(st.integers(0, a.size - 1))] = data.draw(st.sampled_from(bad_values), label="value")
        return b.tolist() if data.draw(st.booleans()) else np.asarray(b.tolist())
    if kind == "junk":
        case.mark(name, REFUSE)
        return data.draw(st.sampled_from(H.NON_ARRAYS + RAGGED + [np.zeros(a.shape, data.draw(st.sampled_from(
            NOT_REAL if name == "keypoints" else NOT_REAL + [np.float16, np.float32, np.float64])))]))
    return a


@settings(max_examples=TOKENIZER_EXAMPLES, **FAST)
@given(data=st.data())
def test_tokenizer_encode_hostile(request, tok, data):
    ran(request)
    method = data.draw(st.sampled_from(["encode", "encode_normalized", "roundtrip"]))
    lead = data.draw(st.sampled_from([(), (1,), (2,), (5,)]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    base = rng.uniform(-1, 1, lead + (13, 2)) if method == "encode_normalized" else rng.uniform(8, 56, lead + (13, 2))
    case = Case({})
    kp = hostile_input(data, case, "keypoints", base.astype(np.float32),
                       [(13, 3), (12, 2), (2, 13), (13,), (26,), (1, 1, 13, 2), (0, 13, 2), (13, 2, 1), (), (0,)],
                       [np.nan, np.inf, -np.inf, 1e39, -1e300])
    case.kwargs = {"keypoints_norm" if method == "encode_normalized" else "keypoints": kp}

    def check(out):
        plain = np.array(np.asarray(kp), dtype=np.float32)
        want = getattr(tok, method)(plain)
        assert isinstance(out, np.ndarray) and out.shape == want.shape and out.dtype == want.dtype
        np.testing.assert_array_equal(out, want)
        if method == "roundtrip":
            assert out.shape == plain.shape and out.dtype == np.float32
        else:
            assert out.shape == plain.shape[:-2] + (M,) and out.dtype == np.int32
            assert ((0 <= out) & (out < V)).all()
    judge("tokenizer", getattr(tok, method), case, check)


@settings(max_examples=TOKENIZER_EXAMPLES, **FAST)
@given(data=st.data())
def test_tokenizer_decode_hostile(request, tok, data):
    ran(request)
    method = data.draw(st.sampled_from(["decode", "decode_normalized"]))
    lead = data.draw(st.sampled_from([(), (1,), (3,)]))
    base = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(0, V, lead + (M,))
    case = Case({})
    ids = hostile_input(data, case, "token_ids", base.astype(np.int32),
                        [(M + 1,), (1, M - 1), (1, 1, M), (), (0, M), (0,), (M, 1)],
                        [V, -1, 2**31, 2**63 - 1, -(2**63), 10**30, 0.5, np.nan])
    case.kwargs = {"token_ids": ids}

    def check(out):
        plain = np.array(np.asarray(ids), dtype=np.int32)
        want = getattr(tok, method)(plain)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == plain.shape[:-1] + (13, 2)
        np.testing.assert_array_equal(out, want)
        assert np.isfinite(out).all()
    judge("tokenizer", getattr(tok, method), case, check)


@pytest.mark.parametrize("method, arg, empty", [
    ("encode", "keypoints", np.zeros((0, 13, 2), np.float32)),
    ("encode_normalized", "keypoints", np.zeros((0, 13, 2))),
    ("roundtrip", "keypoints", []),
    ("decode", "token_ids", np.zeros((0, M), np.int32)),
    ("decode_normalized", "token_ids", np.zeros((0, M), np.uint8)),
])
def test_empty_batches_are_refused_naming_the_argument(tok, method, arg, empty):
    with pytest.raises(ValueError, match=rf"^{arg} .*(empty|shape)"):
        getattr(tok, method)(empty)


def test_closed_tokenizer_raises_runtime_error(linear_bundle):  # noqa: F811
    tok = PoseTokenizer.from_bundle(linear_bundle[0], backend="onnxruntime")
    tok.close()
    with pytest.raises(RuntimeError, match="closed"):
        tok.encode(np.full((13, 2), 32.0))
    with pytest.raises(ValueError, match="keypoints"):  # the inputs are checked first
        tok.encode(None)


# ---- how many hostile calls one run made -----------------------------------------------

KERNEL_TESTS = {"test_kernel_yuv_hostile", "test_kernel_downscale_uv2x2_hostile", "test_kernel_gaussian3x3_hostile",
                "test_kernel_resize_bilinear_hostile", "test_kernel_conv2d_hostile", "test_kernel_normalize_hostile",
                "test_kernel_crop_yuv_hostile", "test_kernel_crop_image_hostile"}
TOKENIZER_TESTS = {"test_tokenizer_encode_hostile", "test_tokenizer_decode_hostile"}


def test_kernel_call_count():
    if not KERNEL_TESTS <= H.RAN:
        pytest.skip(f"counts only after every kernel hostile test ran; not run: {sorted(KERNEL_TESTS - H.RAN)}")
    assert H.CALLS["kernels"] >= 0.9 * (6 * KERNEL_EXAMPLES + 2 * CROP_EXAMPLES), H.CALLS


def test_hostile_call_count():
    every = KERNEL_TESTS | TOKENIZER_TESTS
    if not every <= H.RAN:
        pytest.skip(f"counts only after every hostile test ran; not run: {sorted(every - H.RAN)}")
    assert H.CALLS["kernels"] + H.CALLS["tokenizer"] >= 2000, H.CALLS


# ---- the kernel part against the ASan+UBSan build --------------------------------------

CANARY = """import numpy as np
from posetok.kernels.library import load_library
src, dst = np.zeros((8, 8), np.uint8), np.zeros(4, np.uint8)  # dst is 60 bytes short
load_library().posetok_gaussian3x3_u8_ref(src.ctypes.data, 8, dst.ctypes.data, 8, 8, 8, 0, 0)
"""


def test_kernels_hostile_under_asan(tmp_path):
    """The kernel tests above in a subprocess on the ASan+UBSan library: no
    sanitizer report, all pass, the full count. A canary write past a buffer
    first proves that a report would be caught."""
    proc, report = H.sanitized(tmp_path / "canary", [sys.executable, "-c", CANARY])
    assert proc.returncode != 0 and "heap-buffer-overflow" in report, (proc.returncode, proc.stderr[-2000:])
    proc, report = H.sanitized(tmp_path / "run", [sys.executable, "-m", "pytest", __file__, "-q", "-p",
                                                "no:cacheprovider", "-k", "kernel and not asan"])
    assert not report, report[:6000]
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    # + the huge-resize regression, the counting test and the two crop refusals (bytes size, float channels)
    passed = re.search(r"(\d+) passed", proc.stdout)
    assert passed and int(passed.group(1)) == len(KERNEL_TESTS) + 4 and "skipped" not in proc.stdout, proc.stdout
    assert not re.search(r"\d+ (failed|error)", proc.stdout), proc.stdout
