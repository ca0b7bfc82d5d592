"""Every registered URL scheme opens through `open_source`, as the spec's `warehouse.url` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from userflow_assets.warehouse.source import (
    SCHEMES,
    Source,
    SourceError,
    driver_for,
    open_source,
)

# A syntactically valid URL per scheme; constructing a source parses it and connects to nothing.
VALID_URLS = {
    "duckdb": "duckdb:",
    "postgresql": "postgresql://reader@db.internal:5432/app",
    "postgres": "postgres://reader@db.internal:5432/app",
    "snowflake": "snowflake://reader@acme-xy12345/ANALYTICS/PUBLIC?warehouse=WH",
    "bigquery": "bigquery://acme-analytics/product",
    "redshift": "redshift://reader@cluster.abc.eu-west-1.redshift.amazonaws.com:5439/dev",
    "databricks": "databricks://dbc-1234.cloud.databricks.com/sql/1.0/warehouses/abc",
    "mysql": "mysql://reader@db.internal:3306/app",
}


def test_every_registered_scheme_has_a_url_here() -> None:
    driver_for("duckdb")  # registers the optional warehouses' schemes
    assert set(SCHEMES) == set(VALID_URLS)


@pytest.mark.parametrize("scheme", sorted(VALID_URLS))
def test_each_scheme_opens_through_open_source(
    scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UF_TEST_WAREHOUSE_SECRET", '{"type": "service_account"}')
    try:
        source = open_source(
            VALID_URLS[scheme], "UF_TEST_WAREHOUSE_SECRET", base_dir=tmp_path
        )
    except SourceError as error:
        # Only a driver that is not installed may stop it, and it says which extra to install.
        assert "pip install 'userflow-assets[" in str(error)
        return
    assert isinstance(source, Source)
    assert source.describe()
