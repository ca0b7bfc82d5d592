"""Output schema: coercion with TRY_CAST, max_length, nullable; violations reject the row only."""

from __future__ import annotations

import pytest
from transform_kit import attributes, load, make_spec, rejected, run

from userflow_assets.transform import SpecError


def schema_run(con, select_sql: str, field: dict, expression: str = "v"):
    load(con, select_sql)
    return run(con, make_spec(mapping={"v": expression}, output_schema={"v": field}))


def test_integer_from_text_and_floats(con):
    schema_run(
        con,
        """SELECT * FROM (VALUES ('a', '12'), ('b', 'abc'), ('c', '12.5'), ('d', ' 7 '), ('e', '1e3'), ('f', NULL),
        ('g', '99999999999999999999')) t(id, v)""",
        {"type": "integer"},
    )
    assert attributes(con) == {"a": {"v": 12}, "d": {"v": 7}, "e": {"v": 1000}, "f": {"v": None}}
    assert [r[3] for r in rejected(con)] == [
        "v: not an integer ('abc')",
        "v: not an integer ('12.5')",
        "integer beyond 2^53 in v (99999999999999999999)",
    ]


def test_integer_from_double(con):
    schema_run(con, "SELECT * FROM (VALUES ('a', 3.0), ('b', 3.25), ('c', 'NaN'::DOUBLE), ('d', 1e300)) t(id, v)", {"type": "integer"})
    assert attributes(con) == {"a": {"v": 3}, "c": {"v": None}}
    assert [r[3] for r in rejected(con)] == ["v: not an integer (3.25)", "integer beyond 2^53 in v (1e+300)"]


def test_number_from_text(con):
    result = schema_run(con, "SELECT * FROM (VALUES ('a', '1.5'), ('b', 'x1'), ('c', 'NaN')) t(id, v)", {"type": "number"})
    assert attributes(con) == {"a": {"v": 1.5}, "c": {"v": None}}
    assert rejected(con)[0][2:] == ("v", "v: not a number ('x1')", "x1")
    assert result.nulled_values == 1


def test_string_from_other_types(con):
    load(
        con,
        """SELECT 'a' AS id, 5 AS i, 2.5::DOUBLE AS f, true AS b, TIMESTAMP '2026-01-01 00:00:00' AS t, DATE '2026-01-02' AS d""",
    )
    fields = {k: {"type": "string"} for k in ("i", "f", "b", "t", "d")}
    run(con, make_spec(mapping={k: k for k in fields}, output_schema=fields))
    assert attributes(con)["a"] == {"i": "5", "f": "2.5", "b": "true", "t": "2026-01-01T00:00:00Z", "d": "2026-01-02"}


def test_string_max_length_counts_characters(con):
    schema_run(
        con,
        "SELECT * FROM (VALUES ('a', 'ééé'), ('b', 'abcd'), ('c', repeat('x', 10342))) t(id, v)",
        {"type": "string", "max_length": 3},
    )
    assert attributes(con) == {"a": {"v": "ééé"}}
    assert [r[3] for r in rejected(con)] == ["v: longer than 3 characters (4)", "v: longer than 3 characters (10342)"]


def test_boolean_from_text_and_integers(con):
    load(con, "SELECT * FROM (VALUES ('a', 'true', 1), ('b', 'F', 0), ('c', 'maybe', 0), ('d', 'yes', 5)) t(id, s, n)")
    run(con, make_spec(mapping={"s": "s", "n": "n"}, output_schema={"s": {"type": "boolean"}, "n": {"type": "boolean"}}))
    assert attributes(con) == {"a": {"n": True, "s": True}, "b": {"n": False, "s": False}}
    assert [r[2:4] for r in rejected(con)] == [("s", "s: not a boolean ('maybe')"), ("n", "n: not a boolean (5)")]


def test_datetime_from_text_with_and_without_offset_and_from_dates(con):
    schema_run(
        con,
        """SELECT * FROM (VALUES ('a', '2026-03-01T12:00:00+02:00'), ('b', '2026-03-01T10:00:00'), ('c', '2026-03-01T10:00:00Z'),
        ('d', '2026-03-01'), ('e', 'soon')) t(id, v)""",
        {"type": "datetime"},
    )
    assert attributes(con) == {
        "a": {"v": "2026-03-01T10:00:00Z"},
        "b": {"v": "2026-03-01T10:00:00Z"},
        "c": {"v": "2026-03-01T10:00:00Z"},
        "d": {"v": "2026-03-01T00:00:00Z"},
    }
    assert rejected(con)[0][3] == "v: not a datetime ('soon')"
    schema_run(con, "SELECT 'a' AS id, DATE '1960-01-02' AS v", {"type": "datetime"})
    assert attributes(con) == {"a": {"v": "1960-01-02T00:00:00Z"}}


def test_list_max_length_counts_items_without_nulls(con):
    schema_run(con, "SELECT * FROM (VALUES ('a', ['x', NULL, 'y']), ('b', ['x', 'y', 'z'])) t(id, v)", {"type": "list", "max_length": 2})
    assert attributes(con) == {"a": {"v": ["x", "y"]}}
    assert rejected(con)[0][3] == "v: more than 2 items (3)"


def test_not_nullable(con):
    schema_run(con, "SELECT * FROM (VALUES ('a', 'x'), ('b', NULL), ('c', 'NaN')) t(id, v)", {"type": "number", "nullable": False})
    assert attributes(con) == {}
    assert [r[3] for r in rejected(con)] == ["v: not a number ('x')", "v: null not allowed", "v: null not allowed"]


def test_first_broken_rule_is_reported_and_other_rows_go_on(con):
    load(con, "SELECT * FROM (VALUES ('a', 'x', '1'), ('b', NULL, 'zz'), ('c', 'y', '2')) t(id, name, seats)")
    result = run(
        con,
        make_spec(
            mapping={"name": "name", "seats": "seats"},
            output_schema={"name": {"type": "string", "nullable": False}, "seats": {"type": "integer"}},
        ),
    )
    assert attributes(con) == {"a": {"name": "x", "seats": 1}, "c": {"name": "y", "seats": 2}}
    assert rejected(con) == [(2, "b", "name", "name: null not allowed", None)]
    assert result.rejected_by_reason == {"name: null not allowed": 1}


@pytest.mark.parametrize(
    ("select_sql", "field", "message"),
    [
        ("SELECT 'a' AS id, true AS v", {"type": "integer"}, "users.output_schema.v: type integer does not fit the mapped value's type BOOLEAN"),
        ("SELECT 'a' AS id, [1] AS v", {"type": "string"}, "users.output_schema.v: type string does not fit the mapped value's type INTEGER[]"),
        ("SELECT 'a' AS id, 'x' AS v", {"type": "list"}, "users.output_schema.v: type list does not fit the mapped value's type VARCHAR"),
        ("SELECT 'a' AS id, 5 AS v", {"type": "datetime"}, "users.output_schema.v: type datetime does not fit the mapped value's type INTEGER"),
        ("SELECT 'a' AS id, 5 AS v", {"type": "integer", "max_length": 3}, "users.output_schema.v: max_length applies to types string and list, not integer"),
    ],
)
def test_schema_spec_errors(con, select_sql, field, message):
    with pytest.raises(SpecError, match="^" + message.replace("[", r"\[").replace("]", r"\]") + "$"):
        schema_run(con, select_sql, field)
