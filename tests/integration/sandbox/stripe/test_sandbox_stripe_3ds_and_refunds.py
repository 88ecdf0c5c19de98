"""3-D Secure and refunds in the Stripe sandbox, checked through the unmodified SDK: a
completed challenge goes on as a plain confirm, a failed one wants another payment
method; refunds take what was captured and not more."""

from __future__ import annotations

import pytest
import stripe

from tests.support.stripe_capture import authenticate, authorize, sent


@pytest.mark.parametrize(
    ("method", "capture_method", "settled", "event"),
    [
        (
            "pm_card_authenticationRequired",
            "manual",
            "requires_capture",
            "payment_intent.amount_capturable_updated",
        ),
        ("pm_card_threeDSecure2Required", "automatic", "succeeded", "payment_intent.succeeded"),
    ],
)
def test_a_completed_3d_secure_goes_on_as_a_plain_confirm(
    sandbox, client, method, capture_method, settled, event
):
    # Given a card that asks for 3-D Secure
    intent = authorize(client, method, capture_method=capture_method)
    assert (intent.status, intent.latest_charge) == ("requires_action", None)
    assert intent.next_action.type == "use_stripe_sdk"
    assert intent.next_action.use_stripe_sdk.type == "stripe_3ds2_fingerprint"
    assert intent.client_secret.startswith(f"{intent.id}_secret_")

    # When the customer completes the challenge
    answer = authenticate(sandbox, intent.id, "complete")

    # Then the payment goes on as if no challenge had been asked
    assert answer.status_code == 200 and answer.json()["status"] == settled
    done = client.v1.payment_intents.retrieve(intent.id, {"expand": ["latest_charge"]})
    assert (done.status, done.next_action) == (settled, None)
    assert done.latest_charge.captured is (capture_method == "automatic")
    assert sent(sandbox) == ["payment_intent.requires_action", event]


def test_a_failed_3d_secure_wants_another_payment_method(sandbox, client):
    intent = authorize(client, "pm_card_threeDSecure2Required")

    answer = authenticate(sandbox, intent.id, "fail")

    assert answer.status_code == 200
    failed = client.v1.payment_intents.retrieve(intent.id)
    assert (failed.status, failed.next_action, failed.latest_charge) == (
        "requires_payment_method",
        None,
        None,
    )
    assert failed.last_payment_error.code == "payment_intent_authentication_failure"
    assert "failed authentication" in failed.last_payment_error.message
    assert sent(sandbox) == ["payment_intent.requires_action", "payment_intent.payment_failed"]
    # and the control API refuses what makes no sense
    assert authenticate(sandbox, intent.id, "complete").status_code == 409
    assert authenticate(sandbox, "pi_unknown", "complete").status_code == 404
    assert authenticate(sandbox, intent.id, "maybe").status_code == 400


def test_refunds_take_what_was_captured_and_not_more(sandbox, client):
    # Given 2000 held and 1500 of it captured (500 released)
    intent = client.v1.payment_intents.capture(authorize(client).id, {"amount_to_capture": 1500})

    # When it is refunded in parts
    first = client.v1.refunds.create({"payment_intent": intent.id, "amount": 1000})
    with pytest.raises(stripe.InvalidRequestError) as beyond:
        client.v1.refunds.create({"payment_intent": intent.id, "amount": 501})
    rest = client.v1.refunds.create({"payment_intent": intent.id})

    # Then each takes its part, the rest what was left, and more is refused
    assert (first.amount, rest.amount) == (1000, 500)
    assert beyond.value.code == "amount_too_large"
    with pytest.raises(stripe.InvalidRequestError) as spent:
        client.v1.refunds.create({"payment_intent": intent.id, "amount": 100})
    assert spent.value.code == "charge_already_refunded"
    listed = client.v1.refunds.list({"payment_intent": intent.id}).data
    assert {first.id, rest.id} <= {r.id for r in listed}
    assert sum(r.amount for r in listed) == 2000  # with the 500 released at capture
    refunded = [e for e in client.v1.events.list({"type": "charge.refunded"}).data]
    assert sorted(e.data.object.amount_refunded for e in refunded) == [1500, 2000]
    assert sent(sandbox).count("charge.refunded") == 2


def test_refunding_an_authorization_is_refused(client):
    intent = authorize(client)

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create({"payment_intent": intent.id})
    with pytest.raises(stripe.InvalidRequestError) as by_charge:
        client.v1.refunds.create({"charge": intent.latest_charge.id})

    assert raised.value.code == by_charge.value.code == "charge_not_refundable"
    assert "cancel the PaymentIntent" in str(raised.value.user_message)
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"
