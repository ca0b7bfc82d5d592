"""Bad input from a Postgres warehouse: each a clear error naming what is at fault, no password
anywhere, and nothing staged half."""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from harness import failure_messages, run_sync, serve_emulator
from needs import need
from ports import refused_port
from postgres_server import PostgresServer, throwaway_cluster

from userflow_assets.redaction import REDACTED
from userflow_assets.spec import SyncSpec
from userflow_assets.warehouse.queries import QueryError
from userflow_assets.warehouse.resources import WarehouseResource
from userflow_assets.warehouse.source import Source
from userflow_assets.warehouse.staging import stage_rows

PASSWORD = "s3cret-Pa55:word@/?"
PASSWORD_ENV = "USERFLOW_TEST_WAREHOUSE_PASSWORD"


def _where(url: str) -> str:
    user_host, database = url.split("://", 1)[1].rsplit("/", 1)
    host = user_host.split("@")[-1]
    user = user_host.split("@")[0] if "@" in user_host else ""
    return f"postgres {user}@{host}/{database}"


def _stage(tmp_path: Path, url: str, sql: str, since: datetime | None = None, **resource: str) -> None:
    (tmp_path / "sql").mkdir(exist_ok=True)
    (tmp_path / "sql" / "users.sql").write_text(sql)
    warehouse = WarehouseResource(url=url, sql_dir=str(tmp_path / "sql"), **resource)
    with duckdb.connect(str(tmp_path / "state.duckdb")) as con:
        warehouse.stage(con, warehouse.load_query("users.sql"), "warehouse_users", since=since)


@pytest.fixture
def labels(postgres: PostgresServer, postgres_url: str) -> str:
    postgres.psql(
        "CREATE TABLE labels (id int, label text, seen_at timestamp); INSERT INTO labels VALUES (1, 'a', now())",
        database=postgres_url.rsplit("/", 1)[1],
    )
    return postgres_url


def test_an_unreachable_host_names_the_warehouse_and_the_cause(tmp_path: Path) -> None:
    with refused_port() as port:
        url = f"postgresql://reader@127.0.0.1:{port}/warehouse"
        with pytest.raises(QueryError) as raised:
            _stage(tmp_path, url, "SELECT 1")
    assert str(raised.value) == (
        f"{tmp_path}/sql/users.sql: cannot connect to the postgres reader@127.0.0.1:{port}/warehouse: "
        f'connection to server at "127.0.0.1", port {port} failed: Connection refused'
    )


def test_a_missing_table_names_the_sql_file_and_quotes_postgres(tmp_path: Path, labels: str) -> None:
    with pytest.raises(QueryError) as raised:
        _stage(tmp_path, labels, "SELECT * FROM no_such_table")
    assert str(raised.value) == (
        f'{tmp_path}/sql/users.sql: {_where(labels)}: relation "no_such_table" does not exist (SQLSTATE 42P01)'
    )


@pytest.mark.parametrize(
    ("select", "column", "type_name", "advice"),
    [
        ("'10.0.0.1'::inet AS ip", "ip", "inet", 'cast it in the query (for example "ip"::text)'),
        ("(id, label)::record AS pair", "pair", "record", "select its fields as columns, or cast it to a named composite type"),
    ],
)
def test_a_type_that_cannot_map_names_the_column_and_type(
    tmp_path: Path, labels: str, select: str, column: str, type_name: str, advice: str
) -> None:
    with pytest.raises(QueryError) as raised:
        _stage(tmp_path, labels, f"SELECT id, {select} FROM labels")
    assert str(raised.value) == (
        f'{tmp_path}/sql/users.sql: {_where(labels)}: column "{column}" has the PostgreSQL type {type_name}, '
        f"which cannot be staged; {advice}"
    )


def test_the_cursor_compared_with_a_text_column_is_postgres_own_error(tmp_path: Path, labels: str) -> None:
    with pytest.raises(QueryError) as raised:
        _stage(tmp_path, labels, "SELECT * FROM labels WHERE label > $LAST_SYNC_TIMESTAMP", since=datetime(2024, 1, 1))
    assert str(raised.value) == (
        f"{tmp_path}/sql/users.sql: {_where(labels)}: operator does not exist: "
        "text > timestamp without time zone (SQLSTATE 42883)"
    )


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("DELETE FROM labels RETURNING *", "cannot execute DELETE in a read-only transaction (SQLSTATE 25006)"),
        (
            "WITH gone AS (DELETE FROM labels RETURNING *) SELECT * FROM gone",
            "cannot execute SELECT in a read-only transaction (SQLSTATE 25006)",
        ),
        ("SELECT 1; DROP TABLE labels", "cannot insert multiple commands into a prepared statement (SQLSTATE 42601)"),
    ],
)
def test_a_query_that_writes_is_refused_by_the_read_only_session(
    tmp_path: Path, postgres: PostgresServer, labels: str, sql: str, refused: str
) -> None:
    with pytest.raises(QueryError) as raised:
        _stage(tmp_path, labels, sql)
    assert str(raised.value) == f"{tmp_path}/sql/users.sql: {_where(labels)}: {refused}"
    assert postgres.psql("SELECT count(*) FROM labels", database=labels.rsplit("/", 1)[1]) == "1"


# ---- wrong credentials: a cluster of its own that asks for passwords -----------------------------


