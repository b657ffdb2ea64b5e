"""PoseEstimator: camera frames -> keypoints, scores and token ids with a bundle's estimator graph.

    with PoseEstimator.from_bundle("bundle/") as est:
        pose = est.estimate(rgb)                         # (H, W, 3) or (H, W) uint8, whole frame searched
        pose = est.estimate_nv21(y, vu, box=(x, y, w, h))
        pose.keypoints, pose.scores, pose.token_ids, pose.box, pose.presence, pose.searched

One pass: a square box -> the one-pass kernel crops and area-downscales it to
the 64x64 model input (``posetok.kernels.crop_image`` / ``crop_nv21`` /
``crop_nv12``, mean and scale from the manifest's ``estimator.input``) -> the
graph -> normalized keypoints ``u`` -> model-frame pixels ``(u + 1) * 32`` ->
frame pixels ``box_xy + px64 * side / 64``.

Boxes: a box ``(x, y, w, h)`` is a person box, tight around the person as
a detector or a set of keypoints gives it. The model sees a square crop
around it (``person_crop``): centred on the box, side = ``max(w, h) /
figure_share * box_scale`` (``figure_share``: the manifest's share of the
crop a person's long side fills), at least ``MIN_BOX_PX``, at most twice the
frame's larger side, the centre kept inside the frame. Without a box, a
coarse pass runs on the square covering the whole frame (side ``max(H, W)``,
centred) and a second pass refines on the crop around the found keypoints'
bounding box. In video mode the same rule turns each frame's smoothed
keypoints into the next frame's crop; the first frame, the first after
``reset()`` and the first of another size run as in image mode, and so
does a frame whose tracked pass looks lost (the figure left the crop, or the
crop drifted off it): its presence under ``min_presence``.

Presence (``PoseResult.presence``): the probability that the crop holds a
figure rather than backdrop alone, from a logistic model over the pass's
keypoint scores and the pose's extent (``presence_features``). The scores
are token confidences whose scale moves with the weights and the precision,
so export fits one model per estimator file set on crops around a figure
and crops of backdrop alone (the manifest's ``estimator.presence``).

Flip test (``EstimatorOptions.flip_test``): each pass that gives the pose
also runs the graph on the crop's mirror image (a batch of two: one call
where the file takes it, two on a batch-1 file) and averages the two sets
of keypoints and scores (``flip_test_mean``); the coarse search pass stays
single. It costs a second graph row per pose.

Shift test (``EstimatorOptions.shift_test``): each pass that gives the pose
also runs on two crops moved along the diagonal by ``SHIFT_TEST_PX`` model
pixels either way (``shift_test_boxes``) and averages the three estimates in
frame pixels. The backbone's strided convolutions sample the crop on a
coarse grid, so the estimate moves with the crop's phase on that grid: a
crop moved by a pixel or two gives an estimate about as good, whose error is
partly independent. With the flip test too, each of
the three crops runs with its mirror image. The coarse search pass stays
single.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable, Optional

import numpy as np

from . import backends, kernels
from .bundle import Bundle, BundleError
from .checks import is_real_number, real_number
from .person_boxes import MIN_BOX_PX, MIN_FRAME_PX, OneEuroFilter, _check_box, _check_frame, kernel_layout, person_crop
from .skeleton import FRAME_SIZE, NUM_KEYPOINTS, normalized_to_pixels
from .tokenizer import _check_flag, _check_runtime_options, _one_of, _pick_backend

__all__ = ["EstimatorOptions", "MIN_BOX_PX", "MIN_FRAME_PX", "OneEuroFilter", "PRESENCE_FEATURES", "PoseEstimator",
           "PoseResult", "RUNNING_MODES", "SHIFT_TEST_PX", "bundle_presence_model", "flip_test_mean", "person_crop",
           "presence_features", "presence_probability", "presence_rows", "shift_test_boxes"]

RUNNING_MODES = ("image", "video")
OUTPUTS = ("keypoints", "scores", "token_ids")
# what presence_features gives per pass: the log of each keypoint's score, of the lowest score and of the extent
PRESENCE_FEATURES = NUM_KEYPOINTS + 2
# the smallest score or extent presence_features takes the log of (a pose collapsed to a point has extent 0)
PRESENCE_FLOOR = 1e-4
# the presence model for bundles exported before the manifest recorded one: the torch fit of the weights shipped
# when it began to
FALLBACK_PRESENCE = {
    "weights": [-0.4179, -0.5203, -0.1952, -0.6329, -0.3958, -3.6462, 1.2932, 3.3238, -2.7977, -1.1739, -0.3679,
                3.1655, 1.2671, 3.1750, 3.0862],
    "bias": 11.8824,
}
# how far the shift test moves its two extra crops, in 64-px model frame pixels along x and along y: chosen on
# fresh frames apart from the held-out ones, where 1.5 did better than 0.5, 1 and 2 to 3 (the README's command)
SHIFT_TEST_PX = 1.5


@dataclasses.dataclass(frozen=True)
class PoseResult:
    """One frame's pose.

    Attributes:
        keypoints: float32 (13, 2), (x, y) in frame pixels, in
            ``posetok.skeleton.KEYPOINT_NAMES`` order (smoothed in video mode).
        scores: float32 (13,) in [0, 1], each keypoint's confidence from the
            token probabilities (see the estimator's export notes).
        token_ids: int32 (M,), the argmax code of each token position (with
            ``flip_test`` or ``shift_test``, of the pass on the crop itself).
        box: ``(x, y, side, side)`` ints, the square crop of the pass that
            produced the pose, in frame pixels.
        presence: float in [0, 1], the probability that the crop holds a
            figure rather than backdrop alone (``presence_probability``); video
            mode searches the frame again when it falls under ``min_presence``.
        searched: True when ``box`` came from a coarse pass over the whole
            frame: no box was given and, in video mode, there was no tracked
            crop (the first frame, after ``reset()`` or a new frame size) or
            the tracked pass's presence fell under ``min_presence``.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    token_ids: np.ndarray
    box: tuple
    presence: float
    searched: bool


@dataclasses.dataclass(frozen=True)
class EstimatorOptions:
    """How ``PoseEstimator.from_bundle`` opens a bundle and tracks a figure.
    Frozen; change a copy with ``dataclasses.replace(options, running_mode="video")``.

    Video mode smooths each keypoint coordinate with a One Euro filter (Casiez,
    Roussel, Vogel, CHI 2012): a low-pass filter whose cutoff rises with speed,
    ``cutoff = min_cutoff + beta * |speed|``, so a still figure is smoothed
    hard and a moving one follows with little lag. Speed is measured in box
    sides per second (pixels per second / the frame's box side), so the same
    settings fit any camera resolution and distance; it is itself low-passed
    at ``d_cutoff``.

    Attributes:
        backend: ``"auto"`` (onnxruntime if installed and the bundle has an
            ONNX estimator of ``precision``, else LiteRT), ``"onnxruntime"``
            or ``"litert"``. Default ``"auto"``.
        precision: which estimator file to run: ``"fp32"``, ``"fp16"``,
            ``"int8w"`` or ``"int8"``; the bundle must hold one. Default ``"fp32"``.
        num_threads: threads per inference session, an int from 1 to 1024; None
            keeps the runtime's default.
        verify: check every model file's size and sha256 when loading. Default True.
        public_key: PEM file of the public key the bundle must be signed for;
            None (default): signatures are not checked.
        running_mode: ``"image"`` (every call stands alone) or ``"video"``
            (calls are frames of one stream: each needs ``timestamp_ms``, its
            box comes from the previous pose, keypoints are smoothed).
        min_cutoff: the filter's cutoff in Hz for a still figure (lower:
            smoother, more lag). Default 1.0.
        beta: how fast the cutoff rises with speed, Hz per (box side / s).
            Default 10.0: a figure crossing one box side per second is
            filtered at 11 Hz.
        d_cutoff: cutoff in Hz of the low-pass on the speed. Default 1.0.
        box_scale: multiplies the side of every crop around a person box
            (given, refine pass, video tracking); above 1 leaves more margin.
            Default 1.0.
        min_presence: video mode: a pass on the tracked crop whose presence
            (``PoseResult.presence``) is under this counts as lost, and the
            frame is searched again as in image mode; the filter restarts if
            the figure turns up elsewhere. 0 never searches again, 1 always.
            The presence model judges the pose's extent in the crop box_scale
            1 would make, but above 1 the model sees a smaller figure than it
            was trained on and scores it lower: lower min_presence with a wide
            margin. Default 0.5.
        flip_test: also run each pass that gives the pose on the crop's
            mirror image and average the two estimates (``flip_test_mean``):
            more accurate, at the cost of a second graph row. Default False.
        shift_test: also run each pass that gives the pose on two crops
            moved by ``SHIFT_TEST_PX`` model pixels (``shift_test_boxes``) and
            average the three estimates: more accurate still, at the cost of
            two more graph rows (four with flip_test). Default False.

    Raises:
        ValueError: an unknown backend, precision or running_mode (the message
            lists the allowed values), a bad num_threads, verify or public_key,
            a filter setting or box_scale that is not a positive finite number
            (beta may be 0), a min_presence outside [0, 1], or a flip_test or
            shift_test that is not a bool.
    """

    backend: str = "auto"
    precision: str = "fp32"
    num_threads: Optional[int] = None
    verify: bool = True
    public_key: Optional[str | os.PathLike] = None
    running_mode: str = "image"
    min_cutoff: float = 1.0
    beta: float = 10.0
    d_cutoff: float = 1.0
    box_scale: float = 1.0
    min_presence: float = 0.5
    flip_test: bool = False
    shift_test: bool = False

    def __post_init__(self):
        _check_runtime_options(self)
        _check_flag(self, "flip_test")
        _check_flag(self, "shift_test")
        if self.running_mode not in RUNNING_MODES:
            raise ValueError(f"running_mode must be {_one_of(RUNNING_MODES)}, got {self.running_mode!r}")
        for name in ("min_cutoff", "d_cutoff", "box_scale"):
            object.__setattr__(self, name, real_number(getattr(self, name), name, above=0))
        object.__setattr__(self, "beta", real_number(self.beta, "beta", minimum=0))
        object.__setattr__(self, "min_presence", real_number(self.min_presence, "min_presence", minimum=0, maximum=1))


def flip_test_mean(keypoints: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """The flip-test estimate: the mean of a pass on the model input and a pass on its mirror image.

    The mirror pass's x is negated back (``u -> -u`` in normalized
    coordinates, ``px -> 64 - px`` in the model frame). Its labels stay as
    they are: the estimator tells left from right by the figures' side
    colours, which a mirror keeps, so what it calls the left hand in the
    mirror image is the left hand. (A model that told sides by the body's
    build would swap them with ``skeleton.MIRROR_INDEX``.)

    Args:
        keypoints: [..., 13, 2] normalized keypoints of the input (numpy or
            torch).
        mirrored: the same of its mirror image (the input flipped along x).

    Returns:
        [..., 13, 2] normalized keypoints, of ``keypoints``' type.
    """
    mean = (keypoints + mirrored) / 2
    mean[..., 0] = (keypoints[..., 0] - mirrored[..., 0]) / 2
    return mean


def shift_test_boxes(box: tuple, shift_px: float = SHIFT_TEST_PX) -> list[tuple]:
    """The two crops the shift test runs besides ``box``: moved by ``shift_px`` model pixels (at least one
    frame pixel) along x and y, one each way.

    Args:
        box: ``(x, y, side, side)`` ints, a square crop in frame pixels.
        shift_px: the move in model pixels (of the 64-px model frame); the
            runtime's is ``SHIFT_TEST_PX``.

    Returns:
        ``[(x + d, y + d, side, side), (x - d, y - d, side, side)]``.
    """
    x, y, side, _ = box
    step = max(1, int(math.floor(shift_px * side / FRAME_SIZE + 0.5)))
    return [(x + step, y + step, side, side), (x - step, y - step, side, side)]


def presence_features(keypoints: np.ndarray, scores: np.ndarray, side: float) -> np.ndarray:
    """What the presence model reads from a pass (export fits it on the same function).

    A crop that lost the figure gives low token confidences and a pose that
    shrinks towards the mean, so the features are the log of each keypoint's
    score, of the lowest one and of the pose's extent (its bounding box's
    longer side over ``side``), each at least ``PRESENCE_FLOOR``.

    Args:
        keypoints: [..., 13, 2] keypoints of the pass, in any unit.
        scores: [..., 13] their scores.
        side: the crop's side in the keypoints' unit.

    Returns:
        float64 [..., PRESENCE_FEATURES].
    """
    keypoints, scores = np.asarray(keypoints, np.float64), np.asarray(scores, np.float64)
    extent = (keypoints.max(axis=-2) - keypoints.min(axis=-2)).max(axis=-1) / float(side)
    raw = np.concatenate([scores, scores.min(axis=-1, keepdims=True), extent[..., None]], axis=-1)
    return np.log(np.maximum(raw, PRESENCE_FLOOR))


def presence_probability(features: np.ndarray, model: dict) -> np.ndarray:
    """A logistic presence model on ``presence_features``.

    Args:
        features: float [..., PRESENCE_FEATURES].
        model: ``{"weights": PRESENCE_FEATURES numbers, "bias": number}``.

    Returns:
        float64 [...], the probability that the crop holds a figure.
    """
    z = np.asarray(features, np.float64) @ np.asarray(model["weights"], np.float64) + float(model["bias"])
    ez = np.exp(-np.abs(z))                     # the logistic without overflow either way
    return np.where(z >= 0, 1.0 / (1.0 + ez), ez / (1.0 + ez))


def presence_rows(presence: Optional[dict]) -> list[tuple[str, dict]]:
    """The presence models a manifest's ``estimator.presence`` records.

    Args:
        presence: the section (None or empty: none recorded). The manifest's
            checks make each model's weights and bias present together.

    Returns:
        (``"torch"`` or ``"FORMAT PRECISION"``, the row with ``weights``,
        ``bias`` and the shares it sorts right) for each model: the torch
        model's first, then one per file set.
    """
    presence = presence or {}
    rows = [("torch", presence)] + [(f"{r['format']} {r['precision']}", r) for r in presence.get("files") or ()]
    return [(name, row) for name, row in rows if row.get("weights") is not None]


def bundle_presence_model(presence: Optional[dict], fmt: str, precision: str) -> dict:
    """The presence model a bundle fitted for one estimator file set (``PoseEstimator.presence_model``).

    Args:
        presence: the manifest's ``estimator.presence`` section, or None.
        fmt, precision: the files' format and precision.

    Returns:
        ``{"weights": [PRESENCE_FEATURES floats], "bias": float}``: the model
        fitted on these files, else on the torch model, else posetok's
        ``FALLBACK_PRESENCE`` (a bundle exported before presence models).
    """
    rows = dict(presence_rows(presence))
    row = rows.get(f"{fmt} {precision}", rows.get("torch", FALLBACK_PRESENCE))
    return {"weights": [float(w) for w in row["weights"]], "bias": float(row["bias"])}


class PoseEstimator:
    """An estimator graph of one (format, precision) from a bundle, and the box logic around it.

    Build one with ``PoseEstimator.from_bundle``; use it as a context manager
    (or call ``close``) to release the runtime sessions promptly. In image
    mode several threads may share one (onnxruntime runs their calls side by
    side, a LiteRT interpreter one at a time); in video mode it holds the
    stream's state, so one thread feeds it.

    Args:
        bundle: a loaded ``Bundle`` with an ``estimator`` manifest section.
        options: an ``EstimatorOptions``.

    Attributes:
        bundle: the ``Bundle``.
        options: the ``EstimatorOptions`` used.
        backend: ``"onnxruntime"`` or ``"litert"``.
        format: ``"onnx"`` or ``"tflite"``.
        precision: the estimator file's precision.
        num_tokens: M, token ids per pose.
        figure_share: the share of the crop a person box's long side fills.
        presence_model: the presence model in use (``presence_probability``):
            the bundle's for these files, else its torch model's, else
            ``FALLBACK_PRESENCE``.
        files: the model files opened.

    Raises:
        BundleError: no estimator in the bundle, none of this precision and
            format (the message lists the estimator files it has), or an
            input contract this runtime cannot make.
        BackendUnavailable: the runtime needed is not installed.
    """

    def __init__(self, bundle: Bundle, options: EstimatorOptions):
        self.bundle, self.options = bundle, options
        self.precision = options.precision
        section = bundle.spec.estimator
        have = [a for a in bundle.artifacts if a.role == "estimator"]
        listing = ", ".join(a.file for a in have) or "none"
        if not section or not have:
            raise BundleError(f"bundle {bundle.root} has no estimator (estimator files: {listing}); "
                              "export one with export_bundle(..., estimator=model)")
        offered = {a.format for a in have if a.precision == self.precision}
        wanted = backends.FORMAT_OF_BACKEND.get(options.backend)
        if not offered or (wanted is not None and wanted not in offered):
            raise BundleError(f"bundle {bundle.root} has no {self.precision} {wanted or ''} estimator file; "
                              f"its estimator files are {listing}".replace("  ", " "))
        self.backend = _pick_backend(options.backend, offered, f"{self.precision} estimator")
        self.format = backends.FORMAT_OF_BACKEND[self.backend]
        self._mean, self._scale, self.figure_share = self._contract(section)
        self.presence_model = bundle_presence_model(section.get("presence"), self.format, self.precision)
        artifacts = bundle.select("estimator", self.format, self.precision)
        for a in artifacts:
            names = [o.name for o in a.outputs]
            if sorted(names) != sorted(OUTPUTS):
                raise BundleError(f"{a.file}: outputs {names}, this posetok reads {list(OUTPUTS)}")
        sessions = [backends.open_session(bundle.path_of(a), self.format, options.num_threads, a.outputs, a.inputs)
                    for a in artifacts]
        self._runner: Optional[backends.BatchRunner] = backends.BatchRunner(sessions)
        self.files = [a.file for a in artifacts]
        self.num_tokens = bundle.num_tokens
        self.reset()

    def _contract(self, section: dict) -> tuple:
        """(mean, scale, figure_share) of the manifest's estimator section (its types and ranges are checked
        when the manifest is read), after checking it asks for the input this runtime makes."""
        spec = section["input"]
        got = (spec["size"], spec["layout"], spec["channels"])
        if got != ([FRAME_SIZE, FRAME_SIZE], "NCHW", "rgb"):
            raise BundleError(f"bundle {self.bundle.root}: manifest estimator.input (size, layout, channels) is "
                              f"{got}; this posetok makes {FRAME_SIZE}x{FRAME_SIZE} NCHW rgb")
        mean, scale = (np.asarray(spec[k], np.float32) for k in ("mean", "scale"))
        return mean, scale, float(section["figure_share"])

    @classmethod
    def from_bundle(cls, path: os.PathLike | str, backend: Optional[str] = None, precision: Optional[str] = None,
                    num_threads: Optional[int] = None, verify: Optional[bool] = None,
                    public_key: Optional[str | os.PathLike] = None, running_mode: Optional[str] = None,
                    options: Optional[EstimatorOptions] = None) -> "PoseEstimator":
        """Load (and verify) a bundle and open its estimator.

        Pass the settings either as keywords or as one ``options`` value, not
        both. A keyword left at None takes ``EstimatorOptions``' default; the
        smoothing settings and box_scale are set through ``options``.

        Args:
            path: the bundle folder (holding ``manifest.json``).
            backend: ``"auto"`` (default), ``"onnxruntime"`` or ``"litert"``.
            precision: ``"fp32"`` (default), ``"fp16"``, ``"int8w"`` or ``"int8"``.
            num_threads: threads per session; None: the runtime's default.
            verify: check each file's size and sha256 (default True).
            public_key: PEM file of the public key the bundle must be signed for.
            running_mode: ``"image"`` (default) or ``"video"``.
            options: all of the above and more as one ``EstimatorOptions``.

        Returns:
            An open ``PoseEstimator``.

        Raises:
            TypeError: ``options`` together with keywords (the message names
                them), or an ``options`` that is not an ``EstimatorOptions``.
            ValueError: an invalid setting (see ``EstimatorOptions``).
            BundleError: no bundle at ``path``, a malformed manifest, or no
                estimator of the precision and format.
            IntegrityError: a model file's size or sha256 differs from the manifest.
            BackendUnavailable: the runtime needed is not installed.
            SignatureError: (``public_key``) the signature does not hold.
        """
        given = {name: value for name, value in (("backend", backend), ("precision", precision),
                                                 ("num_threads", num_threads), ("verify", verify),
                                                 ("public_key", public_key), ("running_mode", running_mode))
                 if value is not None}
        if options is None:
            options = EstimatorOptions(**given)
        elif not isinstance(options, EstimatorOptions):
            raise TypeError(f"options must be an EstimatorOptions, got {type(options).__name__}")
        elif given:
            names = ", ".join(f"{name}=" for name in given)
            raise TypeError(f"PoseEstimator.from_bundle() got options= together with {names}; "
                            "pass the settings either as keywords or inside EstimatorOptions, not both")
        return cls(Bundle.load(path, verify=options.verify, public_key=options.public_key), options)

    def close(self) -> None:
        """Release the runtime sessions; later calls raise RuntimeError. Idempotent."""
        self._runner = None

    def __enter__(self) -> "PoseEstimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PoseEstimator(bundle={str(self.bundle.root)!r}, backend={self.backend!r}, "
                f"precision={self.precision!r}, running_mode={self.options.running_mode!r})")

    def reset(self) -> None:
        """Forget the video stream: the next frame is searched like an image and starts a new filter."""
        self._restart_track()
        self._last_ms: Optional[float] = None

    def _restart_track(self) -> None:
        o = self.options
        self._filter = OneEuroFilter(o.min_cutoff, o.beta, o.d_cutoff)
        self._track: Optional[tuple] = None          # (the next crop, the frame size it belongs to)

    # -- the public calls: one per frame layout --
    def estimate(self, image: np.ndarray, box=None, timestamp_ms: Optional[float] = None) -> PoseResult:
        """The pose in an RGB or grey frame.

        Args:
            image: uint8 (H, W, 3) RGB or (H, W) grey, at least 16 x 16. A
                window of a larger frame is read in place; other views
                (flipped, BGR reversed, RGB of RGBA pixels) are copied first.
                The model was trained on colour frames, where limb colours
                tell left from right: grey frames lose that cue, and its
                estimates are much worse.
            box: ``(x, y, width, height)`` numbers in frame pixels, tight
                around the person (the crop around it: see ``person_crop``);
                None: search the frame.
            timestamp_ms: the frame's time in milliseconds; required in video
                mode, strictly increasing; must be None in image mode.

        Returns:
            A ``PoseResult`` in frame pixels.

        Raises:
            ValueError: a wrong type, dtype or shape, a frame under 16 x 16 or
                over 65536 px on a side, a box that is malformed or does not
                overlap the frame, a missing, unexpected or non-increasing
                timestamp_ms.
            RuntimeError: the estimator is closed.
        """
        img = _check_frame("image", image, (3, 1))
        return self._estimate(lambda b: self._crop_rgb(img, b), img.shape[1], img.shape[0], box, timestamp_ms)

    def estimate_nv21(self, y: np.ndarray, vu: np.ndarray, box=None,
                      timestamp_ms: Optional[float] = None) -> PoseResult:
        """The pose in an NV21 camera frame (Android's default preview format).

        Args:
            y: uint8 (H, W) luma plane, H and W even, at least 16 x 16.
            vu: uint8 (H/2, W/2, 2) interleaved V, U plane, or (H/2, W) bytes.
            box, timestamp_ms: as ``estimate``.

        Returns:
            A ``PoseResult`` in frame pixels.

        Raises:
            ValueError: a wrong dtype or shape, odd H or W, a chroma plane that
                does not fit the luma plane, a bad box or timestamp (as ``estimate``).
            RuntimeError: the estimator is closed.
        """
        return self._planes(kernels.crop_nv21, y, vu, box, timestamp_ms)

    def estimate_nv12(self, y: np.ndarray, uv: np.ndarray, box=None,
                      timestamp_ms: Optional[float] = None) -> PoseResult:
        """The pose in an NV12 camera frame (U before V; V4L2 and most ISPs).

        Args:
            y: uint8 (H, W) luma plane, H and W even, at least 16 x 16.
            uv: uint8 (H/2, W/2, 2) interleaved U, V plane, or (H/2, W) bytes.
            box, timestamp_ms: as ``estimate``.

        Returns:
            A ``PoseResult`` in frame pixels.

        Raises:
            ValueError, RuntimeError: as ``estimate_nv21``.
        """
        return self._planes(kernels.crop_nv12, y, uv, box, timestamp_ms)

    # -- the machinery --
    def _planes(self, crop, y, chroma, box, timestamp_ms) -> PoseResult:
        luma = _check_frame("y", y, ())
        h, w = luma.shape
        if h % 2 or w % 2:
            raise ValueError(f"y must have an even height and width (a 4:2:0 frame), got {w}x{h}")
        mean, scale, chroma = self._mean, self._scale, kernel_layout(chroma)
        return self._estimate(lambda b: crop(luma, chroma, b, (FRAME_SIZE, FRAME_SIZE), mean=mean, scale=scale),
                              w, h, box, timestamp_ms)

    def _crop_rgb(self, img: np.ndarray, box: tuple) -> np.ndarray:
        size = (FRAME_SIZE, FRAME_SIZE)
        if img.ndim == 3 and img.shape[2] == 3:
            return kernels.crop_image(img, box, size, mean=self._mean, scale=self._scale)
        _, grey = kernels.crop_image(img, box, size, mean=0.0, scale=1.0, u8=True)
        return kernels.normalize(np.repeat(grey, 3, axis=2), self._mean, self._scale)

    def _check_time(self, timestamp_ms) -> Optional[float]:
        video = self.options.running_mode == "video"
        if not video:
            if timestamp_ms is not None:
                raise ValueError("timestamp_ms is for running_mode='video'; this estimator runs in image mode")
            return None
        if timestamp_ms is None:
            raise ValueError("running_mode='video' needs timestamp_ms (the frame's time in milliseconds)")
        if not is_real_number(timestamp_ms) or not math.isfinite(timestamp_ms):
            raise ValueError(f"timestamp_ms must be a finite number of milliseconds, got {timestamp_ms!r}")
        if self._last_ms is not None and timestamp_ms <= self._last_ms:
            raise ValueError(f"timestamp_ms must increase from frame to frame: got {timestamp_ms} after "
                             f"{self._last_ms} (call reset() to start a new stream)")
        return float(timestamp_ms)

    def _pass(self, crop: Callable, box: tuple, flip_test: bool = False, shift_test: bool = False) -> tuple:
        """(keypoints in frame px, scores, token ids) of one pass on ``box``; with ``shift_test`` also on the
        ``shift_test_boxes``, with ``flip_test`` also on each crop's mirror image, all in one batch: the mean of
        their keypoints (in frame px) and scores, the ids of ``box``'s own row."""
        if self._runner is None:
            raise RuntimeError("this PoseEstimator is closed")
        boxes = [box, *shift_test_boxes(box)] if shift_test else [box]
        images = [crop(b) for b in boxes]                               # (3, 64, 64) each, NCHW without N
        if flip_test:
            images += [image[:, :, ::-1] for image in images]
        out = self._runner.run_outputs(np.stack(images))
        normalized = np.asarray(out["keypoints"], np.float32).reshape(len(images), NUM_KEYPOINTS, 2)
        scores = np.asarray(out["scores"], np.float32).reshape(len(images), NUM_KEYPOINTS)
        if flip_test:
            normalized = flip_test_mean(normalized[:len(boxes)], normalized[len(boxes):])
        corners = np.asarray([b[:2] for b in boxes], np.float32)[:, None, :]
        keypoints = (corners + normalized_to_pixels(normalized) * np.float32(box[2] / FRAME_SIZE)).mean(axis=0)
        ids = np.asarray(out["token_ids"]).reshape(len(images), -1)[0].astype(np.int32)
        return keypoints, np.clip(scores.mean(axis=0), 0.0, 1.0), ids

    def _presence(self, keypoints: np.ndarray, scores: np.ndarray, side: float) -> float:
        # the extent in the crop box_scale 1 would have made (the model's unit): a wider margin shrinks the
        # pose's share of the crop, not the figure
        features = presence_features(keypoints, scores, side / self.options.box_scale)
        return float(presence_probability(features, self.presence_model))

    def _crop(self, box: tuple, width: int, height: int) -> tuple:
        return person_crop(box, width, height, self.figure_share, self.options.box_scale)

    def _box_around(self, keypoints: np.ndarray, width: int, height: int) -> tuple:
        low, high = keypoints.min(axis=0), keypoints.max(axis=0)
        return self._crop((float(low[0]), float(low[1]), *(float(v) for v in high - low)), width, height)

    def _search(self, crop: Callable, width: int, height: int) -> tuple:
        """The crop around the figure a coarse pass finds on the square covering the whole frame."""
        side = max(width, height)
        coarse, _, _ = self._pass(crop, ((width - side) // 2, (height - side) // 2, side, side))
        return self._box_around(coarse, width, height)

    def _estimate(self, crop: Callable, width: int, height: int, box, timestamp_ms) -> PoseResult:
        if self._runner is None:
            raise RuntimeError("this PoseEstimator is closed")
        t_ms = self._check_time(timestamp_ms)
        if box is not None:
            box = _check_box(box, width, height)
        if t_ms is not None and self._track is not None and self._track[1] != (width, height):
            self._restart_track()            # another frame size: the tracked crop means nothing in it
        tracked = box is None and self._track is not None
        searched = box is None and not tracked
        square = (self._crop(box, width, height) if box is not None else self._track[0] if tracked
                  else self._search(crop, width, height))
        views = (self.options.flip_test, self.options.shift_test)
        keypoints, scores, ids = self._pass(crop, square, *views)
        presence = self._presence(keypoints, scores, square[2])
        if tracked and presence < self.options.min_presence:
            found = self._search(crop, width, height)
            x, y, side, _ = square
            if not (x <= found[0] + found[2] / 2 <= x + side and y <= found[1] + found[3] / 2 <= y + side):
                self._restart_track()        # the figure is elsewhere: do not smooth across the jump
            square, searched = found, True
            keypoints, scores, ids = self._pass(crop, square, *views)
            presence = self._presence(keypoints, scores, square[2])
        if t_ms is not None:
            dt = None if self._last_ms is None else (t_ms - self._last_ms) / 1000.0
            keypoints = self._filter(keypoints, dt, 1.0 / square[2]).astype(np.float32)
            self._track, self._last_ms = (self._box_around(keypoints, width, height), (width, height)), t_ms
        return PoseResult(keypoints, scores, ids, square, presence, searched)
