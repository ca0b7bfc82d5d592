"""Every dirty kind is in the data itself, at its documented rate, and listed in sample_dirty_rows."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from userflow_assets.sample import dirty
from userflow_assets.sample import generate_warehouse
from userflow_assets.sample.dirty import DIRTY_KINDS, DIRTY_RATES

USABLE_ID = "user_id IS NOT NULL AND trim(user_id, E' \\t\\n') <> ''"

# One query per kind, over the data tables only: how many rows show the kind.
EVIDENCE: dict[str, str] = {
    "null_user_id": "SELECT count(*) FROM users WHERE user_id IS NULL AND email IS NULL",
    "empty_user_id": "SELECT count(*) FROM users WHERE user_id = ''",
    "blank_user_id": "SELECT count(*) FROM users WHERE user_id <> '' AND trim(user_id, E' \\t\\n') = ''",
    "fallback_email_id": "SELECT count(*) FROM users WHERE user_id IS NULL AND email LIKE '%@%'",
    "duplicate_user_id": f"""
        SELECT count(*) FROM (
            SELECT user_id FROM users WHERE {USABLE_ID} GROUP BY user_id
            HAVING count(*) > 1 AND count(DISTINCT email) > 1 AND count(DISTINCT plan) > 1
               AND count(DISTINCT updated_at) > 1)""",
    "special_char_id": r"""
        SELECT (SELECT count(*) FROM users
                WHERE regexp_matches(user_id, '[/?# ]|\.\.|[^\x00-\x7F]') AND trim(user_id) <> '')
             + (SELECT count(*) FROM accounts WHERE regexp_matches(account_id, '[/?# ]|\.\.|[^\x00-\x7F]'))""",
    "nan_number": "SELECT (SELECT count(*) FROM users WHERE isnan(mrr)) + (SELECT count(*) FROM accounts WHERE isnan(arr))",
    "infinite_number": "SELECT (SELECT count(*) FROM users WHERE isinf(mrr)) + (SELECT count(*) FROM accounts WHERE isinf(arr))",
    "long_string": """SELECT (SELECT count(*) FROM users WHERE length(bio) > 10000)
                           + (SELECT count(*) FROM accounts WHERE length(name) > 10000)""",
    "naive_timestamp_text": r"SELECT count(*) FROM users WHERE regexp_full_match(trial_ends_at, '\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d')",
    "offset_timestamp_text": r"SELECT count(*) FROM users WHERE regexp_full_match(trial_ends_at, '.*T\d\d:\d\d:\d\d[+-]\d\d:\d\d')",
    "event_name_variant": """
        WITH canonical AS (
            SELECT name FROM (VALUES ('Signed Up'), ('Logged In'), ('Project Created'), ('Feature_Activated'),
                ('Invite Sent'), ('Invite Accepted'), ('Checklist Completed'), ('Report Exported'),
                ('Integration Connected'), ('Subscription Upgraded'), ('Comment Added'), ('Dashboard Viewed')) t(name))
        SELECT count(*) FROM events e
        WHERE e.name NOT IN (SELECT name FROM canonical)
          AND lower(regexp_replace(e.name, '[ _-]', '', 'g'))
              IN (SELECT lower(regexp_replace(name, '[ _-]', '', 'g')) FROM canonical)""",
    "duplicate_account_id": """
        SELECT count(*) FROM (SELECT account_id FROM accounts GROUP BY account_id
            HAVING count(*) > 1 AND count(DISTINCT name) > 1 AND count(DISTINCT plan) > 1)""",
    "orphan_membership": """
        SELECT count(*) FROM account_memberships m JOIN users u USING (user_id)
        WHERE m.account_id NOT IN (SELECT account_id FROM accounts) AND list_contains(u.account_ids, m.account_id)""",
    "orphan_event": f"SELECT count(*) FROM events WHERE user_id NOT IN (SELECT user_id FROM users WHERE {USABLE_ID})",
}


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> object:
    return con.execute(sql, params).fetchone()[0]


@pytest.fixture(scope="module", params=[100, 200, 2_000], ids=lambda n: f"{n}_users")
def con(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    path = tmp_path_factory.mktemp("dirty") / "wh.duckdb"
    generate_warehouse(path, users=request.param, seed=request.param)
    connection = duckdb.connect(str(path), read_only=True)
    yield connection
    connection.close()


def test_evidence_covers_every_kind() -> None:
    assert set(EVIDENCE) == set(DIRTY_KINDS) == set(DIRTY_RATES)


@pytest.mark.parametrize("kind", list(DIRTY_KINDS))
def test_kind_is_present_in_the_data(con: duckdb.DuckDBPyConnection, kind: str) -> None:
    assert _one(con, EVIDENCE[kind]) >= 1


@pytest.mark.parametrize("kind", list(DIRTY_KINDS))
def test_kind_is_listed_as_often_as_it_is_seen(con: duckdb.DuckDBPyConnection, kind: str) -> None:
    listed = _one(con, f"SELECT count(*) FROM sample_dirty_rows WHERE kind = '{kind}'")
    seen = _one(con, EVIDENCE[kind])
    assert listed >= 1
    assert seen == listed


def test_every_id_shape_is_present_and_flows_through(con: duckdb.DuckDBPyConnection) -> None:
    for pattern in dirty.SPECIAL_USER_ID_PATTERNS:
        prefix = pattern.split("{n}")[0]
        ids = [r[0] for r in con.execute(
            "SELECT user_id FROM users WHERE starts_with(user_id, ?)", [prefix]).fetchall()]
        assert ids, pattern
        assert _one(con, "SELECT count(*) FROM account_memberships WHERE list_contains(?, user_id)", [ids]) >= 1
        assert _one(con, "SELECT count(*) FROM events WHERE list_contains(?, user_id)", [ids]) >= 1
    for pattern in dirty.SPECIAL_ACCOUNT_ID_PATTERNS:
        prefix = pattern.split("{n}")[0]
        assert _one(con, "SELECT count(*) FROM accounts WHERE starts_with(account_id, ?)", [prefix]) == 1
        assert _one(con, "SELECT count(*) FROM account_memberships WHERE starts_with(account_id, ?)", [prefix]) >= 1
        assert _one(con, "SELECT count(*) FROM users WHERE len(list_filter(account_ids, lambda x: starts_with(x, ?))) > 0",
                    [prefix]) >= 1


def test_both_infinities_and_the_classic_event_trap(con: duckdb.DuckDBPyConnection) -> None:
    for table, column in (("users", "mrr"), ("accounts", "arr")):
        assert _one(con, f"SELECT count(*) FROM {table} WHERE {column} = 'Infinity'::DOUBLE") >= 1
        assert _one(con, f"SELECT count(*) FROM {table} WHERE {column} = '-Infinity'::DOUBLE") >= 1
    names = {r[0] for r in con.execute("SELECT DISTINCT name FROM events WHERE lower(name) LIKE 'feature%'").fetchall()}
    assert {"Feature_Activated", "feature_activated", "Feature Activated"} <= names


def test_trial_ends_at_text_mixes_naive_utc_and_offset_forms(con: duckdb.DuckDBPyConnection) -> None:
    forms = dict(con.execute(r"""
        SELECT CASE WHEN trial_ends_at IS NULL THEN 'null'
                    WHEN ends_with(trial_ends_at, 'Z') THEN 'utc'
                    WHEN regexp_matches(trial_ends_at, '[+-]\d\d:\d\d$') THEN 'offset'
                    ELSE 'naive' END, count(*)
        FROM users GROUP BY ALL
    """).fetchall())
    assert set(forms) == {"null", "utc", "offset", "naive"}
    assert forms["utc"] > forms["naive"] and forms["utc"] > forms["offset"]
    # Every form parses, and the offset form names the same instant as signed_up_at + 14 days.
    assert _one(con, """
        SELECT count(*) FROM users WHERE trial_ends_at IS NOT NULL AND
            (CASE WHEN regexp_matches(trial_ends_at, '(Z|[+-]\\d\\d:\\d\\d)$') THEN trial_ends_at::TIMESTAMPTZ
                  ELSE (trial_ends_at || 'Z')::TIMESTAMPTZ END)
            <> (signed_up_at + INTERVAL 14 DAY)::TIMESTAMPTZ
    """) == 0


def test_manifest_keys_point_at_the_planted_rows(con: duckdb.DuckDBPyConnection) -> None:
    assert _one(con, """
        SELECT count(*) FROM sample_dirty_rows d WHERE d.table_name = 'users' AND d.kind = 'nan_number'
           AND NOT EXISTS (SELECT 1 FROM users u WHERE u.user_id = d.row_key AND isnan(u.mrr))
    """) == 0
    assert _one(con, """
        SELECT count(*) FROM sample_dirty_rows d WHERE d.table_name = 'accounts' AND d.kind = 'long_string'
           AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.account_id = d.row_key AND length(a.name) > 10000)
    """) == 0
    assert _one(con, """
        SELECT count(*) FROM sample_dirty_rows d WHERE d.kind = 'fallback_email_id'
           AND NOT EXISTS (SELECT 1 FROM users u WHERE 'email=' || u.email = d.row_key AND u.user_id IS NULL)
    """) == 0
    assert _one(con, """
        SELECT count(*) FROM sample_dirty_rows d WHERE d.table_name = 'events'
           AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = d.row_key)
    """) == 0


def test_rates_are_the_documented_ones(tmp_path: Path) -> None:
    users = 20_000
    generate_warehouse(tmp_path / "wh.duckdb", users=users, seed=9)
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        events = _one(con, "SELECT count(*) FROM events")
        accounts = _one(con, "SELECT count(DISTINCT account_id) FROM accounts")
        for kind in ("null_user_id", "empty_user_id", "blank_user_id", "fallback_email_id", "duplicate_user_id",
                     "naive_timestamp_text", "offset_timestamp_text", "orphan_membership"):
            assert _one(con, EVIDENCE[kind]) == round(DIRTY_RATES[kind] * users), kind
        assert _one(con, "SELECT count(*) FROM users WHERE length(bio) > 10000") == round(dirty.LONG_STRING_RATE * users)
        assert _one(con, "SELECT count(*) FROM users WHERE isnan(mrr)") == round(dirty.NAN_NUMBER_RATE * users)
        assert _one(con, "SELECT count(*) FROM accounts WHERE isinf(arr)") == max(2, round(dirty.INFINITE_NUMBER_RATE * accounts))
        # Events are drawn, so their planted counts follow the event total rather than the user count.
        assert _one(con, EVIDENCE["orphan_event"]) == round(dirty.ORPHAN_EVENT_RATE * events)
        assert _one(con, EVIDENCE["event_name_variant"]) == round(dirty.EVENT_NAME_VARIANT_RATE * events)


def test_too_small_a_warehouse_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 100"):
        generate_warehouse(tmp_path / "w.duckdb", users=99)
    assert not (tmp_path / "w.duckdb").exists()


def test_docstring_table_matches_the_constants() -> None:
    rows = re.findall(r"^\| `(\w+)` \| ([\d.]+)% \|", dirty.__doc__ or "", flags=re.MULTILINE)
    assert [name for name, _ in rows] == list(DIRTY_KINDS)
    for name, percent in rows:
        assert float(percent) / 100 == pytest.approx(DIRTY_RATES[name]), name
