"""log_writeback with the sample in a real Postgres warehouse: the warehouse user without the
README's grant is refused (a warning, the sync still succeeds and keeps its log); with it, each
sink's rows of the run land in userflow_sync.sync_log, with those of earlier runs a refused
write-back missed, and the same run written again replaces its rows instead of adding to them."""

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as pg
import duckdb
import pytest
from harness import Emulator, metadata, query, run_sync, serve_emulator
from postgres_server import PostgresServer, fresh_database
from warehouse_kit import KEY, SAMPLE_SEED, SAMPLE_USERS, postgres_block, shipped_spec

from userflow_assets.orchestration.component import state_resource
from userflow_assets.sample.postgres import load_into_postgres
from userflow_assets.sink.run import log_writeback_metadata
from userflow_assets.spec import SyncSpec
from userflow_assets.state.store import DuckDBState
from userflow_assets.state.types import LogEntry, utcnow
from userflow_assets.state.writeback import _POSTGRES_TABLE, LogWriteback, Written

pytestmark = pytest.mark.slow

SINKS = {"user": "userflow_users", "group": "userflow_groups", "event": "userflow_events"}
IN_STATE = "SELECT * FROM sync.log WHERE run_id = ? AND object_type = ? ORDER BY logged_at, record_id"
WRITTEN = "SELECT * FROM userflow_sync.sync_log WHERE run_id = $1 AND object_type = $2 ORDER BY logged_at, record_id"
# Every row of one object type, on both sides in the same order (byte order, whatever the collation).
ALL_IN_STATE = "SELECT * FROM sync.log WHERE object_type = ? ORDER BY logged_at, record_id, action, outcome"
ALL_WRITTEN = (
    "SELECT * FROM userflow_sync.sync_log WHERE object_type = $1 "
    'ORDER BY logged_at, record_id COLLATE "C", action COLLATE "C", outcome COLLATE "C"'
)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with serve_emulator(KEY) as served:
        yield served


def _warehouse_rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with pg.connect(url) as con, con.cursor() as cur:
        cur.execute(sql, parameters=params or None)
        return list(cur.fetchall())


def _sample_with_reader(postgres: PostgresServer, prefix: str) -> tuple[str, str, str, str]:
    """A new database holding the sample, and a warehouse user that reads it and nothing more
    (no CREATE on the database): the admin URL, the database, the user and its URL."""
    admin_url = fresh_database(postgres, prefix)
    database = admin_url.rsplit("/", 1)[1]
    load_into_postgres(admin_url, users=SAMPLE_USERS, seed=SAMPLE_SEED)
    role = f"sync_{uuid.uuid4().hex[:8]}"
    postgres.psql(f"CREATE ROLE {role} LOGIN", database)
    postgres.psql(f"GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}", database)
    postgres.psql(f"ALTER ROLE {role} SET default_transaction_read_only = on", database)  # as the README's reader
    reader_url = admin_url.replace(f"//{postgres.user}@", f"//{role}@", 1)
    assert reader_url != admin_url
    return admin_url, database, role, reader_url


def _change_users(postgres: PostgresServer, database: str, plan: str, order: str) -> None:
    """Three users with an email (the first or the last by ID) get another plan."""
    postgres.psql(
        f"UPDATE users SET plan = '{plan}', updated_at = now() AT TIME ZONE 'UTC' "
        f"WHERE user_id IN (SELECT user_id FROM users WHERE email IS NOT NULL ORDER BY user_id {order} LIMIT 3)",
        database,
    )


