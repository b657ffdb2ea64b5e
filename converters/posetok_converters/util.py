"""Small helpers shared by the export and parity commands."""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings


@contextlib.contextmanager
def quiet():
    """The exporters and quantizers print their own progress and log lines,
    some from C++ straight to file descriptors 1 and 2; ours replaces them.
    Captured output is shown only if the step fails."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    out, err = io.StringIO(), io.StringIO()
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    warnings.simplefilter("ignore")
                    yield
            except BaseException:
                _restore_fds(saved)
                sink.seek(0)
                captured = sink.read().decode(errors="replace") + out.getvalue() + err.getvalue()
                sys.stderr.write(captured[-4000:])
                raise
    finally:
        _restore_fds(saved)
        os.close(saved[0])
        os.close(saved[1])


def _restore_fds(saved: tuple[int, int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
