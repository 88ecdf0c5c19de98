"""Signed webhook delivery, in background tasks that never hold up an API answer.

Stripe deliveries carry ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
"<t>.<body>")>``, signed afresh on every try as Stripe does; EasyPost deliveries carry
``X-Hmac-Signature: hmac-sha256-hex=<hex HMAC-SHA256(NFKD(secret), body)>``, the scheme
``easypost.util.validate_webhook`` checks. A Stripe event goes to the URLs of the
webhook endpoints that want it (``stripe_endpoints``), each delivered on its own; an
EasyPost event to the configured URL. SendGrid's events go in batches (a JSON array,
one a second) signed with ECDSA (``sendgrid_events``). A try that fails (connection
error, timeout, non-2xx) is retried with doubling backoff. Duplicates, delays and
reordering come from the provider's faults, drawn for each delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from sandbox.config import SandboxConfig
from sandbox.faults import FaultInjector
from sandbox.sendgrid.events import sendgrid_signature

log = logging.getLogger(__name__)

Signer = Callable[[bytes], dict[str, str]]

#: Most SendGrid events one batch carries; more go at once in a batch of their own.
SENDGRID_BATCH_MAX = 1000


@dataclass(slots=True)
class Delivery:
    """One delivery of one event, as ``GET /_sandbox/webhooks`` shows it."""

    provider: str
    event_id: str
    type: str
    url: str | None
    duplicate: bool = False
    status: str = "pending"  # pending, delivered, failed, disabled
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    created: float = field(default_factory=time.time)
    #: The event as sent (events are never changed once made).
    event: dict[str, Any] = field(default_factory=dict)


def stripe_signature(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    stamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{stamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def easypost_signature(body: bytes, secret: str) -> str:
    key = unicodedata.normalize("NFKD", secret).encode()
    return "hmac-sha256-hex=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class WebhookDispatcher:
    def __init__(self, config: SandboxConfig, faults: FaultInjector) -> None:
        self._config = config
        self._faults = faults
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.deliveries: list[Delivery] = []
        #: SendGrid events waiting for their batch, and the timer that sends it.
        self._sendgrid_events: list[dict[str, Any]] = []
        self._sendgrid_flush: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._config.webhook_timeout)
        self._session = aiohttp.ClientSession(timeout=timeout)

    async def close(self) -> None:
        await self.cancel_pending()
        if self._session is not None:
            await self._session.close()

    async def cancel_pending(self) -> None:
        if self._sendgrid_flush is not None:
            self._sendgrid_flush.cancel()
            self._sendgrid_flush = None
        self._sendgrid_events = []
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def emit_stripe(self, event: dict[str, Any], urls: Sequence[str]) -> None:
        """Send to each endpoint URL; none means the event is kept but not sent."""
        secret = self._config.stripe_webhook_secret
        self._emit(
            "stripe",
            event,
            urls=urls,
            sign=lambda body: {"Stripe-Signature": stripe_signature(body, secret)},
        )

    def emit_easypost(self, event: dict[str, Any]) -> None:
        """Send to the configured URL; without one, log the delivery as disabled."""
        secret = self._config.easypost_webhook_secret
        self._emit(
            "easypost",
            event,
            urls=[self._config.easypost_webhook_target()],
            sign=lambda body: {"X-Hmac-Signature": easypost_signature(body, secret)},
        )

    def emit_sendgrid(self, events: list[dict[str, Any]]) -> None:
        """Queue SendGrid events: as SendGrid does, they leave in batches, one every
        ``sendgrid_batch_seconds`` (or at ``SENDGRID_BATCH_MAX`` events), each signed
        with ECDSA, to the configured URL."""
        self._sendgrid_events.extend(events)
        if len(self._sendgrid_events) >= SENDGRID_BATCH_MAX:
            self._flush_sendgrid()
        elif self._sendgrid_flush is None:
            self._sendgrid_flush = asyncio.get_running_loop().call_later(
                self._config.sendgrid_batch_seconds, self._flush_sendgrid
            )

    def _flush_sendgrid(self) -> None:
        if self._sendgrid_flush is not None:
            self._sendgrid_flush.cancel()
            self._sendgrid_flush = None
        events, self._sendgrid_events = self._sendgrid_events, []
        if not events:
            return
        key = self._config.sendgrid_webhook_private_key
        body = json.dumps(events, separators=(",", ":")).encode()
        kind = ",".join(dict.fromkeys(str(event["event"]) for event in events))
        self._dispatch("sendgrid", body, event_id=str(events[0]["sg_event_id"]), kind=kind,
                       event={"events": events}, urls=[self._config.sendgrid_webhook_target()],
                       sign=lambda body: sendgrid_signature(body, key))  # fmt: skip

    def _emit(
        self,
        provider: str,
        event: dict[str, Any],
        *,
        urls: Sequence[str | None],
        sign: Signer,
    ) -> None:
        body = json.dumps(event, separators=(",", ":")).encode()
        kind = str(event.get("type") or event.get("description") or "")
        self._dispatch(provider, body, event_id=str(event["id"]), kind=kind, event=event,
                       urls=urls, sign=sign)  # fmt: skip

    def _dispatch(
        self,
        provider: str,
        body: bytes,
        *,
        event_id: str,
        kind: str,
        event: dict[str, Any],
        urls: Sequence[str | None],
        sign: Signer,
    ) -> None:
        for url in urls:
            plan = self._faults.webhook_plan(provider)
            copies = [(plan.delay, False)]
            if plan.duplicate_delay is not None:
                copies.append((plan.duplicate_delay, True))
            for delay, duplicate in copies:
                delivery = Delivery(provider, event_id, kind, url, duplicate, event=event)
                self.deliveries.append(delivery)
                if url is None:
                    delivery.status = "disabled"
                    continue
                task = asyncio.get_running_loop().create_task(
                    self._deliver(delivery, body, sign=sign, delay=delay)
                )
                self._tasks.add(task)
                task.add_done_callback(lambda done: self._tasks.discard(done))

    async def _deliver(self, delivery: Delivery, body: bytes, *, sign: Signer, delay: float):
        await asyncio.sleep(delay)
        backoff = self._config.webhook_retry_seconds
        for attempt in range(1, self._config.webhook_attempts + 1):
            delivery.attempts = attempt
            if await self._post(delivery, body, sign=sign):
                delivery.status = "delivered"
                return
            if attempt < self._config.webhook_attempts:
                await asyncio.sleep(backoff * 2 ** (attempt - 1))
        delivery.status = "failed"
        log.warning(
            "webhook %s %s not delivered to %s", delivery.type, delivery.event_id, delivery.url
        )

    async def _post(self, delivery: Delivery, body: bytes, *, sign: Signer) -> bool:
        assert self._session is not None and delivery.url is not None
        headers = {"Content-Type": "application/json", **sign(body)}
        try:
            async with self._session.post(delivery.url, data=body, headers=headers) as response:
                await response.read()
                delivery.last_status = response.status
                delivery.last_error = None
                return 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.last_error = f"{type(exc).__name__}: {exc}"
            return False

    def log(self, provider: str | None = None) -> list[dict[str, Any]]:
        return [
            asdict(delivery)
            for delivery in self.deliveries
            if provider is None or delivery.provider == provider
        ]
