"""The storefront simulation behind ``fulfillment simulate`` (and ``make bench``)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fulfillment.states import TERMINAL
from fulfillment.transitions import MILESTONES as _MILESTONES

#: Statuses whose time since acceptance is reported.
MILESTONES = tuple(_MILESTONES.values())
PASSWORD = "simulated storefront password"
ADDRESS = {"name": "Sim Shopper", "line1": "1 Market St", "city": "San Francisco",
           "state": "CA", "postal_code": "94105", "country": "US"}  # fmt: skip
DECLINED_CARDS = ("pm_card_chargeDeclined", "pm_card_chargeDeclinedInsufficientFunds")
#: Stripe's test cards that need 3-D Secure.
SCA_CARDS = ("pm_card_authenticationRequired", "pm_card_threeDSecure2Required")
#: Of the customers asked for 3-D Secure, the share whose authentication fails.
SCA_FAIL_SHARE = 0.2


@dataclass
class SimulationConfig:
    api_url: str
    sandbox_url: str | None
    orders: int = 200
    rate: float = 0.0
    concurrency: int = 16
    customers: int = 10
    decline_rate: float = 0.1
    cancel_rate: float = 0.0
    #: The share of orders paid with a card that needs 3-D Secure: the simulated
    #: customer authenticates (through the sandbox's control endpoint, as Stripe.js
    #: would with the order's client_secret), or fails to, one time in five.
    sca_rate: float = 0.0
    seed: int = 1
    timeout: float = 600.0
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Each order placed on a checkout quote (asked for before the orders are placed,
    #: ``Simulation.quote_all``), on its second cheapest shipping option.
    quoted: bool = False


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "min": None, "max": None, "n": 0}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99),
            "min": round(ordered[0], 4), "max": round(ordered[-1], 4), "n": len(ordered)}  # fmt: skip


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Simulation:
    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.errors: Counter[str] = Counter()
        self.accept_latency: list[float] = []
        self.orders: dict[str, str] = {}  # order id -> customer token
        self.sca: Counter[str] = Counter()  # 3-D Secure authentications, by outcome
        #: Bodies (with their quote) and tokens of orders to place (``quote_all``).
        self.quotes: list[tuple[dict[str, Any], str]] = []

    async def run(self, *, progress: bool = True) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            self.http = http
            products = await self._products()
            tokens = [await self._customer() for _ in range(self.config.customers)]
            await self.quote_all(products, tokens)
            await self._set_faults(self.config.faults)
            started = time.monotonic()
            with _progress(progress) as bar:
                placing = bar.add_task("placing orders", total=self.config.orders)
                await self._place_all(products, tokens, bar, placing)
                placed_in = time.monotonic() - started
                finishing = bar.add_task("waiting for terminal states", total=len(self.orders))
                statuses = await self._wait_terminal(bar, finishing)
            await self._set_faults({})
            timings = await self._timings()
        return self._result(statuses, timings, placed_in, time.monotonic() - started)

    # --- setting up --------------------------------------------------------------------

    async def _products(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.config.api_url}/v1/products?limit=100") as response:
            items = (await response.json())["items"]
        usable = [p for p in items if p["available"] > 0]
        if not usable:
            raise SystemExit(
                "the catalogue has no product in stock; run `fulfillment catalog seed`"
            )
        return usable

    async def _customer(self) -> str:
        email = f"sim-{uuid.uuid4().hex[:12]}@example.com"
        body = {"email": email, "password": PASSWORD, "first_name": "Sim", "last_name": "Shopper"}
        async with self.http.post(f"{self.config.api_url}/v1/users", json=body) as response:
            if response.status != 201:
                raise SystemExit(f"could not register a customer: {await response.text()}")
        login = {"email": email, "password": PASSWORD}
        async with self.http.post(f"{self.config.api_url}/v1/auth/login", json=login) as response:
            return (await response.json())["access_token"]

    async def _set_faults(self, faults: dict[str, dict[str, Any]]) -> None:
        if not self.config.sandbox_url or (not faults and not self.config.faults):
            return
        url = f"{self.config.sandbox_url}/_sandbox/faults"
        method = self.http.post(url, json=faults) if faults else self.http.delete(url)
        async with method as response:
            if response.status >= 400:
                self.errors["sandbox_faults"] += 1

    async def quote_all(self, products, tokens) -> None:
        """A quote for each order to come (``quoted``), its body kept for the order."""
        if not self.config.quoted:
            return
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(index: int) -> None:
            token, product = tokens[index % len(tokens)], self.rng.choice(products)
            body = {"items": [{"product_id": product["id"], "quantity": 1 + index % 2}],
                    "shipping_address": ADDRESS}  # fmt: skip
            async with gate, self.http.post(f"{self.config.api_url}/v1/checkout/quotes",
                                            json=body, headers={"Authorization": f"Bearer {token}"}
                                            ) as response:  # fmt: skip
                quote = await response.json()
                if response.status != 201:
                    self.errors[f"quote_http_{response.status}"] += 1
                    return
            options = quote["shipping_options"]
            chosen = options[min(1, len(options) - 1)]
            self.quotes.append(({**body, "quote_id": quote["id"],
                                 "shipping_option_id": chosen["id"]}, token))  # fmt: skip

        await asyncio.gather(*(one(index) for index in range(self.config.orders)))

    # --- placing -----------------------------------------------------------------------

    async def _place_all(self, products, tokens, bar, task) -> None:
        gate = asyncio.Semaphore(self.config.concurrency)
        interval = 1.0 / self.config.rate if self.config.rate > 0 else 0.0
        start = time.monotonic()

        async def one(index: int) -> None:
            async with gate:
                await self._place_one(products, tokens[index % len(tokens)])
                bar.advance(task)

        pending = []
        for index in range(self.config.orders):
            if interval:
                await asyncio.sleep(max(0.0, start + index * interval - time.monotonic()))
            pending.append(asyncio.create_task(one(index)))
        await asyncio.gather(*pending)

    async def _place_one(self, products, token: str) -> None:
        product = self.rng.choice(products)
        draw = self.rng.random()
        card = (
            self.rng.choice(DECLINED_CARDS) if draw < self.config.decline_rate
            else self.rng.choice(SCA_CARDS) if draw < self.config.decline_rate + self.config.sca_rate
            else "pm_card_visa"
        )  # fmt: skip
        authenticates = self.rng.random() >= SCA_FAIL_SHARE
        body = {"items": [{"product_id": product["id"], "quantity": self.rng.randint(1, 2)}],
                "shipping_address": ADDRESS, "payment_method": card}  # fmt: skip
        if self.quotes:
            quoted, token = self.quotes.pop()
            body |= quoted
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
        began = time.monotonic()
        for attempt in range(8):  # a storefront's own retries, same key every time
            try:
                async with self.http.post(f"{self.config.api_url}/v1/orders", json=body,
                                          headers=headers) as response:  # fmt: skip
                    payload = await response.json()
                    if response.status == 201:
                        self.accept_latency.append(time.monotonic() - began)
                        self.orders[payload["id"]] = token
                        await self._maybe_cancel(payload["id"], token)
                        if card in SCA_CARDS:
                            await self._authenticate(payload["id"], token, complete=authenticates)
                        return
                    self.errors[f"http_{response.status}"] += 1
                    if response.status < 500 and response.status != 409:
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.errors[type(exc).__name__] += 1
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        self.errors["gave_up"] += 1

    async def _maybe_cancel(self, order_id: str, token: str) -> None:
        if self.rng.random() >= self.config.cancel_rate:
            return
        url = f"{self.config.api_url}/v1/orders/{order_id}/cancel"
        async with self.http.post(url, headers={"Authorization": f"Bearer {token}"}) as response:
            if response.status not in (200, 409):
                self.errors[f"cancel_http_{response.status}"] += 1

    async def _authenticate(self, order_id: str, token: str, *, complete: bool) -> None:
        """What the storefront and Stripe.js do for a card that needs 3-D Secure: wait
        for the order to ask (``requires_action``, its ``client_secret`` shown to its
        owner), then the customer authenticates - here through the sandbox."""
        if not self.config.sandbox_url:
            self.errors["sca_without_sandbox"] += 1
            return
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            async with self.http.get(f"{self.config.api_url}/v1/orders/{order_id}",
                                     headers=headers) as response:  # fmt: skip
                order = await response.json() if response.status == 200 else {}
            secret = (order.get("payment") or {}).get("client_secret")
            if order.get("status") == "requires_action" and secret:
                intent = secret.split("_secret_")[0]
                url = f"{self.config.sandbox_url}/_sandbox/stripe/payment_intents/{intent}/authenticate"
                outcome = {"outcome": "complete" if complete else "fail"}
                async with self.http.post(url, json=outcome) as response:
                    if response.status != 200:
                        self.errors[f"sca_http_{response.status}"] += 1
                    else:
                        self.sca[outcome["outcome"]] += 1
                return
            if order.get("status") in TERMINAL:
                return
            await asyncio.sleep(0.2)
        self.errors["sca_never_asked"] += 1

    # --- waiting -----------------------------------------------------------------------

    async def _wait_terminal(self, bar, task) -> dict[str, str]:
        statuses: dict[str, str] = {}
        deadline = time.monotonic() + self.config.timeout
        while time.monotonic() < deadline:
            for order_id, token in list(self.orders.items()):
                if statuses.get(order_id) in TERMINAL:
                    continue
                statuses[order_id] = await self._status(order_id, token)
            done = sum(1 for s in statuses.values() if s in TERMINAL)
            bar.update(task, completed=done)
            if done == len(self.orders):
                break
            await asyncio.sleep(1.0)
        return statuses

    async def _status(self, order_id: str, token: str) -> str:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.http.get(
            f"{self.config.api_url}/v1/orders/{order_id}", headers=headers
        ) as response:
            return (
                (await response.json()).get("status", "unknown")
                if response.status == 200
                else "unknown"
            )

    # --- measuring ---------------------------------------------------------------------

    async def _timings(self) -> dict[str, list[float]]:
        timings: dict[str, list[float]] = {m: [] for m in MILESTONES}
        accepted: dict[str, datetime] = {}
        for order_id, token in self.orders.items():
            url = f"{self.config.api_url}/v1/orders/{order_id}/events"
            async with self.http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                events = (await response.json())["items"]
            start = _parse_time(events[0]["created_at"])
            accepted[order_id] = start
            for event in events:
                if event["to_status"] in MILESTONES and event["from_status"] != event["to_status"]:
                    timings[event["to_status"]].append(
                        (_parse_time(event["created_at"]) - start).total_seconds()
                    )
        timings["confirmation_email"] = await self._mail_latency(accepted)
        return timings

    async def _mail_latency(self, accepted: dict[str, datetime]) -> list[float]:
        if not self.config.sandbox_url:
            return []
        url = f"{self.config.sandbox_url}/sendgrid/v3/messages?limit=100000"
        try:
            async with self.http.get(
                url, headers={"Authorization": "Bearer SG.sandbox"}
            ) as response:
                messages = (await response.json())["messages"] if response.status == 200 else []
        except aiohttp.ClientError:
            return []
        taken_at = await self._mail_taken_at()
        latencies = []
        for message in messages:
            args = message.get("custom_args", {})
            start = accepted.get(args.get("order_id", ""))
            if start is not None and args.get("kind") == "order_confirmed":
                # SendGrid's last_event_time has whole seconds; the sandbox's journal has
                # the moment the send was taken
                at = taken_at.get(message["msg_id"])
                sent = (datetime.fromtimestamp(at, UTC) if at is not None
                        else _parse_time(message["last_event_time"]))  # fmt: skip
                latencies.append((sent - start).total_seconds())
        return latencies

    async def _mail_taken_at(self) -> dict[str, float]:
        """SendGrid message id -> when the sandbox took the send (epoch seconds)."""
        url = f"{self.config.sandbox_url}/_sandbox/requests?provider=sendgrid"
        async with self.http.get(url) as response:
            if response.status != 200:
                return {}
            journal = (await response.json())["requests"]
        return {e["message_id"]: e["at"] for e in journal if e.get("message_id")}

    def _result(self, statuses, timings, placed_in: float, total: float) -> dict[str, Any]:
        unfinished = sum(1 for s in statuses.values() if s not in TERMINAL)
        return {
            "orders": len(self.orders),
            "by_status": dict(Counter(statuses.values())),
            "unfinished": unfinished,
            "placing_seconds": round(placed_in, 3),
            "total_seconds": round(total, 3),
            "accepted_per_second": round(len(self.orders) / placed_in, 2) if placed_in else None,
            "accept_latency_seconds": percentiles(self.accept_latency),
            "time_to_seconds": {name: percentiles(values) for name, values in timings.items()},
            "three_d_secure": dict(self.sca),
            "errors": dict(self.errors),
        }


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *args, **kwargs):
        return 0

    def advance(self, *args, **kwargs):
        pass

    def update(self, *args, **kwargs):
        pass


def _progress(show: bool):
    if not show:
        return _NoProgress()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=Console(stderr=True))


def summarize(result: dict[str, Any]) -> None:
    console = Console()
    states = Table(title=f"{result['orders']} orders in {result['total_seconds']} s")
    states.add_column("final state")
    states.add_column("orders", justify="right")
    for status, count in sorted(result["by_status"].items()):
        states.add_row(status, str(count))
    console.print(states)
    timing = Table(title="latency (seconds)")
    for column in ("measure", "p50", "p95", "p99", "n"):
        timing.add_column(column, justify="right" if column != "measure" else "left")
    rows = {"accepted (HTTP 201)": result["accept_latency_seconds"]}
    rows.update({f"to {name}": value for name, value in result["time_to_seconds"].items()})
    for name, value in rows.items():
        timing.add_row(name, *(str(value[k]) for k in ("p50", "p95", "p99", "n")))
    console.print(timing)
    console.print(f"accepted {result['accepted_per_second']} orders/s; "
                  f"errors: {result['errors'] or 'none'}")  # fmt: skip
    if result["unfinished"]:
        console.print(f"[red]{result['unfinished']} orders did not finish in time[/red]")
