"""SpecErrors: each names the object, the spec entry and the fault, before anything is written."""

from __future__ import annotations

import pytest
from transform_kit import RECORDS, ids, load, make_spec, run

from userflow_assets.transform import SpecError, TransformResult


@pytest.fixture(autouse=True)
def source(con):
    load(con, "SELECT 'u1' AS id, 'Ann' AS name, 'abc' AS seats, {'city': 'Oslo'} AS address, [1] AS nums")


@pytest.mark.parametrize(
    ("fields", "object_type", "message"),
    [
        ({"mapping": {"full_name": "first_name || ' ' || name"}}, "user",
         "users.mapping.full_name: DuckDB cannot bind \"first_name || ' ' || name\": Binder Error: Referenced column \"first_name\" not found"),
        ({"mapping": {"n": "lower(42, 1)"}}, "group", "groups.mapping.n: DuckDB cannot bind 'lower(42, 1)': Binder Error: No function matches"),
        ({"mapping": {"n": "count(*)"}}, "user", "users.mapping.n: DuckDB cannot bind 'count(*)'"),
        ({"mapping": {"n": "name); DROP TABLE staging.src; SELECT (1"}}, "user", "users.mapping.n: 'name); DROP TABLE staging.src; SELECT (1' is not a single SQL expression"),
        ({"mapping": {"n": "name -- comment"}}, "user", None),  # a trailing comment is harmless
        ({"mapping": {"city": "address"}}, "user", "users.mapping.city: the value is STRUCT(city VARCHAR); Userflow attributes are flat"),
        ({"id_column": "user_id"}, "user", "users.id_column: unknown column 'user_id' (the source has: id, name, seats, address, nums)"),
        ({"id_column": "nums"}, "user", "users.id_column: 'nums' is INTEGER[]; an ID column holds text or integers"),
        ({"fallback_id_column": "mail"}, "user", "users.fallback_id_column: unknown column 'mail'"),
        ({"mapping": {"seats": "CAST(seats AS INTEGER)"}}, "user",
         "users.mapping.seats: 'CAST(seats AS INTEGER)' fails on the source rows: Conversion Error"),
    ],
)
def test_spec_error_messages(con, fields, object_type, message):
    if message is None:
        run(con, make_spec(**fields), object_type)
        assert ids(con) == ["u1"]
        return
    with pytest.raises(SpecError) as caught:
        run(con, make_spec(**fields), object_type)
    assert str(caught.value).startswith(message)
    assert con.execute("SELECT count(*) FROM staging.src").fetchone() == (1,)


def test_nothing_is_written_when_the_spec_is_wrong(con):
    run(con, make_spec())
    load(con, "SELECT 'u2' AS id, 'Bob' AS name")
    with pytest.raises(SpecError):
        run(con, make_spec(mapping={"n": "nope"}))
    with pytest.raises(SpecError):
        run(con, make_spec(mapping={"n": "CAST(name AS INTEGER)"}))
    assert ids(con) == ["u1"]  # the previous run's records stand
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone() == (0,)


def test_unknown_source_table(con):
    from userflow_assets.transform import build_records

    with pytest.raises(SpecError, match=r"^users: the source table \"staging\".\"missing\" cannot be read"):
        build_records(con, make_spec(), "user", "staging.missing", RECORDS, "t.rej")


def test_result_is_plain_metadata(con):
    load(con, "SELECT * FROM (VALUES ('u1', 'a'), (NULL, 'b'), ('u1', 'a')) t(id, name)")
    result = run(con, make_spec())
    assert isinstance(result, TransformResult)
    meta = result.metadata()
    assert {k: meta[k] for k in ("object_type", "source_rows", "filtered_out", "records", "rejected", "nulled_values",
                                 "duplicates_merged", "rejected_by_reason", "attributes")} == {
        "object_type": "user", "source_rows": 3, "filtered_out": 0, "records": 1, "rejected": 1, "nulled_values": 0,
        "duplicates_merged": 1, "rejected_by_reason": '{"missing id": 1}', "attributes": "name",
    }
    assert all(isinstance(v, (int, str)) for v in meta.values())
