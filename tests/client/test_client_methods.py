"""Every client method against the emulator, in-process and on a port."""

from __future__ import annotations

import pytest
from client_testkit import Target

from userflow_assets.client import UserflowBadRequestError, UserflowNotFoundError
from userflow_assets.emulator import EmulatorConfig


async def test_upsert_user_with_groups_and_get_expanded(target: Target) -> None:
    async with target.client() as client:
        user = await client.upsert_user(
            "u1",
            {"name": "Jane", "plan": "pro"},
            groups=[{"id": "g1", "attributes": {"name": "Acme"}}],
        )
        assert user["id"] == "u1"
        assert user["attributes"] == {"name": "Jane", "plan": "pro"}
        # Merge: left-out attributes stay, None removes one.
        await client.upsert_user("u1", {"plan": None, "seats": 3})
        fetched = await client.get_user("u1", expand=["memberships", "memberships.group"])
    assert fetched["attributes"] == {"name": "Jane", "seats": 3}
    memberships = fetched["memberships"]
    assert memberships is not None and [m["group_id"] for m in memberships] == ["g1"]
    assert memberships[0]["group"]["attributes"] == {"name": "Acme"}


async def test_upsert_user_memberships_and_prune(target: Target) -> None:
    async with target.client() as client:
        await client.upsert_user("u1", groups=[{"id": "g1"}, {"id": "g2"}])
        await client.upsert_user(
            "u1",
            memberships=[{"group": {"id": "g2"}, "attributes": {"role": "admin"}}],
            prune_memberships=True,
        )
        user = await client.get_user("u1", expand=["memberships"])
        groups = [g["id"] async for g in client.list_groups()]
    memberships = user["memberships"] or []
    assert [(m["group_id"], m["attributes"]) for m in memberships] == [("g2", {"role": "admin"})]
    assert groups == ["g1", "g2"]  # pruning removes memberships, never groups


async def test_groups_and_memberships_together_are_refused_before_sending(target: Target) -> None:
    async with target.client() as client:
        with pytest.raises(ValueError, match="groups or memberships"):
            await client.upsert_user("u1", groups=[{"id": "g"}], memberships=[{"group": {"id": "g"}}])
    assert await target.outcomes("POST /users") == {}


async def test_groups_upsert_get_list_delete(target: Target) -> None:
    async with target.client() as client:
        group = await client.upsert_group("g1", {"name": "Acme"})
        assert group["id"] == "g1"
        await client.upsert_user("u1", groups=[{"id": "g1"}])
        fetched = await client.get_group("g1", expand=["users"])
        assert [u["id"] for u in fetched["users"] or []] == ["u1"]
        listed = [g async for g in client.list_groups(expand=["memberships"])]
        assert [(g["id"], len(g["memberships"] or [])) for g in listed] == [("g1", 1)]
        assert await client.delete_group("g1") is True
        assert await client.delete_group("g1") is False  # already gone counts as done
        with pytest.raises(UserflowNotFoundError) as caught:
            await client.get_group("g1")
    assert caught.value.status == 404
    assert caught.value.code == "not_found"
    assert caught.value.record_id == "g1"


async def test_user_get_list_find_delete(target: Target) -> None:
    async with target.client() as client:
        for n in range(3):
            await client.upsert_user(f"u{n}", {"email": "same@example.com" if n else "one@example.com"})
        assert [u["id"] async for u in client.list_users()] == ["u0", "u1", "u2"]
        assert [u["id"] async for u in client.list_users(order_by="-created_at")] == ["u2", "u1", "u0"]
        found = await client.find_user_by_email("one@example.com")
        assert found is not None and found["id"] == "u0"
        assert [u["id"] for u in await client.find_users_by_email("same@example.com")] == ["u1", "u2"]
        assert await client.find_user_by_email("nobody@example.com") is None
        assert await client.delete_user("u1") is True
        assert await client.delete_user("u1") is False
        with pytest.raises(UserflowNotFoundError):
            await client.get_user("u1")
        assert [u["id"] async for u in client.list_users()] == ["u0", "u2"]


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(delete_status=204)])
async def test_delete_answered_204_counts_as_deleted(target: Target) -> None:
    async with target.client() as client:
        await client.upsert_user("u1")
        assert await client.delete_user("u1") is True
        assert await client.delete_user("u1") is False


