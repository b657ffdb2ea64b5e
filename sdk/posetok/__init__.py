"""posetok: on-device runtime for the compositional pose tokenizer.

Imports only numpy and, lazily, one inference runtime; never torch.
"""
__version__ = "0.1.0"

from .bundle import Bundle, BundleError, IntegrityError  # noqa: E402
from .tokenizer import PoseTokenizer, TokenizerOptions  # noqa: E402

__all__ = ["Bundle", "BundleError", "IntegrityError", "PoseTokenizer", "TokenizerOptions", "__version__"]