@pytest.fixture(scope="module")
def password_server() -> Iterator[PostgresServer]:
    """A cluster where role `reader` must give its password (the superuser stays trusted)."""
    with throwaway_cluster() as server:
        need(server.data_dir is not None, "this test needs a cluster of its own (not USERFLOW_TEST_POSTGRES_URL)")
        assert server.data_dir is not None
        server.psql(f"CREATE ROLE reader LOGIN PASSWORD '{PASSWORD}'; CREATE TABLE users (user_id text)")
        server.psql("INSERT INTO users VALUES ('u1'); GRANT SELECT ON users TO reader")
        (server.data_dir / "pg_hba.conf").write_text(
            "host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        server.psql("SELECT pg_reload_conf()")
        yield server


def test_the_right_password_from_its_variable_reads(
    tmp_path: Path, password_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    url = f"postgresql://reader@{password_server.host}:{password_server.port}/postgres"
    _stage(tmp_path, url, "SELECT user_id FROM users", password_env=PASSWORD_ENV)
    source = WarehouseResource(url=url, password_env=PASSWORD_ENV).source()
    assert source.describe() == f"postgres reader@127.0.0.1:{password_server.port}/postgres"  # the asset's metadata
    with duckdb.connect(str(tmp_path / "state.duckdb")) as con:
        assert con.execute("SELECT user_id FROM staging.warehouse_users").fetchall() == [("u1",)]


def test_a_wrong_password_fails_the_run_without_showing_it(
    tmp_path: Path, password_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-" + PASSWORD
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    monkeypatch.setenv("USERFLOW_API_KEY", "uf_key")
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "users.sql").write_text("SELECT user_id FROM users")
    url = f"postgresql://reader@{password_server.host}:{password_server.port}/postgres"
    with serve_emulator("uf_key") as emulator:
        spec = SyncSpec.model_validate(
            {
                "warehouse": {"url": url, "password_env": PASSWORD_ENV, "sql_dir": str(tmp_path / "sql")},
                "state_database": str(tmp_path / "state.duckdb"),
                "userflow": {"base_url": emulator.url},
                "users": {"query": "users.sql", "id_column": "user_id", "mapping": {"id": "user_id"}},
            }
        )
        result = run_sync(spec, raise_on_error=False)
    assert not result.success
    (message,) = failure_messages(result)
    expected = (
        f"{tmp_path}/sql/users.sql: cannot connect to the postgres reader@127.0.0.1:{password_server.port}/postgres: "
        'password authentication failed for user "reader"'
    )
    assert f"QueryError: {expected}\n" in message
    everything = "\n".join(str(event) for event in result.all_events) + message + caplog.text
    assert wrong not in everything and PASSWORD not in everything
    assert REDACTED not in message  # nothing to redact: the password never reached the text


# ---- a connection dropped part way --------------------------------------------------------------


class DroppedAfterFirstBatch:
    """The real Postgres source; once its first batch has arrived, the server ends the connection
    (`pg_terminate_backend` from another connection), so the read stops part way."""

    def __init__(self, source: Source, server: PostgresServer, database: str) -> None:
        self.source, self.server, self.database = source, server, database
        self.kind = source.kind

    def describe(self) -> str:
        return self.source.describe()

    def check(self) -> None:
        self.source.check()

    def fetch(self, sql: str, params: dict[str, object]) -> pa.RecordBatchReader:
        reader = self.source.fetch(sql, params)

        def batches() -> Iterator[pa.RecordBatch]:
            iterator = iter(reader)
            yield next(iterator)
            self.server.psql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'userflow_assets' AND pid <> pg_backend_pid()",
                database=self.database,
            )
            yield from iterator

        return pa.RecordBatchReader.from_batches(reader.schema, batches())


def test_a_connection_dropped_mid_fetch_stages_nothing_half_and_the_next_read_is_whole(
    tmp_path: Path, postgres: PostgresServer, postgres_url: str
) -> None:
    # Far more rows than one batch (and than the socket buffers hold), so the server is still sending.
    sql = "SELECT g AS id, md5(g::text) AS a, md5((g + 1)::text) AS b FROM generate_series(1, 1500000) AS g"
    database = postgres_url.rsplit("/", 1)[1]
    real = WarehouseResource(url=postgres_url).source()
    with duckdb.connect(str(tmp_path / "state.duckdb")) as con:
        stage_rows(con, real, "SELECT 1 AS id, 'old' AS a, 'old' AS b", {}, "warehouse_users", "users.sql")
        with pytest.raises(QueryError) as raised:
            stage_rows(con, DroppedAfterFirstBatch(real, postgres, database), sql, {}, "warehouse_users", "users.sql")
        # libpq reports the server's goodbye if it read it before the socket closed, else the closed socket.
        assert str(raised.value) in {
            f"users.sql: {_where(postgres_url)}: the read stopped part way: {cause}"
            for cause in (
                "terminating connection due to administrator command",
                "PQgetCopyData() failed: server closed the connection unexpectedly",
            )
        }
        # The last complete read is still what is staged: nothing of the broken one.
        assert con.execute("SELECT * FROM staging.warehouse_users").fetchall() == [(1, "old", "old")]
        staged = stage_rows(con, real, sql, {}, "warehouse_users", "users.sql")
        assert staged.row_count == 1_500_000
        assert con.execute("SELECT count(DISTINCT id), max(id) FROM staging.warehouse_users").fetchone() == (1_500_000, 1_500_000)
