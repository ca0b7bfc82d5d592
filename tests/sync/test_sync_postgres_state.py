"""The sync with its state in a real Postgres: a new container (no work database, no data/,
no Dagster home) resumes where the last one stopped; a Postgres restart mid-run fails the run
cleanly and the next converges; a second writer is refused by the lock.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as pg
import dagster as dg
import pytest
from harness import (
    Emulator,
    emulator_get,
    emulator_post,
    failure_message,
    insert,
    metadata,
    query,
    run_sync,
    serve_emulator,
    sync_spec,
    write_project,
)
from sync_harness import QUERIES, WAREHOUSE_DDL, account_rows, user_rows

from userflow_assets import failpoints
from userflow_assets.spec import SyncSpec
from userflow_assets.state.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresState, StateBusy
from userflow_assets.state.types import utcnow

KEY = "uf_test_pg_state_key"
EVENTS_DDL = (
    "CREATE TABLE events (event_id VARCHAR, user_id VARCHAR, account_id VARCHAR, name VARCHAR, occurred_at TIMESTAMP);"
)
EVENTS_SQL = "SELECT event_id, user_id, account_id, name, occurred_at FROM events WHERE occurred_at > $LAST_SYNC_TIMESTAMP"
EVENTS: dict[str, Any] = {
    "query": "events.sql", "key_column": "event_id", "name": "name", "user_id": "user_id", "time": "occurred_at",
}
USERS: dict[str, Any] = {
    "query": "users.sql",
    "id_column": "user_id",
    "mapping": {"email": "email", "name": "name", "plan": "plan", "seats": "seats"},
    "memberships": {"column": "memberships", "group_id_field": "account_id"},
}


def event_rows(user_ids: list[str]) -> list[tuple[Any, ...]]:
    return [(f"evt_{u}", u, None, "Signed Up", "2026-01-01 00:00:00") for u in user_ids]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with serve_emulator(KEY) as served:
        yield served


class Container:
    """One machine's local files: the work database, data/ and DAGSTER_HOME; `wipe` is a new container."""

    def __init__(self, root: Path, url: str, state_url: str) -> None:
        self.root, self.url, self.state_url = root, url, state_url
        self.logged: list[str] = []  # the last run's log lines

    @property
    def local(self) -> list[Path]:
        return [self.root / "data", self.root / "dagster_home"]

    def spec(self, events: bool = True) -> SyncSpec:
        return sync_spec(
            self.root, self.url, USERS, state_db=self.state_url,  # type: ignore[arg-type]
            work_database=str(self.root / "data" / "work.duckdb"), events=EVENTS if events else None,
        )

    def run(self, **options: Any) -> dg.ExecuteInProcessResult:
        home = self.root / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        with dg.DagsterInstance.local_temp(str(home)) as instance:
            result = run_sync(self.spec(), instance=instance, max_attempts=1, **options)
            self.logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
            return result

    def wipe(self) -> None:
        for path in self.local:
            shutil.rmtree(path, ignore_errors=True)

    def writes(self) -> int:
        """Requests that change Userflow so far (reads, e.g. the read_back check's GETs, not counted)."""
        by_endpoint = emulator_get(self.url, "requests")["by_endpoint"]
        return sum(sum(int(n) for n in outcomes.values()) for e, outcomes in by_endpoint.items() if not e.startswith("GET"))


