"""End to end from Postgres: the sample loaded into a real Postgres syncs exactly as the same
sample in a DuckDB file; incremental reads, the sensor's probes and a backfill slice run there too."""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from harness import Emulator, emulator_get, run_sync, serve_emulator
from postgres_server import PostgresServer
from warehouse_kit import (
    KEY,
    SAMPLE_SEED,
    SAMPLE_USERS,
    emulator_snapshot,
    postgres_block,
    rejected_rows,
    shipped_spec,
)

from userflow_assets.orchestration.backfill import SliceTables, _stage_and_transform
from userflow_assets.orchestration.probes import run_probes
from userflow_assets.orchestration.sensors import probe_targets
from userflow_assets.sample.build import generate_warehouse
from userflow_assets.sample.postgres import load_into_postgres
from userflow_assets.spec import SyncSpec
from userflow_assets.warehouse.resources import WarehouseResource

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with serve_emulator(KEY) as served:
        yield served


@pytest.fixture
def sample_pg(postgres: PostgresServer) -> str:
    from postgres_server import fresh_database

    url = fresh_database(postgres, "sample")
    load_into_postgres(url, users=SAMPLE_USERS, seed=SAMPLE_SEED)
    return url


def _resource(spec: SyncSpec) -> WarehouseResource:
    w = spec.warehouse
    return WarehouseResource(database=w.database, url=w.url, password_env=w.password_env, sql_dir=w.sql_dir)


def _sync(spec: SyncSpec, emulator: Emulator) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Sync `spec`; what the emulator then holds and the writes (method, path, ID) the run sent."""
    before = int(emulator_get(emulator.url, "requests", limit=0)["total"])
    run_sync(spec, max_attempts=2, max_retry_time_s=2)
    sent = int(emulator_get(emulator.url, "requests", limit=0)["total"]) - before
    log = emulator_get(emulator.url, "requests", limit=min(sent, 1000))["log"] if sent else []
    writes = [(e["method"], e["path"], e["id"]) for e in log if e["method"] != "GET"]
    return emulator_snapshot(emulator.url), writes


def test_a_postgres_warehouse_syncs_exactly_as_the_same_duckdb_warehouse(
    tmp_path: Path, sample_pg: str, postgres: PostgresServer, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_warehouse(tmp_path / "warehouse.duckdb", users=SAMPLE_USERS, seed=SAMPLE_SEED)
    duck_spec = shipped_spec({"database": str(tmp_path / "warehouse.duckdb")}, tmp_path / "duck.duckdb", emulator.url)
    pg_spec = shipped_spec(postgres_block(sample_pg), tmp_path / "pg.duckdb", emulator.url)

    emulator.fresh(monkeypatch)
    from_duckdb, _ = _sync(duck_spec, emulator)
    emulator.fresh(monkeypatch)
    from_postgres, sent = _sync(pg_spec, emulator)

    assert sent and all(from_postgres[kind] for kind in ("groups", "users", "memberships", "events"))
    assert from_postgres == from_duckdb
    duck_rejected, pg_rejected = rejected_rows(tmp_path / "duck.duckdb"), rejected_rows(tmp_path / "pg.duckdb")
    assert set(pg_rejected) == {"group_rejected", "user_rejected", "event_rejected"}
    assert pg_rejected["group_rejected"] and pg_rejected["user_rejected"], "the sample plants dirty rows"
    assert pg_rejected == duck_rejected

    # Nothing changed: an incremental read sends nothing.
    assert _sync(pg_spec, emulator) == (from_postgres, [])

    # 1% of the users change in Postgres: exactly those are sent, one upsert each.
    changed = [
        u["id"] for u in from_postgres["users"] if u["id"].startswith("usr_") and u["attributes"].get("email")
    ][: SAMPLE_USERS // 100]
    assert len(changed) == 3
    listed = ", ".join(f"'{user_id}'" for user_id in changed)
    postgres.psql(
        f"UPDATE users SET plan = 'changed', updated_at = now() AT TIME ZONE 'UTC' WHERE user_id IN ({listed})",
        database=sample_pg.rsplit("/", 1)[1],
    )
    after, sent = _sync(pg_spec, emulator)
    assert sorted(sent) == sorted(("POST", "/users", user_id) for user_id in changed)
    plans = {u["id"]: u["attributes"]["plan"] for u in after["users"]}
    assert {user_id for user_id, plan in plans.items() if plan == "changed"} == set(changed)


def test_the_sensor_probes_postgres_and_sees_a_change(
    tmp_path: Path, sample_pg: str, postgres: PostgresServer, emulator: Emulator
) -> None:
    spec = shipped_spec(postgres_block(sample_pg), tmp_path / "state.duckdb", emulator.url)
    resource = _resource(spec)
    # events.sql has no updated_at column: its probe is the checksum branch.
    targets = probe_targets(spec)
    assert {t.name for t in targets} == {"groups", "users", "events"}
    first = run_probes(resource, targets)
    (users_count,) = postgres.psql("SELECT count(*) FROM users", database=sample_pg.rsplit("/", 1)[1]).split()
    assert first["users"][0] == users_count
    assert first == run_probes(resource, targets)  # unchanged data, unchanged answers

    database = sample_pg.rsplit("/", 1)[1]
    postgres.psql("UPDATE events SET name = 'Renamed' WHERE event_id = (SELECT min(event_id) FROM events)", database)
    postgres.psql("UPDATE accounts SET updated_at = now() AT TIME ZONE 'UTC' WHERE account_id = (SELECT min(account_id) FROM accounts)", database)
    second = run_probes(resource, targets)
    assert second["users"] == first["users"]
    assert second["events"] != first["events"] and second["events"][0] == first["events"][0]
    assert second["groups"] != first["groups"]


def test_a_backfill_slice_reads_postgres_as_it_reads_duckdb(tmp_path: Path, sample_pg: str, emulator: Emulator) -> None:
    generate_warehouse(tmp_path / "warehouse.duckdb", users=SAMPLE_USERS, seed=SAMPLE_SEED)
    duck_spec = shipped_spec({"database": str(tmp_path / "warehouse.duckdb")}, tmp_path / "d.duckdb", emulator.url)
    pg_spec = shipped_spec(postgres_block(sample_pg), tmp_path / "p.duckdb", emulator.url)
    start, end = datetime(2025, 1, 1), datetime(2025, 7, 1)
    tables = SliceTables.for_window(start, end)
    results = []
    for spec in (duck_spec, pg_spec):
        with duckdb.connect(spec.state_database) as con:
            counts = _stage_and_transform(con, spec, _resource(spec), tables, start, end)
            records = con.execute(f"SELECT id, attributes, memberships FROM {tables.records} ORDER BY id").fetchall()
        results.append((counts, records))
    (duck_counts, duck_records), (pg_counts, pg_records) = results
    assert 0 < pg_counts["records"] < SAMPLE_USERS
    assert (pg_counts, pg_records) == (duck_counts, duck_records)
