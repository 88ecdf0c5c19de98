"""``docs/benchmarks.md`` as ``make bench`` writes it: the cost per order, and the
run-by-run table carried over from the previous report."""

from __future__ import annotations

from bench import history, report


def pipeline_run(workers: int) -> dict:
    return {
        "workers": workers, "threads": 8, "orders": 400, "finished": 400, "delivered": 400,
        "tracker_step_seconds": 2.0, "accepted_per_second": 900.0, "seconds": 46.0,
        "transit_seconds": 6.0, "orders_per_second": 10.0,
        "cpu_ms_per_order": {"sandbox": 7.0, "api": 5.0, "scheduler": 3.0, "worker": 40.0,
                             "postgresql": 20.0, "redis": 2.0},
        "product_cpu_ms_per_order": 70.0, "commits_per_order": 25.5, "messages_per_order": 11.0,
        "webhooks_per_order": {"stripe payment_intent.succeeded": 1.0,
                               "easypost tracker.updated": 3.0},
        "window_seconds": 47.0, "cores_busy": 1.6, "other_cores_busy": 0.3,
    }  # fmt: skip


def results(started: str = "2026-12-01 10:00:00 UTC") -> dict:
    wrk = {"requests_per_second": 2400.0, "p50_ms": 13.0, "p90_ms": 15.0, "p99_ms": 19.0,
           "non_2xx": 0}  # fmt: skip
    mail = {"p50": 0.2, "p95": 0.4, "p99": 0.9}
    return {
        "machine": {"cores": 2, "memory_gib": 23.5, "platform": "Linux", "python": "3.11.7"},
        "versions": {"postgresql": "18.6", "redis": "7.2"},
        "revision": "abc1234", "note": "after the saga", "started": started,
        "api": {"connections": 32, "seconds": 10, "system": {**wrk, "orders_per_commit": 14.0},
                "bare_aiohttp": wrk, "ratio": 1.0,
                "rounds": [{"system": 2400.0, "bare_aiohttp": 2400.0, "ratio": 1.0},
                           {"system": 2300.0, "bare_aiohttp": 2500.0, "ratio": 0.92}]},
        "pgbench": {"clients": 16, "seconds": 10, "scale": 10, "tps": 4000.0},
        "pipeline": [pipeline_run(1), pipeline_run(2)],
        "bare_dramatiq": [{"workers": w, "threads": 8, "messages": 20000,
                           "messages_per_second": 2200.0 * w,
                           "cpu_ms_per_message": {"workers": 0.45, "redis": 0.05},
                           "message_ms": 0.5} for w in (1, 2)],
        "steady_load": [{"offered_per_second": 7.0, "seconds": 30, "orders": 210,
                         "accepted_per_second": 7.0, "accept_latency_seconds": {"p99": 0.03},
                         "confirmation_email_seconds": mail, "delivered_seconds": mail,
                         "unfinished": 0}],
    }  # fmt: skip


def test_the_report_shows_the_cost_of_an_order_in_milliseconds_and_in_bare_messages():
    # Given a run whose orders cost 70 ms of product CPU and a bare message 0.5 ms
    # When the report is written
    text = report.render(results())

    # Then the cost table has each process, the product total, the total in bare messages,
    # and the sandbox beside them
    assert "| 2 | 5.0 | 40.0 | 3.0 | 20.0 | 2.0 | 70.0 | 140.0 | 7.0 | 1.6 | 0.3 |" in text
    assert "| webhook `easypost tracker.updated` | 3.0 | 3.0 |" in text
    # and the ratio: 10 orders/s x 11 / 4400 messages/s
    assert "| 0.025 |" in text
    # and each of the API's alternated rounds
    assert (
        "2 rounds, each a system window then a bare one, requests/s: 2400.0 / 2400.0 = 1.0; "
        "2300.0 / 2500.0 = 0.92." in text
    )


def test_each_run_adds_a_row_to_the_run_by_run_table_and_keeps_the_earlier_ones():
    # Given a report written by an earlier run, with a row added by hand before it
    earlier = report.render(results("2026-11-30 09:00:00 UTC")).replace(
        "| 2026-11-30", "| 2026-11-22 | a69280d | previous bench | — | 32.1 | 11.0 | 0.04 | 0.86 |\n"
        "| 2026-11-30", 1)  # fmt: skip

    # When the next run writes its report
    text = report.render(results("2026-12-01 10:00:00 UTC"), previous=earlier, notes="## Notes")

    # Then the table holds the hand-added row, the earlier run and this one, in order
    rows = history.previous_rows(text)
    assert [row.split(" | ")[0] for row in rows] == [
        "| 2026-11-22",
        "| 2026-11-30 09:00:00 UTC",
        "| 2026-12-01 10:00:00 UTC",
    ]
    assert rows[-1] == ("| 2026-12-01 10:00:00 UTC | abc1234 | after the saga | 140.0 | 25.5 "
                        "| 11.0 | 0.025 | 0.9 |")  # fmt: skip
    # and the hand-written notes follow it
    assert text.rstrip().endswith("## Notes")


def test_a_report_without_a_run_by_run_table_starts_one():
    assert history.previous_rows("# Benchmarks\n\n## Pipeline\n\n| a | b |\n| --- | --- |\n") == []


