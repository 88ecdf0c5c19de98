"""Running wrk (Debian's package) and reading its report."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

#: A POST with a JSON body, an Authorization header and a unique Idempotency-Key per
#: request (unique across wrk's threads too).
ORDER_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.body = '{body}'
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tag", threads .. "-" .. os.time())
end
function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = "bench-" .. tag .. "-" .. counter
  return wrk.format()
end
"""

UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def ensure_wrk() -> str:
    """wrk's path; ``make bench`` installs it first (``tools/install-tools bench``)."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(
            "wrk is needed: run make bench, which installs it (tools/install-tools bench)"
        )
    return path


def run_wrk(url: str, script: Path, *, connections: int, seconds: int, threads: int = 2) -> dict:
    out = subprocess.run(
        [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return parse(out)


def _seconds(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * UNIT[unit]


def parse(report: str) -> dict:
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", report, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    requests = re.search(r"(\d+) requests in", report)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", report).group(1)),
        "requests": int(requests.group(1)) if requests else 0,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "p50_ms": round(_seconds(latency["50"]) * 1000, 2),
        "p90_ms": round(_seconds(latency["90"]) * 1000, 2),
        "p99_ms": round(_seconds(latency["99"]) * 1000, 2),
    }
