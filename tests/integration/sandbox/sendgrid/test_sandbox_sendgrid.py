"""The sandbox speaks enough SendGrid for the unmodified SDK: checked through the SDK."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import sendgrid
from python_http_client.exceptions import BadRequestsError, UnauthorizedError

from cli.traffic import Simulation, SimulationConfig
from integrations.sendgrid_templates import template_name
from sandbox.sendgrid.templates import installed_id
from tests.support.sandbox import RunningSandbox, running_sandbox

MAIL = {
    "from": {"email": "orders@example.com"},
    "personalizations": [{"to": [{"email": "ada@example.com"}], "custom_args": {"kind": "x"}}],
    "template_id": installed_id(template_name("welcome")),
    "custom_args": {"order_id": "o-1"},
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def client(sandbox: RunningSandbox) -> sendgrid.SendGridAPIClient:
    sandbox.reset()
    return sendgrid.SendGridAPIClient("SG.test", host=f"{sandbox.url}/sendgrid")


def test_a_valid_mail_is_accepted_with_202_and_kept_with_its_custom_args(sandbox, client):
    response = client.send(MAIL)

    assert response.status_code == 202 and response.body == b""
    (message,) = sandbox.messages()
    assert message["msg_id"] == response.headers["X-Message-Id"]
    assert message["custom_args"] == {"order_id": "o-1", "kind": "x"}


def test_every_problem_is_reported_at_once_as_sendgrid_does(client):
    bad = {"personalizations": [{"to": [{"email": "nope"}]}], "from": {"email": "also nope"}}
    with pytest.raises(BadRequestsError) as raised:
        client.send(bad)

    errors = json.loads(raised.value.body)["errors"]
    assert {e["field"] for e in errors} == {
        "personalizations.0.to.0.email",
        "from.email",
        "content",
        "subject",
    }
    assert all(set(e) == {"message", "field", "help"} for e in errors)


def test_custom_args_must_be_strings(client):
    with pytest.raises(BadRequestsError) as raised:
        client.send({**MAIL, "custom_args": {"order_id": 42}})
    (error,) = json.loads(raised.value.body)["errors"]
    assert error["field"] == "custom_args.order_id"


def test_messages_can_be_searched_by_custom_args(sandbox, client):
    client.send(MAIL)
    client.send({**MAIL, "custom_args": {"order_id": "o-2"}})
    query = {"query": "unique_args['order_id']=\"o-2\"", "limit": 10}
    found = client.client.messages.get(query_params=query).to_dict["messages"]
    assert [m["custom_args"]["order_id"] for m in found] == ["o-2"]


def test_an_api_key_is_required(sandbox):
    anonymous = sendgrid.SendGridAPIClient("", host=f"{sandbox.url}/sendgrid")
    anonymous.client.request_headers.pop("Authorization")
    with pytest.raises(UnauthorizedError):
        anonymous.send(MAIL)


def test_the_simulation_times_a_confirmation_email_to_the_moment_sendgrid_took_it(sandbox, client):
    # Given an order accepted a quarter of a second before its confirmation is sent
    accepted = datetime.now(UTC) - timedelta(seconds=0.25)
    mail = {**MAIL, "custom_args": {"order_id": "o-timed"},
            "personalizations": [{"to": [{"email": "ada@example.com"}],
                                  "custom_args": {"kind": "order_confirmed"}}]}  # fmt: skip
    sent_before = time.time()
    client.send(mail)
    sent_after = time.time()

    # When the simulation measures it
    async def measure() -> list[float]:
        simulation = Simulation(SimulationConfig(api_url="http://unused", sandbox_url=sandbox.url))
        async with aiohttp.ClientSession() as http:
            simulation.http = http
            return await simulation._mail_latency({"o-timed": accepted})

    (latency,) = asyncio.run(measure())

    # Then it is the time to the send, not to SendGrid's whole-second event time
    earliest = sent_before - accepted.timestamp()
    assert earliest <= latency <= sent_after - accepted.timestamp()
