"""``posetok parity DIR``: run a bundle's graphs against the torch model on the eval set."""
from __future__ import annotations

import argparse
import json
import sys

from posetok.bundle import BundleError
from posetok.info_cli import table

from .cli_checks import refuse
from .parity import ParityError, parity_report
from .util import quiet


def format_table(report: dict) -> str:
    ref = report["reference"]
    lines = [f"bundle     {report['bundle']}",
             f"checkpoint {report['checkpoint']}",
             f"reference  torch mpjpe {ref['mpjpe_px']:.4f} px on {ref['eval_poses']} eval poses", ""]
    rows = [[r["format"], r["precision"], f"{r['size_bytes'] / 1024:.1f}",
             f"{r['size_vs_fp32']:.1%}" if r.get("size_vs_fp32") is not None else "-",
             f"{r['token_agreement']:.4f}", f"{r['searched_token_agreement']:.4f}", f"{r['mpjpe_px']:.4f}",
             f"{r['mpjpe_over_reference_px']:+.4f}",
             f"{r['decoder_max_abs_err_px']:.2e}", "met" if r["meets_targets"] else "MISSED"]
            for r in report["artifacts"]]
    lines += table(["format", "precision", "size KiB", "vs fp32", "tokens", "searched", "mpjpe px", "+ref px",
                    "dec err px", "targets"], rows, right={2, 3, 4, 5, 6, 7, 8})
    lines.append("tokens: the encoder graph's ids = torch's; searched: after the decoder search, as encode returns")
    return "\n".join(lines)


def main(argv: list[str], prog: str) -> int:
    p = argparse.ArgumentParser(prog=prog, description="Measure a bundle's parity with the torch model on the "
                                "fixed eval set: token agreement, MPJPE, decoder error, size per format/precision.")
    p.add_argument("bundle", help="bundle folder (made by 'posetok export')")
    p.add_argument("--checkpoint", help="the checkpoint the bundle was exported from (default: the shipped "
                   "model); checked against the manifest's checkpoint_sha256")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--check", action="store_true", help="exit with status 1 if any row misses its targets")
    args = p.parse_args(argv)
    try:
        if args.json:  # runtimes log to file descriptor 1 from C++; stdout must hold only the JSON
            with quiet():
                report = parity_report(args.bundle, args.checkpoint)
        else:
            report = parity_report(args.bundle, args.checkpoint,
                                   progress=lambda m: print(m, file=sys.stderr, flush=True))
    except (ParityError, BundleError, FileNotFoundError, ValueError) as exc:
        return refuse(prog, str(exc))
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    if args.check and not all(r["meets_targets"] for r in report["artifacts"]):
        return 1
    return 0
