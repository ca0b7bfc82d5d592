"""Helpers of the transform tests: a fresh DuckDB source table, the spec, the stage run on it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from userflow_assets.spec import ObjectSpec
from userflow_assets.transform import TransformResult, build_records

SOURCE = "staging.src"
RECORDS = "transform.records"
REJECTED = "transform.rejected"


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "sync.duckdb"))
    connection.execute("CREATE SCHEMA staging")
    yield connection
    connection.close()


def load(con: duckdb.DuckDBPyConnection, select_sql: str) -> None:
    """Stage `select_sql`'s rows as the source table."""
    con.execute(f"CREATE OR REPLACE TABLE {SOURCE} AS {select_sql}")


def make_spec(**fields: Any) -> ObjectSpec:
    base: dict[str, Any] = {"query": "users.sql", "id_column": "id", "mapping": {"name": "name"}}
    base.update(fields)
    return ObjectSpec.model_validate(base)


def run(con: duckdb.DuckDBPyConnection, spec: ObjectSpec, object_type: str = "user") -> TransformResult:
    return build_records(con, spec, object_type, SOURCE, RECORDS, REJECTED)  # type: ignore[arg-type]


def attributes(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Record ID -> parsed attributes."""
    return {rid: json.loads(text) for rid, text in con.execute(f"SELECT id, attributes FROM {RECORDS}").fetchall()}


def raw_attributes(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute(f"SELECT id, attributes FROM {RECORDS}").fetchall())


def rejected(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute(f'SELECT source_row, id, "column", reason, value FROM {REJECTED} ORDER BY source_row').fetchall()


def ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(f"SELECT id FROM {RECORDS} ORDER BY source_row").fetchall()]


@pytest.fixture
def kept(con: duckdb.DuckDBPyConnection) -> Callable[..., list[str]]:
    """IDs kept by a filter of one condition (or several, with `logical`)."""

    def _kept(*conditions: dict[str, Any], logical: str = "and") -> list[str]:
        run(con, make_spec(filter={"logical": logical, "conditions": list(conditions)}))
        return ids(con)

    return _kept
