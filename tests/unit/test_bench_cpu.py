"""``make bench`` attributes CPU time to the process groups it started, from /proc."""

from __future__ import annotations

import subprocess
import sys
import time

from bench import cpu

BURN = "import time\nend = time.process_time() + 0.2\nwhile time.process_time() < end: pass\n"
#: Starts a child that burns 0.2 s of CPU, burns 0.2 s itself, then waits for stdin
#: to close, with the child still alive, so both are still in /proc when read.
COMMAND = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", {BURN!r} + "import sys; sys.stdin.read()"],
                         stdin=sys.stdin)
{BURN}
sys.stdin.read()
child.wait()
"""


def test_cpu_time_is_counted_for_a_command_and_its_children():
    # Given a command in its own process group that starts a child, both burning CPU
    process = subprocess.Popen([sys.executable, "-c", COMMAND], stdin=subprocess.PIPE,
                               start_new_session=True)  # fmt: skip
    groups = {"burner": process.pid}
    before = cpu.snapshot(groups)
    try:
        # When both have burnt their share
        deadline = time.monotonic() + 30
        while cpu.snapshot(groups)["burner"] - before["burner"] < 0.4:
            assert time.monotonic() < deadline, "the CPU of the group was not all counted"
            time.sleep(0.02)
        after = cpu.snapshot(groups)
    finally:
        process.stdin.close()
        process.wait()

    # Then the time of both is counted for the group, and per order as asked
    assert 0.4 <= after["burner"] - before["burner"] < 2
    assert cpu.per_order(before, after, 2)["burner"] >= 200
    assert {"postgresql", "redis"} <= set(after)
