"""Everything the sandbox holds, behind one typed app key: in memory, and in the
store (``store.py``) when the sandbox is given a file to keep it in."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from integrations.sendgrid_templates import load_templates
from sandbox.config import SandboxConfig
from sandbox.easypost.ledger import EasyPostLedger
from sandbox.faults import FaultInjector
from sandbox.sendgrid.mail import Outbox
from sandbox.sendgrid.templates import TemplateLibrary
from sandbox.store import Store
from sandbox.stripe.endpoints import WebhookEndpoints
from sandbox.stripe.ledger import StripeLedger
from sandbox.stripe.refunds import RefundTerms
from sandbox.webhooks import WebhookDispatcher

#: How many requests the journal keeps.
JOURNAL_SIZE = 10_000


class Clock:
    """Wall time plus an offset the control API can move forward (trackers, Stripe's
    authorizations waiting for capture and its refunds under way follow it)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Sandbox:
    config: SandboxConfig
    faults: FaultInjector
    webhooks: WebhookDispatcher
    clock: Clock = field(default_factory=Clock)
    store: Store = field(default_factory=Store)
    journal: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=JOURNAL_SIZE))
    stripe: StripeLedger = field(init=False)
    sendgrid: Outbox = field(init=False)
    sendgrid_templates: TemplateLibrary = field(init=False)
    easypost: EasyPostLedger = field(init=False)

    def __post_init__(self) -> None:
        self._fresh_ledgers()

    @classmethod
    def build(cls, config: SandboxConfig) -> Sandbox:
        faults = FaultInjector(config)
        return cls(
            config=config,
            faults=faults,
            webhooks=WebhookDispatcher(config, faults),
            store=Store(config.state_path),
        )

    async def reset(self, seed: int | None = None) -> None:
        """Forget everything; faults back to the start configuration, streams re-seeded,
        Stripe's webhook endpoints back to the one the sandbox starts with."""
        await self.webhooks.cancel_pending()
        self.webhooks.deliveries.clear()
        self.faults.reset(self.config.seed if seed is None else seed)
        self.journal.clear()
        self.clock = Clock()
        self.store.clear()
        self.sendgrid.forget()
        self._fresh_ledgers()

    def _fresh_ledgers(self) -> None:
        endpoints = WebhookEndpoints(
            self.webhooks.emit_stripe,
            secret=self.config.stripe_webhook_secret,
            default_url=self.config.stripe_webhook_target(),
            default_events=self.config.stripe_enabled_events,
            store=self.store,
        )
        self.stripe = StripeLedger(
            endpoints,
            store=self.store,
            clock=lambda: self.clock.now(),
            authorization_seconds=self.config.stripe_authorization_seconds,
            search_lag=lambda: self.faults.faults["stripe"].search_lag,
            refund_terms=self._refund_terms,
        )
        self.sendgrid_templates = TemplateLibrary(self.store)
        if self.config.install_templates:
            self.sendgrid_templates.install(load_templates())
        self.sendgrid = Outbox(self.store, templates=self.sendgrid_templates)
        self.easypost = EasyPostLedger(
            self.webhooks.emit_easypost,
            clock=lambda: self.clock.now(),
            step_seconds=self.config.tracker_step_seconds,
            store=self.store,
        )

    def _refund_terms(self) -> RefundTerms:
        """How a new Stripe refund goes, by the faults as they are now."""
        faults = self.faults.faults["stripe"]
        return RefundTerms(
            pending=self.faults.refund_pending(),
            settle_after=faults.refund_settle_after,
            fail_after=faults.refund_fail_after,
        )


#: The sandbox's state, on the aiohttp application.
SANDBOX = web.AppKey("sandbox", Sandbox)
