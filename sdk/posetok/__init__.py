"""posetok: on-device runtime for the compositional pose tokenizer.

Imports only numpy and, lazily, one inference runtime; never torch.

Public API:
    PoseTokenizer, TokenizerOptions: keypoints -> token ids -> keypoints.
    PoseEstimator, EstimatorOptions, PoseResult: camera frames -> keypoints, scores and token ids.
    Bundle: a verified folder of model files plus ``manifest.json``.
    PosetokError: base of every error below.
    BundleError, IntegrityError: a bundle that cannot be used.
    BackendUnavailable: the requested inference runtime is not installed.
    KernelError: the image kernel library returned an error.
    SignatureError: a signed bundle's signature is missing, wrong, or no longer matches.
    SigningUnavailable: signing needs the optional extra (pip install 'posetok[signing]').
"""
__version__ = "0.1.0"

from .backends import BackendUnavailable  # noqa: E402
from .bundle import Bundle, BundleError, IntegrityError  # noqa: E402
from .errors import PosetokError, SignatureError, SigningUnavailable  # noqa: E402
from .estimator import EstimatorOptions, PoseEstimator, PoseResult  # noqa: E402
from .kernels import KernelError  # noqa: E402  (ctypes only; the C library loads on first use)
from .tokenizer import PoseTokenizer, TokenizerOptions  # noqa: E402

__all__ = [
    "PoseTokenizer", "TokenizerOptions", "PoseEstimator", "EstimatorOptions", "PoseResult", "Bundle",
    "PosetokError", "BundleError", "IntegrityError", "BackendUnavailable", "KernelError",
    "SignatureError", "SigningUnavailable",
    "__version__",
]
