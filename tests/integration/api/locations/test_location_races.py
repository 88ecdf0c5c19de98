"""Two writers of locations at once, one held inside its transaction at a named point
(``tests.support.interleave``) while the other runs: a second create or rename to a
name being taken waits for the first one's commit and is answered 409, never 500; two
changes of one location wait for each other and neither is lost."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine

from tests.support.interleave import hold, waiting_on_lock

LOCATIONS = "/v1/admin/locations"
ADDRESS = {"name": "Lager", "line1": "Alexanderplatz 1", "city": "Berlin",
           "postal_code": "10178", "country": "DE"}  # fmt: skip


async def waits(db: Engine, task: asyncio.Task, before: int) -> None:
    """Until ``task`` waits on a lock the held writer has (it must not end first)."""
    for _ in range(1000):
        assert not task.done(), "the second writer ran past the first one's lock"
        if await asyncio.to_thread(waiting_on_lock, db) > before:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second writer never waited")


async def interleave(db: Engine, point_name: str, first, second):
    """``first`` held at ``point_name`` while ``second`` runs into its lock; then the
    first commits. Both answers."""
    with hold(point_name) as point:
        held = asyncio.create_task(first())
        await point.wait_reached_async()
        before = await asyncio.to_thread(waiting_on_lock, db)
        other = asyncio.create_task(second())
        await waits(db, other, before)
        point.release()
        return await held, await other


async def create(client, admin, name: str):
    return await client.post(LOCATIONS, json={"name": name, "address": ADDRESS}, headers=admin)


async def created(client, admin, name: str) -> dict:
    response = await create(client, admin, name)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_a_create_of_a_name_being_created_waits_and_is_a_409(client, admin, db):
    first, second = await interleave(
        db, "create_location.before_commit",
        lambda: create(client, admin, "Twin"), lambda: create(client, admin, "Twin"),
    )  # fmt: skip
    assert first.status == 201
    assert second.status == 409, await second.text()
    assert (await second.json())["error"]["code"] == "location_name_taken"


async def test_a_rename_to_a_name_being_taken_waits_and_is_a_409(client, admin, db):
    one, other = await created(client, admin, "One"), await created(client, admin, "Other")
    first, second = await interleave(
        db, "update_location.before_commit",
        lambda: client.patch(f"{LOCATIONS}/{one['id']}", json={"name": "Same"}, headers=admin),
        lambda: client.patch(f"{LOCATIONS}/{other['id']}", json={"name": "Same"}, headers=admin),
    )  # fmt: skip
    assert first.status == 200
    assert second.status == 409, await second.text()
    assert (await second.json())["error"]["code"] == "location_name_taken"


async def test_two_changes_of_one_location_wait_for_each_other_and_both_stay(client, admin, db):
    location = await created(client, admin, "Busy")
    url = f"{LOCATIONS}/{location['id']}"
    first, second = await interleave(
        db, "update_location.before_commit",
        lambda: client.patch(url, json={"priority": 7}, headers=admin),
        lambda: client.patch(url, json={"active": False}, headers=admin),
    )  # fmt: skip
    assert first.status == second.status == 200
    after = await (await client.get(url, headers=admin)).json()
    assert after["priority"] == 7 and after["active"] is False
    assert after["updated_at"] == (await second.json())["updated_at"]
    assert after["updated_at"] > (await first.json())["updated_at"]
