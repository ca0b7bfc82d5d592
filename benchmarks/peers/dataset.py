"""The benchmark warehouse, the change made before a re-sync, and what Userflow should hold.

The warehouse is derived from the sample generator (`userflow_assets.sample`) with every
planted dirty row left out, so every peer is expected to sync every row: users with a
plain, unique `usr_...` ID, finite numbers and short strings, `trial_ends_at` as UTC ISO
text, no `billing` contacts (the shipped spec filters them out; here they become
`member`s so no peer needs the filter), exactly the number of companies asked for, and no
events (not part of the comparison).

The expected state is computed from the warehouse by SQL of its own, with the attributes
the shipped spec maps (defs.yaml), and compared with the emulator's state by the sync's own
rule (`userflow_assets.values.same_value`): a datetime equals any ISO text of the same
instant, numbers equal numerically; besides, a NaN or null attribute equals an absent one.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from userflow_assets.sqltext import attach_read_only
from userflow_assets.values import same_value as same_sent_value

USER_ATTRIBUTES_SQL = """
    lower(email) AS email, first_name || ' ' || last_name AS name, first_name, last_name, plan, role,
    locale, country, signed_up_at, last_seen_at, trial_ends_at, seats, mrr, is_verified, bio
"""
GROUP_ATTRIBUTES_SQL = "name, plan, industry, employees, arr, created_at"


def build_warehouse(out: Path, users: int, groups: int, seed: int = 42) -> dict[str, int]:
    """Write a clean warehouse of exactly `users` users and `groups` companies to `out`."""
    from userflow_assets.sample import generate_warehouse

    # The sample draws about one company per 20 users: draw enough of both, then cut.
    drawn = max(int(users * 1.1) + 100, groups * 30)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "sample.duckdb"
        generate_warehouse(raw, users=drawn, seed=seed)
        out.unlink(missing_ok=True)
        con = duckdb.connect(str(out))
        try:
            con.execute("SET TimeZone = 'UTC'")
            attach_read_only(con, raw, "raw")
            con.execute(
                """
                CREATE TABLE accounts AS
                SELECT * FROM raw.accounts
                WHERE regexp_full_match(account_id, 'acc_[0-9]+') AND isfinite(arr) AND length(name) <= 255
                  AND account_id IN (SELECT account_id FROM raw.accounts GROUP BY 1 HAVING count(*) = 1)
                ORDER BY account_id LIMIT ?
                """,
                [groups],
            )
            con.execute(
                """
                CREATE TABLE users AS
                SELECT * REPLACE (
                    CASE WHEN role = 'billing' THEN 'member' ELSE role END AS role,
                    strftime(timezone('UTC', trial_ends_at::TIMESTAMPTZ), '%Y-%m-%dT%H:%M:%SZ') AS trial_ends_at
                )
                FROM raw.users
                WHERE regexp_full_match(user_id, 'usr_[0-9]+') AND email IS NOT NULL
                  AND (mrr IS NULL OR isfinite(mrr)) AND (bio IS NULL OR length(bio) <= 10000)
                  AND user_id IN (SELECT user_id FROM raw.users GROUP BY 1 HAVING count(*) = 1)
                ORDER BY user_id LIMIT ?
                """,
                [users],
            )
            # Memberships of the kept users; a company cut away is replaced by a kept one.
            con.execute(
                """
                CREATE TABLE account_memberships AS
                WITH kept AS (SELECT account_id, row_number() OVER (ORDER BY account_id) - 1 AS i FROM accounts),
                mapped AS (
                    SELECT m.user_id,
                           coalesce(k.account_id,
                                    (SELECT account_id FROM kept WHERE i = hash(m.account_id) % (SELECT count(*) FROM kept)))
                               AS account_id,
                           m.role, m.created_at, m.updated_at
                    FROM raw.account_memberships AS m LEFT JOIN kept AS k USING (account_id)
                    WHERE m.user_id IN (SELECT user_id FROM users)
                )
                SELECT * FROM mapped QUALIFY row_number() OVER (PARTITION BY user_id, account_id ORDER BY updated_at DESC) = 1
                """
            )
            con.execute(
                "UPDATE users SET account_ids = (SELECT list(account_id ORDER BY account_id) FROM account_memberships m "
                "WHERE m.user_id = users.user_id)"
            )
            con.execute("CREATE TABLE events AS SELECT * FROM raw.events LIMIT 0")
            con.execute("CREATE TABLE sample_dirty_rows AS SELECT * FROM raw.sample_dirty_rows LIMIT 0")
            counts = {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in ("users", "accounts", "account_memberships")}
        finally:
            con.close()
    return counts


def change_users(warehouse: Path, share: float, when: datetime | None = None) -> int:
    """Change a mapped attribute (`plan`) of `share` of the users and touch their `updated_at`;
    the number changed."""
    when = when or datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with duckdb.connect(str(warehouse)) as con:
        total = int(con.execute("SELECT count(*) FROM users").fetchone()[0])
        n = max(1, round(total * share))
        latest = con.execute("SELECT max(updated_at) FROM users").fetchone()[0]
        stamp = max(when, latest) if latest else when
        con.execute(
            """
            UPDATE users SET plan = CASE WHEN plan = 'pro' THEN 'starter' ELSE 'pro' END, updated_at = ?
            WHERE user_id IN (SELECT user_id FROM users ORDER BY hash(user_id), user_id LIMIT ?)
            """,
            [stamp, n],
        )
    return n


def copy_warehouse(source: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    return dest


# ---- the expected state and the comparison -------------------------------------------------


@dataclass(frozen=True)
class Expected:
    users: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]]
    memberships: dict[str, dict[str, dict[str, Any]]]  # user -> group -> membership attributes

    @property
    def records(self) -> int:
        return len(self.users) + len(self.groups)


def expected_state(warehouse: Path) -> Expected:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        users = _rows(con, f"SELECT user_id AS id, {USER_ATTRIBUTES_SQL} FROM users")
        groups = _rows(con, f"SELECT account_id AS id, {GROUP_ATTRIBUTES_SQL} FROM accounts")
        memberships: dict[str, dict[str, dict[str, Any]]] = {}
        for user_id, account_id, role in con.execute("SELECT user_id, account_id, role FROM account_memberships").fetchall():
            memberships.setdefault(user_id, {})[account_id] = {"role": role}
    return Expected(users, groups, memberships)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, dict[str, Any]]:
    result = con.execute(sql)
    names = [d[0] for d in result.description]
    return {row[0]: dict(zip(names[1:], row[1:], strict=True)) for row in result.fetchall()}


def same_value(expected: Any, actual: Any) -> bool:
    """Whether Userflow's `actual` holds the warehouse's `expected` value."""
    return same_sent_value(_as_json(expected), actual)


def _as_json(value: Any) -> Any:
    """A warehouse value as a JSON body carries it: NaN as null, a datetime as ISO text."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.isoformat() if isinstance(value, datetime) else value


