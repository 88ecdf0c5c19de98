"""The run-by-run table of ``docs/benchmarks.md``: the main figures of each run, one row
per run, so that what a change added or saved stays visible after the next run. The
rows live in the report itself: each run reads them back from the previous report and
adds its own."""

from __future__ import annotations

from bench import figures

HEADING = "## Cost per order, run by run"
COLUMNS = ("run started", "revision", "note", "CPU per order, in bare no-op messages",
           "commits/order", "broker messages/order", "orders/s x 11 / bare messages/s",
           "e-mail p99 s")  # fmt: skip
ABSENT = "—"


def previous_rows(report: str) -> list[str]:
    """The data rows of the history table in an earlier report (none if it has none)."""
    lines = report.splitlines()
    if HEADING not in lines:
        return []
    table = []
    for line in lines[lines.index(HEADING) + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            table.append(line)
    return table[2:]  # past the header and its separator


def headline(results: dict) -> dict:
    """The main figures of a run: those of its last pipeline run (the most worker
    processes) beside the bare Dramatiq run with as many, and of its steady load."""
    run, bare = results["pipeline"][-1], results["bare_dramatiq"][-1]
    steady = results["steady_load"]
    rate = run["orders_per_second"]
    return {
        "in_bare_messages": figures.in_bare_messages(run["product_cpu_ms_per_order"], bare["message_ms"]),
        "commits_per_order": run["commits_per_order"],
        "messages_per_order": run["messages_per_order"],
        "orders_ratio": figures.orders_ratio(rate, bare["messages_per_second"]) if rate else None,
        "email_p99": steady[0]["confirmation_email_seconds"]["p99"] if steady else None,
    }  # fmt: skip


def row(results: dict) -> str:
    h = headline(results)
    cells = (results["started"], results.get("revision", ""), results.get("note", ""),
             h["in_bare_messages"], h["commits_per_order"], h["messages_per_order"],
             h["orders_ratio"], h["email_p99"])  # fmt: skip
    return "| " + " | ".join(ABSENT if c in (None, "") else str(c) for c in cells) + " |"


def section(previous_report: str, results: dict) -> list[str]:
    return [
        HEADING,
        "",
        "One row per `make bench`, oldest first; each run adds its own. The figures are",
        "those of the run with 2 worker processes; compare rows from the same machine.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| --- | --- | --- |" + " ---: |" * (len(COLUMNS) - 3),
        *previous_rows(previous_report),
        row(results),
        "",
    ]
