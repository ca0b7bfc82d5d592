"""Filter operators: their semantics per column type, bound values, JSON paths, and/or."""

from __future__ import annotations

import pytest
from transform_kit import load, make_spec, run

from userflow_assets.transform import SpecError


@pytest.fixture(autouse=True)
def source(con):
    load(
        con,
        """SELECT * FROM (VALUES
        ('a', 'Ann', 'pro', 3, 9.5::DOUBLE, TIMESTAMP '2026-01-01 10:00:00', TIMESTAMPTZ '2026-01-01 10:00:00+00',
         DATE '1969-12-31', true, ['x', 'y'], '{"plan": {"tier": "gold"}, "score": 10, "tags": ["t1"], "ok": true, "n": null}',
         '{"k": 1}'::JSON),
        ('b', 'Bob''s', 'free', 10, NULL, TIMESTAMP '2026-02-01 00:00:00', TIMESTAMPTZ '2026-01-01 12:00:00+02',
         DATE '2026-05-01', false, [], '{"plan": {"tier": "silver"}, "score": 2.5, "tags": [], "ok": false, "e": ""}',
         '{"k": 2}'::JSON),
        ('c', NULL, NULL, NULL, 0.0::DOUBLE, NULL, NULL, NULL, NULL, NULL, 'not json', NULL),
        ('d', '', 'enterprise', 7, -1.0::DOUBLE, TIMESTAMP '2025-12-31 23:59:59', TIMESTAMPTZ '2025-12-31 23:59:59+00',
         DATE '2000-01-01', true, ['y', NULL], '{"score": "7"}', '[]'::JSON)
        ) t(id, name, plan, seats, mrr, signed_up_at, seen_at, born, verified, tags, payload, doc)""",
    )


def cond(column: str, operator: str, *values: object) -> dict[str, object]:
    return {"column": column, "operator": operator, "values": list(values)}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # strings: exact, case-sensitive; NULL never matches a comparison
        (cond("plan", "is", "pro"), ["a"]),
        (cond("plan", "is", "PRO"), []),
        (cond("plan", "is not", "pro"), ["b", "d"]),
        (cond("plan", "is less than", "free"), ["d"]),
        (cond("plan", "is greater than or equal to", "free"), ["a", "b"]),
        (cond("plan", "is between", "e", "g"), ["b", "d"]),
        (cond("plan", "is not between", "e", "g"), ["a"]),
        (cond("name", "contains", "n"), ["a"]),
        (cond("name", "does not contain", "n"), ["b", "d"]),
        (cond("plan", "is one of", "pro", "free"), ["a", "b"]),
        (cond("plan", "is not one of", "pro", "free"), ["d"]),
        (cond("plan", "starts with", "ent"), ["d"]),
        (cond("plan", "ends with", "ee"), ["b"]),
        (cond("name", "is empty"), ["c", "d"]),
        (cond("name", "is not empty"), ["a", "b"]),
        (cond("name", "is null"), ["c"]),
        (cond("name", "is not null"), ["a", "b", "d"]),
        (cond("name", "exists"), ["a", "b", "d"]),
        (cond("name", "does not exist"), ["c"]),
        # a value with a quote and SQL in it is only ever a string
        (cond("name", "is", "Bob's"), ["b"]),
        (cond("name", "is", "x' OR 1=1 --"), []),
        (cond("name", "contains", "'; DROP TABLE staging.src; --"), []),
        # numbers: compared as numbers, values given as text or numbers
        (cond("seats", "is", "3"), ["a"]),
        (cond("seats", "is less than", 7), ["a"]),
        (cond("seats", "is less than or equal to", 7), ["a", "d"]),
        (cond("seats", "is greater than", 2.5), ["a", "b", "d"]),
        (cond("seats", "is between", 3, 7), ["a", "d"]),
        (cond("seats", "is not one of", 3, 7), ["b"]),
        (cond("mrr", "is greater than or equal to", 0), ["a", "c"]),
        (cond("mrr", "is empty"), ["b"]),
        # datetimes: naive values are UTC, offsets honoured
        (cond("signed_up_at", "is before", "2026-01-01T10:00:00"), ["d"]),
        (cond("signed_up_at", "is on or before", "2026-01-01T12:00:00+02:00"), ["a", "d"]),
        (cond("signed_up_at", "is after", "2026-01-01T10:00:00Z"), ["b"]),
        (cond("signed_up_at", "is on or after", "2026-01-01"), ["a", "b"]),
        (cond("seen_at", "is", "2026-01-01T10:00:00Z"), ["a", "b"]),
        (cond("seen_at", "is between", "2025-12-31", "2026-01-01T10:00:00Z"), ["a", "b", "d"]),
        (cond("born", "is before", "1970-01-01"), ["a"]),
        (cond("born", "is after", "1999-12-31"), ["b", "d"]),
        # booleans
        (cond("verified", "is true"), ["a", "d"]),
        (cond("verified", "is false"), ["b"]),
        (cond("verified", "is", "false"), ["b"]),
        (cond("verified", "is one of", True), ["a", "d"]),
        # lists: element tests
        (cond("tags", "contains", "y"), ["a", "d"]),
        (cond("tags", "does not contain", "x"), ["b", "d"]),
        (cond("tags", "is one of", "x", "z"), ["a"]),
        (cond("tags", "is not one of", "x"), ["b", "d"]),
        (cond("tags", "is empty"), ["b", "c"]),
        (cond("tags", "is not empty"), ["a", "d"]),
    ],
)
def test_operator(kept, condition, expected):
    assert kept(condition) == expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (cond("payload.plan.tier", "is", "gold"), ["a"]),
        (cond("payload.plan.tier", "is one of", "gold", "silver"), ["a", "b"]),
        (cond("payload.score", "is greater than", "5"), ["a", "d"]),  # numeric text compares as a number
        (cond("payload.score", "is", 2.5), ["b"]),
        (cond("payload.score", "is between", 2, 8), ["b", "d"]),
        (cond("payload.plan.tier", "starts with", "sil"), ["b"]),
        (cond("payload.tags", "contains", "t1"), ["a"]),
        (cond("payload.plan.tier", "contains", "ol"), ["a"]),
        (cond("payload.ok", "is true"), ["a"]),
        (cond("payload.ok", "is false"), ["b"]),
        (cond("payload.n", "exists"), ["a"]),
        (cond("payload.n", "is null"), ["a", "b", "c", "d"]),  # absent or JSON null
        (cond("payload.n", "is not null"), []),
        (cond("payload.plan", "does not exist"), ["c", "d"]),
        (cond("payload.e", "is empty"), ["a", "b", "c", "d"]),
        (cond("payload.tags", "is empty"), ["b", "c", "d"]),
        (cond("payload.tags", "is not empty"), ["a"]),
        (cond("payload.score", "is", "x' OR 1=1 --"), []),
        (cond("doc.k", "is", 2), ["b"]),
        (cond("doc", "is empty"), ["c", "d"]),
    ],
)
def test_json_path(kept, condition, expected):
    assert kept(condition) == expected


