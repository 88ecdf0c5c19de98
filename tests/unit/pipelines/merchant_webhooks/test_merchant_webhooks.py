"""Merchant webhooks without I/O: where a URL may point, the signature, the backoff."""

from __future__ import annotations

import ipaddress

import pytest

from api.merchant_webhooks.views import REDELIVER_ONE, REDELIVER_RANGE
from fulfillment.destinations import RefusedUrl, parse, refusal
from fulfillment.merchant_events import MILESTONES, signature, signature_header, trigger_sql
from fulfillment.settings import Settings
from pipelines.merchant_webhooks.deliver import _TELL_ADMINS, next_delay
from tests.support.merchant import documented_verify
from tests.support.raw_sql import TABLES, reads, writes
from workers.webhook_dispatch import DISPATCH


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("10.0.0.8", "private"), ("172.16.5.4", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("224.0.0.251", "multicast"),
    ("240.0.0.1", "reserved"), ("0.0.0.0", "unspecified"), ("100.64.0.1", "not-global"),
    ("::1", "loopback"), ("fe80::1", "link-local"), ("fc00::1", "private"),
    ("::ffff:127.0.0.1", "loopback"), ("ff02::1", "multicast"),
    ("93.184.216.34", None), ("2606:2800:220:1:248:1893:25c8:1946", None),
])  # fmt: skip
def test_only_public_addresses_may_be_called_in_production(address, reason):
    assert refusal(ipaddress.ip_address(address)) == reason


def test_plain_http_goes_only_to_loopback_and_only_in_development():
    assert parse("http://127.0.0.1:9000/h?x=1", development=True).target == "/h?x=1"
    assert parse("http://localhost/h", development=True).host == "localhost"
    for url, development in (("http://127.0.0.1/h", False), ("http://10.0.0.1/h", True),
                             ("http://shop.example.com/h", True)):  # fmt: skip
        with pytest.raises(RefusedUrl) as refused:
            parse(url, development=development)
        assert refused.value.code == "https_required"
    assert parse("https://Shop.Example.com./h", development=False).host_header == "shop.example.com"
    assert parse("https://shop.example.com:8443", development=False).host_header == (
        "shop.example.com:8443"
    )


def test_the_documented_check_accepts_each_secret_of_a_rotation_and_nothing_else():
    verify, now = documented_verify(), __import__("time").time()
    body = b'{"id":"evt_1"}'
    header = signature_header(["whsec_new", "whsec_old"], int(now), body)
    assert header == (f"t={int(now)},v1={signature('whsec_new', int(now), body)},"
                      f"v1={signature('whsec_old', int(now), body)}")  # fmt: skip
    assert verify(body, header, "whsec_new") and verify(body, header, "whsec_old")
    assert not verify(body, header, "whsec_other")
    stale = signature_header(["whsec_new"], int(now) - 600, body)
    assert not verify(body, stale, "whsec_new")  # outside the tolerance: a replay
    assert not verify(body, "v1=abc", "whsec_new")


def test_backoff_doubles_with_jitter_up_to_the_cap():
    settings = Settings(webhook_retry_min_seconds=10, webhook_retry_max_seconds=3600)
    for attempts, full in ((1, 10), (2, 20), (5, 160), (20, 3600), (500, 3600)):
        delays = [next_delay(settings, attempts) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays), attempts
        assert len(set(delays)) > 1  # jittered


def test_the_raw_sql_of_merchant_webhooks_names_only_columns_the_models_have():
    statements = {"dispatch": DISPATCH.text, "redeliver one": REDELIVER_ONE.text,
                  "redeliver range": REDELIVER_RANGE.text, "tell admins": _TELL_ADMINS.text,
                  "trigger": trigger_sql(MILESTONES)[0]}  # fmt: skip
    for name, sql in statements.items():
        named = writes(sql) + reads(sql)
        assert named, name
        unknown = [f"{t}.{c}" for t, c in named if t not in TABLES or c not in TABLES[t]]
        assert not unknown, f"{name} names columns the models do not have: {unknown}"
