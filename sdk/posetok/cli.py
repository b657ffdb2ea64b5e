"""The ``posetok`` command. Subcommands live in their own modules and are
imported only when chosen, so ``posetok --help`` and the device-side commands
never import torch."""
from __future__ import annotations

import importlib
import sys

from . import __version__

# name -> ("module" or "module:function", one-line help, host-only); the function (default ``main``)
# is called as ``function(argv, prog)``.
# Host-only commands live in posetok_converters, which the device wheel leaves
# out; on a board they print how to get the host tooling instead of a traceback.
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "train": ("posetok_converters.train_cli", "train a pose tokenizer (VQ-VAE) on synthetic stick figures", True),
    "eval": ("posetok_converters.eval_cli", "evaluate a checkpoint on the fixed evaluation set", True),
    "plot": ("posetok_converters.plot_cli", "plot true vs reconstructed poses and code usage", True),
    "export": ("posetok_converters.export_cli", "export a checkpoint to an ONNX/TFLite bundle", True),
    "parity": ("posetok_converters.parity_cli", "report bundle parity against the torch model", True),
    "info": ("posetok.info_cli", "print a bundle's manifest as a table", False),
    "estimate": ("posetok.estimate_cli", "the pose in one camera frame (PNG or raw NV21/NV12)", False),
    "bench": ("posetok.bench_cli", "benchmark a bundle with onnxruntime or LiteRT", False),
    "sign": ("posetok.sign_cli", "sign a bundle with an elliptic-curve key (needs posetok[signing])", False),
    "verify": ("posetok.sign_cli:verify_main", "check a bundle's signature with the public key", False),
    "serve": ("posetok.serve_cli", "serve a bundle on NVIDIA Triton Inference Server (needs .venv-serve)", False),
    "serve-bench": ("posetok.serve_bench_cli", "Triton throughput and latency, dynamic batching on and off", False),
    "kernels-bench": ("posetok_converters.kernels_bench", "count instructions of the NEON kernels under QEMU", True),
    "train-estimator": ("posetok_converters.estimator_cli:train_main",
                        "train the image -> pose estimator on rendered camera frames", True),
    "eval-estimator": ("posetok_converters.estimator_cli:eval_main",
                       "evaluate an estimator on held-out frames (clean and occluded)", True),
    "average-estimators": ("posetok_converters.estimator_cli:average_main",
                           "average the weights of estimator runs continued from the same weights", True),
    "study-estimator": ("posetok_converters.estimator_cli:study_main",
                        "the shift-test, video-margin and partial-figure studies behind the README", True),
}


def refuse(prog: str, message: str) -> int:
    """Print ``PROG: error: MESSAGE`` on stderr, as argparse words its own refusals, and return the exit
    status a command gives for a bad option or an unusable input (2)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: posetok [--version] [--help] COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}{' [host]' if host else ''}" for name, (_, help_, host) in COMMANDS.items()]
    lines += ["", "Run 'posetok COMMAND --help' for a command's options. [host]: needs the host tooling",
              "(posetok_converters), which the device wheel leaves out."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"posetok {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"posetok: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    target, _, host_only = COMMANDS[name]
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if host_only and module_name.startswith("posetok_converters"):
            print(f"posetok {name}: a host-only command, it needs the host tooling ({exc}); "
                  "install the host wheel with: pip install 'posetok[convert]'", file=sys.stderr)
            return 2
        raise
    return int(getattr(module, function or "main")(rest, prog=f"posetok {name}") or 0)


if __name__ == "__main__":
    sys.exit(main())