def test_and_or(kept):
    assert kept(cond("seats", "is greater than", 2), cond("verified", "is true")) == ["a", "d"]
    assert kept(cond("plan", "is", "free"), cond("seats", "is", 7), logical="or") == ["b", "d"]


def test_filtered_rows_are_counted_not_rejected(con):
    result = run(con, make_spec(filter={"conditions": [cond("plan", "is", "pro")]}))
    assert (result.source_rows, result.filtered_out, result.records, result.rejected) == (4, 3, 1, 0)


def test_a_column_with_a_dot_in_its_name_wins_over_a_json_path(con, kept):
    load(con, """SELECT 'a' AS id, 'x' AS name, 'v' AS "payload.plan", '{"plan": "w"}' AS payload""")
    assert kept(cond("payload.plan", "is", "v")) == ["a"]


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (cond("nope", "is", "x"), "users.filter.conditions[0] (nope is): unknown column 'nope'"),
        (cond("seats", "starts with", "1"), "operator 'starts with' does not fit column type INTEGER"),
        (cond("verified", "is greater than", "1"), "operator 'is greater than' does not fit column type BOOLEAN"),
        (cond("plan", "is before", "2026-01-01"), "operator 'is before' does not fit column type VARCHAR"),
        (cond("tags", "is", "x"), "operator 'is' does not fit column type VARCHAR[]"),
        (cond("seats", "is", "abc"), "value 'abc' cannot be read as DOUBLE"),
        (cond("signed_up_at", "is after", "yesterday"), "value 'yesterday' cannot be read as TIMESTAMP"),
        (cond("seats", "is", True), "value True is a boolean; the column is INTEGER"),
        (cond("plan", "is"), "needs exactly 1 value, got 0"),
        (cond("plan", "is between", "a"), "needs exactly 2 values (low, high), got 1"),
        (cond("plan", "is one of"), "needs at least 1 value"),
        (cond("name", "is null", "x"), "takes no values, got 1"),
        (cond("seats", "is between", 9, 1), "the low value is greater than the high value"),
        (cond("seats.x", "is", "1"), "'seats' is INTEGER; a `column.key` path needs a JSON or JSON-text column"),
    ],
)
def test_spec_errors_name_the_condition_and_fault(con, condition, message):
    spec = make_spec(filter={"conditions": [cond("plan", "is not null"), condition]} if "[0]" not in message else {"conditions": [condition]})
    with pytest.raises(SpecError) as caught:
        run(con, spec)
    text = str(caught.value)
    assert message in text
    if "[0]" not in message:
        assert text.startswith("users.filter.conditions[1] ")
