"""``posetok info DIR``: a bundle's manifest as readable tables (numpy only, no torch)."""
from __future__ import annotations

import argparse

from .bundle import Bundle, BundleError
from .cli import refuse
from .estimator import presence_rows


def table(headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> list[str]:
    """Lines of a plain-text table: a header, a rule, one line per row;
    columns in ``right`` are right-aligned. Every CLI table is printed by this."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(c.rjust(w) if i in right else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]


def _shape(spec) -> str:
    return "[" + ",".join(str(s) for s in spec.shape) + "]"


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _verdict(row: dict) -> str:
    return {True: "met", False: "MISSED"}.get(row.get("meets_targets"), "-")


def _codebooks(tokens) -> str:
    size = f"{tokens.num_codes} x {tokens.code_dim}"
    if tokens.codebooks == "per_token":
        return f"one codebook of {size} per token position"
    return f"codebook {size}"


def _estimator_lines(section: dict) -> list[str]:
    """The manifest's estimator section: the input the runtime makes, the presence models, parity rows
    (the manifest's checks make each figure a number or absent)."""
    spec = section["input"]
    numbers = lambda values: ",".join(f"{v:g}" for v in values)
    lines = [f"estimator   input {'x'.join(str(v) for v in spec['size'])} {spec['layout']} {spec['channels']}, "
             f"mean {numbers(spec['mean'])}, scale {numbers(spec['scale'])}; the person box is "
             f"{section['figure_share']:g} of the crop's side"]
    measured = presence_rows(section.get("presence"))
    if not measured:
        lines.append("presence    no model recorded: PoseResult.presence comes from posetok's fallback model (the "
                     "torch fit of earlier weights)")
    else:
        lines.append("presence    video mode searches again when a tracked pass's presence is under min_presence; "
                     "on fresh crops (figure crops kept, backdrop crops caught at 0.5):")
        lines += [f"              {name}: {_fmt(m.get('figure_kept'), '.0%')}, {_fmt(m.get('backdrop_caught'), '.0%')}"
                  for name, m in measured]
    rows = [[r["format"], r["precision"], _fmt(r.get("frames"), ".0f"), _fmt(r.get("mpjpe_px"), ".3f"),
             _fmt(r.get("torch_mpjpe_px"), ".3f"), _fmt(r.get("token_agreement"), ".4f"),
             _fmt(r.get("max_keypoint_diff_px"), ".2e"), _verdict(r)]
            for r in section.get("parity") or ()]
    if rows:
        lines += ["", "estimator parity (held-out frames, vs the torch model)"]
        lines += table(["format", "precision", "frames", "mpjpe px", "torch px", "tokens", "max diff px", "targets"],
                       rows, right={2, 3, 4, 5, 6})
    return lines


def describe(bundle: Bundle, verified: bool) -> str:
    m = bundle.spec
    model, tokens, ref = m.model, m.tokens, m.reference
    lines = [
        f"bundle      {bundle.root}",
        f"model       {model.name} {model.version}  checkpoint sha256 {str(model.checkpoint_sha256)[:16]}...",
        f"tokens      {tokens.num_tokens} per pose, " + _codebooks(tokens),
        f"keypoints   {len(m.keypoints)}: {', '.join(m.keypoints)}",
        f"coordinates {m.normalization.get('formula')} (frame {m.normalization.get('frame_px')} px)",
        f"reference   torch mpjpe {_fmt(ref.get('mpjpe_px'), '.4f')} px on {ref.get('eval_poses', '-')} eval poses",
        f"lookup      {m.float_lookup or '-'}",
        "search      " + (f"{bundle.search_sweeps} sweep(s), {bundle.code_neighbours.shape[-1]} neighbouring codes "
                           "tried per position (posetok.token_search)" if bundle.code_neighbours is not None
                           else "none: the encoder graph's nearest codes are the ids"),
        f"files       {len(m.artifacts)}, sha256 " + ("verified" if verified else "NOT verified (--no-verify)"),
        "",
    ]
    rows = [[a.file, a.role, a.format, a.precision, "any" if a.batch is None else str(a.batch),
             f"{a.size_bytes / 1024:.1f}", f"{a.inputs[0].name} {_shape(a.inputs[0])} {a.inputs[0].dtype}",
             f"{a.outputs[0].name} {_shape(a.outputs[0])} {a.outputs[0].dtype}"] for a in m.artifacts]
    lines += table(["file", "role", "format", "precision", "batch", "KiB", "input", "output"], rows, right={5})
    if m.parity:
        # the manifest's checks make each figure a number or absent
        rows = [[r["format"], r["precision"], _fmt(None if r.get("size_bytes") is None else r["size_bytes"] / 1024,
                                                   ".1f"),
                 _fmt(r.get("size_vs_fp32"), ".1%"), _fmt(r.get("token_agreement"), ".4f"),
                 _fmt(r.get("mpjpe_px"), ".4f"), _fmt(r.get("decoder_max_abs_err_px"), ".2e"),
                 _verdict(r)] for r in m.parity]
        lines += ["", "parity (eval set, vs the torch model)"]
        lines += table(["format", "precision", "KiB", "vs fp32", "tokens", "mpjpe px", "dec err px", "targets"],
                       rows, right={2, 3, 4, 5, 6})
    if m.estimator:
        lines += [""] + _estimator_lines(m.estimator)
    schemes = {}
    for a in m.artifacts:
        if a.quantization:
            schemes.setdefault((a.format, a.precision), a.quantization)
    if schemes:
        lines += ["", "quantization"]
        lines += [f"  {f}/{p}: {text}" for (f, p), text in schemes.items()]
    return "\n".join(lines)


def main(argv: list[str], prog: str) -> int:
    p = argparse.ArgumentParser(prog=prog, description="Print a bundle's manifest as tables: model, token "
                                "layout, files with their tensors, parity figures.")
    p.add_argument("bundle", help="bundle folder (made by 'posetok export')")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of every file")
    args = p.parse_args(argv)
    try:
        bundle = Bundle.load(args.bundle, verify=not args.no_verify)
    except BundleError as exc:
        return refuse(prog, str(exc))
    print(describe(bundle, verified=not args.no_verify))
    return 0
