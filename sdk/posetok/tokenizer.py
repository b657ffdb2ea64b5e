"""PoseTokenizer: keypoints -> token ids -> keypoints with a bundle's graphs.

    with PoseTokenizer.from_bundle("bundle/", backend="onnxruntime", precision="int8") as tok:
        ids = tok.encode(keypoints_px)      # (13, 2) -> (M,), or (B, 13, 2) -> (B, M) int32
        back = tok.decode(ids)              # pixels of the 64-px frame, float32

Inputs are checked before any runtime sees them; errors name the problem.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

from . import backends
from .bundle import Bundle, BundleError
from .skeleton import NUM_KEYPOINTS, normalized_to_pixels, pixels_to_normalized


@dataclasses.dataclass(frozen=True)
class TokenizerOptions:
    backend: str = "auto"          # "auto" | "onnxruntime" | "litert"
    precision: str = "fp32"        # "fp32" | "fp16" | "int8w" | "int8"
    num_threads: Optional[int] = None  # None: the runtime's default (LiteRT: 1)
    verify: bool = True            # check every file's sha256 against the manifest

    def __post_init__(self):
        if self.backend not in ("auto",) + backends.BACKENDS:
            raise ValueError(f"backend must be 'auto', 'onnxruntime' or 'litert', got {self.backend!r}")
        if self.num_threads is not None and (not isinstance(self.num_threads, int) or self.num_threads < 1):
            raise ValueError(f"num_threads must be None or a positive int, got {self.num_threads!r}")


def _choose_backend(bundle: Bundle, options: TokenizerOptions) -> str:
    offered = {fmt for fmt, precision in bundle.offers() if precision == options.precision}
    if not offered:
        raise BundleError(f"bundle {bundle.root} has no {options.precision} graphs; it offers "
                          + ", ".join(f"{f}/{p}" for f, p in bundle.offers()))
    if options.backend != "auto":
        return options.backend
    installed = backends.installed_backends()
    for backend in backends.BACKENDS:  # onnxruntime first: it runs any batch size natively
        if backend in installed and backends.FORMAT_OF_BACKEND[backend] in offered:
            return backend
    raise backends.BackendUnavailable(
        f"no installed runtime can run this bundle's {options.precision} graphs "
        f"(bundle offers {sorted(offered)}, installed runtimes: {installed or 'none'}); "
        "pip install 'posetok[onnxruntime]' or 'posetok[litert]'")


class PoseTokenizer:
    """Encoder and decoder graphs of one (format, precision) from a bundle."""

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
            sessions = [backends.open_session(bundle.path_of(a), self.format, options.num_threads)
                        for a in artifacts]
            self._runners[role] = backends.BatchRunner(sessions)
        self.files = {role: [a.file for a in bundle.select(role, self.format, self.precision)]
                      for role in ("encoder", "decoder")}

    @classmethod
    def from_bundle(cls, path: os.PathLike | str, backend: str = "auto", precision: str = "fp32",
                    num_threads: Optional[int] = None, verify: bool = True,
                    options: Optional[TokenizerOptions] = None) -> "PoseTokenizer":
        options = options or TokenizerOptions(backend=backend, precision=precision,
                                              num_threads=num_threads, verify=verify)
        return cls(Bundle.load(path, verify=options.verify), options)

    # -- context manager: sessions hold native memory; release it promptly --
    def close(self) -> None:
        self._runners = {}

    def __enter__(self) -> "PoseTokenizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PoseTokenizer(bundle={str(self.bundle.root)!r}, backend={self.backend!r}, "
                f"precision={self.precision!r}, tokens={self.num_tokens}, codes={self.num_codes})")

    def _runner(self, role: str) -> backends.BatchRunner:
        if not self._runners:
            raise RuntimeError("this PoseTokenizer is closed")
        return self._runners[role]

    # -- input checks --
    @staticmethod
    def _check_keypoints(keypoints) -> tuple[np.ndarray, bool]:
        kp = np.asarray(keypoints)
        if kp.dtype.kind not in "fiu":
            raise ValueError(f"keypoints must be a real numeric array, got dtype {kp.dtype}")
        single = kp.ndim == 2
        if single:
            kp = kp[None]
        if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 2):
            raise ValueError(f"keypoints must have shape ({NUM_KEYPOINTS}, 2) or (B, {NUM_KEYPOINTS}, 2), "
                             f"got {np.shape(keypoints)}")
        if kp.shape[0] == 0:
            raise ValueError("keypoints batch is empty")
        kp = kp.astype(np.float32, copy=False)
        if not np.isfinite(kp).all():
            bad = np.argwhere(~np.isfinite(kp))[0]
            raise ValueError(f"keypoints contain NaN or inf (first at index {tuple(int(i) for i in bad)})")
        return kp, single

    def _check_token_ids(self, token_ids) -> tuple[np.ndarray, bool]:
        ids = np.asarray(token_ids)
        if ids.dtype.kind not in "iu":
            raise ValueError(f"token ids must be an integer array, got dtype {ids.dtype}")
        single = ids.ndim == 1
        if single:
            ids = ids[None]
        if ids.ndim != 2 or ids.shape[1] != self.num_tokens:
            raise ValueError(f"token ids must have shape ({self.num_tokens},) or (B, {self.num_tokens}), "
                             f"got {np.shape(token_ids)}")
        if ids.shape[0] == 0:
            raise ValueError("token ids batch is empty")
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.num_codes:
            raise ValueError(f"token ids must lie in [0, {self.num_codes}), got values in [{low}, {high}]")
        return ids.astype(np.int32), single

    # -- the graphs in model coordinates ([-1, 1]) --
    def _encode_batch(self, kp_norm: np.ndarray) -> np.ndarray:
        return self._runner("encoder").run(kp_norm).astype(np.int32, copy=False)

    def _decode_batch(self, ids: np.ndarray) -> np.ndarray:
        out = self._runner("decoder").run(ids)
        return out.astype(np.float32, copy=False).reshape(-1, NUM_KEYPOINTS, 2)

    def encode_normalized(self, keypoints_norm) -> np.ndarray:
        kp, single = self._check_keypoints(keypoints_norm)
        ids = self._encode_batch(kp)
        return ids[0] if single else ids

    def decode_normalized(self, token_ids) -> np.ndarray:
        ids, single = self._check_token_ids(token_ids)
        kp = self._decode_batch(ids)
        return kp[0] if single else kp

    # -- the public API in pixels of the 64-px frame --
    def encode(self, keypoints) -> np.ndarray:
        """Keypoints in pixels, (13, 2) or (B, 13, 2) -> int32 token ids (M,) or (B, M)."""
        kp, single = self._check_keypoints(keypoints)
        ids = self._encode_batch(pixels_to_normalized(kp))
        return ids[0] if single else ids

    def decode(self, token_ids) -> np.ndarray:
        """Token ids (M,) or (B, M) -> keypoints in pixels, (13, 2) or (B, 13, 2) float32."""
        return normalized_to_pixels(self.decode_normalized(token_ids))

    def roundtrip(self, keypoints) -> np.ndarray:
        """Encode then decode: what a receiver of the tokens reconstructs."""
        return self.decode(self.encode(keypoints))
