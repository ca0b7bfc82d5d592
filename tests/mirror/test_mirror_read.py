"""The read side against the emulator's seeded content: every table, its rows, its metadata."""

import json
from pathlib import Path

import duckdb
import httpx
import pytest
from harness import held_elsewhere, metadata
from mirror_harness import MirrorHarness

from userflow_assets import duckdb_files
from userflow_assets.mirror import MirrorDatabase
from userflow_assets.mirror.store import StagedTables
from userflow_assets.mirror.tables import GROUPS, USERS

READS = [
    "mirror_users",
    "mirror_groups",
    "mirror_attribute_definitions",
    "mirror_event_definitions",
    "mirror_content",
    "mirror_content_sessions",
]


def seed_people(mirror: MirrorHarness) -> None:
    """Three users, two groups (one membership with a role), one event, all through the API."""
    mirror.api(
        "POST",
        "/users",
        json={
            "id": "u1",
            "attributes": {"email": "ann@example.com", "name": "Ann", "plan": "pro"},
            "memberships": [{"group": {"id": "g1", "attributes": {"name": "Acme"}}, "attributes": {"role": "admin"}}],
        },
    )
    mirror.api("POST", "/users", json={"id": "u2", "attributes": {"email": "bo@example.com"}, "groups": [{"id": "g1"}, {"id": "g2"}]})
    mirror.api("POST", "/users", json={"id": "u/3", "attributes": {"name": "Cy | Doe"}})
    mirror.api("POST", "/events", json={"name": "report_created", "user_id": "u1"})


def test_every_read_asset_materializes_with_exact_counts(mirror: MirrorHarness) -> None:
    seed_people(mirror)
    result = mirror.mirror(READS)
    assert result.success
    expected = {
        "mirror_users": {"rows_users": 3, "rows_memberships": 3},
        "mirror_groups": {"rows_groups": 2},
        "mirror_attribute_definitions": {"rows_attribute_definitions": 5},
        "mirror_event_definitions": {"rows_event_definitions": 1},
        "mirror_content": {
            "rows_content": 5, "rows_content_versions": 10, "rows_content_questions": 9, "rows_content_tasks": 13,
        },
        "mirror_content_sessions": {
            "rows_content_sessions": 24, "rows_content_session_answers": 17,
            "rows_content_session_task_completions": 16,
        },
    }
    for asset, counts in expected.items():
        meta = metadata(result, asset)
        assert {k: meta[k] for k in counts} == counts, asset
    # One page per list; content is two lists (content, versions).
    requests = {asset: metadata(result, asset)["userflow_requests"] for asset in READS}
    assert requests == {a: 2 if a == "mirror_content" else 1 for a in READS}
    assert metadata(result, "mirror_content_sessions")["mode"] == "full"
    assert metadata(result, "mirror_users")["dagster/table_name"] == "userflow.users"


def test_users_groups_and_memberships_rows(mirror: MirrorHarness) -> None:
    seed_people(mirror)
    mirror.mirror(["mirror_users", "mirror_groups"])
    users = mirror.sql("SELECT id, email, name, attributes::VARCHAR FROM userflow.users ORDER BY id")
    assert [u[:3] for u in users] == [("u/3", None, "Cy | Doe"), ("u1", "ann@example.com", "Ann"), ("u2", "bo@example.com", None)]
    assert json.loads(users[1][3]) == {"email": "ann@example.com", "name": "Ann", "plan": "pro"}
    memberships = mirror.sql("SELECT user_id, group_id, attributes::VARCHAR FROM userflow.memberships ORDER BY ALL")
    assert memberships == [("u1", "g1", '{"role":"admin"}'), ("u2", "g1", "{}"), ("u2", "g2", "{}")]
    assert mirror.sql("SELECT id, name FROM userflow.groups ORDER BY id") == [("g1", "Acme"), ("g2", None)]
    created = mirror.sql("SELECT typeof(created_at), count(*) FROM userflow.users GROUP BY 1")
    assert created == [("TIMESTAMP WITH TIME ZONE", 3)]


def test_definitions_rows(mirror: MirrorHarness) -> None:
    seed_people(mirror)
    mirror.mirror(["mirror_attribute_definitions", "mirror_event_definitions"])
    assert mirror.sql("SELECT scope, name, data_type FROM userflow.attribute_definitions ORDER BY ALL") == [
        ("group", "name", "string"),
        ("group_membership", "role", "string"),
        ("user", "email", "string"),
        ("user", "name", "string"),
        ("user", "plan", "string"),
    ]
    assert mirror.sql("SELECT name, display_name FROM userflow.event_definitions") == [("report_created", "Report created")]


