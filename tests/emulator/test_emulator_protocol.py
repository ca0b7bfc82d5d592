"""Contract tests: auth, version header, routing errors, lists and pagination."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from userflow_assets.emulator import EmulatorConfig


def raw_client(app: Starlette, headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator", headers=headers)


async def create_users(client: httpx.AsyncClient, ids: list[str]) -> None:
    for user_id in ids:
        response = await client.post("/users", json={"id": user_id, "attributes": {"email": f"{user_id}@example.com"}})
        assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "uf_emulator_key"}, {"Authorization": "Basic uf_emulator_key"}],
)
async def test_missing_or_wrong_key_is_401_and_writes_nothing(emulator_app: Starlette, headers: dict[str, str]) -> None:
    async with raw_client(emulator_app, headers) as client:
        response = await client.post("/users", json={"id": "u1"})
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "missing or invalid API key"}}
    assert emulator_app.state.emulator.store.users == {}


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(api_key="custom-key")])
async def test_configured_key_is_the_one_accepted(emulator_app: Starlette) -> None:
    async with raw_client(emulator_app, {"Authorization": "Bearer custom-key"}) as client:
        assert (await client.get("/users")).status_code == 200
    async with raw_client(emulator_app, {"Authorization": "Bearer uf_emulator_key"}) as client:
        assert (await client.get("/users")).status_code == 401


async def test_version_header_absent_or_current_is_accepted_other_is_400(emulator_app: Starlette) -> None:
    auth = {"Authorization": "Bearer uf_emulator_key"}
    async with raw_client(emulator_app, auth) as client:
        assert (await client.get("/users")).status_code == 200
        assert (await client.get("/users", headers={"Userflow-Version": "2020-01-03"})).status_code == 200
        response = await client.get("/users", headers={"Userflow-Version": "2024-01-01"})
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "invalid_params", "message": "unsupported Userflow-Version '2024-01-01'; the only version is 2020-01-03"}
    }


async def test_unknown_route_is_404_and_wrong_method_is_405(emulator_client: httpx.AsyncClient) -> None:
    response = await emulator_client.get("/companies")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no such endpoint: GET /companies"}}
    response = await emulator_client.put("/users/u1", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, DELETE"
    assert response.json() == {"error": {"code": "method_not_allowed", "message": "PUT is not allowed on /users/{id}"}}
    response = await emulator_client.post("/users/u1", json={"id": "u1"})  # the [guess] form is not emulated
    assert response.status_code == 405
    response = await emulator_client.get("/__emulator/nothing")
    assert response.json() == {"error": {"code": "not_found", "message": "Not Found"}}


async def test_unknown_query_parameter_is_400(emulator_client: httpx.AsyncClient) -> None:
    response = await emulator_client.get("/users", params={"emial": "x"})
    assert response.json() == {"error": {"code": "invalid_params", "message": "unknown query parameter: emial"}}


async def test_pagination_walks_every_page(emulator_client: httpx.AsyncClient) -> None:
    ids = [f"user_{n}" for n in range(7)]
    await create_users(emulator_client, ids)
    first = (await emulator_client.get("/users", params={"limit": 3})).json()
    assert [u["id"] for u in first["data"]] == ids[:3]
    assert (first["object"], first["has_more"], first["url"]) == ("list", True, "/users")
    assert first["next_page_url"] == "/users?limit=3&starting_after=user_2"
    second = (await emulator_client.get(first["next_page_url"])).json()
    assert [u["id"] for u in second["data"]] == ids[3:6]
    third = (await emulator_client.get(second["next_page_url"])).json()
    assert third == {
        "object": "list",
        "data": [third["data"][0]],
        "has_more": False,
        "url": "/users",
        "next_page_url": None,
    }
    assert third["data"][0]["id"] == "user_6"


async def test_default_limit_is_20_and_bounds_are_enforced(emulator_client: httpx.AsyncClient) -> None:
    await create_users(emulator_client, [f"u{n:02d}" for n in range(25)])
    page = (await emulator_client.get("/users")).json()
    assert len(page["data"]) == 20 and page["has_more"] is True
    assert len((await emulator_client.get("/users", params={"limit": 100})).json()["data"]) == 25
    for bad in ("0", "101", "-1", "ten"):
        response = await emulator_client.get("/users", params={"limit": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid_params"


async def test_next_page_url_encodes_the_cursor_and_keeps_filters(emulator_client: httpx.AsyncClient) -> None:
    await emulator_client.post("/users", json={"id": "a/b c", "attributes": {"email": "same@example.com"}})
    await emulator_client.post("/users", json={"id": "other", "attributes": {"email": "else@example.com"}})
    await emulator_client.post("/users", json={"id": "z", "attributes": {"email": "same@example.com"}})
    page = (await emulator_client.get("/users", params={"email": "same@example.com", "limit": 1})).json()
    assert page["next_page_url"] == "/users?limit=1&starting_after=a%2Fb%20c&email=same%40example.com"
    following = (await emulator_client.get(page["next_page_url"])).json()
    assert [u["id"] for u in following["data"]] == ["z"]
    assert following["has_more"] is False


async def test_deleted_cursor_is_400(emulator_client: httpx.AsyncClient) -> None:
    await create_users(emulator_client, ["u1", "u2", "u3"])
    page = (await emulator_client.get("/users", params={"limit": 2})).json()
    await emulator_client.delete("/users/u2")
    response = await emulator_client.get(page["next_page_url"])
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "invalid_params", "message": "starting_after: no object with id 'u2' in this list"}}


@pytest.mark.parametrize("param", ["order_by", "order_by[]"])
async def test_order_by_created_at_both_directions(emulator_client: httpx.AsyncClient, param: str) -> None:
    ids = ["c", "a", "b", "d"]
    await create_users(emulator_client, ids)
    ascending = (await emulator_client.get("/users", params={param: "created_at"})).json()
    assert [u["id"] for u in ascending["data"]] == ids
    descending = (await emulator_client.get("/users", params={param: "-created_at", "limit": 2})).json()
    assert [u["id"] for u in descending["data"]] == ["d", "b"]
    rest = (await emulator_client.get(descending["next_page_url"])).json()
    assert [u["id"] for u in rest["data"]] == ["a", "c"]
    bad = await emulator_client.get("/users", params={param: "email"})
    assert bad.status_code == 400


async def test_filter_by_email(emulator_client: httpx.AsyncClient) -> None:
    await create_users(emulator_client, ["u1", "u2"])
    page = (await emulator_client.get("/users", params={"email": "u2@example.com"})).json()
    assert [u["id"] for u in page["data"]] == ["u2"]
    assert (await emulator_client.get("/users", params={"email": "nobody@example.com"})).json()["data"] == []


async def test_group_and_membership_lists(emulator_client: httpx.AsyncClient) -> None:
    await emulator_client.post("/users", json={"id": "u1", "groups": [{"id": "g1"}, {"id": "g/2"}]})
    await emulator_client.post("/users", json={"id": "u2", "groups": [{"id": "g1"}]})
    groups = (await emulator_client.get("/groups", params={"expand": "users"})).json()
    assert [(g["id"], [u["id"] for u in g["users"]]) for g in groups["data"]] == [("g1", ["u1", "u2"]), ("g/2", ["u1"])]
    page = (await emulator_client.get("/group_memberships", params={"limit": 1})).json()
    assert page["data"] == [{"object": "group_membership", "user_id": "u1", "group_id": "g1", "attributes": {}, "created_at": page["data"][0]["created_at"]}]
    second = (await emulator_client.get(page["next_page_url"])).json()
    assert [(m["user_id"], m["group_id"]) for m in second["data"]] == [("u1", "g/2")]
    third = (await emulator_client.get(second["next_page_url"] + "&expand=group")).json()
    assert [(m["user_id"], m["group"]["id"]) for m in third["data"]] == [("u2", "g1")]
    by_group = (await emulator_client.get("/group_memberships", params={"group_id": "g1"})).json()
    assert [m["user_id"] for m in by_group["data"]] == ["u1", "u2"]


async def test_list_expand_applies_to_every_item(emulator_client: httpx.AsyncClient) -> None:
    await emulator_client.post("/users", json={"id": "u1", "memberships": [{"group": {"id": "g1"}, "attributes": {"role": "admin"}}]})
    page = (await emulator_client.get("/users", params={"expand[]": "memberships"})).json()
    member: dict[str, Any] = page["data"][0]["memberships"][0]
    assert (member["group_id"], member["attributes"]) == ("g1", {"role": "admin"})
