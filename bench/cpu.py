"""CPU time of the processes a benchmark started, read from ``/proc``: where each order's
CPU goes (API, workers, scheduler, sandbox, PostgreSQL, Redis) on a machine whose cores
they all share, and on which other servers may run that are none of the bench's business.

A role is the process tree under one root process id: a command the bench started, the
bench's own PostgreSQL postmaster (its backends are its children, and each backend
calls ``setsid``, so process groups would miss them), or its Redis server. A process
that has exited still counts: its parent, once it has waited for it, carries its time
in ``cutime`` + ``cstime``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    #: Its own CPU seconds plus those of its exited children it has waited for.
    seconds: float


def parse_stat(pid: int, raw: str, *, ticks: int = TICKS) -> Proc:
    """One line of ``/proc/<pid>/stat``. The command name is in parentheses and may hold
    spaces or parentheses itself, so the fields are counted from the last ``)``."""
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 of the line (state): ppid is 4, utime 14, stime 15,
    # cutime 16, cstime 17
    used = sum(int(field) for field in fields[11:15])
    return Proc(pid=pid, ppid=int(fields[1]), seconds=used / ticks)


def processes() -> list[Proc]:
    """Every process on the machine now (those that exit while being read are skipped)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        found.append(parse_stat(int(entry), raw))
    return found


def tree_seconds(procs: Iterable[Proc], root: int) -> float:
    """CPU seconds of ``root`` and every live descendant (0 when ``root`` is gone)."""
    by_pid = {p.pid: p for p in procs}
    if root not in by_pid:
        return 0.0
    children: dict[int, list[int]] = {}
    for proc in by_pid.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += by_pid[pid].seconds
        todo.extend(children.get(pid, ()))
    return total


def attribute(procs: Iterable[Proc], roots: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far by role (role -> root process id)."""
    procs = list(procs)
    return {role: tree_seconds(procs, root) for role, root in roots.items()}


def snapshot(roots: Mapping[str, int]) -> dict[str, float]:
    return attribute(processes(), roots)


def parse_machine(proc_stat: str, *, ticks: int = TICKS) -> float:
    """Busy CPU seconds of the whole machine since boot, from ``/proc/stat``'s first line
    (user, nice, system, irq, softirq and steal; idle and iowait left out)."""
    fields = [int(field) for field in proc_stat.splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / ticks


def machine_seconds() -> float:
    return parse_machine(Path("/proc/stat").read_text())


def spent(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds by role between two snapshots."""
    return {role: after[role] - before[role] for role in after}