def test_content_versions_questions_and_tasks(mirror: MirrorHarness) -> None:
    mirror.mirror(["mirror_content"])
    assert mirror.sql("SELECT type, count(*) FROM userflow.content GROUP BY 1 ORDER BY 1") == [
        ("checklist", 2), ("flow", 2), ("launcher", 1)
    ]
    assert mirror.sql(
        "SELECT position, task_id, name FROM userflow.content_tasks WHERE version_id = 'checklist-getting-started-v2' "
        "ORDER BY position"
    ) == [
        (0, "task-connect-data", "Connect a data source"),
        (1, "task-invite-teammate", "Invite a teammate"),
        (2, "task-first-report", "Create your first report"),
        (3, "task-share-dashboard", "Share a dashboard"),
        (4, "task-schedule-digest", "Schedule a weekly digest"),
    ]
    assert mirror.sql(
        "SELECT question_id, type, required, choices->>'$[1]' FROM userflow.content_questions "
        "WHERE version_id = 'flow-welcome-survey-v1' ORDER BY position"
    ) == [("q-role", "multiple_choice", True, "Product manager"), ("q-goal", "text", False, None)]
    assert mirror.sql(
        "SELECT state, count(*), count(published_at) FROM userflow.content_versions GROUP BY 1 ORDER BY 1"
    ) == [("draft", 5, 0), ("published", 5, 5)]


def test_sessions_answers_and_completions_rows(mirror: MirrorHarness) -> None:
    mirror.mirror(["mirror_content_sessions"])
    # The NPS score of demo-user-3 (index 2): (2 * 3 + 4) % 11 = 10, and the reason given.
    answers = mirror.sql(
        "SELECT a.question_id, a.answer_type, a.number_value, a.string_value FROM userflow.content_session_answers a "
        "JOIN userflow.content_sessions s ON s.id = a.session_id "
        "WHERE s.content_id = 'flow-nps' AND s.user_id = 'demo-user-3' ORDER BY a.created_at"
    )
    assert answers == [("q-nps", "number", 10.0, None), ("q-nps-why", "string", None, "Fast setup")]
    done = mirror.sql(
        "SELECT s.user_id, s.progress, s.completed, count(tc.task_id) FROM userflow.content_sessions s "
        "LEFT JOIN userflow.content_session_task_completions tc ON tc.session_id = s.id "
        "WHERE s.content_id = 'checklist-getting-started' GROUP BY ALL ORDER BY s.user_id"
    )
    assert done == [
        (f"demo-user-{i + 1}", (i % 5) / 4, i % 5 == 4, i % 5) for i in range(8)
    ]


def test_failed_read_keeps_the_previous_table(mirror: MirrorHarness) -> None:
    seed_people(mirror)
    mirror.mirror(["mirror_users"])
    mirror.api("POST", "/users", json={"id": "u4", "attributes": {"name": "Dee"}})
    # Both attempts of the first page fail: the asset fails, the stored table stays whole.
    httpx.post(
        f"{mirror.url}/__emulator/faults", json={"next": ["500", "500"], "path_prefix": "/users", "method": "GET"}
    ).raise_for_status()
    result = mirror.mirror(["mirror_users"], raise_on_error=False)
    assert not result.success
    assert mirror.sql("SELECT count(*) FROM userflow.users") == [(3,)]
    assert mirror.sql("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '\\_load\\_%' ESCAPE '\\'") == [(0,)]
    assert mirror.mirror(["mirror_users"]).success
    assert mirror.sql("SELECT count(*) FROM userflow.users") == [(4,)]


def test_staged_rows_go_in_chunks_and_a_failure_mid_walk_keeps_the_old_tables(tmp_path: Path) -> None:
    db = MirrorDatabase(database=str(tmp_path / "w.duckdb"))
    with StagedTables(db, "userflow", [USERS, GROUPS], "run-1", chunk_rows=2) as staged:
        staged.add("users", [("a", None, None, "{}", "2024-01-01T00:00:00Z")])
        staged.add("groups", [("g", "G", "{}", None)])
        assert staged.replace() == {"users": 1, "groups": 1}
    with (
        pytest.raises(RuntimeError, match="walk broke"),
        StagedTables(db, "userflow", [USERS, GROUPS], "run-2", chunk_rows=2) as staged,
    ):
        staged.add("users", [(f"b{i}", None, None, "{}", None) for i in range(5)])
        assert staged.chunks_written == 1  # the rows already reached the staging table
        raise RuntimeError("walk broke")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert con.execute("SELECT id FROM userflow.users").fetchall() == [("a",)]
        tables = con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()
    assert tables == [("groups",), ("users",)]


def test_a_chunk_waits_while_a_sync_reads_the_warehouse_and_lets_it_go_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.duckdb"
    db = MirrorDatabase(database=str(path))
    with StagedTables(db, "userflow", [USERS], "run-1", chunk_rows=2) as staged:
        # Another process reads the warehouse (a sync's query), holding the file meanwhile.
        reader = held_elsewhere(path, read_only=True)
        waits: list[float] = []

        def reader_finishes_instead_of_sleeping(seconds: float) -> None:
            waits.append(seconds)
            reader.communicate("\n", timeout=60)

        monkeypatch.setattr(duckdb_files, "sleep", reader_finishes_instead_of_sleeping)
        staged.add("users", [(f"u{i}", None, None, "{}", None) for i in range(2)])  # a chunk: written now
        assert waits == [duckdb_files.LOCK_FIRST_WAIT_S] and staged.chunks_written == 1
        assert staged.replace() == {"users": 2}
    with duckdb.connect(str(path), read_only=True) as con:  # let go: another process may read it
        assert con.execute("SELECT count(*) FROM userflow.users").fetchone() == (2,)
