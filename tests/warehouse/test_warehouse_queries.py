"""Source queries: parameters found by DuckDB's tokenizer, bound never pasted, faults named."""

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from userflow_assets.warehouse.queries import EARLIEST, QueryError, load_query, query_parameters
from userflow_assets.warehouse.resources import WarehouseResource


def test_parameters_ignore_strings_and_comments() -> None:
    sql = "-- $NOT_ME\nSELECT '$NOR_ME' AS a FROM t WHERE x > $LAST_SYNC_TIMESTAMP AND y = $other_1"
    assert query_parameters(sql) == {"LAST_SYNC_TIMESTAMP", "other_1"}


def test_misspelled_cursor_parameter_is_named(tmp_path: Path) -> None:
    path = tmp_path / "users.sql"
    path.write_text("SELECT * FROM users WHERE updated_at > $LAST_SYNC_TIMESTMP")
    with pytest.raises(QueryError, match=r"users\.sql: unknown parameter \$LAST_SYNC_TIMESTMP"):
        load_query(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="Source query file not found: .*nope.sql"):
        load_query(tmp_path / "nope.sql")
    (tmp_path / "empty.sql").write_text("  ;\n")
    with pytest.raises(QueryError, match="empty.sql: the query file is empty"):
        load_query(tmp_path / "empty.sql")


def test_full_read_binds_the_earliest_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    path.write_text("SELECT 1 WHERE now() > $LAST_SYNC_TIMESTAMP;")
    query = load_query(path)
    assert query.text.endswith("$LAST_SYNC_TIMESTAMP")
    assert query.parameters(None) == {"LAST_SYNC_TIMESTAMP": EARLIEST}
    assert query.parameters(datetime(2026, 1, 2)) == {"LAST_SYNC_TIMESTAMP": datetime(2026, 1, 2)}


@pytest.fixture
def warehouse(tmp_path: Path) -> WarehouseResource:
    path = tmp_path / "wh.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE users (user_id VARCHAR, name VARCHAR, updated_at TIMESTAMP)")
        con.execute(
            "INSERT INTO users VALUES ('u1', 'O''Brien', '2026-01-01'), ('u2', 'b', '2026-03-01'), (NULL, 'c', '2026-05-01')"
        )
    (tmp_path / "sql").mkdir()
    return WarehouseResource(database=str(path), sql_dir=str(tmp_path / "sql"))


def _stage(warehouse: WarehouseResource, tmp_path: Path, sql: str, since: datetime | None = None):
    (Path(warehouse.sql_dir) / "users.sql").write_text(sql)
    query = warehouse.load_query("users.sql")
    with duckdb.connect(str(tmp_path / "state.duckdb")) as con:
        staged = warehouse.stage(con, query, "warehouse_users", since=since)
        rows = con.execute("SELECT * FROM staging.warehouse_users ORDER BY updated_at").fetchall()
        attached = [r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()]
    return staged, rows, attached


def test_stage_copies_rows_and_detaches(warehouse: WarehouseResource, tmp_path: Path) -> None:
    staged, rows, attached = _stage(warehouse, tmp_path, "SELECT * FROM users -- trailing comment")
    assert staged.row_count == 3
    assert staged.columns == [("user_id", "VARCHAR"), ("name", "VARCHAR"), ("updated_at", "TIMESTAMP")]
    assert [r[0] for r in rows] == ["u1", "u2", None]
    assert "warehouse" not in attached


def test_stage_binds_the_cursor(warehouse: WarehouseResource, tmp_path: Path) -> None:
    sql = "SELECT * FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP"
    staged, rows, _ = _stage(warehouse, tmp_path, sql, since=datetime(2026, 2, 1))
    assert [r[0] for r in rows] == ["u2", None]
    staged, rows, _ = _stage(warehouse, tmp_path, sql)
    assert staged.row_count == 3


def test_stage_error_names_the_file_and_keeps_the_warehouse_readonly(
    warehouse: WarehouseResource, tmp_path: Path
) -> None:
    with pytest.raises(QueryError, match=r"users\.sql: .*no_such_column"):
        _stage(warehouse, tmp_path, "SELECT no_such_column FROM users")
    # A source query is wrapped as one SELECT, so a write or a second statement cannot run.
    with pytest.raises(QueryError, match=r"users\.sql: Parser Error: syntax error at or near \"DELETE\""):
        _stage(warehouse, tmp_path, "DELETE FROM users RETURNING *")
    with pytest.raises(QueryError, match=r"users\.sql: Parser Error"):
        _stage(warehouse, tmp_path, "SELECT * FROM users; DROP TABLE users")
    with duckdb.connect(warehouse.database, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM users").fetchone()[0] == 3


def test_missing_warehouse_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "users.sql").write_text("SELECT 1")
    resource = WarehouseResource(database=str(tmp_path / "missing.duckdb"), sql_dir=str(tmp_path))
    with duckdb.connect() as con, pytest.raises(QueryError, match="resource 'warehouse', setting 'database'"):
        resource.stage(con, resource.load_query("users.sql"), "warehouse_users", since=None)
