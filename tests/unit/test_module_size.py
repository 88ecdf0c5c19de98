"""Small pieces (STYLE.md, habit 7): no module of the steps, the gateways, the sandbox
or the worker processes grows past ``MAX_LINES``; one that would is split along a seam."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The packages held to the limit.
PACKAGES = ("pipelines", "integrations", "sandbox", "workers")
#: Lines a module may have (the aim is ~300).
MAX_LINES = 400


def test_no_module_of_the_steps_gateways_sandbox_or_workers_is_over_the_limit():
    over = {
        path.relative_to(ROOT).as_posix(): lines
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not over, f"modules over {MAX_LINES} lines: {over}"
