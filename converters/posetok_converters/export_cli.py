"""``posetok export``: checkpoint -> bundle folder (ONNX/TFLite graphs + manifest.json)."""
from __future__ import annotations

import argparse
from pathlib import Path

from posetok.bundle import BundleError
from posetok.errors import SigningUnavailable

from .cli_checks import refuse, refuse_unwritable
from .export import FORMATS, PRECISIONS, ExportError, ExportOptions, export_bundle


def _csv(allowed: tuple[str, ...]):
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
        unknown = [t for t in items if t not in allowed]
        if not items or unknown:
            raise argparse.ArgumentTypeError(f"{text!r}: choose a comma-separated subset of {','.join(allowed)}")
        return items
    return parse


def _batches(text: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(b) for b in text.split(","))
    except ValueError:
        batches = ()
    if not batches or min(batches) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive batch sizes separated by commas, e.g. 1,64")
    return batches


def main(argv: list[str], prog: str) -> int:
    p = argparse.ArgumentParser(prog=prog, description="Export a tokenizer checkpoint to a bundle: encoder and "
                                "decoder graphs per format and precision, manifest.json with sha256 and parity.")
    p.add_argument("--checkpoint", help="tokenizer checkpoint file or folder (default: the shipped model)")
    p.add_argument("--out", help="bundle folder to create (required unless --triton with --bundle)")
    p.add_argument("--triton", metavar="DIR", help="also write a Triton model repository (ONNX models, ensembles) "
                   "for the NGC Triton container into DIR; see posetok_converters/triton_repository.py")
    p.add_argument("--bundle", help="with --triton: an already exported bundle to write the repository from")
    p.add_argument("--formats", type=_csv(FORMATS), default=FORMATS,
                   help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    p.add_argument("--precisions", type=_csv(PRECISIONS), default=PRECISIONS,
                   help=f"comma-separated subset of {','.join(PRECISIONS)} (default: all)")
    p.add_argument("--tflite-batches", type=_batches, default=None,
                   help="fixed batch sizes of the TFLite graphs, e.g. 1,64 (default)")
    p.add_argument("--no-parity", action="store_true", help="skip the parity measurement (faster)")
    p.add_argument("--parity-poses", type=int, default=None, metavar="N",
                   help="parity and the manifest's torch reference on the first N evaluation poses "
                        "(default: all 10,000; encoding with the decoder search takes about a minute per row)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    p.add_argument("--estimator", default=None,
                   help="image -> pose estimator checkpoint to export beside the tokenizer (role estimator), or "
                        "'none'; default: the shipped estimator when the tokenizer is the shipped one")
    p.add_argument("--sign", metavar="KEY.pem", default=None,
                   help="sign the bundle (model.sig) with this elliptic-curve private key before it is renamed "
                        "into place; needs pip install 'posetok[signing]'")
    args = p.parse_args(argv)
    if args.bundle and not args.triton:
        p.error("--bundle goes with --triton")
    if not args.out and not (args.triton and args.bundle):
        p.error("give --out (the bundle folder to create), or --triton DIR --bundle BUNDLE")
    if args.triton and refuse_unwritable(prog, folders=[Path(args.triton).absolute().parent]):
        return 2
    if args.triton and args.bundle and not args.out:
        return _triton(args, prog)
    try:
        options = ExportOptions(formats=args.formats, precisions=args.precisions, parity=not args.no_parity,
                                parity_poses=args.parity_poses,
                                **({"tflite_batches": args.tflite_batches} if args.tflite_batches else {}))
        manifest = export_bundle(args.out, args.checkpoint, options, force=args.force,
                                 progress=lambda msg: print(msg, flush=True), sign_key=args.sign,
                                 estimator=_estimator(args.estimator, args.checkpoint))
    except (ExportError, BundleError, FileNotFoundError, ValueError, SigningUnavailable) as exc:
        return refuse(prog, str(exc))
    if args.triton:
        args.bundle = args.out
        if _triton(args, prog):
            return 2
    missed = [f"{r['format']}/{r['precision']}" for r in manifest.get("parity", []) if not r["meets_targets"]]
    if missed:
        print(f"{prog}: note: below the parity targets: {', '.join(missed)} (see 'posetok parity {args.out}')")
    return 0


def _estimator(choice, checkpoint):
    """The estimator model to export: --estimator PATH, none, or by default the shipped one (if the tokenizer is)."""
    from .estimator_cli import CHECKPOINT_NAME, DEFAULT_ESTIMATOR_DIR, load_estimator
    if choice == "none" or (choice is None and (checkpoint is not None
                                                or not (DEFAULT_ESTIMATOR_DIR / CHECKPOINT_NAME).is_file())):
        return None
    return load_estimator(choice)[0]


def _triton(args, prog: str) -> int:
    from .triton_repository import write_triton_repository
    try:
        names = write_triton_repository(args.triton, args.bundle, force=args.force)
    except (BundleError, FileExistsError) as exc:
        return refuse(prog, str(exc))
    print(f"wrote the Triton model repository {args.triton}: {', '.join(names)}", flush=True)
    return 0
