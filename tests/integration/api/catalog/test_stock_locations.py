"""Stock per location on the real API: an admin counts a product's stock at any location
(the default one when none is named), each count beside its ``count`` movement there, never
below what is reserved at that location; the admin levels list every location, inactive
and empty ones too, while the public sums only count active locations. Nobody else reads
the levels, and a location that is unknown or not an id is refused with nothing changed."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fulfillment.models import Inventory, StockMovement
from tests.support.locations import stock_violations
from tests.support.merchant_webhooks import signed_in
from tests.support.rawhttp import fingerprint
from tests.support.storefront import add_product

LOCATIONS = "/v1/admin/locations"
BERLIN = {"name": "Lager Berlin", "line1": "Alexanderplatz 1", "city": "Berlin",
          "postal_code": "10178", "country": "de"}  # fmt: skip


def stock_url(product_id) -> str:
    return f"/v1/products/{product_id}/stock"


def levels_url(product_id) -> str:
    return f"/v1/admin/products/{product_id}/stock"


async def add_location(client, admin, name: str, **fields) -> str:
    response = await client.post(LOCATIONS, json={"name": name, "address": BERLIN, **fields},
                                 headers=admin)  # fmt: skip
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def deactivate(client, admin, location_id: str) -> None:
    response = await client.patch(f"{LOCATIONS}/{location_id}", json={"active": False},
                                  headers=admin)  # fmt: skip
    assert response.status == 200, await response.text()


async def default_location(client, admin) -> str:
    response = await client.get(LOCATIONS, headers=admin)
    assert response.status == 200, await response.text()
    return next(loc["id"] for loc in (await response.json())["items"] if loc["default"])


async def count(client, admin, product_id, on_hand: int, location_id: str | None = None):
    body = {"on_hand": on_hand, **({"location_id": location_id} if location_id else {})}
    return await client.put(stock_url(product_id), json=body, headers=admin)


async def counted(client, admin, product_id, on_hand: int, location_id: str | None = None):
    response = await count(client, admin, product_id, on_hand, location_id)
    assert response.status == 200, await response.text()
    return await response.json()


async def levels(client, admin, product_id) -> list[dict]:
    response = await client.get(levels_url(product_id), headers=admin)
    assert response.status == 200, await response.text()
    return (await response.json())["items"]


def by_name(items: list[dict]) -> dict[str, tuple]:
    """(active, on_hand, reserved, available) per location name."""
    return {i["location_name"]: (i["active"], i["on_hand"], i["reserved"], i["available"])
            for i in items}  # fmt: skip


async def public(client, product_id) -> tuple[int, int, int]:
    """(on_hand, reserved, available) as the product page and the catalogue both show."""
    one = await client.get(f"/v1/products/{product_id}")
    assert one.status == 200, await one.text()
    page = await (await client.get("/v1/products")).json()
    [listed] = [p for p in page["items"] if p["id"] == str(product_id)]
    shown = await one.json()
    sums = (shown["on_hand"], shown["reserved"], shown["available"])
    assert (listed["on_hand"], listed["reserved"], listed["available"]) == sums
    return sums


def movements(db, product_id) -> list[tuple[str, int, str]]:
    """(location id, delta, reason) of the product's ledger, oldest first."""
    with Session(db) as session:
        rows = session.execute(select(StockMovement.location_id, StockMovement.delta,
                                      StockMovement.reason)
                               .where(StockMovement.product_id == product_id)
                               .order_by(StockMovement.id)).all()  # fmt: skip
        return [(str(loc), delta, reason) for loc, delta, reason in rows]


def reserve_directly(db, product_id, location_id: str, reserved: int) -> None:
    with db.begin() as conn:
        conn.execute(text("UPDATE inventory SET reserved = :r "
                          "WHERE product_id = :p AND location_id = :l"),
                     {"r": reserved, "p": product_id, "l": location_id})  # fmt: skip


async def expect_error(response, status: int, code: str) -> dict:
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == code and error["message"], error
    return error


