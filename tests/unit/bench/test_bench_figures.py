"""The per-order arithmetic of ``make bench``."""

from __future__ import annotations

import pytest

from bench import figures
from bench.probes import actor_counts, sum_samples


def test_cpu_seconds_become_milliseconds_per_order():
    assert figures.per_order({"api": 0.5, "worker": 2.0}, 100, scale=1000) == {
        "api": 5.0,
        "worker": 20.0,
    }


def test_the_product_total_leaves_the_sandbox_out():
    # Given CPU per order for every process the bench ran
    cpu_ms = {"api": 5.0, "worker": 40.0, "scheduler": 3.0, "postgresql": 20.0, "redis": 2.0,
              "sandbox": 7.0}  # fmt: skip

    # Then the product is everything but the providers' stand-in
    assert figures.product_total(cpu_ms) == 70.0


def test_a_bare_message_costs_its_workers_share_plus_the_redis_servers():
    # Given 1 s of worker CPU over 2000 messages, and 0.2 s of Redis CPU over 4000
    ms = figures.bare_message_ms(worker_seconds=1.0, worker_messages=2000,
                                 redis_seconds=0.2, redis_messages=4000)  # fmt: skip

    # Then one message costs 0.5 + 0.05 ms, and a 70 ms order costs about 127 of them
    assert ms == pytest.approx(0.55)
    assert figures.in_bare_messages(70.0, ms) == 127.3


def test_the_issues_ratio_compares_eleven_messages_an_order_with_bare_messages():
    assert figures.orders_ratio(20.0, 4400.0) == 0.05


def test_the_sustained_rate_leaves_the_carriers_transit_out():
    # Given 400 orders, the first accepted at t=100 and the last delivered at t=146,
    # with a 6 s transit on the carrier's clock
    rate = figures.sustained_rate(orders=400, first_accepted=100.0, last_delivered=146.0,
                                  transit_seconds=6.0)  # fmt: skip

    # Then the product delivered them in 40 s
    assert rate == 10.0


def test_the_steady_load_offers_seventy_percent_of_the_sustained_rate():
    assert figures.steady_rate(15.0) == 10.5


def test_every_sample_of_a_counter_is_summed_whatever_its_labels():
    exposition = "\n".join([
        "# HELP dramatiq_messages_total The total number of messages processed.",
        "# TYPE dramatiq_messages_total counter",
        'dramatiq_messages_total{actor_name="reserve",queue_name="orders"} 400.0',
        'dramatiq_messages_total{actor_name="notify",queue_name="mail"} 1200.0',
        'dramatiq_messages_total_errored{actor_name="notify",queue_name="mail"} 3.0',
        "dramatiq_messages_total 5.0",
    ])  # fmt: skip

    assert sum_samples(exposition, "dramatiq_messages_total") == 1605.0


def test_messages_are_counted_by_actor_from_the_dramatiq_counter():
    exposition = "\n".join([
        "# TYPE dramatiq_messages_total counter",
        'dramatiq_messages_total{actor_name="reserve_inventory",queue_name="inventory"} 400.0',
        'dramatiq_messages_total{actor_name="deliver_webhook",queue_name="webhooks"} 1200.0',
        'dramatiq_messages_total{actor_name="deliver_webhook",queue_name="webhooks.DQ"} 3.0',
        'dramatiq_messages_created{actor_name="deliver_webhook",queue_name="webhooks"} 9.0',
    ])  # fmt: skip
    assert actor_counts(exposition, "dramatiq_messages_total") == {
        "reserve_inventory": 400.0,
        "deliver_webhook": 1203.0,
    }


def test_the_merchants_deliveries_are_counted_apart_from_the_orders_commits_and_messages():
    # Given a run with 4 delivery attempts an order among 12.5 commits and 6 messages
    run = {"commits_per_order": 12.5, "messages_per_order": 6.0,
           "messages_by_actor_per_order": {"reserve_inventory": 1.0, "send_notification": 1.0,
                                           "deliver_webhook": 4.0},
           "merchant_deliveries_per_order": {"deliveries delivered": 4.0, "attempts": 4.0}}  # fmt: skip
    # Then the order's own figures leave them out
    assert figures.commits_less_deliveries(run) == 8.5
    assert figures.messages_less_deliveries(run) == 2.0
    # and a run without an endpoint has nothing to leave out
    plain = {"commits_per_order": 8.0, "messages_per_order": 2.0}
    assert (figures.commits_less_deliveries(plain), figures.messages_less_deliveries(plain)) == (
        8.0,
        2.0,
    )


def test_the_steady_rate_search_rises_from_a_share_of_the_burst_rate_and_keeps_the_highest_held():
    rates = figures.ladder(40.0)
    assert rates[:3] == [24.0, 27.6, 31.7]
    assert len(rates) == figures.LADDER_STEPS

    def step(rate: float, p99: float | None, unfinished: int = 0) -> dict:
        return {"offered_per_second": rate, "unfinished": unfinished,
                "confirmation_email_seconds": {"p99": p99}}  # fmt: skip

    # A rate is held when every order finished and the e-mail p99 stayed within 2 s
    steps = [step(24.0, 0.4), step(27.6, 1.9), step(31.7, 2.4)]
    assert figures.highest_held(steps) == 27.6
    assert not figures.held(step(20.0, 0.3, unfinished=1))
    assert not figures.held(step(20.0, None))
    assert figures.highest_held([step(24.0, 5.0)]) is None


def test_the_api_figures_are_the_round_with_the_median_ratio():
    # Given three alternated rounds, one of them caught by a busy moment on one side
    rounds = [{"ratio": 0.31, "system": "busy bare window"},
              {"ratio": 0.22, "system": "median"},
              {"ratio": 0.12, "system": "busy system window"}]  # fmt: skip
    # Then the median round is reported, whole (its system and bare windows together)
    assert figures.median_round(rounds)["system"] == "median"
    assert figures.median_round(rounds[:1]) is rounds[0]
    # and of an even number, the lower of the two middle ones
    assert figures.median_round([*rounds, {"ratio": 0.4}])["ratio"] == 0.22
    with pytest.raises(ValueError):
        figures.median_round([])


def test_a_wrk_windows_cpu_is_per_request_and_as_busy_cores():
    # Given 10 s in which 20,000 requests were answered, the API using 7.8 s of CPU,
    # PostgreSQL 4.0 s, and the machine 12.2 s over all its cores
    found = figures.window_cpu({"api": 7.8, "postgresql": 4.0}, requests=20_000, seconds=10.0,
                               machine_seconds=12.2)  # fmt: skip

    # Then each process's CPU is per request, and its busy share is per second of the window
    assert found == {
        "us_per_request": {"api": 390, "postgresql": 200},
        "busy": {"api": 0.78, "postgresql": 0.4},
        "machine_busy_cores": 1.22,
    }
