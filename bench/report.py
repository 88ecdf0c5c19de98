"""``docs/benchmarks.md`` from one run's figures, with the run-by-run table carried over
from the previous report. The hand-written history of what was changed and what it
bought lives in ``docs/benchmarks-history.md`` and is included at the end."""

from __future__ import annotations

from pathlib import Path

from bench import figures, history

#: CPU roles in the order the cost table shows them, with their column titles.
ROLES = (("api", "API"), ("worker", "workers"), ("scheduler", "scheduler"),
         ("postgresql", "PostgreSQL"), ("redis", "Redis"))  # fmt: skip


def _row(*cells: object) -> str:
    return "| " + " | ".join(history.ABSENT if c is None else str(c) for c in cells) + " |"


def _head(*titles: str) -> list[str]:
    return [_row(*titles), _row("---", *["---:"] * (len(titles) - 1))]


def header(r: dict) -> list[str]:
    m, v = r["machine"], r["versions"]
    return [
        "# Benchmarks", "",
        "Written by `make bench` (do not edit by hand, except the rows of the run-by-run",
        "table; the history of changes is kept in `docs/benchmarks-history.md`). Every",
        "figure comes from one run on one machine, the system beside the bare stack it is",
        "built on, on the bench's own PostgreSQL and Redis.", "",
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['platform']}, "
        f"Python {m['python']}. Run started {r['started']}"
        + (f", revision {r['revision']}." if r.get("revision") else "."),
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".", "",
    ]  # fmt: skip


def cost(r: dict) -> list[str]:
    step = r["pipeline"][0]["tracker_step_seconds"]
    lines = [
        "## What one order costs", "",
        f"{r['pipeline'][0]['orders']} orders placed as fast as the API takes them and followed",
        "until delivered; the sandbox answers at once and its carrier moves a tracker one",
        f"status every {step} s. CPU is counted from the first order placed to the last one",
        "delivered (and the workers quiet), for the process trees the bench started and its",
        "own PostgreSQL postmaster and Redis server; the product is API + workers + scheduler",
        "+ PostgreSQL + Redis, the sandbox stands in for the providers and is left out.",
        "\"In bare messages\": the product's CPU per order over that of one no-op Dramatiq",
        "message (bare workers + Redis, same process count, measured below). \"Other cores",
        "busy\": what the rest of the machine (this bench's driver included) used meanwhile.", "",
        *_head("worker processes", *(title for _, title in ROLES), "product total",
               "in bare messages", "sandbox", "cores busy", "other cores busy"),
    ]  # fmt: skip
    for run, bare in zip(r["pipeline"], r["bare_dramatiq"], strict=True):
        ms = run["cpu_ms_per_order"]
        lines.append(_row(run["workers"], *(ms[role] for role, _ in ROLES),
                          run["product_cpu_ms_per_order"],
                          figures.in_bare_messages(run["product_cpu_ms_per_order"], bare["message_ms"]),
                          ms["sandbox"], run["cores_busy"], run.get("other_cores_busy")))  # fmt: skip
    lines += ["", "Per order: commits of the bench database (PostgreSQL's `xact_commit`, the",
              "system's whole life, less the bench's own polls), messages the workers took",
              "from the broker (Dramatiq's counter, every actor, retries included), and the",
              "webhooks the API stored, by type.", "",
              *_head("per order", *(f"{run['workers']} worker process(es)" for run in r["pipeline"]))]  # fmt: skip
    lines.append(_row("commits", *(run["commits_per_order"] for run in r["pipeline"])))
    lines.append(_row("broker messages", *(run["messages_per_order"] for run in r["pipeline"])))
    kinds = sorted({kind for run in r["pipeline"] for kind in run["webhooks_per_order"]})
    for kind in kinds:
        lines.append(_row(f"webhook `{kind}`",
                          *(run["webhooks_per_order"].get(kind, 0) for run in r["pipeline"])))  # fmt: skip
    return [*lines, ""]


def quoted(r: dict) -> list[str]:
    """The same run with each order placed on a checkout quote (shipping and tax in its
    total, its label bought for the service paid for, its tax recorded at capture)."""
    run, plain = r.get("quoted"), r["pipeline"][-1]
    if not run:
        return []
    bare = r["bare_dramatiq"][-1]
    lines = [
        f"## Orders placed on a checkout quote ({run['workers']} worker processes)", "",
        "The same run, each order on a quote asked for before the window opens, on its",
        "second cheapest option: its total holds shipping and tax, its label is bought for",
        "that service, its tax is recorded with Stripe Tax at capture. Beside the plain run",
        "above.", "",
        *_head("per order", "product CPU ms", "in bare messages", "commits", "broker messages",
               "orders/s x 11 / bare messages/s"),
    ]  # fmt: skip
    for name, one in (("plain", plain), ("on a quote", run)):
        rate = one["orders_per_second"]
        lines.append(_row(name, one["product_cpu_ms_per_order"],
                          figures.in_bare_messages(one["product_cpu_ms_per_order"], bare["message_ms"]),
                          one["commits_per_order"], one["messages_per_order"],
                          figures.orders_ratio(rate, bare["messages_per_second"]) if rate else None))  # fmt: skip
    return [*lines, ""]


