"""The events spec compiled to DuckDB: records, rejected rows and their reasons, spec errors."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from userflow_assets.events.transform import EventTransformResult, build_event_records
from userflow_assets.spec import EventsSpec
from userflow_assets.transform import SpecError

COLUMNS = "event_id, user_id, account_id, name, occurred_at, properties"


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "state.duckdb"))
    connection.execute("CREATE SCHEMA staging")
    yield connection
    connection.close()


def spec(**fields: Any) -> EventsSpec:
    base: dict[str, Any] = {
        "key_column": "event_id", "name": "name", "user_id": "user_id", "group_id": "account_id",
        "time": "occurred_at", "attributes": {"plan": "json_extract_string(properties, '$.plan')"},
    }
    return EventsSpec.model_validate(base | fields)


def run(con: duckdb.DuckDBPyConnection, rows: str, events: EventsSpec) -> EventTransformResult:
    con.execute(f"CREATE OR REPLACE TABLE staging.events AS SELECT * FROM (VALUES {rows}) t({COLUMNS})")
    return build_event_records(con, events, "staging.events", "transform.event_records", "transform.event_rejected")


def records(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute(
        "SELECT key, name, user_id, group_id, time, attributes FROM transform.event_records ORDER BY source_row"
    ).fetchall()


def rejected(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute('SELECT source_row, key, "column", reason FROM transform.event_rejected ORDER BY 1').fetchall()


def test_each_bad_row_is_rejected_with_its_reason(con: duckdb.DuckDBPyConnection) -> None:
    result = run(
        con,
        """
        ('e1', 'u1', 'a1', 'Signed Up', TIMESTAMP '2026-01-02 03:04:05', '{"plan": "pro"}'),
        (NULL, 'u1', NULL, 'Signed Up', NULL, '{}'),
        ('  ', 'u1', NULL, 'Signed Up', NULL, '{}'),
        ('e4', 'u1', NULL, NULL, NULL, '{}'),
        ('e5', 'u1', NULL, 'Signed/Up', NULL, '{}'),
        ('e6', NULL, '', 'Signed Up', NULL, '{}'),
        ('e7', 'u' || chr(10), NULL, 'Signed Up', NULL, '{}'),
        ('e8', NULL, 'a1', 'Signed Up', NULL, '{}')
        """,
        spec(),
    )
    assert rejected(con) == [
        (2, None, "event_id", "missing key"),
        (3, None, "event_id", "missing key"),
        (4, "e4", "name", "missing name"),
        (5, "e5", "name", "name has characters other than letters, digits, _, -, . and space"),
        (6, "e6", "user_id", "neither user_id nor group_id"),
        (7, "e7", "user_id", "user_id contains control characters"),
    ]
    assert records(con) == [
        ("e1", "Signed Up", "u1", "a1", "2026-01-02T03:04:05Z", '{"plan":"pro"}'),
        ("e8", "Signed Up", None, "a1", None, "{}"),  # a group event; no time: Userflow stamps it
    ]
    assert (result.source_rows, result.records, result.rejected) == (8, 2, 6)


def test_duplicate_keys_merge_when_equal_and_are_all_rejected_when_not(con: duckdb.DuckDBPyConnection) -> None:
    result = run(
        con,
        """
        ('e1', 'u1', NULL, 'Logged In', NULL, '{}'),
        ('e1', 'u1', NULL, 'Logged In', NULL, '{}'),
        ('e2', 'u1', NULL, 'Logged In', NULL, '{"plan": "free"}'),
        ('e2', 'u1', NULL, 'Logged In', NULL, '{"plan": "pro"}')
        """,
        spec(),
    )
    assert [r[0] for r in records(con)] == ["e1"]
    assert rejected(con) == [
        (3, "e2", "event_id", "duplicate key with different data (2 rows)"),
        (4, "e2", "event_id", "duplicate key with different data (2 rows)"),
    ]
    assert (result.duplicates_merged, result.rejected) == (1, 2)


def test_values_are_normalised_like_user_attributes(con: duckdb.DuckDBPyConnection) -> None:
    run(
        con,
        """
        ('e1', 'u1', NULL, 'Report Exported', '2026-01-02T03:04:05+02:00', '{"rows": 12, "ratio": "NaN"}'),
        ('e2', 'u1', NULL, 'Report Exported', '2026-01-02', '{"rows": 9007199254740993}'),
        ('e3', 'u1', NULL, 'Report Exported', 'yesterday', '{}')
        """,
        spec(attributes={
            "rows": "(properties::JSON->>'rows')::BIGINT",
            "ratio": "(properties::JSON->>'ratio')::DOUBLE",
            "at": "DATE '2026-03-04'",
        }),
    )
    (first,) = records(con)
    assert first[4] == "2026-01-02T01:04:05Z"  # an offset is honoured, sent in UTC
    assert json.loads(first[5]) == {"at": "2026-03-04", "rows": 12}  # NaN became null, left out
    assert rejected(con) == [
        (2, "e2", "rows", "integer beyond 2^53 in rows (9007199254740993)"),
        (3, "e3", "time", "time: not a datetime ('yesterday')"),
    ]


def test_the_filter_is_the_users_filter(con: duckdb.DuckDBPyConnection) -> None:
    result = run(
        con,
        """
        ('e1', 'u1', NULL, 'Logged In', NULL, '{}'),
        ('e2', 'u2', NULL, 'Signed Up', NULL, '{}'),
        ('e3', 'u3', NULL, 'Invite Sent', NULL, '{}')
        """,
        spec(filter={"conditions": [{"column": "name", "operator": "is not one of", "values": ["Logged In", "x' OR 1=1 --"]}]}),
    )
    assert [r[0] for r in records(con)] == ["e2", "e3"]
    assert result.filtered_out == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"key_column": "id"}, "events.key_column: unknown column 'id'"),
        ({"attributes": {"props": "properties::JSON"}}, "events.attributes.props: the value is JSON"),
        ({"user_id": "[user_id]"}, "events.user_id: the value is VARCHAR[]; an ID is text or an integer"),
        ({"name": "42"}, "events.name: the value is INTEGER; an event name is text"),
        ({"time": "nope"}, "events.time: DuckDB cannot bind 'nope'"),
    ],
)
def test_spec_faults_name_the_entry(con: duckdb.DuckDBPyConnection, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        run(con, "('e1', 'u1', NULL, 'Logged In', NULL, '{}')", spec(**fields))
