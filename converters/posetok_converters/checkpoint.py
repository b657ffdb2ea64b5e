"""Checkpoint files: weights + tokenizer config + data seed + training metrics, in one torch file."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from posetok.atomic import atomic_output

from .model import TokenizerConfig, TokenizerModel

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"
CHECKPOINT_NAME = "tokenizer.pt"
DEFAULT_CHECKPOINT = DEFAULT_MODEL_DIR / CHECKPOINT_NAME
FORMAT = "posetok-tokenizer-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: TokenizerModel, meta: dict) -> Path:
    """Write atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": dict(meta),
    }
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return path


def resolve_checkpoint(path: str | os.PathLike | None = None) -> Path:
    """The checkpoint file meant by ``path``: a file, a folder holding
    ``tokenizer.pt``, or None for the shipped default model. Every command
    and API that takes a checkpoint resolves it here."""
    given = path is not None and str(path) != ""
    resolved = Path(path) if given else DEFAULT_CHECKPOINT
    if resolved.is_dir():
        resolved = resolved / CHECKPOINT_NAME
    if not resolved.is_file():
        hint = "" if given else " (the shipped model is missing; pass --checkpoint FILE)"
        raise FileNotFoundError(f"no tokenizer checkpoint at {resolved}{hint}")
    return resolved


def load_checkpoint(path: str | os.PathLike | None = None) -> tuple[TokenizerModel, dict]:
    """(model in eval mode on CPU, meta dict). Without a path: the shipped default model."""
    path = resolve_checkpoint(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt/foreign files
        raise ValueError(f"{path} is not a readable torch checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a posetok tokenizer checkpoint (format marker missing)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format version {payload.get('format_version')!r}, "
                         f"this code reads version {FORMAT_VERSION}")
    model = TokenizerModel(TokenizerConfig.from_dict(payload["config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, dict(payload.get("meta", {}))


def load_for_command(prog: str, path: str | os.PathLike | None) -> tuple[TokenizerModel | None, Path | None]:
    """load_checkpoint for a CLI: (model, checkpoint file), or (None, None) after
    printing the reason to stderr, so the command can exit with status 2."""
    from posetok.cli import refuse

    try:
        source = resolve_checkpoint(path)
        model, _ = load_checkpoint(source)
    except (FileNotFoundError, ValueError) as exc:
        refuse(prog, str(exc))
        return None, None
    return model, source
