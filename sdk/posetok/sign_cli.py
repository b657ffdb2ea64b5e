"""``posetok sign`` and ``posetok verify``: write and check a bundle's signature (``model.sig``).

Exit codes: 0 signed / the signature holds; 1 the bundle is refused (the
message names the first file or signature field that differs); 2 a usage
error: a bad option, an unreadable or unusable key, model-signing not installed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import signing
from .bundle import Bundle, BundleError
from .cli import refuse
from .errors import SignatureError, SigningUnavailable


def main(argv: list[str], prog: str) -> int:
    """``posetok sign BUNDLE --private-key KEY.pem``.

    Args:
        argv: the command's arguments.
        prog: the command's name for messages.

    Returns:
        The exit status: 0 signed, 1 the bundle cannot be signed, 2 a usage error.
    """
    p = argparse.ArgumentParser(prog=prog, description="Sign a bundle: write model.sig (OpenSSF model-signing, "
                                "elliptic-curve key) beside manifest.json, covering every file of the folder. "
                                f"Needs: {signing.INSTALL_HINT}.")
    p.add_argument("bundle", help="the bundle folder")
    p.add_argument("--private-key", required=True, metavar="KEY.pem",
                   help="PEM file of an elliptic-curve private key (P-256, P-384 or P-521), unencrypted")
    args = p.parse_args(argv)
    try:
        path = signing.sign_bundle(args.bundle, args.private_key)
    except BundleError as exc:  # also IntegrityError: a broken bundle is never signed
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:      # model.sig cannot be written there
        print(f"{prog}: error: {args.bundle}: the signature cannot be written: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    except (SigningUnavailable, ValueError) as exc:
        return refuse(prog, str(exc))
    covered = sum(1 for entry in Path(args.bundle).iterdir() if entry.name != signing.SIGNATURE_NAME)
    print(f"signed {args.bundle}: wrote {path} covering {covered} files")
    return 0


def verify_main(argv: list[str], prog: str) -> int:
    """``posetok verify BUNDLE --public-key PUB.pem [--json]``: the signature, then the manifest's own checks.

    With ``--json`` one object is printed: ``ok``, ``bundle``, ``error`` (None
    or the message), ``file`` (the first file that differs, if one does),
    ``import_ms`` (loading model-signing) and ``verify_ms`` (the signature check).

    Args:
        argv: the command's arguments.
        prog: the command's name for messages.

    Returns:
        The exit status: 0 the signature holds, 1 it does not (or the bundle is
        broken), 2 a usage error.
    """
    p = argparse.ArgumentParser(prog=prog, description="Check a bundle's signature (model.sig) against a public key "
                                "and every file of the folder, then the manifest's sizes and sha256. "
                                f"Needs: {signing.INSTALL_HINT}.")
    p.add_argument("bundle", help="the bundle folder")
    p.add_argument("--public-key", required=True, metavar="PUB.pem", help="PEM file of the elliptic-curve public key")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    result = {"ok": False, "bundle": args.bundle, "error": None, "file": None, "import_ms": None, "verify_ms": None}
    rc = 0
    try:
        started = time.perf_counter()
        signing.require()
        checked = time.perf_counter()
        result["import_ms"] = round((checked - started) * 1e3, 2)
        signing.verify_bundle(args.bundle, args.public_key)
        result["verify_ms"] = round((time.perf_counter() - checked) * 1e3, 2)
        Bundle.load(args.bundle)  # what a runtime checks next: schema, sizes, sha256
        result["ok"] = True
    except SignatureError as exc:
        result.update(error=str(exc), file=exc.file)
        rc = 1
    except BundleError as exc:
        result["error"] = str(exc)
        rc = 1
    except (SigningUnavailable, ValueError) as exc:
        result["error"] = str(exc)
        rc = 2
    if args.json:
        print(json.dumps(result))
    elif rc == 0:
        print(f"{args.bundle}: signature ok ({result['verify_ms']:.1f} ms)")
    else:
        print(f"{prog}: {'FAILED' if rc == 1 else 'error'}: {result['error']}", file=sys.stderr)
    return rc
