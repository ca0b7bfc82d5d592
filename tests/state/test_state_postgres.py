"""What only the Postgres state does: schema versions upgraded in place, a password kept out
of every message, the per-object-type lock, and fetching only the staged IDs' state."""

import duckdb
import pytest

from userflow_assets.state.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresState, StateBusy, StateUnavailable
from userflow_assets.state.types import Event, Failure, Link, Pending, Record, Sent


def rec(record_id: str, fallback_id: str | None = None) -> Record:
    return Record(record_id, "h", "{}", None, record_id if fallback_id is None else None, fallback_id)


def test_an_older_schema_is_upgraded_in_place_and_says_so(postgres_url: str, postgres) -> None:  # type: ignore[no-untyped-def]
    database = postgres_url.rsplit("/", 1)[1]
    postgres.psql(MIGRATIONS[1][1] + "; CREATE TABLE sync.schema_version (version integer PRIMARY KEY, "
                  "applied_at timestamp NOT NULL); INSERT INTO sync.schema_version VALUES (1, now());"
                  "INSERT INTO sync.records VALUES ('user', 'u1', 'h', '{}', NULL, 'u1', NULL, now(), 'old-run')",
                  database=database)
    state = PostgresState(postgres_url)
    assert state.schema_version() == 1
    notes = state.ensure_schema()
    assert notes == [f"sync state at {state.where}: schema upgraded in place from version 1 to 3 "
                     "(the sync log, sync.log; the runs written back to the warehouse, sync.log_written)"]
    assert state.schema_version() == SCHEMA_VERSION
    assert state.record_counts("user") == (1, 0), "the older schema's rows stay"
    assert state.ensure_schema() == [], "an up-to-date schema is left alone"
    fresh = PostgresState(postgres.url(postgres.create_database(f"{database}_new").rsplit("/", 1)[1]))
    assert fresh.ensure_schema() == [f"sync state at {fresh.where}: schema created (version {SCHEMA_VERSION})"]


def test_a_password_never_reaches_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError) as in_url:
        PostgresState("postgresql://sync:hunter2-in-url@db.internal:5432/userflow")
    assert "hunter2" not in str(in_url.value) and "db.internal:5432/userflow" in str(in_url.value)
    state = PostgresState("postgresql://sync@127.0.0.1:1/userflow", password="s3cret-from-env")
    with pytest.raises(StateUnavailable) as unreachable:
        state.record_counts("user")
    assert "s3cret-from-env" not in str(unreachable.value) and "127.0.0.1:1/userflow" in str(unreachable.value)


def test_the_lock_is_per_object_type_and_freed_with_its_session(postgres_url: str) -> None:
    state = PostgresState(postgres_url)
    state.ensure_schema()
    with state.exclusive("user", "run one"):
        with state.exclusive("group", "run two"):
            pass  # another object type is free
        with pytest.raises(StateBusy, match=r"userflow_assets run one from .* since"):
            with PostgresState(postgres_url).exclusive("user", "run three"):
                pass
    with state.exclusive("user", "run four"):
        pass  # released when the block ended


def test_an_incremental_plan_fetches_only_the_staged_ids_and_every_failure(postgres_url: str) -> None:
    state = PostgresState(postgres_url)
    state.ensure_schema()
    state.checkpoint("user", "r1", [rec("u1"), rec("u2"), rec("ann@x", fallback_id="ann@x"), rec("far")], [],
                     links=[Link("bob@x", "u9", "keep"), Link("cat@x", "u8", "keep")])
    state.checkpoint("user", "r1", [], [Failure(Record("u7", "h", "{}", None, "u7", "dan@x"), 500, "x", "boom")])
    with duckdb.connect() as con:
        con.execute("CREATE TABLE staged AS SELECT * FROM (VALUES ('u1', NULL), ('u3', 'ann@x'), ('u4', 'bob@x')) t(id, fallback_id)")
        state.expose_records(con, "user", "SELECT id FROM staged UNION ALL SELECT fallback_id FROM staged")
        assert sorted(con.execute("SELECT id FROM state_records").fetchall()) == [("ann@x",), ("u1",)]
        assert con.execute("SELECT id FROM state_failures").fetchall() == [("u7",)]
        assert con.execute("SELECT fallback_id FROM state_links").fetchall() == [("bob@x",)]
        state.expose_records(con, "user")
        assert con.execute("SELECT count(*) FROM state_records").fetchone() == (4,)


def test_an_events_plan_fetches_only_its_events_sent_keys_and_users(postgres_url: str) -> None:
    state = PostgresState(postgres_url)
    state.ensure_schema()
    state.checkpoint("user", "r1", [rec("u1"), rec("u2"), rec("u3")], [])
    sent = [Sent(Event(k, "Signed Up", u, None, None, "{}", "h"), "sent", None) for k, u in (("e1", "u1"), ("e2", "u2"))]
    state.checkpoint_events("r1", sent, [Pending(Event("e9", "Waited", "u3", None, None, "{}", "h"), "waiting")])
    with duckdb.connect() as con:
        con.execute("CREATE TABLE planned AS SELECT * FROM (VALUES ('e1', 'u1'), ('e5', 'u9')) t(key, user_id)")
        state.expose_events(con, "SELECT key, user_id FROM planned")
        assert con.execute("SELECT key FROM state_sent_events").fetchall() == [("e1",)]
        assert sorted(con.execute("SELECT id FROM state_synced_users").fetchall()) == [("u1",), ("u3",)]
        assert con.execute("SELECT key FROM state_pending_events").fetchall() == [("e9",)]
    assert sorted(state.sent_event_names()) == ["Signed Up"]


def backend_pid(state: PostgresState) -> int:
    return state._rows("SELECT pg_backend_pid()")[0][0]


def test_a_committed_session_is_kept_for_the_next_transaction(postgres_url: str, postgres) -> None:  # type: ignore[no-untyped-def]
    # Opening an ADBC session costs about 60 ms; a step makes dozens of state calls.
    state = PostgresState(postgres_url)
    state.ensure_schema()
    first = backend_pid(state)
    state.record_counts("user")
    assert backend_pid(PostgresState(postgres_url)) == first, "another instance for the same URL reuses it too"
    # A session the server ended meanwhile is replaced, not failed on.
    # With a timeout, pg_terminate_backend returns once the backend has exited.
    postgres.psql(f"SELECT pg_terminate_backend({first}, 60000)", database=postgres_url.rsplit("/", 1)[1])
    assert state.record_counts("user") == (0, 0)
    second = backend_pid(state)
    assert second != first
    # A failed transaction's session is closed, never kept.
    with pytest.raises(StateUnavailable):
        state._rows("SELECT 1 / 0")
    assert backend_pid(state) not in (first, second)
