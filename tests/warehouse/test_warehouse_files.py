"""Files as the warehouse (`warehouse.url: "duckdb:"`): users from Parquet, groups from CSV,
synced end to end; paths in the queries are relative to the folder of the queries."""

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from harness import Emulator, emulator_get, failure_message, metadata, run_sync, serve_emulator

from userflow_assets.spec import SyncSpec
from userflow_assets.warehouse.queries import QueryError
from userflow_assets.warehouse.resources import WarehouseResource

KEY = "uf_test_files_key"
USERS_SQL = "SELECT * FROM read_parquet('../data/users-*.parquet') WHERE updated_at > $LAST_SYNC_TIMESTAMP"
GROUPS_SQL = "SELECT * FROM read_csv('../data/groups.csv') WHERE updated_at > $LAST_SYNC_TIMESTAMP"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with serve_emulator(KEY) as served:
        yield served


def _write_files(root: Path) -> None:
    (root / "data").mkdir()
    (root / "sql").mkdir()
    (root / "sql" / "users.sql").write_text(USERS_SQL)
    (root / "sql" / "groups.sql").write_text(GROUPS_SQL)
    (root / "data" / "groups.csv").write_text(
        "account_id,name,updated_at\nacc_1,Acme,2024-01-01 00:00:00\nacc_2,Globex,2024-01-02 00:00:00\n"
    )
    with duckdb.connect() as con:
        # Two files, one glob: what a partitioned export looks like.
        for part, ids in ((1, range(1, 4)), (2, range(4, 6))):
            con.execute(
                f"""COPY (SELECT 'u' || i AS user_id, 'user' || i || '@example.com' AS email,
                                 'acc_' || (i % 2 + 1) AS account_id, TIMESTAMP '2024-02-01' AS updated_at
                          FROM range({ids.start}, {ids.stop}) t(i))
                    TO '{root / "data" / f"users-{part}.parquet"}' (FORMAT parquet)"""
            )


def _spec(root: Path, url: str) -> SyncSpec:
    return SyncSpec.model_validate(
        {
            "warehouse": {"url": "duckdb:", "sql_dir": str(root / "sql")},
            "state_database": str(root / "state.duckdb"),
            "userflow": {"base_url": url},
            "groups": {"query": "groups.sql", "id_column": "account_id", "mapping": {"name": "name"}},
            "users": {
                "query": "users.sql",
                "id_column": "user_id",
                "mapping": {"email": "email"},
                "memberships": {"column": "account_id"},
            },
        }
    )


def test_users_from_parquet_and_groups_from_csv_sync_end_to_end(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.fresh(monkeypatch)
    _write_files(tmp_path)
    result = run_sync(_spec(tmp_path, emulator.url))
    assert metadata(result, "warehouse_users")["warehouse"] == f"files read by DuckDB (relative to {tmp_path / 'sql'})"
    state = emulator_get(emulator.url, "state")
    assert {g["id"]: g["attributes"] for g in state["groups"]} == {"acc_1": {"name": "Acme"}, "acc_2": {"name": "Globex"}}
    assert {u["id"]: u["attributes"]["email"] for u in state["users"]} == {
        f"u{i}": f"user{i}@example.com" for i in range(1, 6)
    }
    assert {(m["user_id"], m["group_id"]) for m in state["memberships"]} == {
        (f"u{i}", f"acc_{i % 2 + 1}") for i in range(1, 6)
    }
    # Unchanged files: the next run reads nothing new and sends nothing.
    before = emulator_get(emulator.url, "requests", limit=0)["total"]
    run_sync(_spec(tmp_path, emulator.url))
    assert emulator_get(emulator.url, "requests", limit=0)["total"] == before


def test_a_missing_file_names_the_query_and_the_path(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.fresh(monkeypatch)
    _write_files(tmp_path)
    (tmp_path / "data" / "groups.csv").unlink()
    result = run_sync(_spec(tmp_path, emulator.url), raise_on_error=False)
    message = failure_message(result)
    assert f"QueryError: {tmp_path}/sql/groups.sql: IO Error: No files found that match the pattern" in message
    assert '"../data/groups.csv"' in message


def test_a_files_query_cannot_write(tmp_path: Path) -> None:
    _write_files(tmp_path)
    (tmp_path / "sql" / "users.sql").write_text(f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'")
    warehouse = WarehouseResource(url="duckdb:", sql_dir=str(tmp_path / "sql"))
    with duckdb.connect(str(tmp_path / "state.duckdb")) as con, pytest.raises(QueryError) as raised:
        warehouse.stage(con, warehouse.load_query("users.sql"), "warehouse_users", since=None)
    assert str(raised.value).startswith(f"{tmp_path}/sql/users.sql: Parser Error: syntax error at or near \"SELECT\"")
    assert not (tmp_path / "out.csv").exists()


def test_an_error_while_reading_names_the_query(tmp_path: Path) -> None:
    _write_files(tmp_path)
    # Binds fine; fails only on the row that cannot be cast, after the read has begun.
    (tmp_path / "sql" / "users.sql").write_text("SELECT CAST(CASE WHEN i < 200000 THEN '1' ELSE 'x' END AS INTEGER) AS n FROM range(300000) t(i)")
    warehouse = WarehouseResource(url="duckdb:", sql_dir=str(tmp_path / "sql"))
    with duckdb.connect(str(tmp_path / "state.duckdb")) as con, pytest.raises(QueryError) as raised:
        warehouse.stage(con, warehouse.load_query("users.sql"), "warehouse_users", since=None)
    assert str(raised.value).startswith(
        f"{tmp_path}/sql/users.sql: Conversion Error: Could not convert string 'x' to INT32"
    )
