"""The logs of a running system: JSON lines from every process, a request id that is
echoed back and travels through the outbox to the worker steps, one order followed
across the API and the workers, and no secret, token, password or card data anywhere."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.storefront import PASSWORD, add_product, order_body
from tests.support.system import System, wait_until

#: Lines a process prints before its logging is set up (aiohttp's and the sandbox's
#: start-up banners); everything else must be JSON.
BANNERS = re.compile(r"^(=+ Running on |\(Press CTRL\+C to quit\)|sandbox on http)")

#: Settings and keys the processes run with (the sandbox defaults).
PROVIDER_SECRETS = ("sk_test_sandbox", "whsec_sandbox", "SG.sandbox", "EZTK_sandbox",
                    "easypost-sandbox-secret")  # fmt: skip
CARD_DATA = ("pm_card_visa", "pm_card_chargeDeclined", "4242424242424242", "4000000000000002")


class Storefront:
    """A storefront's HTTP calls, each with an X-Request-ID of our choosing."""

    def __init__(self, system: System) -> None:
        self.api = system.api_url
        self.http = requests.Session()
        self.token: str | None = None
        self.secrets: list[str] = []

    def call(self, method: str, path: str, *, request_id: str | None = None, **kw):
        headers = dict(kw.pop("headers", {}))
        if request_id:
            headers["X-Request-ID"] = request_id
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.http.request(method, self.api + path, headers=headers, timeout=30, **kw)

    def sign_up(self, email: str, *, request_id: str) -> dict:
        body = {"email": email, "password": PASSWORD, "first_name": "Ada", "last_name": "Byron"}
        response = self.call("POST", "/v1/users", json=body, request_id=request_id)
        assert response.status_code == 201, response.text
        tokens = self.log_in(email, PASSWORD)
        refreshed = self.call(
            "POST", "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        self.secrets += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
        return response.json()

    def log_in(self, email: str, password: str) -> dict:
        tokens = self.call("POST", "/v1/auth/login", json={"email": email, "password": password})
        assert tokens.status_code == 200, tokens.text
        tokens = tokens.json()
        self.token = tokens["access_token"]
        self.secrets += [tokens["access_token"], tokens["refresh_token"]]
        return tokens


def read_logs(workdir: Path) -> dict[str, list[dict]]:
    """{process: its JSON lines}; fails on any other line but the start-up banners."""
    logs = {}
    for path in sorted(workdir.glob("*.log")):
        lines = []
        text = path.read_text()
        for raw in text[: text.rfind("\n") + 1].splitlines():  # a line being written waits
            if not raw.strip() or BANNERS.match(raw):
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                raise AssertionError(f"{path.name}: not a JSON line: {raw[:200]}") from None
            assert {"timestamp", "level", "event"} <= set(line), f"{path.name}: {raw[:200]}"
            lines.append(line)
        logs[path.stem] = lines
    return logs


def step_lines(system: System, order_id: str, **match: str) -> list[dict]:
    """The order's ``step_finished`` lines in the worker log that match ``match``."""
    lines = read_logs(system.workdir).get("worker", [])
    return [
        line for line in lines
        if line["event"] == "step_finished" and line.get("order_id") == order_id
        and all(line.get(key) == value for key, value in match.items())
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.system_env(LOG_LEVEL="INFO")
def test_one_order_can_be_followed_through_json_logs_that_hold_no_secrets(system, db):
    product = add_product(db, on_hand=10)
    shop = Storefront(system)
    trace = f"trace-{uuid.uuid4().hex[:12]}"

    # Given a customer who signs up, logs in, refreshes and changes a password
    user = shop.sign_up(f"ada-{uuid.uuid4().hex[:8]}@example.com", request_id=f"{trace}-signup")
    new_password = "another correct horse 42"
    changed = shop.call("PATCH", "/v1/users/me",
                        json={"current_password": PASSWORD, "password": new_password})  # fmt: skip
    assert changed.status_code == 200, changed.text
    shop.log_in(user["email"], new_password)  # a new password ends every session

    # When they order with a good card through a short Stripe outage (long enough for the
    # step to be retried), then with a declined card, and someone posts a forged webhook
    system.faults(stripe={"error_rate": 1.0})
    placed = shop.call("POST", "/v1/orders", json=order_body((product, 1)), request_id=trace,
                       headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    wait_until(lambda: step_lines(system, order_id, outcome="retry"), timeout=60,
               what="the payment step retried", on_fail=system.logs)  # fmt: skip
    system.clear_faults()
    wait_until(lambda: step_lines(system, order_id, outcome="success", step="reserve_inventory"),
               timeout=60, what="the payment step through", on_fail=system.logs)  # fmt: skip
    declined = shop.call("POST", "/v1/orders", headers={"Idempotency-Key": uuid.uuid4().hex},
                         json=order_body((product, 1), payment_method="pm_card_chargeDeclined"))  # fmt: skip
    forged = shop.call("POST", "/v1/webhooks/stripe", data=b'{"id": "evt_1"}',
                       headers={"Stripe-Signature": "t=1,v1=00"})  # fmt: skip
    assert forged.status_code == 400
    shown = shop.call("GET", f"/v1/orders/{order_id}")

    # Then the request ids are echoed, or generated when absent
    assert placed.headers["X-Request-ID"] == trace
    assert re.fullmatch(r"[0-9a-f]{32}", declined.headers["X-Request-ID"])
    system.wait_all_terminal(expected=2, timeout=120)
    logs = {}

    def order_logged() -> bool:
        logs.update(read_logs(system.workdir))
        return any(
            line.get("order_id") == order_id
            and line.get("event") == "step_finished"
            and line.get("step") == "send_notification"
            for line in logs.get("worker", [])
        )

    wait_until(order_logged, timeout=30, what="the order's delivered e-mail in the worker log")

    # And the API logs one line per request, with its id, route, status and duration
    requests_logged = [line for line in logs["api"] if line["event"] == "request"]
    (order_line,) = [line for line in requests_logged if line.get("request_id") == trace]
    assert order_line["method"] == "POST" and order_line["route"] == "/v1/orders"
    assert order_line["status"] == 201 and order_line["duration_ms"] > 0
    assert any(
        line.get("request_id") == declined.headers["X-Request-ID"] for line in requests_logged
    )
    (shown_line,) = [line for line in requests_logged
                     if line.get("request_id") == shown.headers["X-Request-ID"]]  # fmt: skip
    assert shown_line["order_id"] == order_id and shown_line["route"] == "/v1/orders/{order_id}"

    # And the workers log every step of the order with its message id, step and attempt
    steps = [line for line in logs["worker"]
             if line.get("order_id") == order_id and line["event"] == "step_finished"]  # fmt: skip
    # (one message reserves, charges, packs and ships; the delivered e-mail is its own)
    assert {"reserve_inventory", "send_notification"} <= {line["step"] for line in steps}
    for line in steps:
        assert line["message_id"] and line["queue"] and line["attempt"] >= 1, line
    # carrying the id of the request that placed the order, every message about it,
    # including the e-mail the carrier's delivered webhook queued
    assert all(line.get("request_id") == trace for line in steps), [
        (line["step"], line.get("request_id")) for line in steps
    ]
    retried = [line for line in steps if line["outcome"] == "retry"]
    assert retried and retried[0]["step"] == "reserve_inventory" and "error" in retried[0], [
        (line["step"], line["outcome"], line["attempt"]) for line in steps
    ]

    # And the request id travels through the outbox to the step a request started
    (welcome,) = [line for line in logs["worker"]
                  if line.get("step") == "send_welcome_email" and line["event"] == "step_finished"
                  and line.get("user_id") == user["id"]]  # fmt: skip
    assert welcome["request_id"] == f"{trace}-signup"

    # And no secret, token, password or card data is in any process's log
    text = "\n".join(path.read_text() for path in system.workdir.glob("*.log"))
    secrets = [PASSWORD, new_password, system.env["JWT_SECRET"], *PROVIDER_SECRETS, *CARD_DATA,
               *shop.secrets]  # fmt: skip
    leaked = [secret[:12] + "…" for secret in secrets if secret in text]
    assert not leaked, f"secrets in the logs: {leaked}"
    assert not re.search(r"(?i)bearer\s+\S", text)
    assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", text), "a JWT in the logs"
    assert logs["scheduler"] and logs["sandbox"] is not None  # every process was scanned