def test_a_run_whose_pipeline_delivered_nothing_is_shown_with_blanks():
    # Given a run in which no order was delivered, so no steady load was offered
    broken = results()
    broken["pipeline"][-1]["orders_per_second"] = None
    broken["steady_load"] = []

    # Then its row says so instead of inventing figures
    assert history.row(broken).endswith("| 140.0 | 25.5 | 11.0 | — | — |")


def test_orders_on_a_quote_are_shown_beside_the_plain_run():
    quoted = {**pipeline_run(2), "quoted": True, "product_cpu_ms_per_order": 80.0,
              "commits_per_order": 26.0}  # fmt: skip
    text = report.render({**results(), "quoted": quoted})
    assert "## Orders placed on a checkout quote (2 worker processes)" in text
    assert "| plain | 70.0 | 140.0 | 25.5 | 11.0 | 0.025 |" in text
    assert "| on a quote | 80.0 | 160.0 | 26.0 | 11.0 | 0.025 |" in text
    assert "checkout quote" not in report.render(results())


def merchant_runs() -> list[dict]:
    def one(step: float, rate: float) -> dict:
        return {**pipeline_run(2), "tracker_step_seconds": step, "orders_per_second": rate,
                "product_cpu_ms_per_order": 29.0, "commits_per_order": 11.5,
                "messages_per_order": 6.0,
                "messages_by_actor_per_order": {"reserve_inventory": 1.0,
                                                "send_notification": 1.0, "deliver_webhooks": 0.5,
                                                "deliver_webhook": 3.5},
                "merchant_deliveries_per_order": {"deliveries delivered": 4.0, "attempts": 4.0}}  # fmt: skip

    return [one(2.0, 64.0), one(0.05, 50.0)]


def test_every_default_feature_on_is_shown_with_the_deliveries_apart_and_checked_on_the_targets():
    # Given the merchant-endpoint runs at both tracker clocks, and a steady-rate search
    mail = {"p50": 0.2, "p95": 0.4}
    ladder = [{**results()["steady_load"][0], "offered_per_second": rate,
               "confirmation_email_seconds": {**mail, "p99": p99}}
              for rate, p99 in ((30.0, 0.9), (34.5, 1.8), (39.7, 3.1))]  # fmt: skip
    r = {**results(), "merchant": merchant_runs(), "steady_ladder": ladder}
    r["pipeline"][-1].update(commits_per_order=7.5, messages_per_order=2.0)  # no endpoint
    text = report.render(r)

    # Then both runs show the order's own commits and messages, the deliveries apart
    assert "| 2.0 | 29.0 | 58.0 | 11.5 | 4.0 | 4.0 | 7.5 | 6.0 | 2.0 | 64.0 | 0.16 |" in text
    assert "| 0.05 | 29.0 | 58.0 | 11.5 | 4.0 | 4.0 | 7.5 | 6.0 | 2.0 | 50.0 | 0.125 |" in text
    # the steady-rate search names the highest rate held, each step marked
    assert "steady sustained rate: **34.5 orders/s**" in text
    assert "| 39.7 | 30 | 210 | 0.03 | 0.2 | 0.4 | 3.1 | 0.2 | 0.9 | 0 | no |" in text
    # and each target is checked against this run's figure
    assert "| CPU per order <= 60 bare messages | 58.0 | yes |" in text
    # (the order's own commits and messages are the plain run's, what the endpoint adds
    # beside them)
    assert (
        "| commits per order <= 8, deliveries apart (one endpoint adds 4.0: 4.0 delivery "
        "batches for 4.0 attempts, and the scheduler's dispatch) | 7.5 | yes |"
    ) in text
    assert (
        "| broker messages per order <= 3, deliveries apart (one endpoint adds 4.0) | 2.0 | yes |"
    ) in text
    assert "| orders/s x 11 / bare messages/s >= 0.15, tracker clock 2.0 s | 0.16 | yes |" in text
    assert "| orders/s x 11 / bare messages/s >= 0.15, tracker clock 0.05 s | 0.125 | no |" in text
    assert "| POST /v1/orders >= 0.25 of bare aiohttp | 1.0 | yes |" in text
    assert (
        "| confirmation e-mail p99 <= 2.0 s at 70 % of the steady sustained rate | 0.9 | yes |"
        in text
    )
    # and a run without them shows neither
    assert "## Targets" not in report.render(results())


def test_the_api_section_says_where_the_median_rounds_time_went():
    # Given an API run whose windows measured the processes' CPU
    run = results()
    run["api"]["system"]["cpu"] = {"us_per_request": {"api": 389, "postgresql": 208},
                                   "busy": {"api": 0.74, "postgresql": 0.4},
                                   "machine_busy_cores": 1.22}  # fmt: skip
    run["api"]["bare_aiohttp"]["cpu"] = {"us_per_request": {"bare_aiohttp": 105},
                                         "busy": {"bare_aiohttp": 0.99},
                                         "machine_busy_cores": 1.3}  # fmt: skip

    # When the report is written
    text = report.render(run)

    # Then it says how busy the API process and PostgreSQL were, beside bare aiohttp
    assert (
        "Where that round's time went: the API process used 389 µs of CPU a request and was "
        "busy 0.74 of the time, PostgreSQL 208 µs a request (busy 0.4), and 1.22 of the "
        "machine's 2 cores were busy. Bare aiohttp: 105 µs a request, busy 0.99, with 1.3 "
        "cores busy."
    ) in text
    # and a report of a run before the bench measured it says nothing of it
    assert "Where that round's time went" not in report.render(results())
