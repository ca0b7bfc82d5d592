"""Record IDs: fallback, the ID rules, duplicates, and the columns of both output tables."""

from __future__ import annotations

import hashlib

import pytest
from transform_kit import RECORDS, REJECTED, SOURCE, attributes, ids, load, make_spec, rejected, run

from userflow_assets.transform import SpecError


def test_fallback_id_when_primary_is_null_empty_or_blank(con):
    load(
        con,
        """SELECT * FROM (VALUES ('u1', 'a@x'), (NULL, 'b@x'), ('', 'c@x'), ('   ', 'd@x'), (chr(9) || chr(160), 'e@x'),
        (NULL, NULL), (' ', ' '), (' u6 ', 'f@x')) t(id, email)""",
    )
    result = run(con, make_spec(fallback_id_column="email", mapping={"email": "email"}))
    rows = con.execute(f"SELECT id, primary_id, fallback_id, source_row FROM {RECORDS} ORDER BY source_row").fetchall()
    assert rows == [
        ("u1", "u1", "a@x", 1),
        ("b@x", None, "b@x", 2),
        ("c@x", None, "c@x", 3),
        ("d@x", None, "d@x", 4),
        ("e@x", None, "e@x", 5),
        (" u6 ", " u6 ", "f@x", 8),  # IDs are exact: no trimming
    ]
    assert rejected(con) == [(6, None, "id", "missing id", None), (7, None, "id", "missing id", " ")]
    assert (result.records, result.with_fallback_id, result.rejected_by_reason) == (6, 4, {"missing id": 2})


def test_without_fallback_column_fallback_id_is_null(con):
    load(con, "SELECT 42 AS id, 'x' AS name")
    run(con, make_spec())
    assert con.execute(f"SELECT id, primary_id, fallback_id FROM {RECORDS}").fetchall() == [("42", "42", None)]


def test_control_characters_and_long_ids_are_rejected(con):
    load(
        con,
        """SELECT * FROM (VALUES ('ok/é #?', NULL), ('bad' || chr(10), NULL), ('del' || chr(127), NULL),
        (repeat('x', 1000), NULL), (repeat('y', 1001), NULL), (NULL, 'mail' || chr(0))) t(id, email)""",
    )
    result = run(con, make_spec(fallback_id_column="email", mapping={"email": "email"}))
    assert ids(con) == ["ok/é #?", "x" * 1000]
    assert [(r[0], r[2], r[3]) for r in rejected(con)] == [
        (2, "id", "id contains control characters"),
        (3, "id", "id contains control characters"),
        (5, "id", "id longer than 1000 characters"),
        (6, "email", "id contains control characters"),
    ]
    assert rejected(con)[2][4] == "y" * 200  # values are cut to 200 characters
    assert result.rejected_by_reason == {"id contains control characters": 3, "id longer than 1000 characters": 1}


def test_identical_duplicates_merge_into_the_first_row(con):
    load(con, "SELECT * FROM (VALUES ('u1', 'a'), ('u2', 'b'), ('u1', 'a'), ('u1', 'a')) t(id, name)")
    result = run(con, make_spec())
    assert con.execute(f"SELECT id, source_row FROM {RECORDS} ORDER BY source_row").fetchall() == [("u1", 1), ("u2", 2)]
    assert (result.duplicates_merged, result.rejected) == (2, 0)


def test_duplicates_with_different_data_are_all_rejected(con):
    load(con, "SELECT * FROM (VALUES ('u1', 'a'), ('u2', 'b'), ('u1', 'A'), ('u1', 'a')) t(id, name)")
    result = run(con, make_spec())
    assert ids(con) == ["u2"]
    assert rejected(con) == [
        (1, "u1", "id", "duplicate id with different data (3 rows)", "u1"),
        (3, "u1", "id", "duplicate id with different data (3 rows)", "u1"),
        (4, "u1", "id", "duplicate id with different data (3 rows)", "u1"),
    ]
    assert result.rejected_by_reason == {"duplicate id with different data": 3}


