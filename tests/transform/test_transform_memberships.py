"""Memberships: one group ID, a list of IDs, or a list of structs, as canonical JSON."""

from __future__ import annotations

import json

import pytest
from transform_kit import RECORDS, load, make_spec, rejected, run

from userflow_assets.transform import SpecError

ONE = {"one": "1"}


def memberships(con) -> dict[str, str | None]:
    return dict(con.execute(f"SELECT id, memberships FROM {RECORDS} ORDER BY source_row").fetchall())


def test_one_group_id_per_row(con):
    load(con, "SELECT * FROM (VALUES ('u1', 'acc1'), ('u2', NULL), ('u3', ''), ('u4', '  ')) t(id, account_id)")
    run(con, make_spec(mapping=ONE, memberships={"column": "account_id"}))
    assert memberships(con) == {"u1": '[{"id":"acc1"}]', "u2": "[]", "u3": "[]", "u4": "[]"}


def test_integer_group_ids(con):
    load(con, "SELECT 'u1' AS id, [3, 1, NULL] AS account_ids")
    run(con, make_spec(mapping=ONE, memberships={"column": "account_ids"}))
    assert memberships(con) == {"u1": '[{"id":"1"},{"id":"3"}]'}


def test_list_of_ids_sorted_deduplicated_and_cleaned(con):
    load(
        con,
        """SELECT * FROM (VALUES ('u1', ['b', 'a', NULL, '', 'b']), ('u2', NULL::VARCHAR[]), ('u3', []::VARCHAR[])) t(id, account_ids)""",
    )
    run(con, make_spec(mapping=ONE, memberships={"column": "account_ids"}))
    assert memberships(con) == {"u1": '[{"id":"a"},{"id":"b"}]', "u2": "[]", "u3": "[]"}


def test_list_of_structs_with_attributes_and_group_attributes(con):
    load(
        con,
        """SELECT 'u1' AS id, [{'account_id': 'acc2', 'role': 'admin', 'name': 'Beta', 'since': TIMESTAMP '2026-01-01 00:00:00'},
                              {'account_id': 'acc1', 'role': NULL, 'name': 'Al"pha', 'since': NULL},
                              {'account_id': NULL, 'role': 'x', 'name': 'none', 'since': NULL}] AS memberships""",
    )
    spec = make_spec(
        mapping=ONE,
        memberships={
            "column": "memberships",
            "group_id_field": "account_id",
            "attributes": {"role": "role", "Joined": "since"},
            "group_attributes": {"name": "name"},
        }
    )
    run(con, spec)
    text = memberships(con)["u1"]
    assert text == (
        '[{"attributes":{"Joined":null,"role":null},"group_attributes":{"name":"Al\\"pha"},"id":"acc1"},'
        '{"attributes":{"Joined":"2026-01-01T00:00:00Z","role":"admin"},"group_attributes":{"name":"Beta"},"id":"acc2"}]'
    )
    assert json.loads(text)[0]["group_attributes"] == {"name": 'Al"pha'}


def test_shipped_users_query_shape(con):
    # sql/users.sql: account_ids VARCHAR[] and memberships STRUCT(account_id VARCHAR, role VARCHAR)[]
    load(
        con,
        """SELECT 'u1' AS id, ['acc1', 'acc2'] AS account_ids,
        [{'account_id': 'acc1', 'role': 'owner'}, {'account_id': 'acc2', 'role': 'member'}] AS memberships
        UNION ALL SELECT 'u2', NULL, NULL""",
    )
    run(con, make_spec(mapping=ONE, memberships={"column": "memberships", "group_id_field": "account_id"}))
    assert memberships(con) == {"u1": '[{"id":"acc1"},{"id":"acc2"}]', "u2": "[]"}
    run(con, make_spec(mapping=ONE, memberships={"column": "memberships", "group_id_field": "account_id", "attributes": {"role": "role"}}))
    assert memberships(con)["u1"] == '[{"attributes":{"role":"owner"},"id":"acc1"},{"attributes":{"role":"member"},"id":"acc2"}]'


def test_exact_duplicates_merge_but_conflicting_ones_reject_the_row(con):
    load(
        con,
        """SELECT * FROM (VALUES
        ('u1', [{'g': 'a', 'r': 'x'}, {'g': 'a', 'r': 'x'}]),
        ('u2', [{'g': 'a', 'r': 'x'}, {'g': 'a', 'r': 'y'}])) t(id, ms)""",
    )
    run(con, make_spec(mapping=ONE, memberships={"column": "ms", "group_id_field": "g", "attributes": {"role": "r"}}))
    assert memberships(con) == {"u1": '[{"attributes":{"role":"x"},"id":"a"}]'}
    assert rejected(con)[0][1:4] == ("u2", "ms", "ms: a group is listed twice with different membership data")


def test_group_ids_with_control_characters_or_too_long_reject_the_row(con):
    load(con, "SELECT * FROM (VALUES ('u1', ['ok', 'b' || chr(10)]), ('u2', ['ok', repeat('g', 1001)]), ('u3', ['ok'])) t(id, gs)")
    run(con, make_spec(mapping=ONE, memberships={"column": "gs"}))
    assert list(memberships(con)) == ["u3"]
    assert [r[3] for r in rejected(con)] == [
        "gs: a group id contains control characters",
        "gs: a group id is longer than 1000 characters",
    ]


def test_groups_have_null_memberships_column(con):
    load(con, "SELECT 'g1' AS id, 'Acme' AS name")
    run(con, make_spec(), object_type="group")
    assert memberships(con) == {"g1": None}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"column": "nope"}, "users.memberships.column: unknown column 'nope'"),
        ({"column": "ms"}, "users.memberships.group_id_field: 'ms' holds structs (STRUCT(g VARCHAR, r VARCHAR, m MAP(VARCHAR, INTEGER))); name the field with the group ID"),
        ({"column": "ms", "group_id_field": "x"}, "users.memberships.group_id_field: the struct has no field 'x' (fields: g, r, m)"),
        ({"column": "gs", "group_id_field": "g"}, "users.memberships.column: 'gs' is VARCHAR[], not a list of structs, so group_id_field does not apply"),
        ({"column": "ms", "group_id_field": "g", "attributes": {"role": "zz"}}, "users.memberships.attributes.role: the struct has no field 'zz'"),
        ({"column": "ms", "group_id_field": "g", "attributes": {"meta": "m"}}, "users.memberships.attributes.meta: field 'm' is MAP(VARCHAR, INTEGER); attributes are flat"),
        ({"column": "n"}, "users.memberships.column: 'n' is DOUBLE; expected a group ID, a list of IDs or a list of structs"),
    ],
)
def test_membership_spec_errors(con, spec, message):
    load(con, "SELECT 'u1' AS id, 'x' AS name, ['a'] AS gs, 1.5::DOUBLE AS n, [{'g': 'a', 'r': 'x', 'm': MAP {'k': 1}}] AS ms")
    with pytest.raises(SpecError) as caught:
        run(con, make_spec(mapping=ONE, memberships=spec))
    assert str(caught.value).startswith(message)


def test_groups_cannot_have_memberships(con):
    load(con, "SELECT 'g1' AS id, 'x' AS name, ['a'] AS gs")
    with pytest.raises(SpecError, match="^groups.memberships: only users have memberships$"):
        run(con, make_spec(mapping=ONE, memberships={"column": "gs"}), object_type="group")
