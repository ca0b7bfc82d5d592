"""List walks survive a cursor deleted mid-walk: no item lost, none yielded twice."""

from __future__ import annotations

from client_testkit import Target


async def _seed_users(target: Target, count: int) -> list[str]:
    ids = [f"u{n:03d}" for n in range(count)]
    async with target.client() as client:
        for user_id in ids:
            await client.upsert_user(user_id)
    return ids


async def _list_statuses(target: Target, endpoint: str) -> dict[str, int]:
    return await target.outcomes(endpoint)


async def test_cursor_deleted_mid_walk_resumes_without_duplicates(target: Target) -> None:
    ids = await _seed_users(target, 250)
    walked: list[str] = []
    async with target.client() as client:
        async for user in client.list_users():
            walked.append(user["id"])
            if user["id"] == "u099":  # the cursor for page two
                assert await client.delete_user("u099") is True
    assert walked == ids  # u099 was yielded before it was deleted; nothing repeats
    # One 400 for the vanished cursor, then the walk restarted from the last good page.
    assert await _list_statuses(target, "GET /users") == {"200": 4, "400": 1}


async def test_two_vanished_cursors_fall_back_further(target: Target) -> None:
    ids = await _seed_users(target, 250)
    walked: list[str] = []
    async with target.client() as client:
        async for user in client.list_users():
            walked.append(user["id"])
            if user["id"] == "u199":  # the cursor for page three, and the one for page two
                await client.delete_user("u199")
                await client.delete_user("u099")
    assert walked == ids
    assert len(set(walked)) == len(walked)
    assert (await _list_statuses(target, "GET /users"))["400"] == 2


async def test_deleting_everything_while_walking_visits_each_item_once(target: Target) -> None:
    async with target.client() as client:
        for n in range(250):
            await client.upsert_group(f"g{n:03d}")
        walked: list[str] = []
        async for group in client.list_groups():
            walked.append(group["id"])
            assert await client.delete_group(group["id"]) is True
        remaining = [g async for g in client.list_groups()]
    assert walked == [f"g{n:03d}" for n in range(250)]
    assert remaining == []


async def test_lists_keyed_by_name_follow_the_servers_cursor(target: Target) -> None:
    attributes = {f"attr_{n:03d}": n for n in range(120)}
    async with target.client() as client:
        await client.upsert_user("u1", attributes)
        await client.upsert_group("g1", {"name": "Acme"})
        names = [d["name"] async for d in client.list_attribute_definitions()]
        user_names = [d["name"] async for d in client.list_attribute_definitions(scope="user")]
    assert user_names == sorted(attributes)
    assert names == [*sorted(attributes), "name"]