def test_a_fallback_id_can_collide_with_a_primary_id(con):
    load(con, "SELECT * FROM (VALUES ('a@x', NULL, 'n'), (NULL, 'a@x', 'n')) t(id, email, name)")
    result = run(con, make_spec(fallback_id_column="email"))
    assert ids(con) == ["a@x"]
    assert result.duplicates_merged == 1


def test_output_table_columns(con):
    load(con, "SELECT 'u1' AS id, 'x' AS name UNION ALL SELECT NULL, 'y'")
    run(con, make_spec())
    assert con.execute(f"DESCRIBE {RECORDS}").fetchall() == [
        ("id", "VARCHAR", "NO", None, None, None),
        ("primary_id", "VARCHAR", "YES", None, None, None),
        ("fallback_id", "VARCHAR", "YES", None, None, None),
        ("attributes", "VARCHAR", "YES", None, None, None),
        ("memberships", "VARCHAR", "YES", None, None, None),
        ("payload_hash", "VARCHAR", "YES", None, None, None),
        ("source_row", "BIGINT", "YES", None, None, None),
    ]
    assert [c[:2] for c in con.execute(f"DESCRIBE {REJECTED}").fetchall()] == [
        ("source_row", "BIGINT"), ("id", "VARCHAR"), ("source_key", "VARCHAR"), ("column", "VARCHAR"),
        ("reason", "VARCHAR"), ("value", "VARCHAR"),
    ]
    assert attributes(con) == {"u1": {"name": "x"}}


def test_payload_hash_changes_with_attributes_or_memberships_only(con):
    def hash_of(select_sql: str, memberships: bool) -> str:
        load(con, select_sql)
        extra = {"memberships": {"column": "groups"}} if memberships else {}
        run(con, make_spec(**extra))
        return con.execute(f"SELECT payload_hash FROM {RECORDS}").fetchone()[0]

    base = hash_of("SELECT 'u1' AS id, 'x' AS name, ['g1'] AS groups", True)
    assert hash_of("SELECT 'u1' AS id, 'x' AS name, ['g1'] AS groups", True) == base
    assert hash_of("SELECT 'u9' AS id, 'x' AS name, ['g1'] AS groups", True) == base  # the ID is not payload
    assert hash_of("SELECT 'u1' AS id, 'y' AS name, ['g1'] AS groups", True) != base
    assert hash_of("SELECT 'u1' AS id, 'x' AS name, ['g2'] AS groups", True) != base
    assert hash_of("SELECT 'u1' AS id, 'x' AS name, ['g1'] AS groups", False) != base


def test_payload_hash_is_the_md5_of_the_payload_text_as_states_hold_it(con):
    # The recipe states written by earlier versions hold: a change would resend every record.
    load(con, "SELECT * FROM (VALUES ('u1', 'x', ['g1', 'g2']), ('u2', 'é\"\n', NULL)) t(id, name, groups)")
    run(con, make_spec(memberships={"column": "groups"}))
    rows = con.execute(f"SELECT attributes, memberships, payload_hash FROM {RECORDS}").fetchall()
    assert len(rows) == 2
    for attributes_text, memberships_text, payload_hash in rows:
        payload = '{"attributes":' + attributes_text + ',"memberships":' + (memberships_text or "null") + "}"
        assert payload_hash == hashlib.md5(payload.encode()).hexdigest()


def test_tables_are_replaced_and_schemas_created(con):
    load(con, "SELECT 'u1' AS id, 'x' AS name")
    run(con, make_spec())
    load(con, "SELECT 'u2' AS id, 'y' AS name")
    run(con, make_spec())
    assert ids(con) == ["u2"]


def test_a_view_as_source_numbers_rows(con):
    con.execute("CREATE VIEW staging.v AS SELECT * FROM (VALUES ('u1', 'a'), (NULL, 'b')) t(id, name)")
    from userflow_assets.transform import build_records

    build_records(con, make_spec(), "user", "staging.v", "t.r", "t.j")
    assert con.execute("SELECT source_row FROM t.j").fetchall() == [(2,)]


