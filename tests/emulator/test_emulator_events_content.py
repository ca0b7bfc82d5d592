"""Contract tests: events, attribute and event definitions, seeded content endpoints."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from userflow_assets.emulator import EmulatorConfig


async def test_event_is_recorded_with_backdated_time(emulator_client: httpx.AsyncClient) -> None:
    response = await emulator_client.post(
        "/events",
        json={"name": "report.created", "user_id": "u1", "attributes": {"pages": 3, "kind": {"set": "pdf", "data_type": "string"}}, "time": "2024-05-01T10:00:00+02:00"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "object": "event",
        "id": "evt_1",
        "name": "report.created",
        "user_id": "u1",
        "group_id": None,
        "attributes": {"pages": 3, "kind": "pdf"},
        "time": "2024-05-01T08:00:00.000Z",
        "created_at": body["created_at"],
    }
    assert body["created_at"] != body["time"]


async def test_events_are_not_idempotent(emulator_client: httpx.AsyncClient) -> None:
    event = {"name": "Signed Up", "user_id": "u1", "time": "2024-05-01T10:00:00Z"}
    first = (await emulator_client.post("/events", json=event)).json()
    second = (await emulator_client.post("/events", json=event)).json()
    assert (first["id"], second["id"]) == ("evt_1", "evt_2")
    listed = (await emulator_client.get("/events", params={"user_id": "u1"})).json()["data"]
    assert [e["id"] for e in listed] == ["evt_1", "evt_2"]


async def test_event_for_unknown_user_and_group_creates_them_empty(emulator_client: httpx.AsyncClient) -> None:
    await emulator_client.post("/events", json={"name": "opened", "user_id": "new-user", "group_id": "new-group"})
    user = (await emulator_client.get("/users/new-user", params={"expand": "memberships"})).json()
    assert (user["attributes"], user["memberships"]) == ({}, [])
    assert (await emulator_client.get("/groups/new-group")).json()["attributes"] == {}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "opened"},
        {"name": "", "user_id": "u1"},
        {"name": "opened!", "user_id": "u1"},
        {"name": "a/b", "user_id": "u1"},
        {"name": 5, "user_id": "u1"},
        {"name": "opened", "user_id": ""},
        {"name": "opened", "user_id": "u1", "time": "yesterday"},
        {"name": "opened", "user_id": "u1", "time": 1714550400},
        {"name": "opened", "user_id": "u1", "attributes": {"n": {"add": 1}}},
        {"name": "opened", "user_id": "u1", "attributes": {"n": {"nested": 1}}},
        {"name": "opened", "user_id": "u1", "extra": 1},
    ],
)
async def test_invalid_events_are_400_and_not_recorded(emulator_app: Starlette, emulator_client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await emulator_client.post("/events", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_params"
    store = emulator_app.state.emulator.store
    assert (store.events, store.users, store.event_definitions) == ({}, {}, {})


async def test_attribute_definitions_infer_types_per_scope(emulator_client: httpx.AsyncClient) -> None:
    await emulator_client.post(
        "/users",
        json={
            "id": "u1",
            "attributes": {"name": "Jane", "signed_up_at": "2019-06-14T16:25:49Z", "seats": 3, "is_admin": False,
                           "tags": ["a"], "external_id": {"set": "12", "data_type": "string"}, "gone": None},
            "memberships": [{"group": {"id": "g1", "attributes": {"companyName": "Acme"}}, "attributes": {"role": "admin"}}],
        },
    )
    await emulator_client.post("/users", json={"id": "u1", "attributes": {"seats": "many"}})  # first write decides
    users = (await emulator_client.get("/attribute_definitions", params={"scope": "user"})).json()
    assert users["data"] == [
        {"object": "attribute_definition", "name": "name", "display_name": "Name", "data_type": "string", "scope": "user"},
        {"object": "attribute_definition", "name": "signed_up_at", "display_name": "Signed up at", "data_type": "datetime", "scope": "user"},
        {"object": "attribute_definition", "name": "seats", "display_name": "Seats", "data_type": "number", "scope": "user"},
        {"object": "attribute_definition", "name": "is_admin", "display_name": "Is admin", "data_type": "boolean", "scope": "user"},
        {"object": "attribute_definition", "name": "tags", "display_name": "Tags", "data_type": "list", "scope": "user"},
        {"object": "attribute_definition", "name": "external_id", "display_name": "External id", "data_type": "string", "scope": "user"},
    ]
    groups = (await emulator_client.get("/attribute_definitions", params={"scope": "group"})).json()["data"]
    assert [(d["name"], d["display_name"], d["scope"]) for d in groups] == [("companyName", "Company name", "group")]
    members = (await emulator_client.get("/attribute_definitions", params={"scope": "group_membership"})).json()["data"]
    assert [(d["name"], d["data_type"]) for d in members] == [("role", "string")]
    everything = (await emulator_client.get("/attribute_definitions", params={"limit": 6})).json()
    assert everything["next_page_url"] == "/attribute_definitions?limit=6&starting_after=user%3Aexternal_id"
    rest = (await emulator_client.get(everything["next_page_url"])).json()["data"]
    assert [(d["scope"], d["name"]) for d in rest] == [("group", "companyName"), ("group_membership", "role")]
    assert (await emulator_client.get("/attribute_definitions", params={"scope": "event"})).status_code == 400


async def test_event_definitions_registered_on_first_event(emulator_client: httpx.AsyncClient) -> None:
    for name in ("signed_up", "report.created", "signed_up", "Signed_Up"):
        await emulator_client.post("/events", json={"name": name, "user_id": "u1"})
    data = (await emulator_client.get("/event_definitions")).json()["data"]
    assert [(d["object"], d["name"], d["display_name"]) for d in data] == [
        ("event_definition", "signed_up", "Signed up"),
        ("event_definition", "report.created", "Report created"),
        ("event_definition", "Signed_Up", "Signed up"),
    ]
    assert set(data[0]) == {"object", "name", "display_name", "created_at"}


async def test_content_list_and_filters(emulator_client: httpx.AsyncClient) -> None:
    everything = (await emulator_client.get("/content")).json()["data"]
    assert [(c["id"], c["type"]) for c in everything] == [
        ("flow-welcome-survey", "flow"),
        ("flow-nps", "flow"),
        ("checklist-getting-started", "checklist"),
        ("checklist-admin-setup", "checklist"),
        ("launcher-help", "launcher"),
    ]
    assert everything[0]["draft_version"] is None and everything[0]["published_version"] is None
    checklists = (await emulator_client.get("/content", params={"type": "checklist", "expand[]": "published_version"})).json()["data"]
    assert [c["published_version"]["tasks"][0]["id"] for c in checklists] == ["task-connect-data", "task-configure-sso"]
    assert (await emulator_client.get("/content", params={"type": "banner"})).status_code == 400


async def test_content_object_includes_both_versions(emulator_client: httpx.AsyncClient) -> None:
    content = (await emulator_client.get("/content/checklist-getting-started")).json()
    assert {k: v for k, v in content.items() if k not in ("draft_version", "published_version")} == {
        "object": "content",
        "id": "checklist-getting-started",
        "type": "checklist",
        "name": "Getting started",
        "created_at": "2024-03-01T11:00:00.000Z",
        "draft_version_id": "checklist-getting-started-v2",
        "published_version_id": "checklist-getting-started-v1",
    }
    assert content["published_version"]["state"] == "published"
    assert [t["name"] for t in content["published_version"]["tasks"]] == [
        "Connect a data source", "Invite a teammate", "Create your first report", "Share a dashboard",
    ]
    assert len(content["draft_version"]["tasks"]) == 5 and content["draft_version"]["published_at"] is None
    assert (await emulator_client.get("/content/nope")).status_code == 404


async def test_content_versions(emulator_client: httpx.AsyncClient) -> None:
    versions = (await emulator_client.get("/content_versions", params={"content_id": "flow-nps"})).json()["data"]
    assert [(v["id"], v["number"], v["state"]) for v in versions] == [("flow-nps-v1", 1, "published"), ("flow-nps-v2", 2, "draft")]
    version = (await emulator_client.get("/content_versions/flow-welcome-survey-v1")).json()
    assert version["questions"][0] == {
        "object": "question",
        "id": "q-role",
        "name": "What is your role?",
        "type": "multiple_choice",
        "required": True,
        "choices": ["Engineer", "Product manager", "Designer", "Other"],
    }
    assert version["tasks"] == []
    assert (await emulator_client.get("/content_versions/nope")).status_code == 404


async def test_checklist_sessions_show_where_users_stopped(emulator_client: httpx.AsyncClient) -> None:
    page = (await emulator_client.get("/content_sessions", params={"content_id": "checklist-getting-started", "limit": 100})).json()
    stopped_after = {s["user_id"]: len(s["task_completions"]) for s in page["data"]}
    assert stopped_after == {f"demo-user-{n + 1}": n % 5 for n in range(8)}
    finished = [s for s in page["data"] if s["completed"]]
    assert [(s["user_id"], s["progress"]) for s in finished] == [("demo-user-5", 1.0)]
    second = page["data"][1]
    assert second["task_completions"] == [{"task_id": "task-connect-data", "completed_at": "2024-03-08T09:12:00.000Z"}]
    assert (second["progress"], second["answers"], second["content"], second["user"]) == (0.25, None, None, None)


async def test_session_expansions(emulator_client: httpx.AsyncClient) -> None:
    await emulator_client.post("/users", json={"id": "demo-user-1", "attributes": {"name": "Demo"}})
    params = [("user_id", "demo-user-1"), ("content_id", "flow-nps"), ("expand[]", "answers"), ("expand[]", "content"), ("expand[]", "user")]
    sessions = (await emulator_client.get("/content_sessions", params=params)).json()["data"]
    assert len(sessions) == 1
    session = sessions[0]
    assert session["content"]["name"] == "NPS survey"
    assert session["user"]["attributes"] == {"name": "Demo"}
    assert [(a["question_id"], a["answer_type"], a["number_value"], a["string_value"]) for a in session["answers"]] == [
        ("q-nps", "number", 4, None),
        ("q-nps-why", "string", None, "Missing exports"),
    ]
    single = (await emulator_client.get(f"/content_sessions/{session['id']}", params={"expand": "version"})).json()
    assert single["version"]["id"] == "flow-nps-v1" and single["answers"] is None


async def test_delete_content_session(emulator_client: httpx.AsyncClient) -> None:
    assert (await emulator_client.delete("/content_sessions/cs-0001")).json() == {"object": "deleted", "id": "cs-0001"}
    assert (await emulator_client.get("/content_sessions/cs-0001")).status_code == 404
    assert (await emulator_client.delete("/content_sessions/cs-0001")).status_code == 404


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(seed_content=False)])
async def test_no_seed_content(emulator_client: httpx.AsyncClient) -> None:
    for path in ("/content", "/content_versions", "/content_sessions"):
        assert (await emulator_client.get(path)).json()["data"] == []


async def test_seed_is_deterministic(emulator_client: httpx.AsyncClient, emulator_app: Starlette) -> None:
    before = (await emulator_client.get("/content_sessions", params={"limit": 100, "expand[]": "answers"})).json()
    await emulator_client.post("/__emulator/reset")
    after = (await emulator_client.get("/content_sessions", params={"limit": 100, "expand[]": "answers"})).json()
    assert before == after
    assert len(before["data"]) == 24
