"""The planner's decision table, on a real DuckDB file holding state and work tables together,
and with the state in a real Postgres (fetching only the read IDs' state, as an incremental run does).

Each test writes a tiny records table by hand (the transform's columns), seeds the state
through `DuckDBState.checkpoint` as the sink would, runs `build_plan` (and `plan_deletes`)
and reads the plan table back. Every test runs with and without `full_resync`: a full resync
turns `unchanged` into `update` and leaves every other decision as it is.
"""

from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from userflow_assets.plan.planner import (
    PlanSummary,
    build_plan,
    plan_deletes,
    plan_table,
    planned_batches,
    summarize_plan,
)
from userflow_assets.state.postgres import PostgresState
from userflow_assets.state.store import DuckDBState, SyncState
from userflow_assets.state.types import Failure, Link, Record
from userflow_assets.transform.build import RECORD_COLUMNS

RECORDS = "transform.user_records"
PLAN = plan_table("user")
PLAN_COLUMNS = (
    "id, payload_hash, attributes, memberships, primary_id, fallback_id, "
    "previous_attributes, action, migrate_from, previous_memberships"
)
NOTHING = {"create": 0, "update": 0, "retry": 0, "migrate": 0, "delete": 0, "unchanged": 0, "skipped": 0}


def rec(
    record_id: str,
    payload_hash: str,
    attributes: str | None = None,
    *,
    memberships: str | None = None,
    primary_id: str | None = "same",
    fallback_id: str | None = None,
) -> Record:
    """A record as the transform writes it; by default its ID is its primary ID."""
    return Record(
        id=record_id,
        payload_hash=payload_hash,
        attributes=attributes if attributes is not None else f'{{"v":"{payload_hash}"}}',
        memberships=memberships,
        primary_id=record_id if primary_id == "same" else primary_id,
        fallback_id=fallback_id,
    )


@dataclass
class Db:
    path: Path  # the work database (with the DuckDB backend also the state)
    con: duckdb.DuckDBPyConnection
    state: SyncState
    only_read: bool = False  # ask the state for the read records' rows only

    def read(self, *records: Record) -> None:
        """The transform's records table for this run, with exactly these rows."""
        ddl = ", ".join(f"{name} {sql_type}" for name, sql_type in RECORD_COLUMNS)
        self.con.execute("CREATE SCHEMA IF NOT EXISTS transform")
        self.con.execute(f"CREATE OR REPLACE TABLE {RECORDS} ({ddl}, source_row BIGINT)")
        for row, r in enumerate(records, start=1):
            self.con.execute(
                f"INSERT INTO {RECORDS} (id, primary_id, fallback_id, attributes, memberships, payload_hash, source_row) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [r.id, r.primary_id, r.fallback_id, r.attributes, r.memberships, r.payload_hash, row],
            )

    def synced(self, *records: Record, links: tuple[Link, ...] = (), object_type: str = "user") -> None:
        self.state.checkpoint(object_type, "run-0", list(records), [], links=links)

    def failed(self, *records: Record) -> None:
        failures = [Failure(r, 500, "server_error", "boom") for r in records]
        self.state.checkpoint("user", "run-0", [], failures)

    def plan(self, full_resync: bool, **kwargs: Any) -> PlanSummary:
        only_read = self.only_read and not kwargs.get("resend_unread")
        return build_plan(self.con, self.state, "user", RECORDS, full_resync, only_read=only_read, **kwargs)

    def rows(self, table: str = PLAN) -> dict[str, dict[str, Any]]:
        cursor = self.con.execute(f"SELECT {PLAN_COLUMNS} FROM {table} ORDER BY id")
        names = [d[0] for d in cursor.description]
        return {row[0]: dict(zip(names, row)) for row in cursor.fetchall()}

    def actions(self, table: str = PLAN) -> dict[str, tuple[str, str | None]]:
        return {i: (r["action"], r["migrate_from"]) for i, r in self.rows(table).items()}


