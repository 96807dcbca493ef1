"""CPU time of process trees, read from /proc (Linux), so no psutil is needed.

The benchmark reports how the machine's CPU was split between the server,
the database and the load generator: on a 2-core machine with all three on
it, a load generator that eats a core caps the server, and the report must
show that.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # the process has exited, or /proc is not there
        return None
    # The command name (field 2) may contain spaces and parentheses: the
    # fields we need come after the last ')'. rest[0] is field 3 (state).
    return raw[raw.rfind(")") + 2 :].split()


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def tree_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` and its live children.

    The root's cutime/cstime is included: a child that exits (a PostgreSQL
    backend when its connection closes) is reaped by the root, and its CPU
    time moves there, so the sum stays continuous across exits.
    """
    root = _stat_fields(pid)
    if root is None:
        return None
    ticks = sum(int(value) for value in root[11:15])  # utime, stime, cutime, cstime
    for child in _children(pid):
        fields = _stat_fields(child)
        if fields:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / _TICKS
