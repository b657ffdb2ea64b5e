"""The posetok command's top level and the device-side import rule."""
from __future__ import annotations

import subprocess
import sys

import posetok
from posetok.cli import COMMANDS, main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "posetok", *args], capture_output=True, text=True, timeout=120)


def test_version_and_help():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"posetok {posetok.__version__}"
    out = run_cli("--help")
    assert out.returncode == 0
    for name in COMMANDS:
        assert f"  {name}" in out.stdout


def test_unknown_command_is_an_error(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_runtime_import_never_pulls_torch():
    # The device has no torch: importing the runtime and the CLI's device-side
    # modules must not import it even where it is installed (as here).
    code = ("import sys, posetok, posetok.cli, posetok.bundle, posetok.backends, posetok.tokenizer, "
            "posetok.skeleton; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'posetok_converters', 'litert_torch', 'onnx')); print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