async def test_stock_counted_at_a_second_location_is_listed_and_summed(client, admin, db):
    # Given a product with 10 at the default location, and a second location
    product = add_product(db, on_hand=10)
    default = await default_location(client, admin)
    berlin = await add_location(client, admin, "Berlin", priority=20)

    # When an admin counts 7 of it at the second location
    answered = await counted(client, admin, product, 7, berlin)

    # Then the answer, the product page and the catalogue sum both locations
    assert (answered["on_hand"], answered["reserved"], answered["available"]) == (17, 0, 17)
    assert await public(client, product) == (17, 0, 17)
    # and the admin levels list each location with its own stock, in priority order
    items = await levels(client, admin, product)
    assert [(i["location_id"], i["location_name"]) for i in items] == [
        (default, "Default"), (berlin, "Berlin")]  # fmt: skip
    assert by_name(items) == {"Default": (True, 10, 0, 10), "Berlin": (True, 7, 0, 7)}
    assert set(items[0]) == {"location_id", "location_name", "active", "on_hand", "reserved",
                             "available"}  # fmt: skip
    assert stock_violations(db) == []


async def test_an_inactive_locations_stock_is_listed_for_admins_but_not_public(client, admin, db):
    # Given a product with 10 at the default location (3 reserved) and 5 at Hamburg (2
    # reserved)
    product = add_product(db, on_hand=10)
    default = await default_location(client, admin)
    hamburg = await add_location(client, admin, "Hamburg")
    await counted(client, admin, product, 5, hamburg)
    reserve_directly(db, product, default, 3)
    reserve_directly(db, product, hamburg, 2)
    assert await public(client, product) == (15, 5, 10)

    # When Hamburg is deactivated, and then counted again (8)
    await deactivate(client, admin, hamburg)
    before_recount = await public(client, product)
    answered = await counted(client, admin, product, 8, hamburg)

    # Then the public sums leave Hamburg out, before and after its count
    assert before_recount == (10, 3, 7)
    assert (answered["on_hand"], answered["reserved"], answered["available"]) == (10, 3, 7)
    assert await public(client, product) == (10, 3, 7)
    # while the admin levels still list it, inactive, with its stock
    assert by_name(await levels(client, admin, product)) == {
        "Default": (True, 10, 3, 7), "Hamburg": (False, 8, 2, 6)}  # fmt: skip


async def test_a_location_that_never_held_the_product_lists_zeros(client, admin, db):
    # Given a product with 4 at the default location, and three locations that never
    # held it
    product = add_product(db, on_hand=4)
    await add_location(client, admin, "Zeta", priority=5)
    await add_location(client, admin, "alpha", priority=50)
    await add_location(client, admin, "Beta", priority=5)

    # When an admin reads its levels
    items = await levels(client, admin, product)

    # Then every location is listed by priority then name, zeros where it has none
    assert [i["location_name"] for i in items] == ["Default", "Beta", "Zeta", "alpha"]
    assert by_name(items) == {"Default": (True, 4, 0, 4), "Beta": (True, 0, 0, 0),
                              "Zeta": (True, 0, 0, 0), "alpha": (True, 0, 0, 0)}  # fmt: skip
    # and reading made no stock rows
    with Session(db) as session:
        rows = session.scalars(select(Inventory).where(Inventory.product_id == product)).all()
        assert len(rows) == 1


async def test_an_unknown_location_is_a_422_and_changes_nothing(client, admin, db):
    # Given a product with 10 at the default location
    product = add_product(db, on_hand=10)
    before, shown = fingerprint(db), await levels(client, admin, product)

    # When an admin counts it at a location that does not exist
    nowhere = str(uuid.uuid4())
    response = await count(client, admin, product, 3, nowhere)

    # Then it is refused as the body's fault, and no stock, row or movement changed
    error = await expect_error(response, 422, "unknown_location")
    assert error["details"]["field"] == "location_id"
    assert fingerprint(db) == before and await levels(client, admin, product) == shown
    assert movements(db, product) == [(shown[0]["location_id"], 10, "count")]


async def test_stock_below_reserved_is_judged_at_the_location_counted(client, admin, db):
    # Given 10 at the default location with 8 reserved, and 5 at Berlin with 2 reserved
    product = add_product(db, on_hand=10)
    default = await default_location(client, admin)
    berlin = await add_location(client, admin, "Berlin")
    await counted(client, admin, product, 5, berlin)
    reserve_directly(db, product, default, 8)
    reserve_directly(db, product, berlin, 2)
    before = fingerprint(db)

    # When Berlin is counted below its 2 reserved, though the default location has plenty
    refused = await count(client, admin, product, 1, berlin)

    # Then it is a 409 naming Berlin, and nothing changed
    error = await expect_error(refused, 409, "stock_below_reserved")
    assert error["details"] == {"reserved": 2, "requested_on_hand": 1, "location_id": berlin}
    assert fingerprint(db) == before

    # When Berlin is counted at 3 (below the 10 reserved in all), and the default at 7
    await counted(client, admin, product, 3, berlin)
    below_default = await count(client, admin, product, 7)

    # Then only Berlin's own reservations bound its count, and the default's bind it
    error = await expect_error(below_default, 409, "stock_below_reserved")
    assert error["details"]["reserved"] == 8 and error["details"]["location_id"] == default
    assert by_name(await levels(client, admin, product)) == {
        "Default": (True, 10, 8, 2), "Berlin": (True, 3, 2, 1)}  # fmt: skip


