"""Incremental reading of content sessions: newest first, stopping at what is already stored."""

from harness import metadata
from mirror_harness import MirrorHarness, add_sessions, utc

from userflow_assets.emulator.store import format_time

SEEDED = 24
SESSIONS = "GET /content_sessions"


def run_sessions(mirror: MirrorHarness, **config: object) -> dict[str, object]:
    result = mirror.mirror(["mirror_content_sessions"], sessions=dict(config) or None)
    return metadata(result, "mirror_content_sessions")


def test_second_run_reads_only_new_sessions(mirror: MirrorHarness) -> None:
    add_sessions(mirror.emulator, 250, utc(2025, 1, 1))
    first = run_sessions(mirror)
    assert (first["mode"], first["sessions_read"], first["rows_content_sessions"]) == ("full", 274, 274)
    assert mirror.requests(SESSIONS) == 3  # 274 sessions, 100 a page

    new = add_sessions(mirror.emulator, 5, utc(2025, 6, 1), user_prefix="late-user")
    second = run_sessions(mirror)
    # The five new ones plus the newest already stored (the boundary is re-read, never skipped).
    assert (second["mode"], second["sessions_read"], second["rows_content_sessions"]) == ("incremental", 6, 279)
    assert second["userflow_requests"] == 1
    assert mirror.requests(SESSIONS) == 4
    assert second["read_since"] == "2025-01-01T04:09:00+00:00"
    stored = {row[0] for row in mirror.sql("SELECT id FROM userflow.content_sessions")}
    assert set(new) <= stored
    assert mirror.sql("SELECT count(DISTINCT id) FROM userflow.content_sessions") == [(279,)]

    third = run_sessions(mirror)
    assert (third["sessions_read"], third["rows_content_sessions"], third["userflow_requests"]) == (1, 279, 1)


def test_reread_window_refreshes_recent_sessions_only(mirror: MirrorHarness) -> None:
    ids = add_sessions(mirror.emulator, 250, utc(2025, 1, 1))
    run_sessions(mirror)
    store = mirror.emulator.store.content_sessions
    # Progress made after the first read: one session inside the window, one before it.
    for index in (200, 100):
        store[ids[index]]["task_completions"] = []
        store[ids[index]]["progress"] = 0.5
        store[ids[index]]["_answers"] = [
            {
                "object": "content_session_answer", "id": f"{ids[index]}-q-role", "question_id": "q-role",
                "question_name": "What is your role?", "answer_type": "string", "number_value": None,
                "string_value": "Designer", "list_value": None, "created_at": format_time(utc(2025, 2, 1)),
            }
        ]
    meta = run_sessions(mirror, reread_days=1 / 24)
    # Newest stored is 04:09; an hour before is 03:09, i.e. sessions 189..249.
    assert meta["sessions_read"] == 61
    assert meta["mode"] == "incremental"
    progress = dict(mirror.sql(f"SELECT id, progress FROM userflow.content_sessions WHERE id IN ('{ids[200]}', '{ids[100]}')"))
    assert progress == {ids[200]: 0.5, ids[100]: 0.0}
    answers = mirror.sql("SELECT session_id FROM userflow.content_session_answers WHERE string_value = 'Designer' AND session_id LIKE 'cs-x%'")
    assert answers == [(ids[200],)]
    assert meta["rows_content_sessions"] == 274


def test_full_refresh_reads_everything_and_drops_deleted_sessions(mirror: MirrorHarness) -> None:
    run_sessions(mirror)
    mirror.api("DELETE", "/content_sessions/cs-0001")
    incremental = run_sessions(mirror)
    assert incremental["rows_content_sessions"] == SEEDED  # a deleted old session is not noticed incrementally
    full = run_sessions(mirror, full_refresh=True)
    assert (full["mode"], full["sessions_read"], full["rows_content_sessions"]) == ("full", SEEDED - 1, SEEDED - 1)
    assert mirror.sql("SELECT count(*) FROM userflow.content_sessions WHERE id = 'cs-0001'") == [(0,)]
    # cs-0001 was demo-user-1's "Getting started" session, which had no completions; answers stay whole.
    assert mirror.sql("SELECT count(*) FROM userflow.content_session_answers") == [(17,)]
