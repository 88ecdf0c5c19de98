"""``fulfillment run`` keeps going when one of its processes dies: the supervisor
restarts it (with backoff, logged with how it died) instead of stopping the stack."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from cli.supervisor import backoff_seconds, describe_exit
from fulfillment.embedded import free_port
from tests.e2e.test_run_command import read_until, start_run, stop, wait_ready


def child_pid(parent: int, command: str) -> int:
    """The pid of the child of ``parent`` running ``fulfillment COMMAND``."""
    out = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(parent)], capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if args.split()[-1:] == [command] and "-m cli" in args:
            return int(pid)
    raise AssertionError(f"no {command} child of {parent}:\n{out}")


@pytest.mark.slow
async def test_an_api_killed_with_sigkill_is_restarted_and_answers_again(tmp_path: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output: list[str] = []
    process = start_run(tmp_path, port)
    try:
        read_until(process, r"local admin: ", output)
        await wait_ready(base)
        killed = child_pid(process.pid, "api")

        # When the API is killed outright
        subprocess.run(["kill", "-9", str(killed)], check=True)

        # Then the supervisor says so, starts it again, and it answers
        read_until(process, r"api died \(signal SIGKILL\); restarting in 0.5 s", output)
        await wait_ready(base)
        assert child_pid(process.pid, "api") != killed
        async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as response:
            assert response.status == 200
        assert process.poll() is None  # the rest of the stack never stopped
    finally:
        code = stop(process)
    assert code == 0


def test_restart_backoff_doubles_and_is_capped():
    assert [backoff_seconds(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_seconds(50) == 30.0


def test_an_exit_is_told_by_its_code_or_its_signal():
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"
