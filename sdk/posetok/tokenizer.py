"""PoseTokenizer: keypoints -> token ids -> keypoints with a bundle's graphs.

    with PoseTokenizer.from_bundle("bundle/", backend="onnxruntime", precision="int8") as tok:
        ids = tok.encode(keypoints_px)      # (13, 2) -> (M,), or (B, 13, 2) -> (B, M) int32
        back = tok.decode(ids)              # pixels of the 64-px frame, float32

Inputs are checked before any runtime sees them; errors name the problem.
Settings can also travel as one ``TokenizerOptions`` value
(``PoseTokenizer.from_bundle(path, options=opts)``), like onnxruntime's
``SessionOptions`` or MediaPipe's ``PoseLandmarkerOptions``.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

from . import backends, token_search
from .bundle import PRECISIONS, Bundle, BundleError
from .checks import flag, num_threads
from .skeleton import NUM_KEYPOINTS, normalized_to_pixels, pixels_to_normalized


def _one_of(allowed: tuple) -> str:
    """'a', 'b' or 'c'."""
    quoted = [repr(v) for v in allowed]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]


@dataclasses.dataclass(frozen=True)
class TokenizerOptions:
    """How ``PoseTokenizer.from_bundle`` opens a bundle. Frozen; change a copy
    with ``dataclasses.replace(options, precision="int8")``.

    Attributes:
        backend: the inference runtime: ``"onnxruntime"``, ``"litert"``
            (``ai_edge_litert``, else ``tflite_runtime``) or ``"auto"``
            (onnxruntime if installed and the bundle has ONNX graphs of
            ``precision``, else LiteRT). Default ``"auto"``.
        precision: which of the bundle's graphs to run: ``"fp32"``,
            ``"fp16"``, ``"int8w"`` (int8 weights, float activations) or
            ``"int8"`` (int8 weights and activations). The bundle must hold
            an encoder and a decoder of that precision. Default ``"fp32"``.
        num_threads: threads per inference session, an integer from 1 to
            ``MAX_THREADS`` (1024); None keeps the runtime's default
            (onnxruntime: one per core; LiteRT: 1).
        verify: check every model file's size and sha256 against the
            manifest when loading (a few ms per MB). Default True.
        public_key: PEM file of the elliptic-curve public key the bundle
            must be signed for (``posetok sign``); loading then refuses a
            bundle whose signature is missing or does not cover its files
            exactly. Needs ``pip install 'posetok[signing]'``. Default None:
            signatures are not checked.
        search: refine the encoder graph's nearest codes with the search
            the bundle's manifest describes (``posetok.token_search``: swap a
            position's code for a neighbouring one when the decoder then
            reconstructs the pose more closely), as the bundle's figures were
            measured. It costs about ``sweeps * M * C`` decoder rows per
            pose. False: the encoder graph's ids as they are. Default True;
            a bundle without a search encodes with the graph alone.

    Raises:
        ValueError: an unknown backend or precision (the message lists the
            allowed values), num_threads that is not None or an integer from 1 to
            1024, or a verify or search that is not a bool.
    """

    backend: str = "auto"
    precision: str = "fp32"
    num_threads: Optional[int] = None
    verify: bool = True
    public_key: Optional[str | os.PathLike] = None
    search: bool = True

    def __post_init__(self):
        _check_runtime_options(self)
        _check_flag(self, "search")


def _check_runtime_options(options) -> None:
    """The settings TokenizerOptions and EstimatorOptions share: backend, precision, num_threads, verify,
    public_key. A numpy integer num_threads is stored as an int."""
    if options.backend not in ("auto",) + backends.BACKENDS:
        raise ValueError(f"backend must be {_one_of(('auto',) + backends.BACKENDS)}, got {options.backend!r}")
    if options.precision not in PRECISIONS:
        raise ValueError(f"precision must be {_one_of(PRECISIONS)}, got {options.precision!r}")
    object.__setattr__(options, "num_threads", num_threads(options.num_threads))   # frozen dataclasses
    _check_flag(options, "verify")
    if options.public_key is not None and not isinstance(options.public_key, (str, os.PathLike)):
        raise ValueError(f"public_key must be None or a path to a PEM file, got {options.public_key!r}")


def _check_flag(options, name: str) -> None:
    """Store the True/False setting ``name`` of frozen ``options`` as a bool (``checks.flag``)."""
    object.__setattr__(options, name, flag(getattr(options, name), name))


def _pick_backend(backend: str, offered: set, what: str) -> str:
    """``backend``, or for "auto" the first installed runtime whose format is in ``offered``."""
    if backend != "auto":
        return backend
    installed = backends.installed_backends()
    for name in backends.BACKENDS:  # onnxruntime first: it runs any batch size natively
        if name in installed and backends.FORMAT_OF_BACKEND[name] in offered:
            return name
    raise backends.BackendUnavailable(
        f"no installed runtime can run this bundle's {what} "
        f"(bundle offers {sorted(offered)}, installed runtimes: {installed or 'none'}); "
        "pip install 'posetok[onnxruntime]' or 'posetok[litert]'")


def _choose_backend(bundle: Bundle, options: TokenizerOptions) -> str:
    offered = {fmt for fmt, precision in bundle.offers() if precision == options.precision}
    if not offered:
        raise BundleError(f"bundle {bundle.root} has no {options.precision} graphs; it offers "
                          + (", ".join(f"{f}/{p}" for f, p in bundle.offers()) or "no encoder and decoder"))
    return _pick_backend(options.backend, offered, f"{options.precision} graphs")


class PoseTokenizer:
    """Encoder and decoder graphs of one (format, precision) from a bundle.

    Build one with ``PoseTokenizer.from_bundle``; use it as a context manager
    (or call ``close``) to release the runtime sessions promptly.

    Args:
        bundle: a loaded ``Bundle``.
        options: backend, precision and threads; ``options.verify`` is not
            used here (``Bundle.load`` verifies).

    Attributes:
        bundle: the ``Bundle``.
        options: the ``TokenizerOptions`` used.
        backend: the runtime chosen, ``"onnxruntime"`` or ``"litert"``.
        format: the model format run, ``"onnx"`` or ``"tflite"``.
        precision: the graphs' precision.
        num_tokens: M, token ids per pose.
        num_codes: V, token ids lie in ``[0, V)``.
        search_sweeps: passes of the encoder-side search ``encode`` runs
            (0: the encoder graph's nearest codes).
        files: ``{"encoder": [...], "decoder": [...]}``, the model files opened.

    Raises:
        BundleError: the bundle has no graphs of ``options.precision`` (the
            message lists what it offers).
        BackendUnavailable: the runtime needed is not installed.
    """

    def __init__(self, bundle: Bundle, options: TokenizerOptions):
        self.bundle = bundle
        self.options = options
        self.backend = _choose_backend(bundle, options)
        self.format = backends.FORMAT_OF_BACKEND[self.backend]
        self.precision = options.precision
        self.num_tokens = bundle.num_tokens
        self.num_codes = bundle.num_codes
        self._runners = {}
        for role in ("encoder", "decoder"):
            artifacts = bundle.select(role, self.format, self.precision)
            sessions = [backends.open_session(bundle.path_of(a), self.format, options.num_threads,
                                              inputs=a.inputs) for a in artifacts]
            self._runners[role] = backends.BatchRunner(sessions)
        self.files = {role: [a.file for a in bundle.select(role, self.format, self.precision)]
                      for role in ("encoder", "decoder")}
        self.search_sweeps = bundle.search_sweeps if options.search else 0

    @classmethod
    def from_bundle(cls, path: os.PathLike | str, backend: Optional[str] = None,
                    precision: Optional[str] = None, num_threads: Optional[int] = None,
                    verify: Optional[bool] = None, public_key: Optional[str | os.PathLike] = None,
                    search: Optional[bool] = None,
                    options: Optional[TokenizerOptions] = None) -> "PoseTokenizer":
        """Load (and verify) a bundle and open its encoder and decoder.

        Pass the settings either as keywords or as one ``options`` value, not
        both. A keyword left at None takes ``TokenizerOptions``' default.

        Args:
            path: the bundle folder (holding ``manifest.json``).
            backend: ``"auto"`` (default), ``"onnxruntime"`` or ``"litert"``;
                see ``TokenizerOptions.backend``.
            precision: ``"fp32"`` (default), ``"fp16"``, ``"int8w"`` or ``"int8"``.
            num_threads: threads per session; None: the runtime's default.
            verify: check each file's size and sha256 (default True).
            public_key: PEM file of the public key the bundle must be signed
                for; None (default): signatures are not checked.
            search: run the bundle's encoder-side search (default True);
                see ``TokenizerOptions.search``.
            options: all of the above as one ``TokenizerOptions``.

        Returns:
            An open ``PoseTokenizer``.

        Raises:
            TypeError: ``options`` together with any of backend, precision,
                num_threads, verify, public_key or search (the message names them), or an
                ``options`` that is not a ``TokenizerOptions``.
            ValueError: an unknown backend or precision, a bad num_threads.
            BundleError: no bundle at ``path``, a malformed manifest, or no
                graphs of the precision.
            IntegrityError: a model file's size or sha256 differs from the
                manifest.
            BackendUnavailable: the runtime needed is not installed.
            SignatureError: (``public_key``) the signature is missing, made
                with another key, or a file changed since signing.
            SigningUnavailable: (``public_key``) model-signing is not installed.
        """
        given = {name: value for name, value in (("backend", backend), ("precision", precision),
                                                 ("num_threads", num_threads), ("verify", verify),
                                                 ("public_key", public_key), ("search", search))
                 if value is not None}
        if options is None:
            options = TokenizerOptions(**given)
        elif not isinstance(options, TokenizerOptions):
            raise TypeError(f"options must be a TokenizerOptions, got {type(options).__name__}")
        elif given:
            names = ", ".join(f"{name}=" for name in given)
            raise TypeError(f"PoseTokenizer.from_bundle() got options= together with {names}; "
                            "pass the settings either as keywords or inside TokenizerOptions "
                            "(dataclasses.replace(options, ...)), not both")
        return cls(Bundle.load(path, verify=options.verify, public_key=options.public_key), options)

    # -- context manager: sessions hold native memory; release it promptly --
    def close(self) -> None:
        """Release the runtime sessions; later calls raise RuntimeError. Idempotent."""
        self._runners = {}

    def __enter__(self) -> "PoseTokenizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PoseTokenizer(bundle={str(self.bundle.root)!r}, backend={self.backend!r}, "
                f"precision={self.precision!r}, tokens={self.num_tokens}, codes={self.num_codes}, "
                f"search_sweeps={self.search_sweeps})")

    def _runner(self, role: str) -> backends.BatchRunner:
        if not self._runners:
            raise RuntimeError("this PoseTokenizer is closed")
        return self._runners[role]

    # -- input checks --
    @staticmethod
    def _check_keypoints(keypoints) -> tuple[np.ndarray, bool]:
        try:
            kp = np.asarray(keypoints)
        except (TypeError, ValueError) as exc:  # ragged nested lists, objects numpy cannot read
            raise ValueError(f"keypoints must be an array of shape ({NUM_KEYPOINTS}, 2) or "
                             f"(B, {NUM_KEYPOINTS}, 2): {exc}") from None
        if kp.dtype.kind not in "fiu":
            raise ValueError(f"keypoints must be a real numeric array, got dtype {kp.dtype}")
        single = kp.ndim == 2
        if single:
            kp = kp[None]
        if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 2):
            raise ValueError(f"keypoints must have shape ({NUM_KEYPOINTS}, 2) or (B, {NUM_KEYPOINTS}, 2), "
                             f"got {kp.shape[1:] if single else kp.shape}")
        if kp.shape[0] == 0:
            raise ValueError("keypoints batch is empty")
        with np.errstate(over="ignore"):
            kp32 = kp.astype(np.float32, copy=False)
        if not np.isfinite(kp32).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(kp32))[0])
            what = "NaN or inf" if not np.isfinite(kp[bad]) else "a value beyond the float32 range"
            raise ValueError(f"keypoints contain {what} (first at index {bad})")
        return kp32, single

    def _check_token_ids(self, token_ids) -> tuple[np.ndarray, bool]:
        try:
            ids = np.asarray(token_ids)
        except (TypeError, ValueError) as exc:  # ragged nested lists, objects numpy cannot read
            raise ValueError(f"token_ids must be an integer array of shape ({self.num_tokens},) or "
                             f"(B, {self.num_tokens}): {exc}") from None
        if ids.dtype.kind not in "iu":
            raise ValueError(f"token_ids must be an integer array, got dtype {ids.dtype}")
        single = ids.ndim == 1
        if single:
            ids = ids[None]
        if ids.ndim != 2 or ids.shape[1] != self.num_tokens:
            raise ValueError(f"token_ids must have shape ({self.num_tokens},) or (B, {self.num_tokens}), "
                             f"got {ids.shape[1:] if single else ids.shape}")
        if ids.shape[0] == 0:
            raise ValueError("token_ids batch is empty")
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.num_codes:
            raise ValueError(f"token_ids must lie in [0, {self.num_codes}), got values in [{low}, {high}]")
        return ids.astype(np.int32), single

    # -- the graphs in model coordinates ([-1, 1]) --
    def _encode_batch(self, kp_norm: np.ndarray) -> np.ndarray:
        nearest = self._runner("encoder").run(kp_norm).astype(np.int32, copy=False)
        if not self.search_sweeps:
            return nearest
        return token_search.refine_token_ids(nearest, kp_norm, self._decode_batch, self.bundle.code_neighbours,
                                             self.search_sweeps)[0]

    def _decode_batch(self, ids: np.ndarray) -> np.ndarray:
        out = self._runner("decoder").run(ids)
        return out.astype(np.float32, copy=False).reshape(-1, NUM_KEYPOINTS, 2)

    def encode_normalized(self, keypoints_norm) -> np.ndarray:
        """Like ``encode``, for keypoints in model coordinates (``u = px / 32 - 1``).

        Args:
            keypoints_norm: (13, 2) or (B, 13, 2) real array in [-1, 1].

        Returns:
            int32 token ids, (M,) or (B, M).

        Raises:
            ValueError: a wrong shape or dtype, an empty batch, NaN or inf.
            RuntimeError: the tokenizer is closed.
        """
        kp, single = self._check_keypoints(keypoints_norm)
        ids = self._encode_batch(kp)
        return ids[0] if single else ids

    def decode_normalized(self, token_ids) -> np.ndarray:
        """Like ``decode``, returning model coordinates (``u = px / 32 - 1``).

        Args:
            token_ids: (M,) or (B, M) integer array with values in ``[0, V)``.

        Returns:
            float32 keypoints, (13, 2) or (B, 13, 2), about [-1, 1].

        Raises:
            ValueError: a wrong shape or dtype, an empty batch, ids outside
                ``[0, num_codes)``.
            RuntimeError: the tokenizer is closed.
        """
        ids, single = self._check_token_ids(token_ids)
        kp = self._decode_batch(ids)
        return kp[0] if single else kp

    # -- the public API in pixels of the 64-px frame --
    def encode(self, keypoints) -> np.ndarray:
        """Keypoints in pixels of the 64-px frame -> token ids.

        The encoder graph picks each position's nearest code; unless the
        tokenizer was opened with ``search=False``, the bundle's decoder
        search then refines them (``posetok.token_search``).

        Args:
            keypoints: (13, 2) or (B, 13, 2) real array, (x, y) per keypoint
                in ``posetok.skeleton.KEYPOINT_NAMES`` order; any real dtype.

        Returns:
            int32 token ids, (M,) for one pose or (B, M) for a batch.

        Raises:
            ValueError: a wrong shape or dtype, an empty batch, NaN or inf
                (the message gives the first bad index).
            RuntimeError: the tokenizer is closed.
        """
        kp, single = self._check_keypoints(keypoints)
        ids = self._encode_batch(pixels_to_normalized(kp))
        return ids[0] if single else ids

    def decode(self, token_ids) -> np.ndarray:
        """Token ids -> keypoints in pixels of the 64-px frame.

        Args:
            token_ids: (M,) or (B, M) integer array with values in ``[0, V)``.

        Returns:
            float32 keypoints, (13, 2) or (B, 13, 2).

        Raises:
            ValueError: a wrong shape or dtype, an empty batch, ids outside
                ``[0, num_codes)``.
            RuntimeError: the tokenizer is closed.
        """
        return normalized_to_pixels(self.decode_normalized(token_ids))

    def roundtrip(self, keypoints) -> np.ndarray:
        """Encode then decode: what a receiver of the tokens reconstructs.

        Args:
            keypoints: as ``encode``.

        Returns:
            float32 keypoints in pixels, the shape of ``keypoints``.

        Raises:
            ValueError: as ``encode``.
            RuntimeError: the tokenizer is closed.
        """
        return self.decode(self.encode(keypoints))
