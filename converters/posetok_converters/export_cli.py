"""``posetok export``: checkpoint -> bundle folder (ONNX/TFLite graphs + manifest.json)."""
from __future__ import annotations

import argparse
import sys

from posetok.bundle import BundleError

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
    p.add_argument("--out", required=True, help="bundle folder to create")
    p.add_argument("--formats", type=_csv(FORMATS), default=FORMATS,
                   help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    p.add_argument("--precisions", type=_csv(PRECISIONS), default=PRECISIONS,
                   help=f"comma-separated subset of {','.join(PRECISIONS)} (default: all)")
    p.add_argument("--tflite-batches", type=_batches, default=None,
                   help="fixed batch sizes of the TFLite graphs, e.g. 1,64 (default)")
    p.add_argument("--no-parity", action="store_true", help="skip the parity measurement (faster)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    args = p.parse_args(argv)
    try:
        options = ExportOptions(formats=args.formats, precisions=args.precisions, parity=not args.no_parity,
                                **({"tflite_batches": args.tflite_batches} if args.tflite_batches else {}))
        manifest = export_bundle(args.out, args.checkpoint, options, force=args.force,
                                 progress=lambda msg: print(msg, flush=True))
    except (ExportError, BundleError, FileNotFoundError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    missed = [f"{r['format']}/{r['precision']}" for r in manifest.get("parity", []) if not r["meets_targets"]]
    if missed:
        print(f"{prog}: note: below the parity targets: {', '.join(missed)} (see 'posetok parity {args.out}')")
    return 0
