"""checklist_dropoff: where users stop in each checklist, against a count made here from the API."""

from collections import defaultdict
from typing import Any

from harness import metadata
from mirror_harness import MirrorHarness, utc

from userflow_assets.emulator.store import format_time

DROPOFF_ASSETS = ["mirror_content", "mirror_content_sessions", "checklist_dropoff"]


def expected_dropoff(mirror: MirrorHarness) -> list[tuple[str, int, str, int, int, int]]:
    """(checklist, position, task, reached, completed, stopped here), counted in Python from the API."""
    content = mirror.api("GET", "/content", params={"limit": 100, "type": "checklist"})["data"]
    sessions = mirror.api("GET", "/content_sessions", params={"limit": 100})["data"]
    rows = []
    for checklist in content:
        version = mirror.api("GET", f"/content_versions/{checklist['published_version_id']}")
        tasks = sorted(version["tasks"], key=lambda task: task["position"])
        done: dict[str, set[str]] = defaultdict(set)
        for session in sessions:
            if session["content_id"] == checklist["id"] and not session["is_preview"]:
                done[session["user_id"]] |= {c["task_id"] for c in session["task_completions"]}
        # A user stops at the first task they have not completed (len(tasks): completed them all).
        stops = {user: next((i for i, t in enumerate(tasks) if t["id"] not in ids), len(tasks)) for user, ids in done.items()}
        for index, task in enumerate(tasks):
            reached = sum(1 for stop in stops.values() if stop >= index)
            completed = sum(1 for ids in done.values() if task["id"] in ids)
            stopped = sum(1 for stop in stops.values() if stop == index)
            rows.append((checklist["name"], task["position"], task["name"], reached, completed, stopped))
    return sorted(rows)


def dropoff_rows(mirror: MirrorHarness) -> list[tuple[Any, ...]]:
    return mirror.sql(
        "SELECT checklist, position, task, reached, completed, stopped_here FROM userflow.checklist_dropoff ORDER BY ALL"
    )


def test_dropoff_of_the_seeded_sessions(mirror: MirrorHarness) -> None:
    result = mirror.mirror(DROPOFF_ASSETS)
    rows = dropoff_rows(mirror)
    assert rows == expected_dropoff(mirror)
    # Seeded: user i of 8 completed i mod 5 of the 4 "Getting started" tasks; 2 users ran "Admin setup".
    assert rows == [
        ("Admin setup", 0, "Configure SSO", 2, 2, 0),
        ("Admin setup", 1, "Add billing details", 2, 1, 1),
        ("Getting started", 0, "Connect a data source", 8, 6, 2),
        ("Getting started", 1, "Invite a teammate", 6, 4, 2),
        ("Getting started", 2, "Create your first report", 4, 2, 2),
        ("Getting started", 3, "Share a dashboard", 2, 1, 1),
    ]
    meta = metadata(result, "checklist_dropoff")
    assert (meta["dagster/row_count"], meta["checklists"]) == (6, 2)
    assert meta["dropoff"].splitlines()[:2] == [
        "| checklist | position | task | reached | completed | stopped here |",
        "|---|---|---|---|---|---|",
    ]
    assert "| Getting started | 1 | Invite a teammate | 6 | 4 | 2 |" in meta["dropoff"].splitlines()


def test_previews_do_not_count_and_a_users_sessions_add_up(mirror: MirrorHarness) -> None:
    store = mirror.emulator.store.content_sessions
    base = {
        "object": "content_session", "content_id": "checklist-getting-started",
        "version_id": "checklist-getting-started-v1", "group_id": None, "completed": False,
        "completed_at": None, "progress": 0.25, "_answers": [],
    }
    at = format_time(utc(2025, 1, 1))
    # A preview that completes everything, by someone new: not a user's progress.
    store["cs-preview"] = {
        **base, "id": "cs-preview", "user_id": "designer", "is_preview": True, "created_at": at, "last_activity_at": at,
        "task_completions": [{"task_id": t, "completed_at": at} for t in
                             ("task-connect-data", "task-invite-teammate", "task-first-report", "task-share-dashboard")],
    }
    # demo-user-1 (no task done so far) completes the first two tasks in a second session.
    store["cs-again"] = {
        **base, "id": "cs-again", "user_id": "demo-user-1", "is_preview": False, "created_at": at,
        "last_activity_at": at,
        "task_completions": [{"task_id": t, "completed_at": at} for t in ("task-connect-data", "task-invite-teammate")],
    }
    mirror.mirror(DROPOFF_ASSETS)
    rows = dropoff_rows(mirror)
    assert rows == expected_dropoff(mirror)
    getting_started = [r[3:] for r in rows if r[0] == "Getting started"]
    assert getting_started == [(8, 7, 1), (7, 5, 2), (5, 2, 3), (2, 1, 1)]
