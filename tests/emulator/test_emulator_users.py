"""Contract tests: user and group upserts, change operations, memberships, expand, IDs."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from userflow_assets.emulator import EmulatorConfig


class _Timestamp:
    """Equals any ISO 8601 UTC timestamp with milliseconds and Z."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", other) is not None

    def __repr__(self) -> str:
        return "<timestamp>"


TS = _Timestamp()


async def upsert_user(client: httpx.AsyncClient, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = await client.post("/users", json=body)
    assert response.status_code == status, response.text
    return response.json()


async def user_attributes(client: httpx.AsyncClient, user_id: str) -> dict[str, Any]:
    response = await client.get(f"/users/{user_id}")
    assert response.status_code == 200
    return response.json()["attributes"]


async def test_create_returns_the_user_object(emulator_client: httpx.AsyncClient) -> None:
    body = await upsert_user(emulator_client, {"id": "u1", "attributes": {"name": "Jane", "signed_up_at": "2019-06-14T16:25:49Z"}})
    assert body == {
        "object": "user",
        "id": "u1",
        "attributes": {"name": "Jane", "signed_up_at": "2019-06-14T16:25:49Z"},
        "created_at": TS,
        "groups": None,
        "memberships": None,
    }


async def test_merge_keeps_omitted_attributes_and_created_at(emulator_client: httpx.AsyncClient) -> None:
    first = await upsert_user(emulator_client, {"id": "u1", "attributes": {"name": "Jane", "plan": "free"}})
    second = await upsert_user(emulator_client, {"id": "u1", "attributes": {"plan": "pro"}})
    assert second["attributes"] == {"name": "Jane", "plan": "pro"}
    assert second["created_at"] == first["created_at"]
    third = await upsert_user(emulator_client, {"id": "u1"})
    assert third["attributes"] == {"name": "Jane", "plan": "pro"}


async def test_null_removes_an_attribute(emulator_client: httpx.AsyncClient) -> None:
    await upsert_user(emulator_client, {"id": "u1", "attributes": {"name": "Jane", "plan": "pro"}})
    body = await upsert_user(emulator_client, {"id": "u1", "attributes": {"plan": None}})
    assert body["attributes"] == {"name": "Jane"}
    body = await upsert_user(emulator_client, {"id": "u1", "attributes": {"name": {"set": None}}})
    assert body["attributes"] == {}


@pytest.mark.parametrize(
    ("before", "change", "after"),
    [
        ({"x": 1}, {"set": 5}, {"x": 5}),
        ({"x": 1}, {"set_once": 5}, {"x": 1}),
        ({}, {"set_once": 5}, {"x": 5}),
        ({"x": 2}, {"add": 3}, {"x": 5}),
        ({}, {"add": 3}, {"x": 3}),
        ({"x": 2}, {"subtract": 3}, {"x": -1}),
        ({}, {"subtract": 1.5}, {"x": -1.5}),
        ({"x": ["a"]}, {"append": "b"}, {"x": ["a", "b"]}),
        ({"x": ["a"]}, {"append": ["b", "c"]}, {"x": ["a", "b", "c"]}),
        ({}, {"append": "a"}, {"x": ["a"]}),
        ({"x": "a"}, {"append": "b"}, {"x": ["a", "b"]}),
        ({"x": ["a"]}, {"prepend": ["b", "c"]}, {"x": ["b", "c", "a"]}),
        ({"x": ["a", "b", "a", 1, True]}, {"remove": ["a", 1]}, {"x": ["b", True]}),
        ({"x": [1, True]}, {"remove": True}, {"x": [1]}),
        ({}, {"remove": "a"}, {"x": []}),
        ({}, {"set": "2024-01-01T00:00:00Z", "data_type": "datetime"}, {"x": "2024-01-01T00:00:00Z"}),
    ],
)
async def test_change_operations(
    emulator_client: httpx.AsyncClient, before: dict[str, Any], change: dict[str, Any], after: dict[str, Any]
) -> None:
    await upsert_user(emulator_client, {"id": "u1", "attributes": {"keep": True, **before}})
    body = await upsert_user(emulator_client, {"id": "u1", "attributes": {"x": change}})
    assert body["attributes"] == {"keep": True, **after}


@pytest.mark.parametrize(
    ("attributes", "fragment"),
    [
        ({"address": {"city": "Oslo"}}, "attributes.address"),
        ({"score": {"multiply": 2}}, "attributes.score"),
        ({"score": {"add": "2"}}, "attributes.score: add needs a number"),
        ({"score": {"add": True}}, "attributes.score: add needs a number"),
        ({"tags": {"append": {"a": 1}}}, "attributes.tags"),
        ({"tags": {"append": None}}, "attributes.tags"),
        ({"score": {"set": 1, "add": 2}}, "attributes.score"),
        ({"score": {"data_type": "number"}}, "attributes.score"),
        ({"score": {"set": 1, "data_type": "money"}}, "attributes.score: data_type"),
        ({"score": {"set": "high", "data_type": "number"}}, "attributes.score"),
        ({"when": {"set": "yesterday", "data_type": "datetime"}}, "attributes.when"),
        ({"name": {"add": 1}}, "attributes.name: cannot add"),
        ({"list": [[1]]}, "attributes.list"),
    ],
)
async def test_bad_attribute_values_are_400_naming_the_attribute(
    emulator_client: httpx.AsyncClient, emulator_app: Any, attributes: dict[str, Any], fragment: str
) -> None:
    await upsert_user(emulator_client, {"id": "u1", "attributes": {"name": "Jane"}})
    body = await upsert_user(emulator_client, {"id": "u1", "attributes": {"ok": 1, **attributes}}, status=400)
    assert body["error"]["code"] == "invalid_params"
    assert fragment in body["error"]["message"]
    # Nothing of the rejected request was written.
    assert await user_attributes(emulator_client, "u1") == {"name": "Jane"}


@pytest.mark.parametrize(
    "body",
    [{}, {"id": ""}, {"id": 5}, {"id": None}, {"id": "u1", "attributes": []}, {"id": "u1", "prune_memberships": "yes"},
     {"id": "u1", "user_id": "u1"}, {"id": "u1", "groups": {"id": "g"}}, {"id": "u1", "groups": [{"id": ""}]},
     {"id": "u1", "memberships": [{"group": "g1"}]}, {"id": "u1", "groups": [{"id": "g", "name": "x"}]}],
)
async def test_invalid_upsert_bodies_are_400(emulator_client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    answer = await upsert_user(emulator_client, body, status=400)
    assert answer["error"]["code"] == "invalid_params"
    state = (await emulator_client.get("/__emulator/state")).json()
    assert state["counts"]["users"] == 0 and state["counts"]["groups"] == 0


async def test_body_that_is_not_json_or_not_an_object_is_400(emulator_client: httpx.AsyncClient) -> None:
    for content in (b"", b"{not json", b"[1]"):
        response = await emulator_client.post("/users", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_params"


async def test_groups_and_memberships_together_is_400(emulator_client: httpx.AsyncClient) -> None:
    body = await upsert_user(
        emulator_client,
        {"id": "u1", "groups": [{"id": "g1"}], "memberships": [{"group": {"id": "g2"}}]},
        status=400,
    )
    assert body == {"error": {"code": "invalid_params", "message": "groups and memberships cannot both be given in one request"}}


async def test_groups_create_groups_and_memberships(emulator_client: httpx.AsyncClient) -> None:
    await upsert_user(emulator_client, {"id": "u1", "groups": [{"id": "g1", "attributes": {"name": "Acme"}}, {"id": "g2"}]})
    group = (await emulator_client.get("/groups/g1", params={"expand": "memberships"})).json()
    assert group == {
        "object": "group",
        "id": "g1",
        "attributes": {"name": "Acme"},
        "created_at": TS,
        "users": None,
        "memberships": [{"object": "group_membership", "user_id": "u1", "group_id": "g1", "attributes": {}, "created_at": TS}],
    }
    user = (await emulator_client.get("/users/u1", params={"expand": "groups"})).json()
    assert [g["id"] for g in user["groups"]] == ["g1", "g2"]
    assert user["memberships"] is None


async def test_memberships_carry_attributes_and_merge_group_attributes(emulator_client: httpx.AsyncClient) -> None:
    await emulator_client.post("/groups", json={"id": "g1", "attributes": {"name": "Acme", "tier": "gold"}})
    await upsert_user(
        emulator_client,
        {"id": "u1", "memberships": [{"group": {"id": "g1", "attributes": {"seats": 5}}, "attributes": {"role": "admin"}}]},
    )
    await upsert_user(emulator_client, {"id": "u1", "memberships": [{"group": {"id": "g1"}, "attributes": {"since": 2020}}]})
    user = (await emulator_client.get("/users/u1", params=[("expand[]", "memberships"), ("expand[]", "memberships.group")])).json()
    assert user["memberships"] == [
        {
            "object": "group_membership",
            "user_id": "u1",
            "group_id": "g1",
            "attributes": {"role": "admin", "since": 2020},
            "created_at": TS,
            "group": {
                "object": "group",
                "id": "g1",
                "attributes": {"name": "Acme", "tier": "gold", "seats": 5},
                "created_at": TS,
                "users": None,
                "memberships": None,
            },
        }
    ]


async def test_prune_memberships_removes_unnamed_memberships_but_keeps_groups(emulator_client: httpx.AsyncClient) -> None:
    await upsert_user(emulator_client, {"id": "u1", "groups": [{"id": "g1"}, {"id": "g2"}]})
    await upsert_user(emulator_client, {"id": "u1", "groups": [{"id": "g3"}]})  # prune off: adds
    user = (await emulator_client.get("/users/u1", params={"expand": "groups"})).json()
    assert [g["id"] for g in user["groups"]] == ["g1", "g2", "g3"]
    await upsert_user(emulator_client, {"id": "u1", "groups": [{"id": "g2"}], "prune_memberships": True})
    user = (await emulator_client.get("/users/u1", params={"expand": "groups"})).json()
    assert [g["id"] for g in user["groups"]] == ["g2"]
    for group_id in ("g1", "g3"):
        assert (await emulator_client.get(f"/groups/{group_id}")).status_code == 200
    await upsert_user(emulator_client, {"id": "u1", "groups": [], "prune_memberships": True})
    user = (await emulator_client.get("/users/u1", params={"expand": "groups"})).json()
    assert user["groups"] == []


async def test_group_expand_users_and_memberships_user(emulator_client: httpx.AsyncClient) -> None:
    await upsert_user(emulator_client, {"id": "u1", "attributes": {"n": 1}, "groups": [{"id": "g1"}]})
    await upsert_user(emulator_client, {"id": "u2", "groups": [{"id": "g1"}]})
    group = (await emulator_client.get("/groups/g1", params=[("expand[]", "users"), ("expand[]", "memberships.user")])).json()
    assert [u["id"] for u in group["users"]] == ["u1", "u2"]
    assert group["users"][0] == {"object": "user", "id": "u1", "attributes": {"n": 1}, "created_at": TS, "groups": None, "memberships": None}
    assert [(m["user_id"], m["user"]["id"]) for m in group["memberships"]] == [("u1", "u1"), ("u2", "u2")]
    assert "group" not in group["memberships"][0]


async def test_unknown_expand_is_400(emulator_client: httpx.AsyncClient) -> None:
    await upsert_user(emulator_client, {"id": "u1"})
    response = await emulator_client.get("/users/u1", params={"expand": "users"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_params"


async def test_group_upsert_merges_like_users(emulator_client: httpx.AsyncClient) -> None:
    first = await emulator_client.post("/groups", json={"id": "g1", "attributes": {"name": "Acme", "seats": 3}})
    assert first.json() == {"object": "group", "id": "g1", "attributes": {"name": "Acme", "seats": 3}, "created_at": TS, "users": None, "memberships": None}
    second = await emulator_client.post("/groups", json={"id": "g1", "attributes": {"seats": {"add": 2}, "name": None}})
    assert second.json()["attributes"] == {"seats": 5}
    bad = await emulator_client.post("/groups", json={"id": "g1", "attributes": {"x": {"y": 1}}})
    assert bad.status_code == 400


async def test_get_unknown_user_and_group_is_404(emulator_client: httpx.AsyncClient) -> None:
    for path in ("/users/nobody", "/groups/nobody"):
        response = await emulator_client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


async def test_delete_user_removes_memberships_and_events_keeps_groups(emulator_client: httpx.AsyncClient) -> None:
    await upsert_user(emulator_client, {"id": "u1", "groups": [{"id": "g1"}]})
    await upsert_user(emulator_client, {"id": "u2", "groups": [{"id": "g1"}]})
    await emulator_client.post("/events", json={"name": "opened", "user_id": "u1"})
    await emulator_client.post("/events", json={"name": "opened", "user_id": "u2"})
    response = await emulator_client.delete("/users/u1")
    assert response.status_code == 200
    assert response.json() == {"object": "deleted", "id": "u1"}
    assert (await emulator_client.get("/users/u1")).status_code == 404
    group = (await emulator_client.get("/groups/g1", params={"expand": "memberships"})).json()
    assert [m["user_id"] for m in group["memberships"]] == ["u2"]
    events = (await emulator_client.get("/events")).json()["data"]
    assert [e["user_id"] for e in events] == ["u2"]
    assert (await emulator_client.delete("/users/u1")).status_code == 404


async def test_delete_group_removes_memberships_keeps_users(emulator_client: httpx.AsyncClient) -> None:
    await upsert_user(emulator_client, {"id": "u1", "groups": [{"id": "g1"}, {"id": "g2"}]})
    response = await emulator_client.delete("/groups/g1")
    assert response.json() == {"object": "deleted", "id": "g1"}
    user = (await emulator_client.get("/users/u1", params={"expand": "memberships"})).json()
    assert [m["group_id"] for m in user["memberships"]] == ["g2"]
    assert (await emulator_client.delete("/groups/g1")).json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(delete_status=204)])
async def test_delete_status_204_has_no_body(emulator_client: httpx.AsyncClient) -> None:
    await upsert_user(emulator_client, {"id": "u1", "groups": [{"id": "g1"}]})
    for path in ("/group_memberships?user_id=u1&group_id=g1", "/users/u1", "/groups/g1"):
        response = await emulator_client.delete(path)
        assert response.status_code == 204
        assert response.content == b""


async def test_delete_one_membership(emulator_client: httpx.AsyncClient) -> None:
    await upsert_user(emulator_client, {"id": "u1", "groups": [{"id": "g1"}, {"id": "g2"}]})
    response = await emulator_client.delete("/group_memberships", params={"user_id": "u1", "group_id": "g1"})
    assert response.json() == {"object": "deleted", "user_id": "u1", "group_id": "g1"}
    again = await emulator_client.delete("/group_memberships", params={"user_id": "u1", "group_id": "g1"})
    assert again.status_code == 404
    missing = await emulator_client.delete("/group_memberships", params={"user_id": "u1"})
    assert missing.status_code == 400
    listed = (await emulator_client.get("/group_memberships", params={"user_id": "u1"})).json()["data"]
    assert [(m["user_id"], m["group_id"]) for m in listed] == [("u1", "g2")]


@pytest.mark.parametrize(
    ("user_id", "encoded"),
    [
        ("a/b", "a%2Fb"),
        ("../groups/x", "..%2Fgroups%2Fx"),
        ("x?y=1", "x%3Fy%3D1"),
        ("#", "%23"),
        ("jane doe@example.com", "jane%20doe%40example.com"),
        ("ünïcødé-用户", "%C3%BCn%C3%AFc%C3%B8d%C3%A9-%E7%94%A8%E6%88%B7"),
        ("100%", "100%25"),
        ("a+b", "a%2Bb"),
    ],
)
async def test_percent_encoded_ids_address_exactly_that_id(
    emulator_client: httpx.AsyncClient, emulator_app: Any, user_id: str, encoded: str
) -> None:
    await upsert_user(emulator_client, {"id": user_id, "attributes": {"n": 1}, "groups": [{"id": user_id}]})
    await upsert_user(emulator_client, {"id": "x", "attributes": {"decoy": True}})
    response = await emulator_client.get(f"/users/{encoded}")
    assert response.status_code == 200
    assert response.json()["id"] == user_id
    assert response.json()["attributes"] == {"n": 1}
    assert (await emulator_client.get(f"/groups/{encoded}")).json()["id"] == user_id
    assert (await emulator_client.delete(f"/users/{encoded}")).json() == {"object": "deleted", "id": user_id}
    assert set(emulator_app.state.emulator.store.users) == {"x"}
    log = (await emulator_client.get("/__emulator/requests")).json()["log"]
    assert log[-1] == {"method": "DELETE", "path": "/users/{id}", "id": user_id, "status": 200, "fault": None, "time": TS}
