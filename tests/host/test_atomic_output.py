"""posetok.atomic: artifacts appear whole under their name or not at all."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from posetok.atomic import atomic_output, check_output_file, check_output_folder, write_bytes_atomic, write_json_atomic


def test_success_replaces_the_target_with_shareable_mode(tmp_path):
    target = tmp_path / "sub" / "model.bin"
    write_bytes_atomic(target, b"old")
    write_bytes_atomic(target, b"new bytes")
    assert target.read_bytes() == b"new bytes"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.bin"]


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "manifest.json"
    write_json_atomic(target, {"version": 1})
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_output(target) as tmp:
            tmp.write_text('{"version": 2, "trunc')
            raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_temp_name_keeps_the_extension_for_format_sniffing_writers(tmp_path):
    target = tmp_path / "arrays.npz"
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".npz" and tmp.parent == tmp_path and tmp.name.startswith(".arrays.npz.")
        np.savez(tmp, x=np.arange(3))  # savez appends .npz unless the name already ends with it
    with np.load(target) as f:
        assert f["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["arrays.npz"]


def test_a_folder_in_the_files_place_is_refused_by_name_and_left_as_it_was(tmp_path):
    target = tmp_path / "out.png"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(IsADirectoryError, match=r"out.png is a folder; name a file to write$"):
        write_bytes_atomic(target, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]     # no temporary file left beside it
    assert (target / "keep.txt").read_text() == "mine"


def test_links_and_special_files_are_refused_and_left_in_place(tmp_path):
    # the rename replaced a link (and /dev/full, from posetok estimate --out); following a link would write where
    # another user of a shared folder points it
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "frame.png"
    target.write_bytes(b"old")
    link = tmp_path / "latest.png"
    link.symlink_to(target)
    with pytest.raises(OSError, match=r"latest.png is a symbolic link; name the file itself"):
        write_bytes_atomic(link, b"new")
    with pytest.raises(OSError, match=r"latest.png is a symbolic link"):
        check_output_file(link)
    assert link.is_symlink() and target.read_bytes() == b"old"
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match=r"pipe.png is not a regular file \(a device, FIFO or socket\)"):
        write_bytes_atomic(fifo, b"data")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.png", "pipe.png", "real"]
    assert [p.name for p in target.parent.iterdir()] == ["frame.png"]


def test_output_checks_name_the_folder_that_cannot_take_a_file(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where a folder would go")
    with pytest.raises(OSError, match=r"cannot write in .*notes.txt/plots: Not a directory"):
        check_output_file(blocker / "plots" / "x.png")
    with pytest.raises(NotADirectoryError, match=r"notes.txt is a file, not a folder"):
        check_output_folder(blocker)
    check_output_file(tmp_path / "new" / "deeper" / "x.png")     # checked in tmp_path; nothing made or left
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
