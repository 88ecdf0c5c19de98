"""The per-order arithmetic of ``make bench``."""

from __future__ import annotations

import pytest

from bench import figures
from bench.probes import sum_samples


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
