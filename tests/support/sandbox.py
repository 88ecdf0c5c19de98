"""The provider sandbox for tests: run it on a free loopback port in a background
thread, steer it through its control API, and catch the webhooks it posts.

    with running_sandbox() as sandbox, WebhookReceiver() as receiver:
        sandbox.set_faults(stripe={"fail_next": 3})
        gateway = build_stripe_gateway(sandbox.settings())
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from aiohttp import web

from fulfillment.settings import Settings, load_settings
from integrations.retry import RetryPolicy
from integrations.stripe_events import SUBSCRIBED_EVENTS
from sandbox import ProviderFaults, SandboxConfig, SandboxThread
from sandbox.server import AppThread

#: Secrets the test sandbox signs with (and the test Settings verify with).
STRIPE_SECRET = "whsec_test_sandbox"
EASYPOST_SECRET = "easypost-test-secret"
#: Seconds a test waits for something the sandbox does in the background.
DEADLINE = 10.0
#: Provider calls in tests: quick backoff, short budget, short HTTP timeouts.
FAST_RETRIES = RetryPolicy(
    attempts=3, backoff=0.01, max_backoff=0.05, budget=8.0, max_retry_after=3.0
)
#: Seconds one HTTP request to the sandbox may take in tests.
TEST_TIMEOUT = 1.0


def wait_for(condition: Callable[[], Any], *, timeout: float = DEADLINE, what: str = "it") -> Any:
    """Poll until ``condition()`` is truthy and return it; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout} s")
        time.sleep(0.02)


class RunningSandbox:
    """A started sandbox and the calls a test makes to its control API."""

    def __init__(self, server: SandboxThread) -> None:
        self.server = server
        self.url = server.url
        self._http = requests.Session()

    def settings(self, **overrides: Any) -> Settings:
        """Settings whose providers are this sandbox."""
        values = {
            "stripe_api_base": self.url,
            "sendgrid_host": f"{self.url}/sendgrid",
            "easypost_api_base": f"{self.url}/easypost/v2",
            "stripe_webhook_secret": STRIPE_SECRET,
            "easypost_webhook_secret": EASYPOST_SECRET,
            **overrides,
        }
        return load_settings(**values)

    def set_faults(self, seed: int | None = None, **faults: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = dict(faults)
        if seed is not None:
            body["seed"] = seed
        return self._call("POST", "/_sandbox/faults", json=body)

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def reset(self, seed: int | None = None) -> None:
        self._call("POST", "/_sandbox/reset", json={} if seed is None else {"seed": seed})

    def advance_clock(self, seconds: float) -> None:
        self._call("POST", "/_sandbox/clock", json={"seconds": seconds})

    def set_tracker_status(self, tracker_id: str, status: str) -> dict[str, Any]:
        return self._call("POST", f"/_sandbox/trackers/{tracker_id}", json={"status": status})

    def set_refund_outcome(self, shipment_id: str, outcome: str) -> dict[str, Any]:
        """How the label refund under way on ``shipment_id`` settles."""
        return self._call("POST", f"/_sandbox/shipments/{shipment_id}/refund_outcome",
                          json={"outcome": outcome})  # fmt: skip

    def withdraw_services(self, *services: tuple[str, str]) -> dict[str, Any]:
        """EasyPost offers new shipments every service of its rate card but these
        (carrier, service) pairs; none given offers them all again."""
        withdrawn = [{"carrier": carrier, "service": service} for carrier, service in services]
        return self._call("POST", "/_sandbox/easypost/services", json={"withdrawn": withdrawn})

    def requests(self, provider: str | None = None) -> list[dict[str, Any]]:
        query = {"provider": provider} if provider else {}
        return self._call("GET", "/_sandbox/requests", params=query)["requests"]

    def deliveries(self, provider: str | None = None) -> list[dict[str, Any]]:
        query = {"provider": provider} if provider else {}
        return self._call("GET", "/_sandbox/webhooks", params=query)["deliveries"]

    def search_payment_intents(self, order_id: str) -> list[dict[str, Any]]:
        """The order's PaymentIntents, newest first, the way a support engineer would
        find them: through Stripe's list, which is read-after-write (its search is not:
        a new intent shows there only after the sandbox's ``search_lag``)."""
        found, after = [], None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"starting_after": after} if after else {})}
            page = self._call("GET", "/v1/payment_intents", params=params,
                              headers={"Authorization": "Bearer sk_test_support"})  # fmt: skip
            found += [i for i in page["data"] if i["metadata"].get("order_id") == order_id]
            if not page["has_more"]:
                return found
            after = page["data"][-1]["id"]

    def shipments(self, reference: str | None = None) -> list[dict[str, Any]]:
        page = self._call(
            "GET",
            "/easypost/v2/shipments",
            params={"page_size": 100},
            headers={"Authorization": "Bearer EZTK_support"},
        )
        return [s for s in page["shipments"] if reference in (None, s["reference"])]

    def messages(self) -> list[dict[str, Any]]:
        return self._call(
            "GET", "/sendgrid/v3/messages", headers={"Authorization": "Bearer SG.support"}
        )["messages"]

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, self.url + path, timeout=DEADLINE, **kwargs)
        response.raise_for_status()
        return response.json()