def same_attributes(expected: dict[str, Any], actual: dict[str, Any] | None) -> bool:
    actual = actual or {}
    extra = {k for k, v in actual.items() if v is not None} - set(expected)
    return not extra and all(same_value(v, actual.get(k)) for k, v in expected.items())


@dataclass(frozen=True)
class Verdict:
    correct: int
    expected: int
    wrong_users: list[str]
    wrong_groups: list[str]

    @property
    def all_correct(self) -> bool:
        return self.correct == self.expected


def compare(expected: Expected, state: dict[str, Any]) -> Verdict:
    """Records (users and groups) that Userflow holds exactly as expected; a user counts only
    with its attributes and its memberships (set and attributes) right."""
    users = {u["id"]: u.get("attributes") for u in state.get("users", [])}
    groups = {g["id"]: g.get("attributes") for g in state.get("groups", [])}
    memberships: dict[str, dict[str, dict[str, Any]]] = {}
    for m in state.get("memberships", []):
        memberships.setdefault(m["user_id"], {})[m["group_id"]] = m.get("attributes") or {}
    wrong_users = []
    for user_id, attributes in expected.users.items():
        want = expected.memberships.get(user_id, {})
        have = memberships.get(user_id, {})
        ok = user_id in users and same_attributes(attributes, users[user_id])
        ok = ok and set(want) == set(have) and all(same_attributes(want[g], have[g]) for g in want)
        if not ok:
            wrong_users.append(user_id)
    wrong_groups = [g for g, attrs in expected.groups.items() if g not in groups or not same_attributes(attrs, groups[g])]
    correct = expected.records - len(wrong_users) - len(wrong_groups)
    return Verdict(correct, expected.records, wrong_users, wrong_groups)
