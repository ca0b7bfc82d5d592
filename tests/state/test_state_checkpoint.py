"""The sync state on both backends (a real DuckDB file, a real Postgres): checkpoints of
records and events (each one transaction), cursors, and the learned rate limits.

Clocks are set by the test (`now`), so timestamps are asserted exactly.
"""

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as pg
import duckdb
import pytest

from userflow_assets import failpoints
from userflow_assets.state import types
from userflow_assets.state.postgres import PostgresState
from userflow_assets.state.store import DuckDBState, SyncState
from userflow_assets.state.types import Event, Failure, LearnedLimits, Link, Pending, Record, Sent

T0 = datetime(2026, 3, 1, 12, 0, 0)
BACKENDS = ["duckdb", "postgres"]


@dataclass
class Clock:
    now: datetime = T0

    def tick(self, seconds: int = 60) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class St:
    state: SyncState
    clock: Clock
    q: Callable[..., list[tuple[Any, ...]]]  # (sql with ? placeholders, params): rows, read by a connection of its own
    work: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]  # a work database for expose_*


def duckdb_reader(path: Path) -> Callable[..., list[tuple[Any, ...]]]:
    def q(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(path)) as con:
            return con.execute(sql, params or []).fetchall()

    return q


def postgres_reader(url: str) -> Callable[..., list[tuple[Any, ...]]]:
    def q(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        numbered = iter(range(1, 100))
        with pg.connect(url) as con, con.cursor() as cur:
            cur.execute(re.sub(r"\?", lambda _: f"${next(numbered)}", sql), parameters=tuple(params) if params else None)
            return list(cur.fetchall())

    return q


def open_state(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[SyncState, Callable[..., Any], Path]:
    """A fresh state of `backend`, a reader of it, and the work database file the planner would use."""
    work = tmp_path / "work.duckdb"
    if backend == "duckdb":
        return DuckDBState(lambda: duckdb.connect(str(work))), duckdb_reader(work), work
    url = request.getfixturevalue("postgres_url")
    return PostgresState(url), postgres_reader(url), work


@pytest.fixture(params=BACKENDS)
def st(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> St:
    clock = Clock()
    monkeypatch.setattr(types, "utcnow", lambda: clock.now)
    from userflow_assets.state import store

    monkeypatch.setattr(store, "utcnow", lambda: clock.now)
    state, q, work = open_state(request.param, tmp_path, request)
    state.ensure_schema()
    return St(state, clock, q, lambda: duckdb.connect(str(work)))


class Boom(RuntimeError):
    pass


@pytest.fixture
def crash_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Names put in the yielded set make `failpoints.reach` raise there, inside the transaction."""
    armed: set[str] = set()
    real = failpoints.reach

    def reach(name: str) -> None:
        if name in armed:
            raise Boom(name)
        real(name)

    monkeypatch.setattr(failpoints, "reach", reach)
    yield armed


def rec(record_id: str, payload_hash: str = "h1", **fields: Any) -> Record:
    values = {
        "attributes": f'{{"v":"{payload_hash}"}}',
        "memberships": None,
        "primary_id": record_id,
        "fallback_id": None,
        **fields,
    }
    return Record(record_id, payload_hash, **values)


def fail(record: Record, status: int | None = 500, code: str | None = "server_error", message: str = "boom") -> Failure:
    return Failure(record, status, code, message)


RECORD_SQL = (
    "SELECT object_type, id, payload_hash, attributes, memberships, primary_id, fallback_id, synced_at, run_id "
    "FROM sync.records ORDER BY object_type, id"
)
FAILURE_SQL = (
    "SELECT id, payload_hash, attributes, memberships, primary_id, fallback_id, status, code, message, attempts, "
    "first_failed_at, last_failed_at, run_id FROM sync.failures WHERE object_type = ? ORDER BY id"
)


# ---- records ------------------------------------------------------------------------------------


def test_confirmed_records_land_with_their_run_and_time(st: St) -> None:
    ann = rec("u1", "h1", memberships='[{"id":"g1"}]', fallback_id="ann@example.com")
    st.state.checkpoint("user", "run-1", [ann, rec("u2", "h2")], [])
    st.state.checkpoint("group", "run-1", [rec("u1", "hg")], [])
    assert st.q(RECORD_SQL) == [
        ("group", "u1", "hg", '{"v":"hg"}', None, "u1", None, T0, "run-1"),
        ("user", "u1", "h1", '{"v":"h1"}', '[{"id":"g1"}]', "u1", "ann@example.com", T0, "run-1"),
        ("user", "u2", "h2", '{"v":"h2"}', None, "u2", None, T0, "run-1"),
    ]
    assert st.state.record_counts("user") == (2, 0)
    assert st.state.record_counts("group") == (1, 0)


def test_a_later_confirmation_replaces_the_record(st: St) -> None:
    st.state.checkpoint("user", "run-1", [rec("u1", "h1"), rec("u2", "h2")], [])
    later = st.clock.tick()
    st.state.checkpoint("user", "run-2", [rec("u1", "h9", attributes='{"plan":"pro"}')], [])
    assert st.q(RECORD_SQL) == [
        ("user", "u1", "h9", '{"plan":"pro"}', None, "u1", None, later, "run-2"),
        ("user", "u2", "h2", '{"v":"h2"}', None, "u2", None, T0, "run-1"),
    ]


def test_a_failure_counts_its_attempts_and_keeps_the_latest_payload_and_error(st: St) -> None:
    st.state.checkpoint("user", "run-1", [], [fail(rec("u1", "h1"), 500, "server_error", "first")])
    assert st.q(FAILURE_SQL, ["user"]) == [
        ("u1", "h1", '{"v":"h1"}', None, "u1", None, 500, "server_error", "first", 1, T0, T0, "run-1")
    ]
    second = st.clock.tick()
    again = rec("u1", "h2", memberships='[{"id":"g2"}]', fallback_id="ann@example.com")
    st.state.checkpoint("user", "run-2", [], [fail(again, None, None, "connection refused")])
    assert st.q(FAILURE_SQL, ["user"]) == [
        ("u1", "h2", '{"v":"h2"}', '[{"id":"g2"}]', "u1", "ann@example.com", None, None, "connection refused",
         2, T0, second, "run-2")
    ]
    st.state.checkpoint("user", "run-3", [], [fail(again)])
    assert st.q(FAILURE_SQL, ["user"])[0][9] == 3
    assert st.state.record_counts("user") == (0, 1)
    assert st.q(RECORD_SQL) == [], "a failure is never a synced record"


def test_a_failure_of_a_synced_record_keeps_the_confirmed_record(st: St) -> None:
    st.state.checkpoint("user", "run-1", [rec("u1", "h1")], [])
    st.state.checkpoint("user", "run-2", [], [fail(rec("u1", "h2"))])
    assert st.q("SELECT id, payload_hash, run_id FROM sync.records") == [("u1", "h1", "run-1")]
    assert st.state.record_counts("user") == (1, 1)


def test_a_later_confirmation_removes_the_failure(st: St) -> None:
    st.state.checkpoint("user", "run-1", [], [fail(rec("u1")), fail(rec("u2"))])
    st.state.checkpoint("group", "run-1", [], [fail(rec("u1"))])
    st.state.checkpoint("user", "run-2", [rec("u1", "h3")], [])
    assert [row[0] for row in st.q(FAILURE_SQL, ["user"])] == ["u2"]
    assert [row[0] for row in st.q(FAILURE_SQL, ["group"])] == ["u1"], "only this object type's failure goes"
    assert st.state.record_counts("user") == (1, 1)
    # Failing again after that starts the count over.
    st.state.checkpoint("user", "run-3", [], [fail(rec("u1", "h4"))])
    assert st.q(FAILURE_SQL, ["user"])[0][9] == 1


def test_forget_removes_a_record_and_its_failure(st: St) -> None:
    st.state.checkpoint("user", "run-1", [rec("ann@example.com"), rec("u2"), rec("u3")], [])
    st.state.checkpoint("user", "run-1", [], [fail(rec("ann@example.com", "h2")), fail(rec("u3", "h2"))])
    st.state.checkpoint("group", "run-1", [rec("ann@example.com")], [])
    st.state.checkpoint("user", "run-2", [rec("u1")], [], forget=["ann@example.com", "never-synced"])
    assert [(r[0], r[1]) for r in st.q(RECORD_SQL)] == [
        ("group", "ann@example.com"), ("user", "u1"), ("user", "u2"), ("user", "u3"),
    ]
    assert [row[0] for row in st.q(FAILURE_SQL, ["user"])] == ["u3"]


def test_links_are_recorded_and_a_later_decision_replaces_one(st: St) -> None:
    st.state.checkpoint(
        "user", "run-1", [rec("u1")], [],
        links=[Link("ann@example.com", "u1", "migrate"), Link("bob@example.com", "u2", "keep")],
    )
    st.state.checkpoint("group", "run-1", [], [], links=[Link("ann@example.com", "g1", "keep")])
    later = st.clock.tick()
    st.state.checkpoint("user", "run-2", [], [], links=[Link("bob@example.com", "u7", "migrate")])
    assert st.q("SELECT * FROM sync.links ORDER BY object_type, fallback_id") == [
        ("group", "ann@example.com", "g1", "keep", T0, "run-1"),
        ("user", "ann@example.com", "u1", "migrate", T0, "run-1"),
        ("user", "bob@example.com", "u7", "migrate", later, "run-2"),
    ]


def test_expose_records_shows_one_object_type(st: St) -> None:
    st.state.checkpoint("user", "run-1", [rec("u1")], [fail(rec("u2"))], links=[Link("a@x", "u1", "keep")])
    st.state.checkpoint("group", "run-1", [rec("g1")], [fail(rec("g2"))], links=[Link("b@x", "g1", "keep")])
    with st.work() as con:
        st.state.expose_records(con, "group")
        assert con.execute("SELECT id FROM state_records").fetchall() == [("g1",)]
        assert con.execute("SELECT id, payload_hash FROM state_failures").fetchall() == [("g2", "h1")]
        assert con.execute("SELECT * FROM state_links").fetchall() == [("b@x", "g1")]


def test_a_checkpoint_that_fails_in_its_transaction_leaves_the_state_as_it_was(st: St, crash_at: set[str]) -> None:
    st.state.checkpoint("user", "run-1", [rec("u1"), rec("u2"), rec("ann@example.com")], [fail(rec("u3"))])
    before = {
        "records": st.q("SELECT * FROM sync.records ORDER BY id"),
        "failures": st.q("SELECT * FROM sync.failures ORDER BY id"),
        "links": st.q("SELECT * FROM sync.links"),
    }
    st.clock.tick()
    crash_at.add("state_write")
    with pytest.raises(Boom):
        st.state.checkpoint(
            "user", "run-2",
            confirmed=[rec("u1", "h-new"), rec("u3", "h3"), rec("u4")],  # replace, clear a failure, add
            failed=[fail(rec("u2", "h2")), fail(rec("u3", "h3b")), fail(rec("u5"))],
            forget=["ann@example.com"],
            links=[Link("ann@example.com", "u4", "migrate")],
        )
    after = {
        "records": st.q("SELECT * FROM sync.records ORDER BY id"),
        "failures": st.q("SELECT * FROM sync.failures ORDER BY id"),
        "links": st.q("SELECT * FROM sync.links"),
    }
    assert after == before
    # The file is usable afterwards, and the same batch then commits whole.
    crash_at.clear()
    st.state.checkpoint("user", "run-2", [rec("u4")], [fail(rec("u3", "h3b"))], forget=["ann@example.com"])
    assert [r[1] for r in st.q(RECORD_SQL)] == ["u1", "u2", "u4"]
    assert st.q("SELECT id, attempts FROM sync.failures") == [("u3", 2)]


# ---- events -------------------------------------------------------------------------------------


def event(key: str, payload_hash: str = "e1", user_id: str | None = "u1") -> Event:
    return Event(key, "signed_up", user_id, None, "2026-03-01T12:00:00Z", '{"plan":"pro"}', payload_hash)


PENDING_SQL = (
    "SELECT key, status, user_id, payload_hash, http_status, code, message, attempts, first_at, last_at, run_id "
    "FROM sync.pending_events ORDER BY key"
)


def test_sent_events_land_once_with_their_status(st: St) -> None:
    st.state.checkpoint_events("run-1", [Sent(event("e1"), "sent", "ev_1"), Sent(event("e2"), "possibly_lost", None)], [])
    assert st.q("SELECT * FROM sync.sent_events ORDER BY key") == [
        ("e1", "sent", "signed_up", "ev_1", "e1", T0, "run-1"),
        ("e2", "possibly_lost", "signed_up", None, "e1", T0, "run-1"),
    ]
    assert st.state.event_counts() == {
        "sent": 1, "possibly_lost": 1, "failed": 0, "ambiguous": 0, "waiting": 0, "waiting_unknown": 0,
    }


def test_pending_events_count_attempts_but_waiting_does_not(st: St) -> None:
    st.state.checkpoint_events(
        "run-1", [],
        [
            Pending(event("f"), "failed", 500, "server_error", "boom"),
            Pending(event("a"), "ambiguous", None, None, "timed out"),
            Pending(event("w", user_id="u9"), "waiting"),
            Pending(event("x", user_id="u8"), "waiting_unknown"),
        ],
    )
    assert [(r[0], r[1], r[7]) for r in st.q(PENDING_SQL)] == [
        ("a", "ambiguous", 1), ("f", "failed", 1), ("w", "waiting", 0), ("x", "waiting_unknown", 0),
    ]
    second = st.clock.tick()
    st.state.checkpoint_events(
        "run-2", [],
        [
            Pending(event("f", "e2"), "failed", 503, "unavailable", "again"),
            Pending(event("w", user_id="u9"), "waiting"),
            Pending(event("x", user_id="u8"), "failed", 400, "invalid", "bad"),
        ],
    )
    assert st.q(PENDING_SQL) == [
        ("a", "ambiguous", "u1", "e1", None, None, "timed out", 1, T0, T0, "run-1"),
        ("f", "failed", "u1", "e2", 503, "unavailable", "again", 2, T0, second, "run-2"),
        ("w", "waiting", "u9", "e1", None, None, None, 0, T0, second, "run-2"),
        ("x", "failed", "u8", "e1", 400, "invalid", "bad", 1, T0, second, "run-2"),
    ]
    assert st.state.event_counts() == {
        "sent": 0, "possibly_lost": 0, "failed": 2, "ambiguous": 1, "waiting": 1, "waiting_unknown": 0,
    }


def test_a_sent_event_leaves_the_owed_events(st: St) -> None:
    st.state.checkpoint_events("run-1", [], [Pending(event("e1"), "failed", 500), Pending(event("e2"), "waiting")])
    st.state.checkpoint_events("run-2", [Sent(event("e1"), "sent", "ev_1")], [])
    assert [r[0] for r in st.q(PENDING_SQL)] == ["e2"]
    assert st.q("SELECT key, run_id FROM sync.sent_events") == [("e1", "run-2")]
    assert st.state.event_counts()["sent"] == 1 and st.state.event_counts()["failed"] == 0


def test_an_events_checkpoint_that_fails_in_its_transaction_leaves_the_state_as_it_was(
    st: St, crash_at: set[str]
) -> None:
    st.state.checkpoint_events("run-1", [Sent(event("done"), "sent", "ev_0")], [Pending(event("owed"), "failed", 500)])
    counts = st.state.event_counts()
    before = (st.q("SELECT * FROM sync.sent_events"), st.q(PENDING_SQL))
    st.clock.tick()
    crash_at.add("events_state_write")
    with pytest.raises(Boom):
        st.state.checkpoint_events(
            "run-2",
            [Sent(event("owed"), "sent", "ev_1"), Sent(event("new"), "possibly_lost", None)],
            [Pending(event("later"), "waiting"), Pending(event("owed2"), "ambiguous")],
        )
    assert (st.q("SELECT * FROM sync.sent_events"), st.q(PENDING_SQL)) == before
    assert st.state.event_counts() == counts


# ---- cursors ------------------------------------------------------------------------------------


def test_the_cursor_moves_only_when_advanced(st: St) -> None:
    first = datetime(2026, 3, 1, 9, 0)
    assert st.state.cursor("user", "spec-a") is None
    assert st.state.advance_cursor("user", "run-0") is None, "nothing read yet: nothing to advance to"
    assert st.q("SELECT count(*) FROM sync.cursors") == [(0,)]
    st.state.record_read("user", first, None, "spec-a", "run-1")
    assert st.state.cursor("user", "spec-a") is None, "a read alone does not move the cursor"
    assert st.state.last_read_was_full("user")
    assert st.state.advance_cursor("user", "run-1") == first
    assert st.state.cursor("user", "spec-a") == first
    second = datetime(2026, 3, 1, 10, 0)
    st.state.record_read("user", second, first, "spec-a", "run-2")
    assert not st.state.last_read_was_full("user")
    assert st.state.cursor("user", "spec-a") == first, "the run that read did not settle yet"
    assert st.state.advance_cursor("user", "run-2") == second
    assert st.state.cursor("user", "spec-a") == second
    assert st.q("SELECT object_type, read_started_at, spec_hash, run_id FROM sync.cursors") == [
        ("user", second, "spec-a", "run-2")
    ]
    assert st.state.cursor("group", "spec-a") is None
    assert not st.state.last_read_was_full("group")


def test_a_changed_spec_hash_resets_the_cursor(st: St) -> None:
    first = datetime(2026, 3, 1, 9, 0)
    st.state.record_read("user", first, None, "spec-a", "run-1")
    st.state.advance_cursor("user", "run-1")
    assert st.state.cursor("user", "spec-b") is None, "another spec reads everything again"
    second = datetime(2026, 3, 1, 10, 0)
    st.state.record_read("user", second, None, "spec-b", "run-2")
    assert st.state.cursor("user", "spec-a") == first, "until the new spec's read is settled"
    st.state.advance_cursor("user", "run-2")
    assert st.state.cursor("user", "spec-b") == second
    assert st.state.cursor("user", "spec-a") is None


# ---- learned rate limits ----------------------------------------------------------------------


def test_learned_limits_round_trip_per_target(st: St) -> None:
    target = "https://api.userflow.com 3f2a9c"
    assert st.state.remembered_limits(target) is None
    st.state.remember_limits(target, LearnedLimits(ceiling_per_minute=1234.5, quota_per_window=90, noise_share=0.25))
    assert st.state.remembered_limits(target) == LearnedLimits(1234.5, 90, 0.25)
    assert st.state.remembered_limits("https://api.userflow.com other") is None
    st.state.remember_limits(target, LearnedLimits(None, None, 0.0))
    assert st.state.remembered_limits(target) == LearnedLimits(None, None, 0.0)
    assert st.q("SELECT count(*) FROM sync.rate_limits") == [(1,)]
