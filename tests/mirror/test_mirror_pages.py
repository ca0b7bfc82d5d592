"""The read side holds exactly what Userflow holds, across several pages of each list."""

import json

import httpx
from harness import metadata
from mirror_harness import MirrorHarness

USERS = 250  # three pages of 100
GROUPS = 120  # two pages


def seed(mirror: MirrorHarness) -> None:
    for i in range(USERS):
        groups = [{"id": f"g{i % GROUPS:03d}", "attributes": {"name": f"Group {i % GROUPS}"}}]
        if i % 3 == 0:
            groups.append({"id": f"g{(i + 7) % GROUPS:03d}"})
        attributes = {"email": f"user{i}@example.com", "seats": i, "vip": i % 5 == 0, "tags": ["a", str(i % 4)]}
        mirror.api("POST", "/users", json={"id": f"u{i:03d}", "attributes": attributes, "groups": groups})


def test_tables_equal_the_emulator_across_pages(mirror: MirrorHarness) -> None:
    seed(mirror)
    result = mirror.mirror(["mirror_users", "mirror_groups"])
    state = httpx.get(f"{mirror.url}/__emulator/state", timeout=30).json()
    held_users = {u["id"]: u["attributes"] for u in state["users"]}
    mirrored_users = {i: json.loads(a) for i, a in mirror.sql("SELECT id, attributes::VARCHAR FROM userflow.users")}
    assert len(held_users) == USERS and mirrored_users == held_users
    held_memberships = {(m["user_id"], m["group_id"], json.dumps(m["attributes"])) for m in state["memberships"]}
    mirrored_memberships = {
        (u, g, json.dumps(json.loads(a)))
        for u, g, a in mirror.sql("SELECT user_id, group_id, attributes::VARCHAR FROM userflow.memberships")
    }
    assert len(held_memberships) == USERS + (USERS + 2) // 3 and mirrored_memberships == held_memberships
    held_groups = {g["id"]: g["attributes"].get("name") for g in state["groups"]}
    assert dict(mirror.sql("SELECT id, name FROM userflow.groups")) == held_groups
    assert len(held_groups) == GROUPS
    # Each list was walked page by page: 100 per page.
    assert metadata(result, "mirror_users")["userflow_requests"] == 3
    assert metadata(result, "mirror_groups")["userflow_requests"] == 2