async def test_a_count_writes_one_movement_at_its_location_for_the_difference(client, admin, db):
    # Given a product with 10 at the default location, and Berlin
    product = add_product(db, on_hand=10)
    default = await default_location(client, admin)
    berlin = await add_location(client, admin, "Berlin")

    # When Berlin is counted at 6, at 6 again, then at 2, and the default at 12
    await counted(client, admin, product, 6, berlin)
    await counted(client, admin, product, 6, berlin)
    await counted(client, admin, product, 2, berlin)
    await counted(client, admin, product, 12, default)

    # Then each count that changed stock wrote one movement there, of the difference
    assert movements(db, product) == [(default, 10, "count"), (berlin, 6, "count"),
                                      (berlin, -4, "count"), (default, 2, "count")]  # fmt: skip
    assert by_name(await levels(client, admin, product)) == {
        "Default": (True, 12, 0, 12), "Berlin": (True, 2, 0, 2)}  # fmt: skip
    assert stock_violations(db) == []


async def test_a_count_naming_no_location_is_at_the_default_one(client, admin, db):
    # Given a product with 10 at the default location and 5 at Berlin
    product = add_product(db, on_hand=10)
    default = await default_location(client, admin)
    berlin = await add_location(client, admin, "Berlin", priority=0)
    await counted(client, admin, product, 5, berlin)

    # When an admin counts it as before locations: no location, then a null one
    answered = await counted(client, admin, product, 3)
    null = await client.put(stock_url(product), json={"on_hand": 4, "location_id": None},
                            headers=admin)  # fmt: skip

    # Then the default location was counted each time and Berlin kept its 5
    assert answered["on_hand"] == 8 and null.status == 200, await null.text()
    assert by_name(await levels(client, admin, product)) == {
        "Default": (True, 4, 0, 4), "Berlin": (True, 5, 0, 5)}  # fmt: skip
    assert movements(db, product) == [(default, 10, "count"), (berlin, 5, "count"),
                                      (default, -7, "count"), (default, 1, "count")]  # fmt: skip


async def test_only_admins_read_and_count_stock_by_location(client, admin, db, settings):
    # Given a product, a customer, and someone not signed in
    product = add_product(db, on_hand=10)
    customer = signed_in(db, settings, "customer")
    before = fingerprint(db)

    # When each reads the levels and counts stock
    calls = (("GET", levels_url(product), None), ("PUT", stock_url(product), {"on_hand": 1}))
    for method, path, body in calls:
        anonymous = await client.request(method, path, json=body)
        forbidden = await client.request(method, path, json=body, headers=customer)

        # Then the stranger is asked to sign in, the customer is refused
        await expect_error(anonymous, 401, "unauthorized")
        await expect_error(forbidden, 403, "forbidden")
    # and nothing changed
    assert fingerprint(db) == before


async def test_an_unknown_product_has_no_stock_levels(client, admin, db):
    # Given a location, and no such product
    berlin = await add_location(client, admin, "Berlin")

    # When an admin reads or counts a product that does not exist
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        read = await client.get(levels_url(missing), headers=admin)
        put = await count(client, admin, missing, 1, berlin)

        # Then both are 404
        await expect_error(read, 404, "not_found")
        await expect_error(put, 404, "not_found")
    with Session(db) as session:
        assert session.scalars(select(Inventory)).all() == []


async def test_a_location_id_that_is_not_a_uuid_is_a_422_and_changes_nothing(client, admin, db):
    # Given a product with 10 at the default location
    product = add_product(db, on_hand=10)
    before = fingerprint(db)

    # When an admin counts it at locations that are not ids
    for bad in (12, "not-a-uuid", "", [], {"id": 1}, True):
        response = await client.put(stock_url(product), json={"on_hand": 3, "location_id": bad},
                                    headers=admin)  # fmt: skip

        # Then each is a 422 naming location_id
        error = await expect_error(response, 422, "validation_error")
        assert [f["field"] for f in error["details"]["fields"]] == ["location_id"], (bad, error)
    # and nothing changed
    assert fingerprint(db) == before
