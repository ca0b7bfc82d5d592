"""Snowflake and BigQuery through the real ADBC drivers, up to where a live server would answer.

No Snowflake or BigQuery server can run here. What runs is ours and the drivers' own code:
the URL's options, the connection attempt (Snowflake: a refused loopback port; BigQuery: a
loopback OAuth token endpoint that rejects the key, reached after the query was prepared and
its named parameter bound), the messages, and the probe's checksum SQL (checked as text).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from ports import refused_port

from userflow_assets.warehouse.drivers import bigquery, snowflake
from userflow_assets.warehouse.source import SourceError, load_factory

PASSWORD = "Pa55-word-never-shown"
CURSOR_SQL = "SELECT * FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP AND note <> '$LAST_SYNC_TIMESTAMP'"
PARAMS = {"LAST_SYNC_TIMESTAMP": datetime(2024, 1, 1)}


def assert_clean(error: SourceError, *secrets: str) -> None:
    text = str(error)
    for secret in secrets:
        assert secret not in text
    # Nothing chains back to a driver exception that could hold the secret.
    assert error.__cause__ is None and error.__context__ is None


# --- Snowflake ---------------------------------------------------------------------------


def test_snowflake_url_gives_the_driver_options():
    where, kwargs = snowflake.db_kwargs(
        "snowflake://sync_user@myorg-acct/ANALYTICS/PUBLIC?warehouse=SYNC_WH&role=USERFLOW_READER", PASSWORD
    )
    assert where == "myorg-acct.snowflakecomputing.com (database ANALYTICS.PUBLIC)"
    assert kwargs == {
        "username": "sync_user",
        "password": PASSWORD,
        "adbc.snowflake.sql.account": "myorg-acct",
        "adbc.snowflake.sql.db": "ANALYTICS",
        "adbc.snowflake.sql.schema": "PUBLIC",
        "adbc.snowflake.sql.warehouse": "SYNC_WH",
        "adbc.snowflake.sql.role": "USERFLOW_READER",
        "adbc.snowflake.sql.client_option.login_timeout": "30s",
        "adbc.snowflake.sql.client_option.max_timestamp_precision": "microseconds",
        "adbc.snowflake.sql.client_option.app_name": "userflow-assets",
    }


def test_snowflake_key_pair_sign_in_takes_the_variable_as_the_key_passphrase():
    _, kwargs = snowflake.db_kwargs("snowflake://u@acct/DB?private_key_file=/keys/rsa.p8", "key-pass")
    assert kwargs["adbc.snowflake.sql.auth_type"] == "auth_jwt"
    assert kwargs["adbc.snowflake.sql.client_option.jwt_private_key"] == "/keys/rsa.p8"
    assert kwargs["adbc.snowflake.sql.client_option.jwt_private_key_pkcs8_password"] == "key-pass"
    assert "password" not in kwargs


def test_snowflake_user_and_names_may_be_percent_encoded():
    _, kwargs = snowflake.db_kwargs("snowflake://jane%40acme.com@acct/My%20DB/S", None)
    assert (kwargs["username"], kwargs["adbc.snowflake.sql.db"]) == ("jane@acme.com", "My DB")
    assert "password" not in kwargs


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"snowflake://u:{PASSWORD}@acct/DB", "holds a password; give it in the environment"),
        ("snowflake://acct/DB", "names no user"),
        ("snowflake://u@acct", "names no database"),
        ("snowflake://u@acct/DB?warehose=WH", "unknown snowflake warehouse URL option warehose"),
        ("snowflake://u@acct/DB?connect_timeout=soon", "connect_timeout must be whole seconds"),
    ],
)
def test_snowflake_url_mistakes_are_named(url, message):
    with pytest.raises(SourceError, match=message) as caught:
        snowflake.snowflake_source(url)
    assert PASSWORD not in str(caught.value)


def test_snowflake_unreachable_host_is_named_without_the_password():
    with refused_port() as port:
        url = f"snowflake://u@acct/DB/PUBLIC?host=127.0.0.1&port={port}&protocol=http&connect_timeout=5"
        source = load_factory("snowflake")(url, password=PASSWORD)
        with pytest.raises(SourceError) as caught:
            source.fetch(CURSOR_SQL, PARAMS)
    message = str(caught.value)
    assert message.startswith(f"cannot connect to the snowflake warehouse at 127.0.0.1:{port} (database DB.PUBLIC): ")
    assert "connection refused" in message
    assert_clean(caught.value, PASSWORD)
    assert PASSWORD not in repr(source)


def test_snowflake_checksum_hashes_whole_rows_order_independently():
    source = snowflake.snowflake_source("snowflake://u@acct/DB")
    assert source.checksum_sql("SELECT id FROM t", ["id"]) == "SELECT count(*), HASH_AGG(*) FROM (\nSELECT id FROM t\n) AS src"


# --- BigQuery ----------------------------------------------------------------------------


def service_account_key(token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "acme-analytics",
            "private_key_id": "k1",
            "private_key": pem.decode(),
            "client_email": "userflow-sync@acme-analytics.iam.gserviceaccount.com",
            "token_uri": token_uri,
        }
    )


@pytest.fixture
def rejecting_token_endpoint() -> Iterator[str]:
    """An OAuth token endpoint on loopback that rejects every key, as Google's does a revoked one."""

    class Reject(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b'{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Reject)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/token"
    finally:
        server.shutdown()
        server.server_close()


def test_bigquery_url_gives_the_driver_and_statement_options():
    where, db, statement = bigquery.options("bigquery://acme-analytics/product?location=EU", None)
    assert where == "project acme-analytics (dataset product)"
    assert db == {
        "adbc.bigquery.sql.project_id": "acme-analytics",
        "adbc.bigquery.sql.dataset_id": "product",
        "adbc.bigquery.sql.location": "EU",
    }
    assert statement == {
        "adbc.bigquery.sql.query.parameter_mode": "adbc.bigquery.sql.query.parameter_mode_named",
        "adbc.bigquery.sql.query.default_project_id": "acme-analytics",
        "adbc.bigquery.sql.query.default_dataset_id": "product",
    }


def test_bigquery_rejected_credentials_fail_the_query_without_showing_the_key(rejecting_token_endpoint):
    key_json = service_account_key(rejecting_token_endpoint)
    source = load_factory("bigquery")("bigquery://acme-analytics/product", password=key_json)
    with pytest.raises(SourceError) as caught:
        source.fetch(CURSOR_SQL, PARAMS)
    message = str(caught.value)
    assert message.startswith("the bigquery warehouse at project acme-analytics (dataset product) could not run the query: ")
    assert "invalid_grant" in message
    assert_clean(caught.value, key_json, json.loads(key_json)["private_key"])


def test_bigquery_without_credentials_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    source = bigquery.bigquery_source("bigquery://acme-analytics/product")
    with pytest.raises(SourceError, match=r"^cannot connect to the bigquery warehouse at project acme-analytics \(dataset product\): "):
        source.check()


def test_bigquery_credentials_that_are_not_a_key_are_refused_without_echoing_them():
    with pytest.raises(SourceError, match="not a service-account key JSON") as caught:
        bigquery.bigquery_source("bigquery://p/d", password="not-json-" + PASSWORD)
    assert PASSWORD not in str(caught.value)


def test_bigquery_checksum_fingerprints_whole_rows_order_independently():
    source = bigquery.bigquery_source("bigquery://p/d")
    assert source.checksum_sql("SELECT id FROM t", ["id"]) == (
        "SELECT count(*), BIT_XOR(FARM_FINGERPRINT(TO_JSON_STRING(src))) FROM (\nSELECT id FROM t\n) AS src"
    )


# --- Shared ------------------------------------------------------------------------------


def test_positional_binding_sends_a_value_per_marker_and_named_binding_one_per_name():
    from userflow_assets.warehouse.drivers.adbc import bind_row
    from userflow_assets.warehouse.params import Style, translate

    when = datetime(2024, 1, 1)
    sql = "SELECT 1 WHERE a > $LAST_SYNC_TIMESTAMP OR b > $LAST_SYNC_TIMESTAMP"
    positional = bind_row(translate(sql, Style.QMARK), PARAMS)
    named = bind_row(translate(sql, Style.AT), PARAMS)
    assert positional.num_columns == 2 and positional.to_pylist() == [{"LAST_SYNC_TIMESTAMP": when}]
    assert named.schema.names == ["LAST_SYNC_TIMESTAMP"] and named.column(0).to_pylist() == [when]
    assert bind_row(translate("SELECT 1", Style.QMARK), {}) is None


@pytest.mark.parametrize(
    ("scheme", "url"),
    [
        ("snowflake", "snowflake://u@acct/DB"),
        ("bigquery", "bigquery://p/d"),
        ("redshift", "redshift://u@h/db"),
        ("databricks", "databricks://h/sql/1.0/warehouses/x"),
        ("mysql", "mysql://u@h/db"),
    ],
)
def test_each_source_registers_its_secret_for_redaction(scheme, url):
    from userflow_assets.redaction import redact

    secret = json.dumps({"private_key": f"{scheme}-key-{PASSWORD}"}) if scheme == "bigquery" else f"{scheme}-{PASSWORD}"
    load_factory(scheme)(url, password=secret)
    assert secret not in redact(f"driver said: {secret}")
