"""Small pieces (STYLE.md, habit 7): no module of the project, its tests or its bench
grows past ``MAX_LINES`` (Alembic's revisions aside); one that would is split along a seam."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The packages held to the limit: all of them.
PACKAGES = ("fulfillment", "monitoring", "integrations", "pipelines", "workers", "api", "cli",
            "sandbox", "bench", "tests", "tools")  # fmt: skip
#: Not written by hand: Alembic's revisions, one per schema change.
SKIPPED = ("fulfillment/migrations/",)
#: Lines a module may have (the aim is ~300).
MAX_LINES = 400


def test_no_module_is_over_the_limit():
    over = {
        relative: lines
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not (relative := path.relative_to(ROOT).as_posix()).startswith(SKIPPED)
        and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not over, f"modules over {MAX_LINES} lines: {over}"
