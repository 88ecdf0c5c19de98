"""``fulfillment run`` with nothing configured: the one-command start must keep working.

Real processes, real embedded PostgreSQL and Redis from the wheels, real HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from fulfillment.embedded import free_port
from tests.support.storefront import bearer, login, order_body, register
from tests.support.traffic import mails_by_kind

#: How long a cold start (initdb, migrations, seeding) may take on a slow machine.
START_DEADLINE_SECONDS = 120
#: Free ports for the sandbox and the metrics endpoints, so a running system elsewhere
#: on the machine does not collide with this one.
PORTS = {
    "SANDBOX_PORT": str(free_port()),
    "WORKER_METRICS_PORT": str(free_port()),
    "SCHEDULER_METRICS_PORT": str(free_port()),
    "API_METRICS_PORT": str(free_port()),
}


def start_run(workdir: Path, port: int) -> subprocess.Popen[str]:
    # no FULFILLMENT_ENV either: ``fulfillment run`` puts itself in development mode
    unset = ("DATABASE_URL", "REDIS_URL", "FULFILLMENT_ENV", "JWT_SECRET")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(API_PORT=str(port), PYTHONUNBUFFERED="1", **PORTS)
    fulfillment = Path(sys.executable).with_name("fulfillment")
    return subprocess.Popen(
        [str(fulfillment), "run"], cwd=workdir, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def read_until(process: subprocess.Popen[str], pattern: str, lines: list[str]) -> re.Match:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    pytest.fail(f"no line matching {pattern!r}; output:\n{''.join(lines)}")


async def wait_ready(base: str) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await _sleep(0.2)
    pytest.fail("the API never became ready")


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def wait_delivered(http, order_id: str, token: str) -> None:
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        response = await http.get(f"/v1/orders/{order_id}", headers=bearer(token))
        status = (await response.json())["status"]
        if status == "delivered":
            return
        await _sleep(0.5)
    pytest.fail(f"the order is still {status} after a minute")


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()


class Http:
    """The few client calls the storefront helpers use, against a real server."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self._session, self._base = session, base

    async def _call(self, method: str, path: str, **kwargs):
        response = await self._session.request(method, self._base + path, **kwargs)
        await response.read()
        return response

    async def post(self, path: str, **kwargs):
        return await self._call("POST", path, **kwargs)

    async def get(self, path: str, **kwargs):
        return await self._call("GET", path, **kwargs)


def server_processes(workdir: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(workdir) in line and "pytest" not in line]


@pytest.mark.slow
async def test_run_starts_everything_keeps_data_and_stops_cleanly(tmp_path: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output: list[str] = []

    # Given a folder with nothing configured, when `fulfillment run` starts
    process = start_run(tmp_path, port)
    try:
        admin = read_until(process, r"local admin: (\S+) / (\S+)", output)
        await wait_ready(base)
        async with aiohttp.ClientSession() as session:
            http = Http(session, base)
            # Then the sample catalogue is there and a customer can order from it
            products = await (await http.get("/v1/products")).json()
            assert products["total"] >= 10
            user = await register(http)
            token = (await login(http, user["email"]))["access_token"]
            first = products["items"][0]["id"]
            created = await http.post(
                "/v1/orders", json=order_body((first, 1)), headers=bearer(token)
            )
            assert created.status == 201
            order = await created.json()
            # and it is delivered on its own within a minute, with its e-mails
            await wait_delivered(http, order["id"], token)
            sandbox = f"http://127.0.0.1:{PORTS['SANDBOX_PORT']}"
            expected = {"order_confirmed", "shipped", "delivered", "welcome"}
            for _ in range(50):
                if expected <= set(mails_by_kind(sandbox)):
                    break
                await _sleep(0.2)
            assert expected <= set(mails_by_kind(sandbox))
            # and the printed admin credentials work
            admin_tokens = await login(http, admin.group(1), admin.group(2))
            assert admin_tokens["access_token"]
    finally:
        code = stop(process)
    output.extend(process.stdout.read().splitlines(keepends=True))

    # Ctrl-C stops everything cleanly: no server left running on this folder
    assert code == 0, "".join(output)
    assert (tmp_path / "var" / "postgres" / "PG_VERSION").exists()
    assert server_processes(tmp_path) == []

    # Running it again keeps the data and the same admin
    again = start_run(tmp_path, port)
    try:
        second_admin = read_until(again, r"local admin: (\S+) / (\S+)", output)
        assert second_admin.groups() == admin.groups()
        await wait_ready(base)
        async with aiohttp.ClientSession() as session:
            http = Http(session, base)
            token = (await login(http, user["email"]))["access_token"]
            kept = await http.get(f"/v1/orders/{order['id']}", headers=bearer(token))
            assert kept.status == 200
    finally:
        assert stop(again) == 0
    assert server_processes(tmp_path) == []