@contextlib.contextmanager
def running_sandbox(
    *,
    webhook_url: str | None = None,
    seed: int = 0,
    faults: dict[str, ProviderFaults] | None = None,
    tracker_step_seconds: float = 0.0,
    webhook_retry_seconds: float = 0.05,
    stripe_events: tuple[str, ...] = SUBSCRIBED_EVENTS,
    install_templates: bool = True,
) -> Iterator[RunningSandbox]:
    """A sandbox on a free loopback port for the duration of the block. Trackers move
    only when the test says (``tracker_step_seconds=0``) unless asked otherwise; its
    Stripe endpoint subscribes to ``stripe_events`` (``("*",)`` for every type); its
    SendGrid starts with the repository's templates unless ``install_templates=False``."""
    config = SandboxConfig(
        webhook_url=webhook_url,
        stripe_enabled_events=stripe_events,
        stripe_webhook_secret=STRIPE_SECRET,
        easypost_webhook_secret=EASYPOST_SECRET,
        seed=seed,
        faults=faults or {},
        tracker_step_seconds=tracker_step_seconds,
        webhook_retry_seconds=webhook_retry_seconds,
        webhook_timeout=2.0,
        install_templates=install_templates,
    )
    with SandboxThread(config) as server:
        yield RunningSandbox(server)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """A small HTTP server that keeps every webhook posted to it. It can answer 500 to
    the next N posts, or hold answers until the test lets them go."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._changed = threading.Condition()
        self._failures_left = 0
        self._release = threading.Event()
        self._release.set()
        self._server = AppThread(self._app)

    @property
    def url(self) -> str:
        return self._server.url

    def clear(self) -> None:
        """Forget what was received; answer normally again."""
        with self._changed:
            self.received.clear()
            self._failures_left = 0
        self._release.set()

    def fail_next(self, count: int) -> None:
        with self._changed:
            self._failures_left = count

    def hold(self) -> None:
        """Answer nothing until ``release()``: the sender has to wait, or not."""
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], *, timeout: float = DEADLINE
    ) -> list[Received]:
        """All webhooks received so far, once ``predicate`` holds for them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self.received)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"webhooks never matched; got {len(self.received)}")
                self._changed.wait(remaining)
            return list(self.received)

    def __enter__(self) -> WebhookReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release.set()
        self._server.stop()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._take)
        return app

    async def _take(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._changed:
            failing = self._failures_left > 0
            self._failures_left -= 1 if failing else 0
            if not failing:
                self.received.append(Received(request.path, dict(request.headers), body))
                self._changed.notify_all()
        if failing:
            return web.Response(status=500, text="receiver told to fail")
        while not self._release.is_set():
            await asyncio.sleep(0.02)
        return web.Response(status=200, text="ok")


def wired_to(settings: Settings, sandbox: RunningSandbox) -> Settings:
    """``settings`` with Stripe, SendGrid and EasyPost at ``sandbox``, reset to empty."""
    sandbox.reset()
    return settings.model_copy(update={
        "easypost_api_base": f"{sandbox.url}/easypost/v2", "stripe_api_base": sandbox.url,
        "sendgrid_host": f"{sandbox.url}/sendgrid",
    })  # fmt: skip
