"""posetok: on-device runtime for the compositional pose tokenizer.

Imports only numpy and, lazily, one inference runtime; never torch.

Public API:
    PoseTokenizer, TokenizerOptions: keypoints -> token ids -> keypoints.
    Bundle: a verified folder of model files plus ``manifest.json``.
    PosetokError: base of every error below.
    BundleError, IntegrityError: a bundle that cannot be used.
    BackendUnavailable: the requested inference runtime is not installed.
    KernelError: the image kernel library returned an error.
"""
__version__ = "0.1.0"

from .backends import BackendUnavailable  # noqa: E402
from .bundle import Bundle, BundleError, IntegrityError  # noqa: E402
from .errors import PosetokError  # noqa: E402
from .kernels import KernelError  # noqa: E402  (ctypes only; the C library loads on first use)
from .tokenizer import PoseTokenizer, TokenizerOptions  # noqa: E402

__all__ = [
    "PoseTokenizer", "TokenizerOptions", "Bundle",
    "PosetokError", "BundleError", "IntegrityError", "BackendUnavailable", "KernelError",
    "__version__",
]
