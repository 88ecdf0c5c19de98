"""Locations on the real API: the migration's default location is there with today's
ship-from address, an admin adds, lists, reads and changes locations, nobody else may,
bad input is refused with nothing changed, and two writers at once never get a 500."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfillment.models import Location
from tests.support.merchant_webhooks import signed_in
from tests.support.rawhttp import fingerprint

LOCATIONS = "/v1/admin/locations"

#: ``integrations.easypost_gateway.DEFAULT_FROM_ADDRESS`` in the fields of an address.
DEFAULT_ADDRESS = {
    "name": "Fulfillment Warehouse", "line1": "417 Montgomery Street", "line2": None,
    "city": "San Francisco", "state": "CA", "postal_code": "94104", "country": "US",
}  # fmt: skip
BERLIN = {"name": "Lager Berlin", "line1": "Alexanderplatz 1", "city": "Berlin",
          "postal_code": "10178", "country": "de"}  # fmt: skip


async def add(client, admin, name: str, **fields) -> dict:
    response = await client.post(LOCATIONS, json={"name": name, "address": BERLIN, **fields},
                                 headers=admin)  # fmt: skip
    assert response.status == 201, await response.text()
    return await response.json()


async def listed(client, admin, query: str = "") -> dict:
    response = await client.get(f"{LOCATIONS}{query}", headers=admin)
    assert response.status == 200, await response.text()
    return await response.json()


async def default_location(client, admin) -> dict:
    return next(loc for loc in (await listed(client, admin))["items"] if loc["default"])


async def expect_error(response, status: int, code: str) -> dict:
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == code and error["message"], error
    return error


async def test_the_migration_leaves_one_default_location_at_todays_ship_from_address(client, admin):
    page = await listed(client, admin)
    assert page["total"] == 1
    [default] = page["items"]
    assert default["name"] == "Default" and default["default"] is True
    assert default["address"] == DEFAULT_ADDRESS
    assert default["priority"] == 0 and default["ships_to"] == [] and default["active"] is True


async def test_an_admin_adds_a_location_and_reads_it_back(client, admin):
    created = await add(client, admin, "Berlin", priority=20, ships_to=["de", "AT", "DE"])

    assert created["name"] == "Berlin" and created["priority"] == 20
    assert created["ships_to"] == ["AT", "DE"]  # upper-cased, each once
    assert created["address"]["country"] == "DE" and created["address"]["line2"] is None
    assert created["active"] is True and created["default"] is False
    assert set(created) == {"id", "name", "address", "priority", "ships_to", "active",
                            "default", "created_at", "updated_at"}  # fmt: skip
    one = await client.get(f"{LOCATIONS}/{created['id']}", headers=admin)
    assert one.status == 200 and await one.json() == created


async def test_a_new_location_ranks_100_ships_everywhere_and_is_active(client, admin):
    created = await add(client, admin, "Plain")
    assert (created["priority"], created["ships_to"], created["active"]) == (100, [], True)


async def test_locations_are_listed_by_priority_then_name_and_paged(client, admin):
    await add(client, admin, "Zeta", priority=5)
    await add(client, admin, "alpha", priority=50)
    await add(client, admin, "Beta", priority=5)

    page = await listed(client, admin)
    assert [loc["name"] for loc in page["items"]] == ["Default", "Beta", "Zeta", "alpha"]
    second = await listed(client, admin, "?page=2&limit=3")
    assert [loc["name"] for loc in second["items"]] == ["alpha"] and second["total"] == 4


async def test_each_field_changes_on_its_own_and_the_change_writes_updated_at(client, admin):
    created = await add(client, admin, "Hamburg")
    changes = {"name": "Hamburg Hafen", "priority": 7, "ships_to": ["fr", "DE"],
               "active": False, "address": {**BERLIN, "city": "Hamburg"}}  # fmt: skip
    before = created
    for field, value in changes.items():
        response = await client.patch(f"{LOCATIONS}/{created['id']}", json={field: value},
                                      headers=admin)  # fmt: skip
        assert response.status == 200, await response.text()
        after = await response.json()
        untouched = {k: v for k, v in after.items() if k not in (field, "updated_at")}
        assert untouched == {k: v for k, v in before.items() if k not in (field, "updated_at")}
        assert after["updated_at"] > before["updated_at"], field
        before = after
    assert before["name"] == "Hamburg Hafen" and before["priority"] == 7
    assert before["ships_to"] == ["DE", "FR"] and before["active"] is False
    assert before["address"]["city"] == "Hamburg" and before["address"]["country"] == "DE"
    assert before["created_at"] == created["created_at"]


async def test_the_default_location_changes_but_is_never_deactivated(client, admin, db):
    default = await default_location(client, admin)
    url = f"{LOCATIONS}/{default['id']}"

    await expect_error(await client.patch(url, json={"active": False}, headers=admin), 409,
                       "default_location_inactive")  # fmt: skip
    refused = await client.patch(url, json={"active": False, "priority": 3}, headers=admin)
    await expect_error(refused, 409, "default_location_inactive")
    assert await default_location(client, admin) == default  # nothing changed

    ranked = await client.patch(url, json={"priority": 3, "active": True}, headers=admin)
    assert ranked.status == 200 and (await ranked.json())["priority"] == 3


async def test_a_name_taken_is_a_409_on_create_and_on_change(client, admin):
    await add(client, admin, "Lyon")
    other = await add(client, admin, "Paris")

    taken = await client.post(LOCATIONS, json={"name": "Lyon", "address": BERLIN}, headers=admin)
    await expect_error(taken, 409, "location_name_taken")
    renamed = await client.patch(f"{LOCATIONS}/{other['id']}", json={"name": "Lyon"},
                                 headers=admin)  # fmt: skip
    await expect_error(renamed, 409, "location_name_taken")
    same = await client.patch(f"{LOCATIONS}/{other['id']}", json={"name": "Paris"}, headers=admin)
    assert same.status == 200  # its own name is not taken
    assert [loc["name"] for loc in (await listed(client, admin))["items"]] == [
        "Default", "Lyon", "Paris",
    ]  # fmt: skip


async def test_an_unknown_location_is_a_404(client, admin):
    for path in (f"{LOCATIONS}/{uuid.uuid4()}", f"{LOCATIONS}/not-a-uuid"):
        await expect_error(await client.get(path, headers=admin), 404, "not_found")
        patched = await client.patch(path, json={"priority": 1}, headers=admin)
        await expect_error(patched, 404, "not_found")


async def test_only_admins_may_touch_locations(client, db, settings):
    customer = signed_in(db, settings, "customer")
    some = f"{LOCATIONS}/{uuid.uuid4()}"
    body = {"name": "Mine", "address": BERLIN}
    calls = (("GET", LOCATIONS, None), ("POST", LOCATIONS, body), ("GET", some, None),
             ("PATCH", some, {"priority": 1}))  # fmt: skip
    for method, path, json in calls:
        anonymous = await client.request(method, path, json=json)
        assert anonymous.status == 401, (method, path)
        forbidden = await client.request(method, path, json=json, headers=customer)
        assert forbidden.status == 403, (method, path)
    with Session(db) as session:
        assert session.scalars(select(Location.name)).all() == ["Default"]


#: Bodies refused on create, each with the field the 422 names.
BAD_CREATES = [
    ({"name": "Bad", "address": BERLIN, "ships_to": ["USA"]}, "ships_to.0"),
    ({"name": "Bad", "address": BERLIN, "ships_to": ["u1"]}, "ships_to.0"),
    ({"name": "Bad", "address": BERLIN, "ships_to": "DE"}, "ships_to"),
    ({"name": "Bad", "address": {**BERLIN, "country": "DEU"}}, "address.country"),
    ({"name": "Bad\u0000", "address": BERLIN}, "name"),
    ({"name": "Bad\nname", "address": BERLIN}, "name"),
    ({"name": " padded", "address": BERLIN}, "name"),
    ({"name": "", "address": BERLIN}, "name"),
    ({"name": "x" * 101, "address": BERLIN}, "name"),
    ({"name": 5, "address": BERLIN}, "name"),
    ({"name": "Bad", "address": BERLIN, "priority": "1"}, "priority"),
    ({"name": "Bad", "address": BERLIN, "priority": 10_001}, "priority"),
    ({"name": "Bad", "address": BERLIN, "priority": -1}, "priority"),
    ({"name": "Bad", "address": BERLIN, "priority": 1.5}, "priority"),
    ({"name": "Bad", "address": BERLIN, "active": "yes"}, "active"),
    ({"name": "Bad", "address": BERLIN, "default": True}, "default"),
    ({"name": "Bad", "address": {**BERLIN, "phone": "1"}}, "address.phone"),
    ({"name": "Bad"}, "address"),
]


async def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(client, admin, db):
    created = await add(client, admin, "Madrid")
    before = fingerprint(db)
    for body, field in BAD_CREATES:
        response = await client.post(LOCATIONS, json=body, headers=admin)
        error = await expect_error(response, 422, "validation_error")
        assert field in [f["field"] for f in error["details"]["fields"]], (body, error)
    for body in ({"name": None}, {"active": None}, {"ships_to": ["de", "x"]}, {"is_default": True},
                 {"priority": True}, {"address": {**BERLIN, "country": 1}}):  # fmt: skip
        patched = await client.patch(f"{LOCATIONS}/{created['id']}", json=body, headers=admin)
        await expect_error(patched, 422, "validation_error")
    assert fingerprint(db) == before


async def test_two_creates_of_one_name_at_once_give_one_201_and_one_409(client, admin):
    for round_ in range(5):
        body = {"name": f"Twin {round_}", "address": BERLIN}
        responses = await asyncio.gather(*(client.post(LOCATIONS, json=body, headers=admin)
                                           for _ in range(2)))  # fmt: skip
        assert sorted(r.status for r in responses) == [201, 409], round_
        loser = next(r for r in responses if r.status == 409)
        await expect_error(loser, 409, "location_name_taken")
    assert (await listed(client, admin))["total"] == 6


async def test_two_renames_to_one_name_at_once_give_one_200_and_one_409(client, admin):
    for round_ in range(5):
        first, second = [await add(client, admin, f"R{round_}-{n}") for n in (1, 2)]
        body = {"name": f"Renamed {round_}"}
        responses = await asyncio.gather(*(client.patch(f"{LOCATIONS}/{loc['id']}", json=body,
                                                        headers=admin)
                                           for loc in (first, second)))  # fmt: skip
        assert sorted(r.status for r in responses) == [200, 409], round_
