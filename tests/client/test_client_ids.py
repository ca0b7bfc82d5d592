"""IDs with reserved characters land as exactly that ID, as one path segment."""

from __future__ import annotations

import pytest
from client_testkit import Target

from userflow_assets.client import encode_id

AWKWARD_IDS = ["a/b", "../groups/x", "x?y=1", "#", "with space", " lead and trail ", "Zoë 用户", "..", ".", "100%", "a%2Fb", "+&=;"]


@pytest.mark.parametrize("record_id", AWKWARD_IDS)
async def test_awkward_ids_round_trip(target: Target, record_id: str) -> None:
    async with target.client() as client:
        await client.upsert_group(record_id, {"name": "g"})
        await client.upsert_user(record_id, {"name": "u"}, groups=[{"id": record_id}])
        user = await client.get_user(record_id)
        group = await client.get_group(record_id)
        assert (user["id"], group["id"]) == (record_id, record_id)
        assert await client.remove_membership(record_id, record_id) is True
        assert await client.delete_user(record_id) is True
        assert await client.delete_group(record_id) is True
    log = (await target.inspect("GET", "/requests"))["log"]
    by_path = {(e["method"], e["path"]): e["id"] for e in log}
    # The emulator routed each request to the `{id}` route with exactly this ID.
    assert by_path[("GET", "/users/{id}")] == record_id
    assert by_path[("GET", "/groups/{id}")] == record_id
    assert by_path[("DELETE", "/users/{id}")] == record_id
    assert by_path[("DELETE", "/groups/{id}")] == record_id
    assert [e["status"] for e in log] == [200] * 7


async def test_ids_that_exist_elsewhere_are_not_reached_by_traversal(target: Target) -> None:
    async with target.client() as client:
        await client.upsert_group("x", {"name": "the real x"})
        await client.upsert_user("../groups/x", {"name": "tricky"})
        user = await client.get_user("../groups/x")
    assert user["attributes"] == {"name": "tricky"}


def test_encode_id_is_one_segment() -> None:
    assert encode_id("a/b") == "a%2Fb"
    assert encode_id("..") == "%2E%2E"
    assert encode_id("x?y=1") == "x%3Fy%3D1"
    assert encode_id("Zoë") == "Zo%C3%AB"
    with pytest.raises(ValueError):
        encode_id("")