async def test_remove_membership_and_list_memberships(target: Target) -> None:
    async with target.client() as client:
        await client.upsert_user("u1", groups=[{"id": "g1"}, {"id": "g2"}])
        pairs = [(m["user_id"], m["group_id"]) async for m in client.list_memberships(user_id="u1")]
        assert pairs == [("u1", "g1"), ("u1", "g2")]
        assert await client.remove_membership("u1", "g1") is True
        assert await client.remove_membership("u1", "g1") is False
        pairs = [(m["user_id"], m["group_id"]) async for m in client.list_memberships()]
    assert pairs == [("u1", "g2")]


async def test_track_event_and_list_events(target: Target) -> None:
    async with target.client() as client:
        await client.upsert_user("u1")
        event = await client.track_event(
            "signed up", user_id="u1", attributes={"plan": "pro"}, time="2024-01-02T03:04:05Z"
        )
        assert (event["name"], event["user_id"], event["attributes"]) == ("signed up", "u1", {"plan": "pro"})
        assert event["time"].startswith("2024-01-02T03:04:05")
        group_event = await client.track_event("renewed", group_id="g1")
        assert group_event["group_id"] == "g1"
        names = [e["name"] async for e in client.list_events(user_id="u1")]
        assert names == ["signed up"]
        with pytest.raises(ValueError):
            await client.track_event("orphan")


async def test_attribute_and_event_definitions(target: Target) -> None:
    async with target.client() as client:
        await client.upsert_user("u1", {"plan": "pro", "seats": 2})
        await client.upsert_group("g1", {"name": "Acme"})
        await client.track_event("signed up", user_id="u1")
        user_defs = [d["name"] async for d in client.list_attribute_definitions(scope="user")]
        group_defs = [d["name"] async for d in client.list_attribute_definitions(scope="group")]
        all_defs = [(d["scope"], d["name"]) async for d in client.list_attribute_definitions()]
        events = [d["name"] async for d in client.list_event_definitions()]
    assert user_defs == ["plan", "seats"]
    assert group_defs == ["name"]
    assert all_defs == [("user", "plan"), ("user", "seats"), ("group", "name")]
    assert events == ["signed up"]


async def test_content_versions_and_sessions(target: Target) -> None:
    async with target.client() as client:
        content = [c async for c in client.list_content()]
        assert len(content) >= 3
        flows = [c async for c in client.list_content(type="flow")]
        assert flows and all(c["type"] == "flow" for c in flows)
        first = await client.get_content(content[0]["id"])
        assert first["id"] == content[0]["id"]
        versions = [v async for v in client.list_content_versions(content_id=first["id"])]
        assert versions and {v["content_id"] for v in versions} == {first["id"]}
        version = await client.get_content_version(versions[0]["id"])
        assert version["id"] == versions[0]["id"]
        sessions = [s async for s in client.list_content_sessions(expand=["content", "user"])]
        assert sessions, "the emulator seeds content sessions"
        session = await client.get_content_session(sessions[0]["id"], expand=["answers"])
        assert session["id"] == sessions[0]["id"]
        assert await client.delete_content_session(session["id"]) is True
        assert await client.delete_content_session(session["id"]) is False
        remaining = [s["id"] async for s in client.list_content_sessions()]
    assert session["id"] not in remaining
    assert len(remaining) == len(sessions) - 1


async def test_lists_walk_every_page_with_limit_100(target: Target) -> None:
    async with target.client() as client:
        for n in range(250):
            await client.upsert_group(f"g{n:03d}")
        ids = [g["id"] async for g in client.list_groups()]
    assert ids == [f"g{n:03d}" for n in range(250)]
    log = (await target.inspect("GET", "/requests?limit=1000"))["log"]
    assert [e["status"] for e in log if e["method"] == "GET"] == [200, 200, 200]


async def test_invalid_expand_is_a_bad_request(target: Target) -> None:
    async with target.client() as client:
        await client.upsert_user("u1")
        with pytest.raises(UserflowBadRequestError) as caught:
            await client.get_user("u1", expand=["nonsense"])
    assert (caught.value.status, caught.value.code, caught.value.attempts) == (400, "invalid_params", 1)
