"""Hostile input on every route — text PostgreSQL cannot store (NUL, an unpaired
surrogate) in a body, a query string, a path or a header; JSON nested 20,000 deep; a
body past the limit; booleans and strings where numbers belong; signed webhooks
carrying any of these — is a 4xx in the error shape, and changes nothing stored."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.shared.context import TOKENS
from api.shared.tokens import hash_refresh_token, new_refresh_token
from fulfillment.models import RefreshSession, User
from sandbox.webhooks import easypost_signature, stripe_signature
from tests.support.rawhttp import dechunk, fingerprint
from tests.support.storefront import (
    ADDRESS,
    PASSWORD,
    add_product,
    bearer,
    order_body,
)

NUL = "\x00"
SURROGATE = "\ud800"  # json.dumps writes it as the escape "\ud800", unpaired
DEEP = b"[" * 20_000 + b"]" * 20_000
DEEP_OBJECT = b'{"a":' * 20_000 + b"1" + b"}" * 20_000
TOO_BIG = json.dumps({"name": "x" * (1024 * 1024)}).encode()
JSON = {"Content-Type": "application/json"}


@dataclass
class World:
    """What the hostile requests aim at: real accounts, a product and an order."""

    customer: dict[str, str]
    admin: dict[str, str]
    refresh_token: str
    product: str
    order: str
    settings: Any


def account(engine: Engine, tokens, *, role: str) -> tuple[dict[str, str], str]:
    """(bearer header, refresh token) of a new account, written straight to the database:
    no password hashing, which would cost each of these cases more than its request."""
    with Session(engine) as session, session.begin():
        user = User(email=f"{uuid.uuid4().hex[:12]}@example.com", password_hash="unused",
                    first_name="Ada", last_name="Lovelace", role=role)  # fmt: skip
        session.add(user)
        session.flush()
        refresh = new_refresh_token()
        session.add(RefreshSession(user_id=user.id, family_id=uuid.uuid4(),
                                   token_hash=hash_refresh_token(refresh),
                                   expires_at=datetime.now(UTC) + timedelta(days=1)))  # fmt: skip
        return bearer(tokens.issue_access(user_id=user.id, role=role)), refresh


@pytest.fixture
async def world(client, db, settings) -> World:
    customer, refresh = account(db, client.app[TOKENS], role="customer")
    admin, _ = account(db, client.app[TOKENS], role="admin")
    product = add_product(db, on_hand=50)
    placed = await client.post("/v1/orders", json=order_body((product, 1)), headers=customer)
    assert placed.status == 201, await placed.text()
    return World(customer=customer, admin=admin, refresh_token=refresh, product=str(product),
                 order=(await placed.json())["id"], settings=settings)  # fmt: skip


@dataclass(frozen=True)
class Hostile:
    """One hostile request: (method, path, body bytes, headers) from the world."""

    method: str
    path: str
    status: int
    body: Callable[[World], bytes | None] = lambda w: None
    who: str = "public"  # "customer", "admin" or "public"
    headers: Callable[[World, bytes | None], dict[str, str]] = lambda w, b: {}
    #: False where aiohttp's HTTP parser answers before the app (a NUL in a header):
    #: its 400 is plain text.
    error_shape: bool = True


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def with_text(value: Any, bad: str) -> Any:
    """``value`` with ``bad`` inside every string, values and keys alike."""
    if isinstance(value, str):
        return f"a{bad}b"
    if isinstance(value, dict):
        return {k: with_text(v, bad) for k, v in value.items()}
    if isinstance(value, list):
        return [with_text(v, bad) for v in value]
    return value


def register_body(w: World) -> dict:
    return {"email": "eve@example.com", "password": PASSWORD, "first_name": "Eve",
            "last_name": "Hacker"}  # fmt: skip


def product_body(w: World) -> dict:
    return {"sku": "EVIL-1", "name": "Evil", "price": "1.00", "category": "evil"}


def order(w: World, **changes: Any) -> dict:
    body = order_body((uuid.UUID(w.product), 1))
    body["items"][0].update(changes)
    return body


#: The routes that take a JSON body: (method, path, who, a valid body).
BODIES: dict[str, tuple[str, str, str, Callable[[World], dict]]] = {
    "register": ("POST", "/v1/users", "public", register_body),
    "update-me": ("PATCH", "/v1/users/me", "customer", lambda w: {"first_name": "Eve"}),
    "login": ("POST", "/v1/auth/login", "public",
              lambda w: {"email": "eve@example.com", "password": PASSWORD}),
    "refresh": ("POST", "/v1/auth/refresh", "public",
                lambda w: {"refresh_token": w.refresh_token}),
    "logout": ("POST", "/v1/auth/logout", "public", lambda w: {"refresh_token": w.refresh_token}),
    "create-product": ("POST", "/v1/products", "admin", product_body),
    "update-product": ("PATCH", "/v1/products/{product}", "admin",
                       lambda w: {"description": "cheap"}),
    "set-stock": ("PUT", "/v1/products/{product}/stock", "admin", lambda w: {"on_hand": 7}),
    "place-order": ("POST", "/v1/orders", "customer",
                    lambda w: {**order(w), "shipping_address": dict(ADDRESS)}),
}  # fmt: skip


def body_cases() -> dict[str, Hostile]:
    cases = {}
    for name, (method, path, who, valid) in BODIES.items():
        for bad_name, bad in (("nul", NUL), ("surrogate", SURROGATE)):
            if name == "set-stock":  # no text in it (its key's case is below)
                continue
            cases[f"{name}-{bad_name}-in-every-string"] = Hostile(
                method, path, 422, lambda w, valid=valid, bad=bad: dumps(with_text(valid(w), bad)),
                who, lambda w, b: JSON)  # fmt: skip
        cases[f"{name}-nul-in-a-key"] = Hostile(
            method, path, 422, lambda w, valid=valid: dumps({**valid(w), f"x{NUL}": 1}), who,
            lambda w, b: JSON)  # fmt: skip
        cases[f"{name}-20000-deep-array"] = Hostile(method, path, 400, lambda w: DEEP, who,
                                                    lambda w, b: JSON)  # fmt: skip
        cases[f"{name}-20000-deep-object"] = Hostile(method, path, 400, lambda w: DEEP_OBJECT,
                                                     who, lambda w, b: JSON)  # fmt: skip
        cases[f"{name}-over-1-mib"] = Hostile(method, path, 413, lambda w: TOO_BIG, who,
                                              lambda w, b: JSON)  # fmt: skip
    return cases


def strict(name: str, method: str, path: str, who: str, body: Callable[[World], dict]) -> tuple:
    return name, Hostile(method, path, 422, lambda w: dumps(body(w)), who, lambda w, b: JSON)


STRICT = dict([
    strict("quantity-true", "POST", "/v1/orders", "customer", lambda w: order(w, quantity=True)),
    strict("quantity-string", "POST", "/v1/orders", "customer", lambda w: order(w, quantity="1")),
    strict("quantity-float", "POST", "/v1/orders", "customer", lambda w: order(w, quantity=1.0)),
    strict("stock-false", "PUT", "/v1/products/{product}/stock", "admin",
           lambda w: {"on_hand": False}),
    strict("stock-string", "PUT", "/v1/products/{product}/stock", "admin",
           lambda w: {"on_hand": "5"}),
    strict("product-on-hand-true", "POST", "/v1/products", "admin",
           lambda w: {**product_body(w), "on_hand": True}),
    strict("product-active-1", "POST", "/v1/products", "admin",
           lambda w: {**product_body(w), "active": 1}),
    strict("product-price-empty", "POST", "/v1/products", "admin",
           lambda w: {**product_body(w), "price": ""}),
    strict("product-price-float", "POST", "/v1/products", "admin",
           lambda w: {**product_body(w), "price": 12.5}),
    strict("product-price-true", "PATCH", "/v1/products/{product}", "admin",
           lambda w: {"price": True}),
    strict("product-active-string", "PATCH", "/v1/products/{product}", "admin",
           lambda w: {"active": "false"}),
])  # fmt: skip

ELSEWHERE = {
    "search-nul": Hostile("GET", "/v1/products?search=%00", 422),
    "category-nul": Hostile("GET", "/v1/products?category=a%00b", 422),
    "page-nul": Hostile("GET", "/v1/products?page=1%00", 422),
    "orders-page-nul": Hostile("GET", "/v1/orders?limit=%00", 422, who="customer"),
    "dead-letter-queue-nul": Hostile("GET", "/v1/admin/dead-letters?queue=%00", 422, who="admin"),
    "product-id-nul": Hostile("GET", "/v1/products/%00", 404),
    "update-product-id-nul": Hostile("PATCH", "/v1/products/%00", 404, who="admin",
                                     body=lambda w: b'{"name": "x"}',
                                     headers=lambda w, b: JSON),
    "stock-product-id-nul": Hostile("PUT", "/v1/products/%00/stock", 404, who="admin",
                                    body=lambda w: b'{"on_hand": 1}',
                                    headers=lambda w, b: JSON),
    "order-id-nul": Hostile("GET", "/v1/orders/%00", 404, who="customer"),
    "order-events-id-nul": Hostile("GET", "/v1/orders/%00/events", 404, who="customer"),
    "cancel-id-nul": Hostile("POST", "/v1/orders/%00/cancel", 404, who="customer"),
    "replay-id-nul": Hostile("POST", "/v1/admin/dead-letters/%00/replay", 404, who="admin"),
    "idempotency-key-nul": Hostile("POST", "/v1/orders", 400, who="customer",
                                   body=lambda w: dumps(order(w)),
                                   headers=lambda w, b: {**JSON, "Idempotency-Key": f"k{NUL}"},
                                   error_shape=False),
    "request-id-nul": Hostile("GET", "/v1/products", 400, error_shape=False,
                              headers=lambda w, b: {"X-Request-ID": f"r{NUL}"}),
    "bearer-nul": Hostile("GET", "/v1/users/me", 400, error_shape=False,
                          headers=lambda w, b: {"Authorization": f"Bearer a{NUL}b"}),
    "idempotency-key-surrogate": Hostile("POST", "/v1/orders", 400, who="customer",
                                         body=lambda w: dumps(order(w)),
                                         headers=lambda w, b: {**JSON,
                                                               "Idempotency-Key": SURROGATE}),
}  # fmt: skip


def stripe_event(**changes: Any) -> dict:
    return {"id": "evt_hostile", "object": "event", "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "metadata": {"order_id": str(uuid.uuid4())}}},
            **changes}  # fmt: skip


def tracker_event(**changes: Any) -> dict:
    return {"id": "evt_hostile", "object": "Event", "description": "tracker.updated",
            "result": {"id": "trk_1", "status": "delivered", "tracking_code": "EZ1"},
            **changes}  # fmt: skip


def signed_stripe(w: World, body: bytes | None) -> dict[str, str]:
    secret = w.settings.stripe_webhook_secret.get_secret_value()
    return {**JSON, "Stripe-Signature": stripe_signature(body or b"", secret)}


def signed_easypost(w: World, body: bytes | None) -> dict[str, str]:
    secret = w.settings.easypost_webhook_secret.get_secret_value()
    return {**JSON, "X-Hmac-Signature": easypost_signature(body or b"", secret)}


def webhook_cases() -> dict[str, Hostile]:
    cases = {}
    for provider, event, sign in (("stripe", stripe_event, signed_stripe),
                                  ("easypost", tracker_event, signed_easypost)):  # fmt: skip
        path = f"/v1/webhooks/{provider}"
        bodies = {
            "nul-in-id": dumps(event(id=f"evt_{NUL}")),
            "nul-deep-inside": dumps(event(extra={"note": [f"a{NUL}"]})),
            "surrogate": dumps(event(extra=SURROGATE)),
            "20000-deep": b'{"id": "evt_deep", "x": ' + DEEP + b"}",
            "data-not-an-object": dumps(event(data=[1], result="text")),
            "number-jsonb-cannot-hold": dumps(event()).replace(b'"evt_hostile"',
                                                              b'"evt_big", "n": 1e999999'),
        }  # fmt: skip
        for name, body in bodies.items():
            cases[f"{provider}-signed-{name}"] = Hostile(
                "POST", path, 400, lambda w, body=body: body, headers=sign
            )
        cases[f"{provider}-unsigned-20000-deep"] = Hostile(
            "POST", path, 400, lambda w: DEEP, headers=lambda w, b: JSON
        )
    return cases


CASES = {**body_cases(), **STRICT, **ELSEWHERE, **webhook_cases()}


async def raw_request(
    client, method: str, path: str, *, headers: dict[str, str], body: bytes | None
) -> tuple[int, bytes]:
    """(status, body) over a plain socket: HTTP clients refuse to send a NUL in a header,
    an attacker's script does not."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Connection: close",
        f"Content-Length: {len(body or b'')}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    writer.write("\r\n".join([*lines, "", ""]).encode("utf-8", "surrogatepass") + (body or b""))
    response = await reader.read()
    writer.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        payload = dechunk(payload)
    return int(head.split(b" ", 2)[1]), payload


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_hostile_input_is_a_4xx_and_changes_nothing(client, db, world, case: Hostile):
    # Given the world as it stands
    before = fingerprint(db)
    body = case.body(world)
    headers = {**{"public": {}, "customer": world.customer, "admin": world.admin}[case.who],
               **case.headers(world, body)}  # fmt: skip
    path = case.path.format(product=world.product, order=world.order)

    # When the hostile request comes in
    status, answer = await raw_request(client, case.method, path, headers=headers, body=body)

    # Then it is refused with the expected 4xx, in the error shape
    assert status == case.status, answer
    if case.error_shape:
        error = json.loads(answer)["error"]
        assert error["code"] and error["message"] and isinstance(error["details"], dict)
    # and nothing stored changed
    assert fingerprint(db) == before


async def test_a_nul_field_error_names_the_field(client, db, world):
    body = order(world)
    body["shipping_address"] = {**ADDRESS, "city": f"Lon{NUL}don"}
    response = await client.post("/v1/orders", json=body, headers=world.customer)
    assert response.status == 422
    fields = (await response.json())["error"]["details"]["fields"]
    assert [(f["field"], f["type"]) for f in fields] == [
        ("shipping_address.city", "invalid_characters")
    ]


async def test_a_valid_surrogate_pair_is_text_like_any_other(client, db, world):
    # An emoji written as a JSON surrogate pair escape is one character, and is stored
    response = await client.patch(
        "/v1/users/me", data=b'{"first_name": "Ada \\ud83d\\ude00"}', headers={
            **world.customer, **JSON})  # fmt: skip
    assert response.status == 200, await response.text()
    assert (await response.json())["first_name"] == "Ada \U0001f600"
