"""CPU time of the processes a benchmark runs, read from ``/proc``: it shows where each
order's CPU goes (API, workers, scheduler, sandbox, PostgreSQL, Redis) on a machine
whose cores they all share."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[str, int, float] | None:
    """(command name, process group, CPU seconds) of one process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # after the name: state, ppid, pgrp, ... utime is field 14 and stime 15 of the whole line
    return name, int(fields[2]), (int(fields[11]) + int(fields[12])) / TICKS


def snapshot(groups: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far by role: each of ``groups`` (role -> process group id, which
    takes in a command's children), plus every PostgreSQL and Redis server process."""
    totals = dict.fromkeys([*groups, "postgresql", "redis"], 0.0)
    by_group = {pgid: role for role, pgid in groups.items()}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or (stat := _stat(pid)) is None:
            continue
        name, pgrp, seconds = stat
        if pgrp in by_group:
            totals[by_group[pgrp]] += seconds
        elif name.startswith(("postgres", "postmaster")):
            totals["postgresql"] += seconds
        elif name.startswith("redis-server"):
            totals["redis"] += seconds
    return totals


def per_order(before: dict[str, float], after: dict[str, float], orders: int) -> dict[str, float]:
    """Milliseconds of CPU per order by role."""
    return {role: round((after[role] - before[role]) * 1000 / orders, 1) for role in after}
