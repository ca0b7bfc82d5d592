"""The warehouse block of the spec: one obvious way per warehouse, and clear errors otherwise."""

from pathlib import Path

import dagster as dg
import pytest
from pydantic import ValidationError

from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.spec import SyncSpec, WarehouseSpec
from userflow_assets.warehouse import source as source_module
from userflow_assets.warehouse.postgres_source import PostgresSource
from userflow_assets.warehouse.resources import WarehouseResource
from userflow_assets.warehouse.source import Driver, SourceError, load_factory


def _error(block: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as raised:
        WarehouseSpec.model_validate(block)
    (error,) = raised.value.errors()
    return str(error["msg"])


def test_a_postgres_url_and_its_password_variable() -> None:
    spec = WarehouseSpec.model_validate({"url": "postgresql://reader@db.internal:5432/app", "password_env": "PGPW"})
    assert (spec.url, spec.password_env) == ("postgresql://reader@db.internal:5432/app", "PGPW")


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"url": "oracle://x@y/z"}, "warehouse.url: warehouse URL scheme 'oracle' is not known; use one of: bigquery, databricks, duckdb, mysql, postgres, postgresql, redshift, snowflake"),
        ({"url": "db.internal/app"}, "warehouse.url: warehouse URL 'db.internal/app' has no scheme"),
        (
            {"url": "postgresql://reader:hunter2@db/app"},
            (
                "warehouse.url 'postgresql://reader:[redacted]@db/app' has a password in it; name the environment "
                "variable that holds it in warehouse.password_env instead"
            ),
        ),
        (
            {"url": "postgresql://reader@db/app", "database": "data/w.duckdb"},
            "warehouse: give database (a DuckDB file) or url (any other warehouse), not both",
        ),
        ({"password_env": "PGPW"}, "warehouse.password_env is for a url warehouse; a DuckDB file has no password"),
        (
            {"url": "postgresql://reader@db/app", "password_env": "hunter2!"},
            (
                "warehouse.password_env is not an environment variable name (letters, digits, _); give the "
                "variable's name (e.g. USERFLOW_WAREHOUSE_PASSWORD), never the password"
            ),
        ),
    ],
)
def test_a_wrong_warehouse_block_says_what_is_wrong(block: dict[str, object], message: str) -> None:
    assert message in _error(block)
    with pytest.raises(ValidationError) as raised:
        WarehouseSpec.model_validate(block)
    assert "hunter2" not in str(raised.value)  # pydantic's own text leaves the input out too


def test_the_password_is_read_from_its_variable_at_connect_time(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = WarehouseResource(url="postgresql://reader@db/app", password_env="UF_TEST_PW")
    monkeypatch.delenv("UF_TEST_PW", raising=False)
    with pytest.raises(SourceError) as raised:
        resource.source()
    assert str(raised.value) == "the warehouse password variable UF_TEST_PW (setting warehouse.password_env) is not set"
    monkeypatch.setenv("UF_TEST_PW", "pw-from-env")
    source = resource.source()
    assert isinstance(source, PostgresSource)
    assert "pw-from-env" not in repr(source) + source.describe()


def test_a_missing_driver_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(source_module.SCHEMES, "madeup", Driver("madeup_driver_module", "connect", "madeup", "madeup"))
    with pytest.raises(SourceError) as raised:
        load_factory("madeup")
    assert str(raised.value) == (
        "the madeup warehouse needs a driver that is not installed: madeup_driver_module "
        "(pip install 'userflow-assets[madeup]')"
    )


def test_the_mirror_refuses_a_url_warehouse(tmp_path: Path) -> None:
    spec = SyncSpec.model_validate(
        {
            "warehouse": {"url": "postgresql://reader@db/app"},
            "state_database": str(tmp_path / "state.duckdb"),
            "users": {"query": "users.sql", "id_column": "user_id", "mapping": {"id": "user_id"}},
            "mirror": {"enabled": True},
        }
    )
    with pytest.raises(ValueError) as raised:
        build_sync_defs(spec)
    assert str(raised.value) == (
        "mirror.enabled needs a DuckDB warehouse file (warehouse.database): the mirror writes Userflow's data "
        "into that file, and a warehouse.url warehouse is only ever read; set mirror.enabled to false"
    )


@pytest.mark.parametrize(
    ("url", "kind"),
    [(None, "duckdb"), ("duckdb:", "duckdb"), ("postgresql://reader@db/app", "postgres"), ("snowflake://r@acct/DB", "snowflake")],
)
def test_the_warehouse_assets_show_the_warehouse_they_read(tmp_path: Path, url: str | None, kind: str) -> None:
    warehouse: dict[str, object] = {"url": url} if url else {"database": str(tmp_path / "warehouse.duckdb")}
    spec = SyncSpec.model_validate(
        {
            "warehouse": warehouse,
            "state_database": str(tmp_path / "state.duckdb"),
            "users": {"query": "users.sql", "id_column": "user_id", "mapping": {"id": "user_id"}},
            "events": {"query": "events.sql", "key_column": "event_id", "name": "name", "user_id": "user_id", "time": "occurred_at"},
            "mirror": {"enabled": False},
        }
    )
    defs = build_sync_defs(spec)
    kinds = {
        key.to_user_string(): set(defs.resolve_assets_def(key).specs_by_key[key].kinds)
        for key in (dg.AssetKey("warehouse_users"), dg.AssetKey("warehouse_events"))
    }
    assert kinds == {"warehouse_users": {kind, "sql"}, "warehouse_events": {kind, "sql"}}