def throughput(r: dict) -> list[str]:
    lines = [
        "## Throughput beside bare Dramatiq", "",
        "Orders/s: delivered orders over the time from the first acceptance to the last",
        "delivery, less the carrier's transit (the sandbox's tracker clock, not the product's",
        "time). Bare: no-op actors on the same Redis, same dramatiq CLI, 8 threads per process.", "",
        *_head("worker processes", "orders", "delivered", "accepted → last delivered s",
               "transit s", "orders/s", "bare messages/s", "bare CPU ms/message",
               "orders/s x 11 / bare messages/s"),
    ]  # fmt: skip
    for run, bare in zip(r["pipeline"], r["bare_dramatiq"], strict=True):
        rate = run["orders_per_second"]
        lines.append(_row(run["workers"], run["orders"], run["delivered"], run["seconds"],
                          run["transit_seconds"], rate, bare["messages_per_second"], bare["message_ms"],
                          figures.orders_ratio(rate, bare["messages_per_second"]) if rate else None))  # fmt: skip
    pg = r["pgbench"]
    best = r["pipeline"][-1]
    lines += ["", f"PostgreSQL ceiling: pgbench (TPC-B-like, scale {pg['scale']}, {pg['clients']} "
              f"clients, {pg['seconds']} s) on the same server: **{pg['tps']:.0f} transactions/s**; "
              f"at {best['commits_per_order']} commits per order that alone would allow about "
              f"{pg['tps'] / best['commits_per_order']:.0f} orders/s.", ""]  # fmt: skip
    return lines


def api(r: dict) -> list[str]:
    a = r["api"]
    lines = [f"## API: `POST /v1/orders`, one API process, {a['connections']} connections, wrk, "
             f"{a['seconds']} s", "",
             *_head("", "requests/s", "p50 ms", "p90 ms", "p99 ms", "non-2xx")]  # fmt: skip
    for name, key in (("Fulfillment API (JWT, validation, idempotency, commit)", "system"),
                      ("bare aiohttp (parse JSON, answer 201)", "bare_aiohttp")):  # fmt: skip
        f = a[key]
        lines.append(_row(name, f["requests_per_second"], f["p50_ms"], f["p90_ms"], f["p99_ms"],
                          f["non_2xx"]))  # fmt: skip
    lines += ["", f"Ratio to bare aiohttp: **{a['ratio']}**."]
    if a.get("rounds"):
        each = "; ".join(f"{one['system']} / {one['bare_aiohttp']} = {one['ratio']}"
                         for one in a["rounds"])  # fmt: skip
        lines += ["", f"{len(a['rounds'])} rounds, each a system window then a bare one, "
                      f"requests/s: {each}. The table is the round with the median ratio."]  # fmt: skip
    if a["system"].get("orders_per_commit"):
        lines += ["", f"Group commit: {a['system']['orders_per_commit']} orders per transaction."]
    return [*lines, *_api_time(a, r["machine"]["cores"]), ""]


def _api_time(a: dict, cores: int) -> list[str]:
    """Where the median round's time went (reports before the bench measured it have
    none): a process busy well under one core while the machine has cores idle is
    waiting, not working."""
    system, bare = a["system"].get("cpu"), a["bare_aiohttp"].get("cpu")
    if not system or not bare:
        return []
    per, busy = system["us_per_request"], system["busy"]
    return ["", f"Where that round's time went: the API process used {per['api']} µs of CPU a "
                f"request and was busy {busy['api']} of the time, PostgreSQL "
                f"{per['postgresql']} µs a request (busy {busy['postgresql']}), and "
                f"{system['machine_busy_cores']} of the machine's {cores} cores were busy. "
                f"Bare aiohttp: {bare['us_per_request']['bare_aiohttp']} µs a request, busy "
                f"{bare['busy']['bare_aiohttp']}, with {bare['machine_busy_cores']} cores "
                "busy."]  # fmt: skip


