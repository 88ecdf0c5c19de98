"""``docs/benchmarks.md`` from one run's figures. The hand-written history of what was
changed and what it bought lives in ``docs/benchmarks-history.md`` and is included."""

from __future__ import annotations

from pathlib import Path


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def write_report(r: dict, path: Path) -> None:
    m, v = r["machine"], r["versions"]
    api = r["api"]
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (do not edit by hand; the history below is kept in",
        "`docs/benchmarks-history.md`). Every figure comes from one run on one machine,",
        "the system beside the bare stack it is built on.",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['platform']}, Python {m['python']}. "
        f"Run started {r['started']}.",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        f"## API: `POST /v1/orders`, one API process, {api['connections']} connections, wrk, "
        f"{api['seconds']} s",
        "",
        _row("", "requests/s", "p50 ms", "p90 ms", "p99 ms", "non-2xx"),
        _row("---", "---:", "---:", "---:", "---:", "---:"),
    ]
    for name, key in (("Fulfillment API (JWT, validation, idempotency, commit)", "system"),
                      ("bare aiohttp (parse JSON, answer 201)", "bare_aiohttp")):  # fmt: skip
        f = api[key]
        lines.append(
            _row(
                name, f["requests_per_second"], f["p50_ms"], f["p90_ms"], f["p99_ms"], f["non_2xx"]
            )
        )
    lines += ["", f"Ratio to bare aiohttp: **{api['ratio']}**."]
    if api["system"].get("orders_per_commit"):
        lines += ["", f"Group commit: {api['system']['orders_per_commit']} orders per transaction "
                      "on average during the run."]  # fmt: skip
    lines.append("")

    lines += ["## Pipeline: accepted to delivered", "",
              "Sandbox with no added latency and a 0.05 s carrier clock; 8 threads per worker process.",
              "", _row("worker processes", "orders", "seconds", "orders/s end to end",
                       "messages/s", "bare Dramatiq no-op messages/s", "ratio", "commits/order"),
              _row("---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:")]  # fmt: skip
    for run, bare in zip(r["pipeline"], r["bare_dramatiq"], strict=True):
        ratio = round(run["messages_per_second"] / bare["messages_per_second"], 3)
        lines.append(_row(run["workers"], run["orders"], run["seconds"], run["orders_per_second"],
                          run["messages_per_second"], bare["messages_per_second"], ratio,
                          run["commits_per_order"]))  # fmt: skip
    roles = list(r["pipeline"][0].get("cpu_ms_per_order", {}))
    if roles:
        lines += ["", "CPU per order, by process (ms), and how many of the machine's cores were busy:",
                  "", _row("worker processes", *roles, "total", "cores busy"),
                  _row(*["---:"] * (len(roles) + 3))]  # fmt: skip
        for run in r["pipeline"]:
            spent = run["cpu_ms_per_order"]
            lines.append(_row(run["workers"], *(spent[k] for k in roles),
                              round(sum(spent.values()), 1), run["cores_busy"]))  # fmt: skip
    pg = r["pgbench"]
    best = max(r["pipeline"], key=lambda run: run["orders_per_second"])
    lines += [
        "",
        "## Database ceiling",
        "",
        f"pgbench (TPC-B-like, scale {pg['scale']}, {pg['clients']} clients, {pg['seconds']} s) on the "
        f"same server: **{pg['tps']:.0f} transactions/s**. The pipeline commits "
        f"{best['commits_per_order']} transactions per order, so the database alone would allow about "
        f"{pg['tps'] / best['commits_per_order']:.0f} orders/s; measured: {best['orders_per_second']}.",
        "",
    ]
    lines += [
        "## Steady load: accepted -> confirmation e-mail, 2 worker processes",
        "",
        "Orders offered at a steady rate. When the rate is above what the pipeline sustains",
        "(see above), the e-mail latency measures the queue that builds up, not the work of",
        "one order.",
        "",
        _row("offered orders/s", "orders", "accepted p99 s", "e-mail p50 s", "e-mail p95 s",
             "e-mail p99 s", "delivered p50 s", "delivered p99 s", "unfinished"),
        _row(*["---:"] * 9),
    ]  # fmt: skip
    for s in r["steady_load"]:
        mail, accept, done = (s["confirmation_email_seconds"], s["accept_latency_seconds"],
                              s["delivered_seconds"])  # fmt: skip
        lines.append(_row(s["offered_per_second"], s["orders"], accept["p99"], mail["p50"],
                          mail["p95"], mail["p99"], done["p50"], done["p99"], s["unfinished"]))  # fmt: skip
    lines.append("")
    history = path.with_name("benchmarks-history.md")
    if history.exists():
        lines += [history.read_text().rstrip(), ""]
    path.write_text("\n".join(lines))
