"""Attribute values: mapping expressions and the normalisation to what JSON and Userflow carry."""

from __future__ import annotations

import pytest
from transform_kit import RECORDS, attributes, load, make_spec, raw_attributes, rejected, run

from userflow_assets.transform import SpecError


def test_mapping_expressions_and_case_sensitive_names(con):
    load(con, "SELECT 'u1' AS id, 'Ann@X.com' AS email, 'Ann' AS first_name, 'Lee' AS last_name, 3 AS seats")
    spec = make_spec(mapping={"email": "lower(email)", "Full Name": "first_name || ' ' || last_name", "full name": "seats * 2"})
    run(con, spec)
    assert raw_attributes(con) == {"u1": '{"Full Name":"Ann Lee","email":"ann@x.com","full name":6}'}


def test_nulls_are_included_and_keys_sorted(con):
    load(con, "SELECT 'u1' AS id, NULL::VARCHAR AS b, 'x' AS a")
    run(con, make_spec(mapping={"b": "b", "a": "a", "c": "NULL"}))
    assert raw_attributes(con) == {"u1": '{"a":"x","b":null,"c":null}'}


def test_floats_nan_infinity_and_negative_zero(con):
    load(
        con,
        """SELECT * FROM (VALUES ('n', 'NaN'::DOUBLE), ('p', 'Infinity'::DOUBLE), ('m', '-Infinity'::DOUBLE),
        ('z', -0.0::DOUBLE), ('f', 12.25::DOUBLE), ('e', 1e20::DOUBLE)) t(id, v)""",
    )
    result = run(con, make_spec(mapping={"v": "v"}))
    assert raw_attributes(con) == {
        "n": '{"v":null}', "p": '{"v":null}', "m": '{"v":null}', "z": '{"v":0.0}', "f": '{"v":12.25}', "e": '{"v":1e+20}',
    }
    assert result.nulled_values == 3


def test_decimals_and_floats(con):
    load(con, "SELECT 'u1' AS id, 12.50::DECIMAL(10, 2) AS d, 0.1::FLOAT AS f, 7::TINYINT AS t, 9::UBIGINT AS ub")
    run(con, make_spec(mapping={"d": "d", "f": "f", "t": "t", "ub": "ub"}))
    assert raw_attributes(con) == {"u1": '{"d":12.5,"f":0.1,"t":7,"ub":9}'}


def test_integers_beyond_2_53_reject_the_row(con):
    load(
        con,
        """SELECT * FROM (VALUES ('ok', 9007199254740992::BIGINT), ('big', 9007199254740993::BIGINT),
        ('neg', -9007199254740993::BIGINT)) t(id, n)""",
    )
    result = run(con, make_spec(mapping={"n": "n"}))
    assert raw_attributes(con) == {"ok": '{"n":9007199254740992}'}
    assert rejected(con) == [
        (2, "big", "n", "integer beyond 2^53 in n (9007199254740993)", "9007199254740993"),
        (3, "neg", "n", "integer beyond 2^53 in n (-9007199254740993)", "-9007199254740993"),
    ]
    assert result.rejected_by_reason == {"integer beyond 2^53 in n": 2}


def test_timestamps_naive_aware_and_fractions(con):
    con.execute("SET TimeZone='America/New_York'")  # the transform must not depend on the session's zone
    load(
        con,
        """SELECT 'u1' AS id, TIMESTAMP '2026-01-02 03:04:05' AS naive, TIMESTAMPTZ '2026-01-02 03:04:05+02:00' AS aware,
        TIMESTAMP '2026-01-02 03:04:05.5' AS half, TIMESTAMP '2026-01-02 03:04:05.000123' AS micro,
        TIMESTAMP_NS '2026-01-02 03:04:05.123456789' AS nanos, TIMESTAMP '1950-06-01 00:00:00' AS old,
        DATE '1969-07-20' AS moon, DATE '2026-03-01' AS day, 'infinity'::TIMESTAMP AS forever""",
    )
    result = run(con, make_spec(mapping={k: k for k in ("naive", "aware", "half", "micro", "nanos", "old", "moon", "day", "forever")}))
    assert attributes(con)["u1"] == {
        "naive": "2026-01-02T03:04:05Z",
        "aware": "2026-01-02T01:04:05Z",
        "half": "2026-01-02T03:04:05.5Z",
        "micro": "2026-01-02T03:04:05.000123Z",
        "nanos": "2026-01-02T03:04:05.123457Z",  # rounded to microseconds
        "old": "1950-06-01T00:00:00Z",
        "moon": "1969-07-20",
        "day": "2026-03-01",
        "forever": None,
    }
    assert result.nulled_values == 1