def merchant(r: dict) -> list[str]:
    """The runs with every default feature on: one merchant endpoint subscribed to
    every event, at the bench's tracker clock and at the fast one."""
    runs = r.get("merchant") or []
    if not runs:
        return []
    bare = r["bare_dramatiq"][-1]
    lines = [
        f"## Every default feature on: one merchant endpoint subscribed ({runs[0]['workers']} "
        "worker processes)", "",
        "The plain run, with one webhook endpoint subscribed to every order event and a",
        "receiver of the merchant's answering 204 (its CPU not counted). Each batch of",
        "deliveries is one `deliver_webhooks` message and one commit: they are counted",
        "apart (\"less deliveries\"). At the fast tracker clock the carrier's statuses come",
        "almost at once: the throughput is the pipeline's own.", "",
        *_head("tracker clock s", "product CPU ms", "in bare messages", "commits",
               "delivery attempts", "delivery batches", "commits less deliveries",
               "broker messages", "messages less deliveries", "orders/s", "orders/s x 11 / bare messages/s"),
    ]  # fmt: skip
    for run in runs:
        rate = run["orders_per_second"]
        lines.append(_row(run["tracker_step_seconds"], run["product_cpu_ms_per_order"],
                          figures.in_bare_messages(run["product_cpu_ms_per_order"], bare["message_ms"]),
                          run["commits_per_order"], figures.delivery_attempts(run),
                          figures.delivery_messages(run), figures.commits_less_deliveries(run),
                          run["messages_per_order"],
                          figures.messages_less_deliveries(run), rate,
                          figures.orders_ratio(rate, bare["messages_per_second"]) if rate else None))  # fmt: skip
    kinds = sorted({k for run in runs for k in run["merchant_deliveries_per_order"]})
    lines += ["", "Merchant deliveries per order, by status: " + "; ".join(
        f"{run['tracker_step_seconds']} s clock: " + ", ".join(
            f"{k} {run['merchant_deliveries_per_order'].get(k, 0)}" for k in kinds)
        for run in runs) + "."]  # fmt: skip
    return [*lines, ""]


def steady(r: dict) -> list[str]:
    if not r["steady_load"]:
        return ["## Steady load", "", "Not run: the pipeline run delivered no order.", ""]
    ladder = r.get("steady_ladder") or []
    highest = figures.highest_held(ladder)
    endpoint = " with one merchant endpoint subscribed" if r["steady_load"][0].get(
        "merchant_endpoint") else ""  # fmt: skip
    lines = [
        "## Steady load: accepted → confirmation e-mail, 2 worker processes", "",
        f"First the steady-rate search{endpoint}: orders offered at a steady rate, rising",
        f"from {int(figures.LADDER_START * 100)} % of the 2-process pipeline run's burst rate "
        f"by {round((figures.LADDER_FACTOR - 1) * 100)} % a step, until the e-mail p99 passes "
        f"{figures.EMAIL_P99_SECONDS} s or an order is left unfinished. The highest rate held "
        f"is the steady sustained rate: **{highest if highest is not None else '—'} orders/s**. "
        f"Then {int(figures.STEADY_SHARE * 100)} % of it, offered for longer (last row).", "",
        *_head("offered orders/s", "seconds", "orders", "accepted p99 s", "e-mail p50 s",
               "e-mail p95 s", "e-mail p99 s", "delivered p50 s", "delivered p99 s", "unfinished",
               "held"),
    ]  # fmt: skip
    for s in [*ladder, *r["steady_load"]]:
        mail, done = s["confirmation_email_seconds"], s["delivered_seconds"]
        lines.append(_row(s["offered_per_second"], s["seconds"], s["orders"],
                          s["accept_latency_seconds"]["p99"], mail["p50"], mail["p95"], mail["p99"],
                          done["p50"], done["p99"], s["unfinished"],
                          "yes" if figures.held(s) else "no"))  # fmt: skip
    return [*lines, ""]


def targets(r: dict) -> list[str]:
    """Each target of the cost issue beside this run's figure."""
    rows = figures.targets(r)
    if not rows:
        return []
    lines = ["## Targets", "",
             "Every default feature on (the merchant-endpoint runs above), 2 worker processes.", "",
             *_head("target", "this run", "met")]  # fmt: skip
    for name, figure, met in rows:
        lines.append(
            _row(name, figure, history.ABSENT if met is None else ("yes" if met else "no"))
        )
    return [*lines, ""]


def render(r: dict, *, previous: str = "", notes: str = "") -> str:
    """The report of run ``r``, keeping the run-by-run rows of the ``previous`` report
    and ending with the hand-written ``notes``."""
    lines = [*header(r), *targets(r), *cost(r), *quoted(r), *merchant(r), *throughput(r),
             *steady(r), *api(r), *history.section(previous, r)]  # fmt: skip
    if notes:
        lines += [notes.rstrip(), ""]
    return "\n".join(lines)


def write_report(r: dict, path: Path) -> None:
    notes = path.with_name("benchmarks-history.md")
    path.write_text(render(r, previous=path.read_text() if path.exists() else "",
                           notes=notes.read_text() if notes.exists() else ""))  # fmt: skip