def source_keys(con) -> list[tuple[int, str | None]]:
    return con.execute(f"SELECT source_row, source_key FROM {REJECTED} ORDER BY source_row").fetchall()


def test_a_rejected_row_is_found_by_its_id_or_fallback_id(con):
    load(con, "SELECT * FROM (VALUES ('u1', 'a@x', 'long'), (NULL, 'b@x', 'long')) t(id, email, name)")
    run(con, make_spec(fallback_id_column="email", output_schema={"name": {"type": "string", "max_length": 2}}))
    assert source_keys(con) == [(1, "u1"), (2, "b@x")]


def test_a_rejected_row_without_an_id_is_found_by_its_row_key(con):
    load(con, "SELECT * FROM (VALUES ('u1', 7, 'Ann'), (NULL, 8, 'Bob'), ('', NULL, 'Cy')) t(id, account, name)")
    run(con, make_spec(row_key=["account", "name"]))
    assert source_keys(con) == [(2, "account=8, name=Bob"), (3, "account=null, name=Cy")]
    # The key is a condition a data engineer can paste: it finds exactly that row in the source.
    (found,) = con.execute(f"SELECT id FROM {SOURCE} WHERE account = 8 AND name = 'Bob'").fetchall()
    assert found == (None,)


def test_without_a_row_key_a_row_without_an_id_is_shown_by_all_its_columns(con):
    load(con, "SELECT * FROM (VALUES ('u1', 'Ann', 'pro'), (NULL, 'Bob', repeat('x', 600))) t(id, name, plan)")
    run(con, make_spec())
    ((row, key),) = source_keys(con)
    assert row == 2 and key.startswith("id=null, name=Bob, plan=xxx") and len(key) == 500


def test_a_row_without_an_id_after_a_python_transform_is_found_by_its_row_key(con):
    load(con, "SELECT * FROM (VALUES ('u1', 'Ann'), (NULL, 'Bob')) t(id, name)")
    spec = make_spec(
        row_key=["name"],
        transform={"function": "transform_functions:upper_name", "inputs": ["name"], "outputs": ["name"]},
    )
    run(con, spec)
    assert source_keys(con) == [(2, "name=Bob")]


def test_an_unknown_row_key_column_is_a_spec_error(con):
    load(con, "SELECT 'u1' AS id, 'Ann' AS name")
    with pytest.raises(SpecError, match=r"users.row_key: unknown column 'acount'"):
        run(con, make_spec(row_key=["acount"]))


# 300,000 rows: several row groups, read by several threads. Every 1,000th row repeats the ID
# before it, alternately with the same data (merged) and with other data (both rejected).
REPEATS = """
    SELECT 'u' || (i - (i % 1000 = 999)::INT) AS id,
           CASE WHEN i % 2000 = 1999 THEN 'other' ELSE 'n' || (i - (i % 1000 = 999)::INT) END AS name
    FROM range(300000) t(i)
"""


def test_records_keep_the_source_order_when_duplicates_are_left_out(con):
    load(con, REPEATS)
    result = run(con, make_spec())
    stored = [row for (row,) in con.execute(f"SELECT source_row FROM {RECORDS}").fetchall()]
    assert stored == sorted(stored) and len(stored) == 300000 - 300 - 150
    assert (result.duplicates_merged, result.rejected) == (150, 300)


def test_records_keep_the_source_order_after_a_python_transform(con):
    load(con, REPEATS)
    spec = make_spec(transform={"function": "transform_functions:upper_name", "inputs": ["name"], "outputs": ["name"]})
    result = run(con, spec)
    stored = [row for (row,) in con.execute(f"SELECT source_row FROM {RECORDS}").fetchall()]
    assert stored == sorted(stored) and len(stored) == 300000 - 300 - 150
    assert (result.duplicates_merged, result.rejected) == (150, 300)