def test_datetimes_outside_years_1_to_9999_are_rejected(con):
    load(con, "SELECT 'u1' AS id, TIMESTAMP '10000-01-01 00:00:00' AS t UNION ALL SELECT 'u2', TIMESTAMP '9999-12-31 23:59:59'")
    run(con, make_spec(mapping={"t": "t"}))
    assert attributes(con) == {"u2": {"t": "9999-12-31T23:59:59Z"}}
    assert rejected(con)[0][2:4] == ("t", "t: outside years 1-9999 (10000-01-01 00:00:00)")


def test_lists_drop_null_items_and_normalise_each_item(con):
    load(
        con,
        """SELECT 'u1' AS id, ['a', NULL, 'b"c'] AS tags, [1.5, 'NaN'::DOUBLE, NULL, -0.0] AS nums,
        [TIMESTAMP '2026-01-01 00:00:00', NULL] AS times, [true, NULL] AS flags, NULL::INTEGER[] AS none,
        []::VARCHAR[] AS empty, [1, 2]::INTEGER[2] AS fixed""",
    )
    result = run(con, make_spec(mapping={k: k for k in ("tags", "nums", "times", "flags", "none", "empty", "fixed")}))
    assert raw_attributes(con)["u1"] == (
        '{"empty":[],"fixed":[1,2],"flags":[true],"none":null,"nums":[1.5,0.0],'
        '"tags":["a","b\\"c"],"times":["2026-01-01T00:00:00Z"]}'
    )
    assert result.nulled_values == 1


def test_list_with_an_integer_beyond_2_53_is_rejected(con):
    load(con, "SELECT 'u1' AS id, [1, 9007199254740993]::BIGINT[] AS ns")
    run(con, make_spec(mapping={"ns": "ns"}))
    assert rejected(con)[0][3] == "integer beyond 2^53 in ns (a list item)"


def test_text_is_escaped_as_json(con):
    load(con, "SELECT 'u1' AS id, 'quote \" backslash \\ tab ' || chr(9) || ' nul ' || chr(1) || ' é 🎉' AS s")
    run(con, make_spec(mapping={"s": "s"}))
    assert attributes(con)["u1"]["s"] == 'quote " backslash \\ tab \t nul \x01 é 🎉'


def test_other_scalar_types_are_sent_as_text(con):
    load(
        con,
        """SELECT 'u1' AS id, 'x'::ENUM('x', 'y') AS e, '6c1b2f3e-0000-4000-8000-000000000000'::UUID AS u,
        TIME '10:30:00' AS t, true AS b""",
    )
    run(con, make_spec(mapping={"e": "e", "u": "u", "t": "t", "b": "b"}))
    assert attributes(con)["u1"] == {"e": "x", "u": "6c1b2f3e-0000-4000-8000-000000000000", "t": "10:30:00", "b": True}


@pytest.mark.parametrize(
    ("expression", "type_name"),
    [
        ("{'city': 'Oslo'}", "STRUCT(city VARCHAR)"),
        ("MAP {'a': 1}", "MAP(VARCHAR, INTEGER)"),
        ("'{\"a\": 1}'::JSON", "JSON"),
        ("'abc'::BLOB", "BLOB"),
        ("[[1, 2]]", "INTEGER[][]"),
        ("[{'a': 1}]", "STRUCT(a INTEGER)[]"),
    ],
)
def test_nested_values_are_spec_errors(con, expression, type_name):
    load(con, "SELECT 'u1' AS id")
    with pytest.raises(SpecError) as caught:
        run(con, make_spec(mapping={"addr": expression}))
    message = str(caught.value)
    assert message.startswith(f"users.mapping.addr: the value is {type_name}; Userflow attributes are flat")
    assert "map each field to its own attribute" in message


def test_output_is_byte_identical_across_runs(con):
    load(
        con,
        """SELECT 'u' || i AS id, 'n' || i AS name, i * 1.5 AS x, TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE AS t,
        ['a', 'b'] AS tags FROM range(50) r(i)""",
    )
    spec = make_spec(mapping={"name": "name", "x": "x", "t": "t", "tags": "tags"})
    run(con, spec)
    first = con.execute(f"SELECT id, attributes, payload_hash FROM {RECORDS} ORDER BY id").fetchall()
    run(con, spec)
    second = con.execute(f"SELECT id, attributes, payload_hash FROM {RECORDS} ORDER BY id").fetchall()
    assert first == second
    assert len({h for _, _, h in first}) == 50
