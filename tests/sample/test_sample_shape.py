"""Schema, sizes and the consistency between users, accounts, memberships and events."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from userflow_assets.sample import generate_warehouse
from userflow_assets.sample.dirty import dirty_count

EXPECTED_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "users": [
        ("user_id", "VARCHAR"), ("email", "VARCHAR"), ("first_name", "VARCHAR"), ("last_name", "VARCHAR"),
        ("plan", "VARCHAR"), ("role", "VARCHAR"), ("locale", "VARCHAR"), ("country", "VARCHAR"),
        ("signed_up_at", "TIMESTAMP"), ("updated_at", "TIMESTAMP"), ("last_seen_at", "TIMESTAMP WITH TIME ZONE"),
        ("trial_ends_at", "VARCHAR"), ("seats", "INTEGER"), ("mrr", "DOUBLE"), ("is_verified", "BOOLEAN"),
        ("account_ids", "VARCHAR[]"), ("bio", "VARCHAR"),
    ],
    "accounts": [
        ("account_id", "VARCHAR"), ("name", "VARCHAR"), ("plan", "VARCHAR"), ("industry", "VARCHAR"),
        ("employees", "INTEGER"), ("arr", "DOUBLE"), ("created_at", "TIMESTAMP"), ("updated_at", "TIMESTAMP"),
    ],
    "account_memberships": [
        ("user_id", "VARCHAR"), ("account_id", "VARCHAR"), ("role", "VARCHAR"),
        ("created_at", "TIMESTAMP"), ("updated_at", "TIMESTAMP"),
    ],
    "events": [
        ("event_id", "VARCHAR"), ("user_id", "VARCHAR"), ("account_id", "VARCHAR"), ("name", "VARCHAR"),
        ("occurred_at", "TIMESTAMP"), ("properties", "VARCHAR"),
    ],
    "sample_dirty_rows": [("table_name", "VARCHAR"), ("row_key", "VARCHAR"), ("kind", "VARCHAR")],
}
# A user row whose ID can be joined on: not NULL, not empty, not whitespace.
USABLE_ID = "user_id IS NOT NULL AND trim(user_id, E' \\t\\n') <> ''"


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    path = tmp_path_factory.mktemp("shape") / "wh.duckdb"
    generate_warehouse(path, users=1_000, seed=5)
    connection = duckdb.connect(str(path), read_only=True)
    yield connection
    connection.close()


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return con.execute(sql).fetchone()[0]


@pytest.mark.parametrize("table", EXPECTED_COLUMNS)
def test_schema(con: duckdb.DuckDBPyConnection, table: str) -> None:
    columns = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()]
    assert columns == EXPECTED_COLUMNS[table]


@pytest.mark.parametrize("users", [200, 800])
def test_row_counts_scale_with_users(tmp_path: Path, users: int) -> None:
    result = generate_warehouse(tmp_path / "wh.duckdb", users=users, seed=1)
    summary = result["tables"]
    assert summary["users"] == users + dirty_count("duplicate_user_id", "users", users)
    distinct_accounts = summary["accounts"] - result["dirty_kinds"]["duplicate_account_id"]
    assert 12 <= distinct_accounts and users / 30 <= distinct_accounts <= max(12, users / 15)
    assert 1.7 * users <= summary["events"] <= 2.3 * users
    assert 0.9 * users <= summary["account_memberships"] <= 1.3 * users
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as c:
        assert _one(c, "SELECT count(*) FROM users") == summary["users"]
        assert _one(c, "SELECT count(*) FROM events") == summary["events"]


def test_memberships_match_account_ids(con: duckdb.DuckDBPyConnection) -> None:
    mismatched = _one(con, f"""
        WITH listed AS (
            SELECT DISTINCT user_id, unnest(account_ids) AS account_id FROM users WHERE {USABLE_ID}
        )
        SELECT count(*) FROM (
            (SELECT user_id, account_id FROM listed EXCEPT SELECT user_id, account_id FROM account_memberships)
            UNION ALL
            (SELECT user_id, account_id FROM account_memberships EXCEPT SELECT user_id, account_id FROM listed)
        )
    """)
    assert mismatched == 0
    assert _one(con, "SELECT count(*) FROM account_memberships") > 900
    assert _one(con, "SELECT count(*) - count(DISTINCT (user_id, account_id)) FROM account_memberships") == 0
    assert _one(con, f"SELECT count(*) FROM account_memberships WHERE NOT ({USABLE_ID})") == 0


def test_every_account_has_one_owner(con: duckdb.DuckDBPyConnection) -> None:
    owners = con.execute("""
        SELECT account_id, count(*) FILTER (WHERE role = 'owner') FROM account_memberships GROUP BY ALL
    """).fetchall()
    assert owners and all(n == 1 for _, n in owners)
    assert _one(con, "SELECT count(DISTINCT account_id) FROM accounts") == _one(con, """
        SELECT count(DISTINCT m.account_id) FROM account_memberships m JOIN accounts a USING (account_id)
    """)


def test_timestamps_are_ordered(con: duckdb.DuckDBPyConnection) -> None:
    assert _one(con, "SELECT min(signed_up_at) >= TIMESTAMP '2023-11-01' AND max(signed_up_at) <= TIMESTAMP '2026-11-01' FROM users")
    assert _one(con, "SELECT count(*) FROM users WHERE updated_at < signed_up_at OR last_seen_at < signed_up_at::TIMESTAMPTZ") == 0
    assert _one(con, "SELECT count(*) FROM account_memberships WHERE updated_at < created_at") == 0
    assert _one(con, "SELECT count(*) FROM accounts WHERE updated_at < created_at") == 0
    assert _one(con, """
        SELECT count(*) FROM account_memberships m JOIN accounts a USING (account_id) WHERE m.created_at < a.created_at
    """) == 0


def test_people_look_real(con: duckdb.DuckDBPyConnection) -> None:
    assert _one(con, "SELECT count(*) - count(DISTINCT email) FROM users WHERE email IS NOT NULL") == 0
    assert _one(con, r"SELECT count(*) FROM users WHERE email IS NOT NULL AND NOT regexp_full_match(email, '[a-z]+\.[a-z]+[0-9]*@[a-z0-9.]+')") == 0
    # The email's local part is the person's own name.
    assert _one(con, """
        SELECT count(*) FROM users WHERE email IS NOT NULL
           AND NOT starts_with(email, lower(regexp_replace(strip_accents(first_name), '[^A-Za-z]', '', 'g')))
           AND first_name NOT SIMILAR TO '.*[øØłŁ].*'
    """) == 0
    assert set(r[0] for r in con.execute("SELECT DISTINCT plan FROM users").fetchall()) == {"free", "starter", "pro", "enterprise"}
    assert _one(con, "SELECT count(*) FROM users WHERE length(country) <> 2 OR NOT regexp_full_match(locale, '[a-z]{2}-[A-Z]{2}')") == 0
    assert _one(con, "SELECT count(*) FROM users WHERE NOT ends_with(locale, country)") == 0
    assert _one(con, "SELECT avg(len(account_ids)) FROM users") == pytest.approx(1.1, abs=0.15)


def test_events_are_unique_flat_json_and_start_with_sign_up(con: duckdb.DuckDBPyConnection) -> None:
    assert _one(con, "SELECT count(*) - count(DISTINCT event_id) FROM events") == 0
    for (text,) in con.execute("SELECT properties FROM events").fetchall():
        props = json.loads(text)
        assert isinstance(props, dict) and {"plan", "source"} <= props.keys()
        assert all(not isinstance(x, (dict, list)) for x in props.values())
    # Every identifiable user signed up exactly when their Signed Up event says.
    assert _one(con, f"""
        SELECT count(*) FROM (SELECT DISTINCT user_id, signed_up_at FROM users WHERE {USABLE_ID}) u
        ANTI JOIN events e ON e.user_id = u.user_id AND e.name = 'Signed Up' AND e.occurred_at = u.signed_up_at
    """) == 0
    assert _one(con, "SELECT count(*) FROM events e JOIN users u USING (user_id) WHERE e.occurred_at < u.signed_up_at") == 0


def test_emails_stay_unique_when_names_collide(tmp_path: Path) -> None:
    # Enough users that namesakes share a domain, and that García meets Garcia.
    generate_warehouse(tmp_path / "wh.duckdb", users=20_000, seed=2)
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as c:
        assert _one(c, "SELECT count(*) FROM users WHERE regexp_matches(email, '[0-9]@')") > 0
        assert _one(c, "SELECT count(DISTINCT last_name) FROM users WHERE email LIKE '%.garcia%@%'") == 2
        assert _one(c, "SELECT count(*) - count(DISTINCT email) FROM users WHERE email IS NOT NULL") == 0
