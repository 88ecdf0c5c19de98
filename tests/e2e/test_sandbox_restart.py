"""The sandbox restarted under a running system keeps its records: ``fulfillment
verify`` still finds every payment and mail, and earlier payments can be refunded."""

from __future__ import annotations

import asyncio

import pytest
import requests

from tests.support.storefront import add_product
from tests.support.system import wait_until
from tests.support.traffic import mails_by_kind, place_orders

AUTH = {"Authorization": "Bearer sk_test_sandbox"}


@pytest.mark.slow
def test_verify_is_clean_and_refunds_work_after_the_sandbox_restarts(system, db):
    # Given orders paid, shipped and delivered through the sandbox
    product = add_product(db, on_hand=50)
    asyncio.run(place_orders(system.api_url, product, ["pm_card_visa"] * 3))
    assert system.wait_all_terminal(expected=3) == {"delivered": 3}
    wait_until(lambda: mails_by_kind(system.sandbox_url)["delivered"] == 3, timeout=30,
               what="the delivery e-mails")  # fmt: skip
    mails = mails_by_kind(system.sandbox_url)

    # When the sandbox is restarted
    system.stop("sandbox")
    system.start("sandbox")
    system.wait_ready()

    # Then verify finds every payment and mail where it was
    result = system.fulfillment("verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert mails_by_kind(system.sandbox_url) == mails
    # and a payment taken before the restart can be refunded
    intents = requests.get(f"{system.sandbox_url}/v1/payment_intents", headers=AUTH, timeout=5)
    paid = [i for i in intents.json()["data"] if i["status"] == "succeeded"]
    assert len(paid) == 3
    refund = requests.post(f"{system.sandbox_url}/v1/refunds", headers=AUTH, timeout=5,
                           data={"payment_intent": paid[0]["id"]})  # fmt: skip
    assert refund.status_code == 200, refund.text
