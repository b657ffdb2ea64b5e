"""Process helpers for servers a test or benchmark starts: free ports, the
live members of a process group, a process's start time, their resident
memory, and the pre-exec hook that ties a child's life to its launcher's.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
from pathlib import Path
from typing import Optional


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports nothing listens on now (the OS picks them; a race with another
    process grabbing one in between is possible but rare).

    Args:
        count: how many.
        host: the address to bind.

    Returns:
        ``count`` distinct port numbers.
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def group_pids(pgid: int) -> list[int]:
    """Live processes (not zombies) of a process group, from /proc.

    Args:
        pgid: the process group id (the server's pid: it leads its own group).

    Returns:
        Their pids.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def process_start_time(pid: int) -> Optional[int]:
    """When a process started, to tell it from a later one that reuses its pid.

    Args:
        pid: the process id.

    Returns:
        Its start time in clock ticks after boot (``/proc/PID/stat`` field 22),
        or None when no such process runs (zombies count as gone).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # state is field 3, starttime field 22
    return None if fields[0] == "Z" else int(fields[19])


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of some processes, summed.

    Args:
        pids: process ids; ones that have exited count 0.

    Returns:
        Bytes.
    """
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def die_with_parent() -> None:  # runs in the child before exec: SIGTERM when the launcher dies
    os.setsid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
