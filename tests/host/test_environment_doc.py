"""docs/ENVIRONMENT.md lists every POSETOK_* name the tree uses, and only those."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "ENVIRONMENT.md"
NAME = re.compile(r"\bPOSETOK_[A-Z0-9_]*[A-Z0-9]\b")
# kernels/ is left out: its C macros and status codes share the prefix and are
# no environment variables.
SKIP_DIRS = {".git", ".venv", "build", "dist", "kernels", "__pycache__", "posetok.egg-info", ".pytest_cache",
             ".ruff_cache", "models"}
TEXT_SUFFIXES = {".py", ".sh", ".md", ".toml", ".cfg", ".ini", ".cmake", ".txt", ".yml", ".yaml"}


def is_source(path: Path) -> bool:
    if path.suffix in TEXT_SUFFIXES or path.name == "Makefile":
        return True
    if path.suffix:
        return False
    try:  # extensionless scripts: cross/qemu-run, cross/qemu-python, .ci/run
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def tree_files() -> list[Path]:
    """Tracked and untracked files that git does not ignore; every file outside
    SKIP_DIRS when the tree is no git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True, timeout=60).stdout
        paths = [REPO / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = []
        for root, dirs, files in os.walk(REPO):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
            paths += [Path(root) / name for name in files]
    return sorted(p for p in paths if p.is_file() and not SKIP_DIRS & set(p.relative_to(REPO).parts[:-1]))


def names_in_tree() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in tree_files():
        if path == DOC or not is_source(path):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for var in set(NAME.findall(text)):
            found.setdefault(var, []).append(str(path.relative_to(REPO)))
    return found


def documented() -> set[str]:
    """Names in the first column of the doc's tables."""
    return set(re.findall(r"^\|\s*`(POSETOK_[A-Z0-9_]+)`\s*\|", DOC.read_text(), flags=re.MULTILINE))


def test_every_posetok_variable_in_the_tree_is_documented():
    found = names_in_tree()
    assert "POSETOK_QEMU_CPU" in found  # the scan sees the tree
    missing = {var: where for var, where in sorted(found.items()) if var not in documented()}
    assert not missing, f"add these to {DOC.relative_to(REPO)} (name, read by, default, meaning): {missing}"


def test_every_documented_variable_is_still_used():
    used = set(names_in_tree()) | set(NAME.findall((REPO / "kernels" / "CMakeLists.txt").read_text()))
    stale = sorted(documented() - used)
    assert not stale, f"{DOC.relative_to(REPO)} lists names nothing uses any more: {stale}"