@pytest.fixture(params=["duckdb", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    path = tmp_path / "userflow.duckdb"
    postgres = request.param == "postgres"
    state: SyncState = (
        PostgresState(request.getfixturevalue("postgres_url")) if postgres else DuckDBState(lambda: duckdb.connect(str(path)))
    )
    state.ensure_schema()
    with duckdb.connect(str(path)) as con:
        yield Db(path, con, state, only_read=postgres)


@pytest.fixture(params=[False, True], ids=["incremental", "full_resync"])
def full_resync(request: pytest.FixtureRequest) -> bool:
    return request.param


def counts(**nonzero: int) -> dict[str, int]:
    return {**NOTHING, **nonzero}


def payload(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["id"], row["payload_hash"], row["attributes"], row["memberships"], row["primary_id"], row["fallback_id"])


# ---- create / update / unchanged ------------------------------------------------------------


def test_a_record_the_state_never_saw_is_created(db: Db, full_resync: bool) -> None:
    new = rec("u1", "h1", '{"name":"Ann"}', memberships='[{"id":"g1"}]')
    db.read(new)
    summary = db.plan(full_resync)
    row = db.rows()["u1"]
    assert row["action"] == "create"
    assert payload(row) == astuple(new)
    assert (row["previous_attributes"], row["previous_memberships"], row["migrate_from"]) == (None, None, None)
    assert summary.counts == counts(create=1)
    assert (summary.migrations, summary.to_send) == (0, 1)


def test_a_record_whose_hash_changed_is_updated_with_what_was_confirmed_before(db: Db, full_resync: bool) -> None:
    db.synced(rec("u1", "old", '{"name":"Ann","plan":"free"}', memberships='[{"id":"g1"}]'))
    changed = rec("u1", "new", '{"name":"Ann","plan":"pro"}', memberships='[{"id":"g2"}]')
    db.read(changed)
    summary = db.plan(full_resync)
    row = db.rows()["u1"]
    assert row["action"] == "update"
    assert payload(row) == astuple(changed)
    assert row["previous_attributes"] == '{"name":"Ann","plan":"free"}'
    assert row["previous_memberships"] == '[{"id":"g1"}]'
    assert summary.counts == counts(update=1)


def test_a_record_with_the_same_hash_is_unchanged_unless_a_full_resync(db: Db, full_resync: bool) -> None:
    # The hash decides, not the attributes text: same hash, different text is still unchanged.
    db.synced(rec("u1", "h1", '{"name":"Ann"}'))
    db.read(rec("u1", "h1", '{"name":"Ann" }'))
    summary = db.plan(full_resync)
    row = db.rows()["u1"]
    if full_resync:
        assert row["action"] == "update"
        assert payload(row) == astuple(rec("u1", "h1", '{"name":"Ann" }'))
        assert row["previous_attributes"] == '{"name":"Ann"}'
        assert summary.counts == counts(update=1)
    else:
        # An unchanged record is planned by ID alone: no payload is copied for it.
        assert row == {**{k: None for k in row}, "id": "u1", "action": "unchanged"}
        assert summary.counts == counts(unchanged=1)
        assert summary.to_send == 0
        assert list(planned_batches(lambda: duckdb.connect(str(db.path)), "user", 10)) == []


def test_only_the_records_read_and_the_failures_are_planned(db: Db, full_resync: bool) -> None:
    # An incremental read: synced records that were not read are not in the plan at all.
    db.synced(rec("u1", "h1"), rec("u2", "h2"), rec("u3", "h3"))
    db.read(rec("u2", "h2"))
    summary = db.plan(full_resync)
    assert set(db.rows()) == {"u2"}
    assert summary.counts == (counts(update=1) if full_resync else counts(unchanged=1))


def test_the_state_of_another_object_type_is_not_this_ones(db: Db, full_resync: bool) -> None:
    # A group u1 synced with this very hash, and a failed group: neither tells about user u1.
    db.synced(rec("u1", "h1"), object_type="group")
    db.state.checkpoint("group", "run-0", [], [Failure(rec("g9", "h9"), 500, None, "boom")])
    db.read(rec("u1", "h1"))
    summary = db.plan(full_resync)
    assert db.actions() == {"u1": ("create", None)}
    assert summary.counts == counts(create=1)


# ---- retry -------------------------------------------------------------------------------------


def test_a_failed_record_read_again_is_retried_with_its_new_payload(db: Db, full_resync: bool) -> None:
    db.failed(rec("u1", "sent-before", '{"name":"Old"}'))
    now = rec("u1", "h2", '{"name":"New"}')
    db.read(now)
    summary = db.plan(full_resync)
    row = db.rows()["u1"]
    assert row["action"] == "retry"
    assert payload(row) == astuple(now)
    assert row["previous_attributes"] is None  # never confirmed
    assert summary.counts == counts(retry=1)


def test_a_failed_record_with_an_unchanged_hash_is_still_retried(db: Db, full_resync: bool) -> None:
    # Confirmed once with h1, its update to h2 failed, and the warehouse went back to h1.
    db.synced(rec("u1", "h1", '{"name":"Ann"}'))
    db.failed(rec("u1", "h2", '{"name":"Bob"}'))
    db.read(rec("u1", "h1", '{"name":"Ann"}'))
    summary = db.plan(full_resync)
    row = db.rows()["u1"]
    assert (row["action"], row["payload_hash"], row["previous_attributes"]) == ("retry", "h1", '{"name":"Ann"}')
    assert summary.counts == counts(retry=1)


def test_a_failed_record_not_in_this_read_is_retried_from_the_state(db: Db, full_resync: bool) -> None:
    # The warehouse row did not change, so an incremental read does not see it: the payload
    # comes from the failure kept in the state, every column of it.
    kept = rec("u2", "hf", '{"name":"Kept"}', memberships='[{"id":"g1"}]', fallback_id="kept@example.com")
    db.synced(rec("u2", "h-confirmed", '{"name":"Confirmed"}', memberships='[{"id":"g0"}]'))
    db.failed(kept)
    db.read(rec("u1", "h1"))
    summary = db.plan(full_resync)
    rows = db.rows()
    assert set(rows) == {"u1", "u2"}
    assert rows["u2"]["action"] == "retry"
    assert payload(rows["u2"]) == astuple(kept)
    assert rows["u2"]["previous_attributes"] == '{"name":"Confirmed"}'
    assert rows["u2"]["previous_memberships"] == '[{"id":"g0"}]'
    assert summary.counts == counts(create=1, retry=1)
    batches = list(planned_batches(lambda: duckdb.connect(str(db.path)), "user", 10))
    assert [(p.record, p.action) for b in batches for p in b] == [(rec("u1", "h1"), "create"), (kept, "retry")]


def test_a_failure_confirmed_later_is_no_longer_retried(db: Db, full_resync: bool) -> None:
    db.failed(rec("u1", "h1"))
    db.synced(rec("u1", "h1"))  # the next run's confirmation clears the failure
    db.read(rec("u2", "h2"))
    db.plan(full_resync)
    assert db.actions() == {"u2": ("create", None)}


# ---- migrate (fallback ID -> primary ID) ------------------------------------------------------

FALLBACK = "ann@example.com"


def fallback_twin(hash_: str = "h1") -> Record:
    """Ann as synced before her primary ID existed: ID = fallback ID, no primary ID."""
    return rec(FALLBACK, hash_, primary_id=None, fallback_id=FALLBACK)


def test_a_record_first_seen_under_its_primary_id_is_created_and_migrates_its_twin(db: Db, full_resync: bool) -> None:
    db.synced(fallback_twin())
    db.read(rec("u1", "h1", fallback_id=FALLBACK))
    summary = db.plan(full_resync)
    assert db.actions() == {"u1": ("create", FALLBACK)}
    assert summary.counts == counts(create=1)
    assert summary.migrations == 1


def test_an_unchanged_record_whose_twin_is_still_there_migrates(db: Db, full_resync: bool) -> None:
    # u1 was confirmed under its primary ID, but deleting the fallback twin did not happen.
    db.synced(fallback_twin(), rec("u1", "h1", fallback_id=FALLBACK))
    db.read(rec("u1", "h1", fallback_id=FALLBACK))
    summary = db.plan(full_resync)
    row = db.rows()["u1"]
    # A full resync sends the upsert anyway; the twin still goes with it.
    assert (row["action"], row["migrate_from"]) == ("update" if full_resync else "migrate", FALLBACK)
    assert payload(row) == astuple(rec("u1", "h1", fallback_id=FALLBACK))
    assert summary.counts == (counts(update=1) if full_resync else counts(migrate=1))
    assert (summary.migrations, summary.to_send) == (1, 1)


def test_a_changed_record_with_a_twin_is_updated_and_migrates(db: Db, full_resync: bool) -> None:
    db.synced(fallback_twin(), rec("u1", "h1", fallback_id=FALLBACK))
    db.read(rec("u1", "h2", fallback_id=FALLBACK))
    summary = db.plan(full_resync)
    assert db.actions() == {"u1": ("update", FALLBACK)}
    assert summary.migrations == 1


def test_a_failed_record_with_a_twin_is_retried_and_migrates(db: Db, full_resync: bool) -> None:
    # The create under the primary ID failed and the row is not read again: the failure's
    # payload carries the fallback ID, so the retry still takes the twin along.
    db.synced(fallback_twin())
    db.failed(rec("u1", "h1", fallback_id=FALLBACK))
    db.read(rec("u9", "h9"))
    summary = db.plan(full_resync)
    assert db.actions() == {"u1": ("retry", FALLBACK), "u9": ("create", None)}
    assert summary.migrations == 1


@pytest.mark.parametrize("decision", ["migrate", "keep"])
def test_a_decided_link_plans_no_migration(db: Db, full_resync: bool, decision: str) -> None:
    db.synced(fallback_twin(), rec("u1", "h1", fallback_id=FALLBACK), links=(Link(FALLBACK, "u1", decision),))
    db.read(rec("u1", "h1", fallback_id=FALLBACK))
    summary = db.plan(full_resync)
    assert db.actions() == {"u1": ("update" if full_resync else "unchanged", None)}
    assert summary.migrations == 0
    assert summary.counts == (counts(update=1) if full_resync else counts(unchanged=1))


def test_a_link_of_another_fallback_id_does_not_count(db: Db, full_resync: bool) -> None:
    db.synced(fallback_twin(), rec("u1", "h1", fallback_id=FALLBACK), links=(Link("bob@example.com", "u1", "keep"),))
    db.read(rec("u1", "h1", fallback_id=FALLBACK))
    db.plan(full_resync)
    assert db.actions() == {"u1": ("update" if full_resync else "migrate", FALLBACK)}


def test_no_migration_without_a_fallback_id_twin(db: Db, full_resync: bool) -> None:
    # Not twins: a record read under its fallback ID (no primary ID yet), a record whose
    # fallback ID the state never synced, and one whose fallback ID is some other record's
    # primary ID (synced with a primary ID, so it is not anyone's fallback-ID twin).
    db.synced(rec("carl@example.com", "hc"), fallback_twin("h-ann"))
    db.read(
        rec(FALLBACK, "h-ann", primary_id=None, fallback_id=FALLBACK),
        rec("u2", "h2", fallback_id="nobody@example.com"),
        rec("u3", "h3", fallback_id="carl@example.com"),
    )
    summary = db.plan(full_resync)
    assert db.actions() == {
        FALLBACK: ("update" if full_resync else "unchanged", None),
        "u2": ("create", None),
        "u3": ("create", None),
    }
    assert summary.migrations == 0


# ---- delete -------------------------------------------------------------------------------------


def staged(db: Db, rows: list[tuple[str | None, str | None]]) -> None:
    db.con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    db.con.execute("CREATE OR REPLACE TABLE staging.users (user_id VARCHAR, email VARCHAR, name VARCHAR)")
    for user_id, email in rows:
        db.con.execute("INSERT INTO staging.users VALUES (?, ?, 'x')", [user_id, email])


def test_a_synced_record_absent_from_the_staged_rows_is_deleted(db: Db, full_resync: bool) -> None:
    db.synced(rec("u1", "h1"), rec("u2", "h2"), rec("u3", "h3"))
    staged(db, [("u1", None), ("u3", None), (None, None)])  # a null ID keeps nothing and deletes nothing
    db.read(rec("u1", "h1"), rec("u3", "h3"))
    db.plan(full_resync)
    assert plan_deletes(db.con, db.state, "user", "staging.users", ["user_id", "email"]) == 1
    rows = db.rows()
    assert rows["u2"] == {**{k: None for k in rows["u2"]}, "id": "u2", "action": "delete"}
    same = "update" if full_resync else "unchanged"
    assert db.actions() == {"u1": (same, None), "u2": ("delete", None), "u3": (same, None)}
    assert summarize_plan(db.con, "user").counts == counts(delete=1, **{same: 2})


def test_deletes_reuse_the_whole_state_the_plan_exposed(db: Db, full_resync: bool) -> None:
    # The sink's path after a full read: the plan asked the state for every record, so the
    # deletes read what it exposed instead of fetching a remote state a second time.
    db.synced(rec("u1", "h1"), rec("u2", "h2"))
    staged(db, [("u1", None)])
    db.read(rec("u1", "h1"))
    build_plan(db.con, db.state, "user", RECORDS, full_resync, only_read=False)
    assert plan_deletes(db.con, db.state, "user", "staging.users", ["user_id"], exposed=True) == 1
    assert db.actions()["u2"] == ("delete", None)


def test_a_record_whose_id_is_still_staged_as_a_fallback_id_is_not_deleted(db: Db, full_resync: bool) -> None:
    # Ann was synced under her email; the row now has a primary ID and her email is the
    # fallback column of a staged row: the twin is left to the migration, never deleted.
    db.synced(fallback_twin(), rec("u2", "h2"))
    staged(db, [("u1", FALLBACK)])
    db.read(rec("u1", "h1", fallback_id=FALLBACK))
    db.plan(full_resync)
    assert plan_deletes(db.con, db.state, "user", "staging.users", ["user_id", "email"]) == 1
    assert db.actions() == {"u1": ("create", FALLBACK), "u2": ("delete", None)}


def test_a_staged_row_that_was_rejected_is_not_deleted(db: Db, full_resync: bool) -> None:
    # u1's row is staged but the transform rejected it: no record, and still no delete.
    db.synced(rec("u1", "h1"))
    staged(db, [("u1", None)])
    db.read()
    db.plan(full_resync)
    assert plan_deletes(db.con, db.state, "user", "staging.users", ["user_id"]) == 0
    assert db.rows() == {}


def test_a_record_planned_otherwise_is_not_also_deleted(db: Db, full_resync: bool) -> None:
    # u2's upsert failed and its row left the query: the failure is retried from the state,
    # so it is in the plan already and plan_deletes leaves it alone.
    db.synced(rec("u1", "h1"), rec("u2", "h2"))
    db.failed(rec("u2", "h2b"))
    staged(db, [("u1", None)])
    db.read(rec("u1", "h1"))
    db.plan(full_resync)
    assert plan_deletes(db.con, db.state, "user", "staging.users", ["user_id"]) == 0
    assert db.actions()["u2"] == ("retry", None)


def test_an_integer_id_column_is_compared_as_text(db: Db, full_resync: bool) -> None:
    db.synced(rec("42", "h1"), rec("7", "h2"))
    db.con.execute("CREATE SCHEMA staging")
    db.con.execute("CREATE TABLE staging.users AS SELECT 42::BIGINT AS \"user id\"")
    db.read(rec("42", "h1"))
    db.plan(full_resync)
    assert plan_deletes(db.con, db.state, "user", "staging.users", ["user id"]) == 1
    assert db.actions()["7"] == ("delete", None)


# ---- everything at once, and a plan of its own -----------------------------------------------


def test_the_whole_decision_table_in_one_plan(db: Db, full_resync: bool) -> None:
    db.synced(
        rec("same", "h"), rec("changed", "h-old"), fallback_twin(), rec("u1", "h1", fallback_id=FALLBACK),
        rec("gone", "hg"),
    )
    db.failed(rec("failed-read", "hx"), rec("failed-unread", "hy"))
    db.read(
        rec("new", "hn"), rec("same", "h"), rec("changed", "h-new"), rec("failed-read", "hx2"),
        rec("u1", "h1", fallback_id=FALLBACK),
    )
    summary = db.plan(full_resync)
    staged(db, [(i, FALLBACK if i == "u1" else None) for i in ("new", "same", "changed", "failed-read", "u1")])
    assert plan_deletes(db.con, db.state, "user", "staging.users", ["user_id", "email"]) == 1
    assert db.actions() == {
        "changed": ("update", None),
        "failed-read": ("retry", None),
        "failed-unread": ("retry", None),
        "gone": ("delete", None),
        "new": ("create", None),
        "same": ("update" if full_resync else "unchanged", None),
        "u1": ("update" if full_resync else "migrate", FALLBACK),
    }
    expected = {**NOTHING, "create": 1, "update": 1, "retry": 2, "migrate": 1, "unchanged": 1}
    if full_resync:
        expected.update(update=3, migrate=0, unchanged=0)
    assert summary.counts == expected
    assert (summary.migrations, summary.to_send) == (1, 6 if full_resync else 5)
    after = summarize_plan(db.con, "user")
    assert after.counts == {**expected, "delete": 1}
    assert after.to_send == summary.to_send + 1


def test_a_named_plan_table_leaves_the_regular_plan_alone(db: Db, full_resync: bool) -> None:
    db.read(rec("u1", "h1"))
    db.plan(full_resync)
    db.read(rec("u2", "h2"), rec("u3", "h3"))
    summary = db.plan(full_resync, plan="plan.slice_1")
    assert summary.counts == counts(create=2)
    assert db.actions("plan.slice_1") == {"u2": ("create", None), "u3": ("create", None)}
    assert db.actions() == {"u1": ("create", None)}
    assert summarize_plan(db.con, "user", plan="plan.slice_1").counts == counts(create=2)


# ---- a full resync after an incremental read ------------------------------------------------


def test_resend_unread_sends_every_synced_record_the_read_did_not_list(db: Db) -> None:
    unread = rec("u2", "h2", '{"name":"Bo"}', memberships='[{"id":"g1"}]')
    twin = rec("bo@example.com", "ht", primary_id=None)
    failed = rec("u3", "h3")
    db.synced(rec("u1", "h1"), unread, twin)
    db.failed(failed)
    db.read(rec("u1", "h1"), rec("u4", "h4", fallback_id="bo@example.com"))
    summary = db.plan(True, resend_unread=True)
    rows = db.rows()
    # Sent as Userflow last confirmed it; its previous payload is that same payload.
    assert payload(rows["u2"]) == astuple(unread) and rows["u2"]["action"] == "update"
    assert rows["u2"]["previous_attributes"] == unread.attributes
    # The fallback-ID twin of a record read is never resent (its switch is planned instead),
    # and a failure is retried once, not also resent.
    assert db.actions()["u4"] == ("create", "bo@example.com")
    assert "bo@example.com" not in rows and rows["u3"]["action"] == "retry"
    assert summary.counts == counts(create=1, update=2, retry=1)
    # Without it, a full resync plans only what was read (and the failures).
    db.plan(True)
    assert "u2" not in db.rows()