@pytest.fixture
def box(tmp_path: Path, emulator: Emulator, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Container:
    emulator.fresh(monkeypatch)
    users = user_rows(100)
    write_project(
        tmp_path, WAREHOUSE_DDL + EVENTS_DDL,
        {"users": users, "accounts": account_rows(), "events": event_rows([u[0] for u in users[:20]] + ["u_late"])},
        **QUERIES, events=EVENTS_SQL,
    )
    return Container(tmp_path, emulator.url, postgres_url)


def pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with pg.connect(url) as con, con.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


@pytest.mark.slow  # 27 s on a busy machine: scheduled first (tests/conftest.py)
def test_a_new_container_resumes_from_the_postgres_state(box: Container) -> None:
    first = box.run()
    assert first.success, failure_message(first)
    assert metadata(first, "userflow_users")["created"] == 100
    assert metadata(first, "userflow_events")["sent"] == 20
    assert pg_rows(box.state_url, "SELECT key, status FROM sync.pending_events") == [("evt_u_late", "waiting_unknown")]
    assert not (box.root / "state").exists(), "no DuckDB state beside the work database"

    box.wipe()
    before = box.writes()
    again = box.run()
    assert again.success, failure_message(again)
    assert box.writes() == before, "a new container with the same Postgres state sends nothing"
    assert metadata(again, "warehouse_users")["dagster/row_count"] == 0, "the read resumed from the cursor in Postgres"

    # 1% changed (and one more): exactly those are sent; the one answered 500 stays a failure.
    box.wipe()
    for user_id, plan in [("u005", "Pro"), ("u007", "Team")]:
        query(box.root / "warehouse.duckdb", "UPDATE users SET plan = ?, updated_at = ? WHERE user_id = ?",
              [plan, utcnow(), user_id])
    emulator_post(box.url, "faults", {"next": ["500"], "path_prefix": "/users", "method": "POST"})
    before = box.writes()
    changed = box.run()
    assert changed.success, failure_message(changed)
    assert box.writes() - before == 2
    (failed,) = pg_rows(box.state_url, "SELECT id FROM sync.failures WHERE object_type = 'user'")
    assert failed[0] in {"u005", "u007"}

    # The failed record is retried, and the waiting event goes once its user exists.
    box.wipe()
    insert(box.root / "warehouse.duckdb", "users", [("u_late", "late@example.com", "Late", "free", 1, utcnow(), [])])
    before = box.writes()
    last = box.run()
    assert last.success, failure_message(last)
    assert metadata(last, "userflow_users")["updated"] == 1 and metadata(last, "userflow_users")["created"] == 1
    assert metadata(last, "userflow_events")["sent"] == 1
    assert box.writes() - before == 3  # the retried user, u_late, u_late's event
    assert pg_rows(box.state_url, "SELECT count(*) FROM sync.failures") == [(0,)]
    assert pg_rows(box.state_url, "SELECT count(*) FROM sync.pending_events") == [(0,)]
    users = {u["id"]: u for u in emulator_get(box.url, "state")["users"]}
    assert users["u005"]["attributes"]["plan"] == "Pro" and users["u007"]["attributes"]["plan"] == "Team"


@pytest.mark.slow  # 15 s on a busy machine: scheduled first
def test_postgres_restarted_mid_run_fails_the_run_cleanly_and_the_next_converges(
    box: Container, postgres: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = failpoints.reach
    restarted: list[str] = []

    def reach(name: str) -> None:
        if name == "between_batches" and not restarted:
            restarted.append(name)
            postgres.restart()  # every session dropped, the lock's included
        real(name)

    monkeypatch.setattr(failpoints, "reach", reach)
    broken = box.run(raise_on_error=False, sink={"batch_size": 20})
    assert restarted and not broken.success
    message = failure_message(broken)
    assert "sync state at postgresql://" in message and "nothing of it was kept" in message, message
    held = {u["id"] for u in emulator_get(box.url, "state")["users"]}
    synced = {r[0] for r in pg_rows(box.state_url, "SELECT id FROM sync.records WHERE object_type = 'user'")}
    assert synced and synced <= held, "nothing is marked synced that Userflow does not hold"

    monkeypatch.setattr(failpoints, "reach", real)
    box.wipe()
    after = box.run()
    assert after.success, failure_message(after)
    assert pg_rows(box.state_url, "SELECT count(*) FROM sync.records WHERE object_type = 'user'") == [(100,)]
    assert {u["id"] for u in emulator_get(box.url, "state")["users"]} == {f"u{i:03d}" for i in range(100)}


def test_a_second_writer_is_refused_by_the_lock(box: Container) -> None:
    state = PostgresState(box.state_url)
    state.ensure_schema()
    with state.exclusive("user", "run elsewhere"):
        refused = box.run(raise_on_error=False)
        with pytest.raises(StateBusy, match="another process is writing the users' sync state"):
            with PostgresState(box.state_url).exclusive("user", "a third"):
                pass
    assert not refused.success
    message = failure_message(refused)
    assert "another process is writing the users' sync state" in message and "userflow_assets run elsewhere" in message
    assert pg_rows(box.state_url, "SELECT count(*) FROM sync.records WHERE object_type = 'user'") == [(0,)]


def test_an_older_state_schema_is_upgraded_and_the_run_says_so(box: Container, postgres: Any) -> None:
    database = box.state_url.rsplit("/", 1)[1]
    postgres.psql(
        MIGRATIONS[1][1] + "; CREATE TABLE sync.schema_version (version integer PRIMARY KEY, applied_at timestamp);"
        "INSERT INTO sync.schema_version VALUES (1, now())",
        database=database,
    )
    result = box.run()
    assert result.success, failure_message(result)
    said = [line for line in box.logged if "schema upgraded in place" in line]
    assert said and f"from version 1 to {SCHEMA_VERSION}" in said[0], said
    assert pg_rows(box.state_url, "SELECT max(version) FROM sync.schema_version") == [(SCHEMA_VERSION,)]
    assert pg_rows(box.state_url, "SELECT count(*) FROM sync.log")[0][0] > 0, "the upgraded schema is written to"