def test_log_writeback_into_a_postgres_warehouse(
    tmp_path: Path, postgres: PostgresServer, emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin_url, database, role, reader_url = _sample_with_reader(postgres, "writeback")

    raw = shipped_spec(postgres_block(reader_url), tmp_path / "state.duckdb", emulator.url).model_dump(exclude_unset=True)
    # A password the server does not need (trust auth) is still sent, and must never be shown.
    secret = f"pw-{uuid.uuid4().hex}"
    monkeypatch.setenv("USERFLOW_WAREHOUSE_PASSWORD", secret)
    raw["warehouse"]["password_env"] = "USERFLOW_WAREHOUSE_PASSWORD"
    spec = SyncSpec.model_validate({**raw, "log_writeback": True})
    emulator.fresh(monkeypatch)

    # Refused: a warning naming the table and the server's reason; the sync succeeds, its log kept.
    with caplog.at_level(logging.WARNING):
        first = run_sync(spec, max_attempts=2, max_retry_time_s=2)
    assert first.success
    for object_type, asset in SINKS.items():
        shown = metadata(first, asset)["log_writeback"]
        assert shown.startswith("failed: ") and "permission denied" in shown, shown
        assert query(tmp_path / "state.duckdb", IN_STATE, [first.run_id, object_type]), object_type
    warned = [r.getMessage() for r in caplog.records if "log_writeback" in r.getMessage()]
    assert len(warned) == 3 and all("userflow_sync.sync_log" in m and "permission denied" in m for m in warned)
    assert secret not in caplog.text and all(secret not in str(metadata(first, a)) for a in SINKS.values())

    # The README's grant: the schema, with USAGE and CREATE for the warehouse user.
    postgres.psql(f"CREATE SCHEMA userflow_sync; GRANT USAGE, CREATE ON SCHEMA userflow_sync TO {role}", database)

    # 1% of the users change: the next run's users sink writes back exactly their rows, and
    # each sink the first run's rows its refused write-back missed.
    _change_users(postgres, database, "changed", "ASC")
    second = run_sync(spec, max_attempts=2, max_retry_time_s=2)
    assert second.success
    in_state = query(tmp_path / "state.duckdb", IN_STATE, [second.run_id, "user"])
    assert len(in_state) == 3 and {row[4] for row in in_state} == {"confirmed"}
    missed = query(tmp_path / "state.duckdb", IN_STATE, [first.run_id, "user"])
    assert metadata(second, "userflow_users")["log_writeback"] == 3 + len(missed)
    assert _warehouse_rows(admin_url, WRITTEN, second.run_id, "user") == in_state
    for object_type, asset in SINKS.items():
        assert metadata(second, asset)["log_writeback_caught_up"] == 1, object_type
        expected = query(tmp_path / "state.duckdb", IN_STATE, [first.run_id, object_type])
        assert _warehouse_rows(admin_url, WRITTEN, first.run_id, object_type) == expected

    # The first run's sink steps ended again (same run ID): written now, and twice is once.
    sync_db = state_resource(spec)
    state = sync_db.state()
    for _ in range(2):
        for object_type in SINKS:
            written = log_writeback_metadata(state, sync_db, first.run_id, object_type)["log_writeback"]
            assert written == len(query(tmp_path / "state.duckdb", IN_STATE, [first.run_id, object_type]))
    for object_type in SINKS:
        expected = query(tmp_path / "state.duckdb", IN_STATE, [first.run_id, object_type])
        assert expected and _warehouse_rows(admin_url, WRITTEN, first.run_id, object_type) == expected
    (total,) = _warehouse_rows(admin_url, "SELECT count(*) FROM userflow_sync.sync_log")[0]
    assert total == query(tmp_path / "state.duckdb", "SELECT count(*) FROM sync.log")[0][0]
    # The table belongs to the warehouse user, in the schema the grant names; the user's public schema is untouched.
    assert _warehouse_rows(admin_url, "SELECT tableowner FROM pg_tables WHERE schemaname = 'userflow_sync'") == [(role,)]
    # Runs are found through an index, not by scanning the whole history.
    assert _indexes(admin_url) == ["sync_log_run_id"]


def _indexes(url: str) -> list[str]:
    return [name for (name,) in _warehouse_rows(url, "SELECT indexname FROM pg_indexes WHERE tablename = 'sync_log'")]


def test_a_log_table_the_warehouse_user_does_not_own_is_written_without_an_index(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    # The table made beforehand by an administrator, who grants the sync's user only its rows.
    admin_url = fresh_database(postgres, "notowner")
    database = admin_url.rsplit("/", 1)[1]
    role = f"sync_{uuid.uuid4().hex[:8]}"
    postgres.psql(
        f"CREATE ROLE {role} LOGIN; CREATE SCHEMA userflow_sync; GRANT USAGE ON SCHEMA userflow_sync TO {role}; "
        + _POSTGRES_TABLE.format(table="userflow_sync.sync_log")
        + f"; GRANT SELECT, INSERT, DELETE ON userflow_sync.sync_log TO {role}",
        database,
    )
    state = DuckDBState(lambda: duckdb.connect(str(tmp_path / "state.duckdb")))
    state.ensure_schema()
    at = utcnow()
    for run_id, record_ids in (("run-a", ["u1", "u2"]), ("run-b", ["u3"])):
        log = [LogEntry(run_id, "user", r, "create", "confirmed", None, None, None, None, at) for r in record_ids]
        state.checkpoint("user", run_id, [], [], log=log)

    writeback = LogWriteback(schema="userflow_sync", url=admin_url.replace(f"//{postgres.user}@", f"//{role}@", 1))
    assert writeback.write(state, "run-b", "user") == Written(rows=3, caught_up=1)  # run-a filled in
    assert writeback.write(state, "run-b", "user") == Written(rows=1, caught_up=0)  # replaced, not added
    rows = _warehouse_rows(admin_url, "SELECT run_id, record_id FROM userflow_sync.sync_log ORDER BY record_id")
    assert rows == [("run-a", "u1"), ("run-a", "u2"), ("run-b", "u3")]
    assert _indexes(admin_url) == [], "not the owner: no index, and no failure for it"


def test_a_failed_postgres_log_writeback_is_filled_in_by_the_next(
    tmp_path: Path, postgres: PostgresServer, emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin_url, database, role, reader_url = _sample_with_reader(postgres, "catchup")
    grant = f"GRANT USAGE, CREATE ON SCHEMA userflow_sync TO {role}"
    postgres.psql(f"CREATE SCHEMA userflow_sync; {grant}", database)
    state_db = tmp_path / "state.duckdb"
    raw = shipped_spec(postgres_block(reader_url), state_db, emulator.url).model_dump(exclude_unset=True)
    spec = SyncSpec.model_validate({**raw, "log_writeback": True})
    emulator.fresh(monkeypatch)

    def in_state(run_id: str, object_type: str) -> int:
        return len(query(state_db, IN_STATE, [run_id, object_type]))

    def written_back_is_the_state(object_type: str) -> None:
        assert _warehouse_rows(admin_url, ALL_WRITTEN, object_type) == query(state_db, ALL_IN_STATE, [object_type])

    first = run_sync(spec, max_attempts=2, max_retry_time_s=2)
    assert first.success
    for object_type, asset in SINKS.items():
        assert metadata(first, asset)["log_writeback"] == in_state(first.run_id, object_type) > 0
        assert metadata(first, asset)["log_writeback_caught_up"] == 0

    # For the second run the warehouse user may not use the schema: its write-back fails, the sync does not.
    postgres.psql(f"REVOKE USAGE, CREATE ON SCHEMA userflow_sync FROM {role}", database)
    _change_users(postgres, database, "second", "ASC")
    with caplog.at_level(logging.WARNING):
        second = run_sync(spec, max_attempts=2, max_retry_time_s=2)
    assert second.success
    for asset in SINKS.values():
        shown = metadata(second, asset)["log_writeback"]
        assert shown.startswith("failed: ") and "permission denied" in shown, shown
    warned = [r.getMessage() for r in caplog.records if "log_writeback" in r.getMessage()]
    assert len(warned) == 3 and all("permission denied" in m for m in warned), warned
    assert in_state(second.run_id, "user") == 3, "the state keeps the run's log"
    assert _warehouse_rows(admin_url, WRITTEN, second.run_id, "user") == []
    postgres.psql(grant, database)

    # The third run writes its own rows and the second's, in one go: the table is the state's log.
    _change_users(postgres, database, "third", "DESC")
    third = run_sync(spec, max_attempts=2, max_retry_time_s=2)
    assert third.success
    assert metadata(third, "userflow_users")["log_writeback_caught_up"] == 1
    for object_type, asset in SINKS.items():
        missed = in_state(second.run_id, object_type)
        shown = metadata(third, asset)
        assert shown["log_writeback_caught_up"] == (1 if missed else 0), object_type
        assert shown["log_writeback"] == in_state(third.run_id, object_type) + missed, object_type
        written_back_is_the_state(object_type)
    runs = "SELECT count(DISTINCT run_id) FROM userflow_sync.sync_log WHERE object_type = 'user'"
    assert _warehouse_rows(admin_url, runs) == [(3,)]

    # A fourth run fills in nothing twice.
    fourth = run_sync(spec, max_attempts=2, max_retry_time_s=2)
    assert fourth.success
    for object_type, asset in SINKS.items():
        assert metadata(fourth, asset)["log_writeback_caught_up"] == 0
        assert metadata(fourth, asset)["log_writeback"] == in_state(fourth.run_id, object_type)
        written_back_is_the_state(object_type)
