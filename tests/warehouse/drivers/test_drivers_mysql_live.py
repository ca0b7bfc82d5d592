"""The MySQL source against a real MariaDB server: binding, types, streaming, read-only, errors."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from userflow_assets.warehouse.drivers import mysql
from userflow_assets.warehouse.source import SourceError, load_factory

USERS = """
CREATE TABLE users (
  id BIGINT UNSIGNED PRIMARY KEY, email VARCHAR(100), arr DECIMAL(12, 2), seats INT,
  updated_at TIMESTAMP(6) NULL, signed_up DATE, plan ENUM('free', 'pro'), avatar BLOB, note TEXT
);
INSERT INTO users VALUES
  (1, 'old@x.io', 10.00, 1, '2023-06-01 00:00:00', '2023-01-01', 'free', NULL, 'NULL'),
  (2, 'new@x.io', 12.50, 3, '2024-05-01 08:00:00.123456', '2024-04-30', 'pro', x'89504E47', NULL),
  (3, 'zoë@x.io', NULL, NULL, '2024-06-01 00:00:00', NULL, NULL, NULL, 'it''s $LAST_SYNC_TIMESTAMP');
"""
SINCE = {"LAST_SYNC_TIMESTAMP": dt.datetime(2024, 1, 1)}


@pytest.fixture
def users(mysql_db):
    mysql_db.sql(USERS)
    return mysql_db


def read(source, sql: str, params=None) -> list[dict]:
    return source.fetch(sql, params or {}).read_all().to_pylist()


def test_the_cursor_is_bound_by_the_server_and_dollar_text_stays_text(users):
    source = load_factory("mysql")(users.url(users.reader), password=users.password)
    rows = read(
        source,
        "SELECT id, '$LAST_SYNC_TIMESTAMP' AS literal FROM users"
        " WHERE updated_at > $LAST_SYNC_TIMESTAMP AND (note IS NULL OR updated_at >= $LAST_SYNC_TIMESTAMP) ORDER BY id",
        SINCE,
    )
    assert rows == [{"id": 2, "literal": "$LAST_SYNC_TIMESTAMP"}, {"id": 3, "literal": "$LAST_SYNC_TIMESTAMP"}]


def test_mysql_types_are_staged_into_duckdb_with_their_values(users):
    source = mysql.mysql_source(users.url(users.reader), password=users.password)
    with duckdb.connect() as con:
        con.execute("SET TimeZone='UTC'")
        con.register("src", source.fetch("SELECT * FROM users ORDER BY id", {}))
        con.execute("CREATE TABLE staged AS SELECT * FROM src")
        types = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name='staged' ORDER BY ordinal_position").fetchall()
        row = con.execute("SELECT * FROM staged WHERE id = 2").fetchone()
    assert dict(types) == {
        "id": "UBIGINT", "email": "VARCHAR", "arr": "DOUBLE", "seats": "BIGINT", "updated_at": "TIMESTAMP",
        "signed_up": "DATE", "plan": "VARCHAR", "avatar": "BLOB", "note": "VARCHAR",
    }
    assert row == (2, "new@x.io", 12.5, 3, dt.datetime(2024, 5, 1, 8, 0, 0, 123456), dt.date(2024, 4, 30), "pro", b"\x89PNG", None)


def test_timestamps_are_read_in_utc_whatever_zone_wrote_them(users):
    users.sql("SET time_zone = '+02:00'; INSERT INTO users (id, updated_at) VALUES (9, '2024-07-01 10:00:00');")
    source = mysql.mysql_source(users.url(users.reader), password=users.password)
    assert read(source, "SELECT updated_at FROM users WHERE id = 9") == [{"updated_at": dt.datetime(2024, 7, 1, 8, 0)}]


def test_rows_stream_in_batches(users, monkeypatch):
    monkeypatch.setattr(mysql, "BATCH_ROWS", 2)
    source = mysql.mysql_source(users.url(users.reader), password=users.password)
    sizes = [batch.num_rows for batch in source.fetch("SELECT id FROM users", {})]
    assert sizes == [2, 1]


def test_a_write_is_refused_by_the_read_only_transaction_even_for_a_user_who_may_write(users):
    source = mysql.mysql_source(users.url(users.writer), password=users.password)
    with pytest.raises(SourceError, match=r"could not run the query: 1792 .*READ ONLY transaction"):
        read(source, "DELETE FROM users")
    assert users.sql("SELECT count(*) FROM users").strip() == "3"


def test_wrong_password_is_named_without_the_password(users):
    source = load_factory("mysql")(users.url(users.reader), password="not-" + users.password)
    with pytest.raises(SourceError) as caught:
        source.check()
    message = str(caught.value)
    assert message.startswith(f"cannot connect to the mysql warehouse at 127.0.0.1:{users.server.port} (database {users.name}): ")
    assert "Access denied" in message
    assert users.password not in message
    assert caught.value.__context__ is None


def test_a_missing_table_quotes_the_servers_error(users):
    source = mysql.mysql_source(users.url(users.reader), password=users.password)
    with pytest.raises(SourceError, match=rf"could not run the query: 1146 \(42S02\): Table '{users.name}.nope' doesn't exist"):
        read(source, "SELECT * FROM nope")


def test_a_connection_dropped_mid_fetch_fails_the_read_cleanly(users, monkeypatch):
    # Enough rows that the server is still sending when the connection is killed.
    users.sql("CREATE TABLE wide AS SELECT seq AS id, REPEAT('x', 200) AS pad FROM seq_1_to_300000;")
    monkeypatch.setattr(mysql, "BATCH_ROWS", 1_000)
    source = mysql.mysql_source(users.url(users.reader), password=users.password)
    reader = source.fetch("SELECT * FROM wide", {})
    assert reader.read_next_batch().num_rows == 1_000
    ids = users.sql(f"SELECT id FROM information_schema.processlist WHERE user = '{users.reader}'").split()
    users.server.sql("".join(f"KILL {i};" for i in ids))
    with pytest.raises(SourceError, match=r"^the mysql warehouse at .* could not run the query: "):
        for _ in reader:
            pass


def test_the_checksum_runs_on_the_server_and_ignores_row_order(users):
    source = mysql.mysql_source(users.url(users.reader), password=users.password)
    columns = ["id", "email", "arr", "updated_at", "note"]
    base = "SELECT id, email, arr, updated_at, note FROM users"

    def checksum(sql: str) -> tuple:
        row = read(source, source.checksum_sql(sql, columns))[0]
        return tuple(row.values())

    first = checksum(base + " ORDER BY id")
    assert first == checksum(base + " ORDER BY id DESC")
    assert first[0] == 3
    users.sql("UPDATE users SET note = NULL WHERE id = 1")  # the text 'NULL' becomes NULL: a change
    assert checksum(base) != first


def test_a_full_read_binds_the_earliest_timestamp_and_reads_every_dated_row(users):
    from userflow_assets.warehouse.queries import EARLIEST

    source = mysql.mysql_source(users.url(users.reader), password=users.password)
    rows = read(source, "SELECT id FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP ORDER BY id", {"LAST_SYNC_TIMESTAMP": EARLIEST})
    assert rows == [{"id": 1}, {"id": 2}, {"id": 3}]


def test_the_sensor_default_probes_run_on_the_server_with_and_without_updated_at(users, tmp_path, monkeypatch):
    from userflow_assets.orchestration.probes import ProbeTarget, run_probes
    from userflow_assets.warehouse.resources import WarehouseResource

    (tmp_path / "users.sql").write_text("SELECT id, email, updated_at FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP")
    (tmp_path / "groups.sql").write_text("SELECT id, note FROM users")  # no updated_at: the checksum branch
    monkeypatch.setenv("UF_TEST_MYSQL_PASSWORD", users.password)
    warehouse = WarehouseResource(
        url=users.url(users.reader), password_env="UF_TEST_MYSQL_PASSWORD", sql_dir=str(tmp_path)
    )
    targets = [ProbeTarget("users", "users.sql"), ProbeTarget("groups", "groups.sql")]

    first = run_probes(warehouse, targets)
    assert first["users"] == ["3", "2024-06-01 00:00:00"]
    assert first["groups"][0] == "3" and first["groups"][1] is not None
    users.sql("UPDATE users SET note = 'changed' WHERE id = 1")
    assert run_probes(warehouse, targets)["groups"] != first["groups"]
