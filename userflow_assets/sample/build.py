"""Turn a Draw into DuckDB tables, and write the warehouse file atomically."""

from __future__ import annotations

import math
import os
from pathlib import Path

import duckdb

from userflow_assets.sample import vocab as v
from userflow_assets.sample.dirty import (
    BLANK_IDS,
    DIRTY_KINDS,
    SPECIAL_ACCOUNT_ID_PATTERNS,
    SPECIAL_USER_ID_PATTERNS,
    TEXT_OFFSETS,
)
from userflow_assets.sample.generate import (
    ACCOUNT_KINDS,
    EVENT_KINDS,
    TABLES,
    TRIAL_DAYS,
    USER_KINDS,
    Draw,
    account_code,
    draw,
    event_code,
    name_variants,
    user_code,
)

_ISO = "'%Y-%m-%dT%H:%M:%S'"
# Short names keep the SQL templates below readable.
_u, _a, _e = user_code, account_code, event_code


def _lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _lst(values: tuple[str, ...] | list[str]) -> str:
    """A SQL list literal of strings; index it 1-based."""
    return "[" + ", ".join(_lit(x) for x in values) + "]"


def _digits(n: int) -> int:
    return len(str(n))


def _macros(con: duckdb.DuckDBPyConnection, d: Draw) -> None:
    """SQL macros shared by the table queries: IDs, slugs and timestamps from drawn numbers."""
    user_width = max(6, _digits(d.users + d.orphan_events + 1))
    acc_width = max(5, _digits(d.accounts + d.orphan_accounts))
    con.execute(f"""
        CREATE OR REPLACE TEMP MACRO uid(kind, variant, num) AS CASE kind
            WHEN {_u("null_user_id")} THEN NULL::VARCHAR
            WHEN {_u("fallback_email_id")} THEN NULL::VARCHAR
            WHEN {_u("empty_user_id")} THEN ''
            WHEN {_u("blank_user_id")} THEN {_lst(BLANK_IDS)}[variant % {len(BLANK_IDS)} + 1]
            WHEN {_u("special_char_id")} THEN replace(
                {_lst(SPECIAL_USER_ID_PATTERNS)}[variant % {len(SPECIAL_USER_ID_PATTERNS)} + 1],
                '{{n}}', num::VARCHAR)
            ELSE 'usr_' || lpad(num::VARCHAR, {user_width}, '0') END
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP MACRO aid(kind, variant, idx) AS CASE kind
            WHEN {_a("special_char_id")} THEN replace(
                {_lst(SPECIAL_ACCOUNT_ID_PATTERNS)}[variant % {len(SPECIAL_ACCOUNT_ID_PATTERNS)} + 1],
                '{{n}}', (idx + 1)::VARCHAR)
            ELSE 'acc_' || lpad((idx + 1)::VARCHAR, {acc_width}, '0') END
    """)
    # Email local parts: ASCII letters only (strip_accents leaves ø and ł alone).
    con.execute("""
        CREATE OR REPLACE TEMP MACRO slug(x) AS regexp_replace(
            lower(strip_accents(replace(replace(replace(replace(x, 'ø', 'o'), 'Ø', 'O'), 'ł', 'l'), 'Ł', 'L'))),
            '[^a-z]', '', 'g')
    """)
    con.execute("CREATE OR REPLACE TEMP MACRO ts(s) AS make_timestamp(s * 1000000)")
    con.execute(f"CREATE OR REPLACE TEMP MACRO orphan_uid(j) AS 'usr_' || lpad(({d.users} + 1 + j)::VARCHAR, {user_width}, '0')")


def _special_number(kind_code: int, nan_code: int, inf_code: int, value: str) -> str:
    """SQL for a DOUBLE column with the nan_number / infinite_number kinds applied."""
    return f"""CASE {kind_code}
        WHEN {nan_code} THEN 'NaN'::DOUBLE
        WHEN {inf_code} THEN CASE WHEN variant % 2 = 0 THEN 'Infinity'::DOUBLE ELSE '-Infinity'::DOUBLE END
        ELSE {value} END"""


def _accounts(con: duckdb.DuckDBPyConnection, d: Draw) -> None:
    name_reps = math.ceil(10_001 / len(v.LONG_NAME_WORD))
    company = f"{_lst(v.COMPANY_WORDS)}[word + 1] || {_lst(v.COMPANY_NOUNS)}[noun + 1]"
    con.execute(f"""
        CREATE TEMP TABLE accounts_stage AS
        SELECT row_idx, kind, variant,
            aid(kind, variant, acc_idx) AS account_id,
            CASE WHEN kind = {_a("long_string")}
                THEN {company} || ' ' || repeat({_lit(v.LONG_NAME_WORD)}, {name_reps} + variant % 40)
                     || {_lst(v.COMPANY_SUFFIXES)}[suffix + 1]
                ELSE {company} || ' ' || {_lst(v.COMPANY_SUFFIXES)}[suffix + 1] END AS name,
            {_lst(v.PLANS)}[plan + 1] AS plan,
            {_lst(v.INDUSTRIES)}[industry + 1] AS industry,
            employees::INTEGER AS employees,
            {_special_number("kind", _a("nan_number"), _a("infinite_number"), "arr")} AS arr,
            ts(created_s) AS created_at,
            ts(updated_s) AS updated_at
        FROM account_frame
    """)
    con.execute("""
        CREATE TABLE accounts AS
        SELECT account_id, name, plan, industry, employees, arr, created_at, updated_at
        FROM accounts_stage ORDER BY row_idx
    """)


def _links(con: duckdb.DuckDBPyConnection, d: Draw) -> None:
    con.execute("""
        CREATE TEMP TABLE links AS
        SELECT num, rank, acc_idx, has_id, role, created_s, updated_s,
            uid(user_kind, user_variant, num) AS user_id,
            aid(acc_kind, acc_variant, acc_idx) AS account_id
        FROM link_frame
    """)
    # Users with no usable ID keep their account_ids but have no membership rows to join on.
    con.execute("""
        CREATE TABLE account_memberships AS
        SELECT user_id, account_id, ['owner', 'admin', 'member'][role + 1] AS role,
            ts(created_s) AS created_at, ts(updated_s) AS updated_at
        FROM links WHERE has_id ORDER BY num, rank
    """)


def _users(con: duckdb.DuckDBPyConnection, d: Draw) -> None:
    bio_reps = math.ceil(10_001 / len(v.LONG_BIO_SENTENCE))
    offsets_min = "[" + ", ".join(str(m) for m, _ in TEXT_OFFSETS) + "]"
    offsets_txt = _lst([t for _, t in TEXT_OFFSETS])
    pick_offset = f"variant % {len(TEXT_OFFSETS)} + 1"
    trial_s = f"signup_s + {TRIAL_DAYS * 86_400}"
    con.execute(f"""
        CREATE TEMP TABLE users_stage AS
        WITH named AS (
            SELECT *,
                {_lst(v.FIRST_NAMES)}[first + 1] AS first_name,
                {_lst(v.LAST_NAMES)}[last + 1] AS last_name,
                CASE WHEN work_email
                    THEN lower({_lst(v.COMPANY_WORDS)}[dom_word + 1] || {_lst(v.COMPANY_NOUNS)}[dom_noun + 1])
                         || {_lst(v.TLDS)}[dom_tld + 1]
                    ELSE {_lst(v.PERSONAL_DOMAINS)}[personal_domain + 1] END AS domain
            FROM user_frame
        ), addressed AS (
            SELECT *,
                -- the n-th person with the same mailbox name at a domain gets a number, like real mailboxes
                -- (García and Garcia share one)
                row_number() OVER (PARTITION BY local_part, domain ORDER BY row_idx) AS twin
            FROM (SELECT *, slug(first_name) || '.' || slug(last_name) AS local_part FROM named)
        ), ids AS (
            SELECT num, list(account_id ORDER BY rank) AS account_ids FROM links GROUP BY num
        )
        SELECT a.row_idx, a.kind, a.variant,
            uid(a.kind, a.variant, a.num) AS user_id,
            CASE WHEN a.kind = {_u("null_user_id")} THEN NULL
                 ELSE a.local_part || CASE WHEN twin = 1 THEN '' ELSE twin::VARCHAR END || '@' || a.domain
            END AS email,
            a.first_name, a.last_name,
            {_lst(v.PLANS)}[a.plan + 1] AS plan,
            {_lst(v.USER_ROLES)}[a.role + 1] AS role,
            {_lst([loc for loc, _ in v.LOCALES])}[a.locale + 1] AS locale,
            {_lst([c for _, c in v.LOCALES])}[a.locale + 1] AS country,
            ts(a.signup_s) AS signed_up_at,
            ts(a.updated_s) AS updated_at,
            CASE WHEN a.seen THEN to_timestamp(a.last_seen_s::DOUBLE) END AS last_seen_at,
            CASE WHEN a.trial_null THEN NULL
                WHEN a.kind = {_u("naive_timestamp_text")} THEN strftime(ts({trial_s}), {_ISO})
                WHEN a.kind = {_u("offset_timestamp_text")}
                    THEN strftime(ts({trial_s} + 60 * {offsets_min}[{pick_offset}]), {_ISO})
                         || {offsets_txt}[{pick_offset}]
                ELSE strftime(ts({trial_s}), {_ISO}) || 'Z' END AS trial_ends_at,
            a.seats::INTEGER AS seats,
            {_special_number("a.kind", _u("nan_number"), _u("infinite_number"), "a.mrr")} AS mrr,
            a.verified AS is_verified,
            coalesce(ids.account_ids, []::VARCHAR[]) AS account_ids,
            CASE WHEN a.kind = {_u("long_string")}
                    THEN repeat({_lit(v.LONG_BIO_SENTENCE)}, {bio_reps} + a.variant % 40)
                WHEN a.bio < 0 THEN NULL
                ELSE {_lst(v.BIOS)}[a.bio + 1] END AS bio
        FROM addressed a LEFT JOIN ids USING (num)
    """)
    con.execute("""
        CREATE TABLE users AS
        SELECT user_id, email, first_name, last_name, plan, role, locale, country,
            signed_up_at, updated_at, last_seen_at, trial_ends_at, seats, mrr, is_verified,
            account_ids, bio
        FROM users_stage ORDER BY row_idx
    """)


def _properties_sql() -> str:
    """The flat JSON properties of an event, as text; every event has plan and source."""

    def pick(values: tuple[str, ...] | list[str], r: str) -> str:
        return f"{_lst(values)}[{r} % {len(values)} + 1]"

    def q(key: str, expr: str) -> str:  # a quoted string member
        return f"', \"{key}\": \"' || {expr} || '\"'"

    def num(key: str, expr: str) -> str:  # a number member
        return f"', \"{key}\": ' || ({expr})::VARCHAR"

    extra = {
        "Signed Up": q("referrer", pick(["google", "direct", "linkedin", "partner", "invite"], "r2")),
        "Logged In": q("browser", pick(["Chrome", "Safari", "Firefox", "Edge"], "r2")),
        "Project Created": q("project_id", "'prj_' || (e_idx + 1)::VARCHAR") + " || "
        + q("template", pick(v.TEMPLATES, "r2")),
        "Feature_Activated": q("feature", pick(v.FEATURES, "r2")),
        "Invite Sent": q("invitee_role", pick(v.USER_ROLES[:3], "r2")) + " || " + num("invites", "1 + r2 % 5"),
        "Invite Accepted": q("channel", pick(["email", "link", "slack"], "r2")),
        "Checklist Completed": q("checklist", pick(v.CHECKLISTS, "r2")) + " || " + num("steps", "3 + r2 % 5"),
        "Report Exported": q("format", pick(v.EXPORT_FORMATS, "r2")) + " || " + num("rows", "10 + r2 % 5000"),
        "Integration Connected": q("integration", pick(v.INTEGRATIONS, "r2")),
        "Subscription Upgraded": q("from_plan", _lst(v.PLANS) + "[plan + 1]") + " || "
        + q("to_plan", _lst(v.PLANS) + "[least(plan + 2, 4)]"),
        "Comment Added": num("length", "1 + r2 % 400"),
        "Dashboard Viewed": q("dashboard", pick(v.DASHBOARDS, "r2")),
    }
    cases = " ".join(f"WHEN {v.EVENT_NAMES.index(name)} THEN {sql}" for name, sql in extra.items())
    return (
        "'{\"plan\": \"' || " + _lst(v.PLANS) + "[plan + 1] || '\"' || "
        + q("source", pick(v.EVENT_SOURCES, "r1"))
        + f" || CASE canon {cases} ELSE '' END || '}}'"
    )


def _events(con: duckdb.DuckDBPyConnection, d: Draw) -> None:
    width = max(8, _digits(len(d.event_frame)))
    variants = "[" + ", ".join(_lst(name_variants(n)) for n in v.EVENT_NAMES) + "]"
    con.execute(f"""
        CREATE TABLE events AS
        SELECT 'evt_' || lpad((e_idx + 1)::VARCHAR, {width}, '0') AS event_id,
            CASE WHEN kind = {_e("orphan_event")} THEN orphan_uid(variant)
                 ELSE uid(user_kind, user_variant, num) END AS user_id,
            CASE WHEN acc_idx >= 0 THEN aid(acc_kind, acc_variant, acc_idx) END AS account_id,
            CASE WHEN kind = {_e("event_name_variant")} THEN {variants}[canon + 1][variant + 1]
                 ELSE {_lst(v.EVENT_NAMES)}[canon + 1] END AS name,
            ts(at_s) AS occurred_at,
            {_properties_sql()} AS properties
        FROM event_frame ORDER BY e_idx
    """)


def _dirty_rows(con: duckdb.DuckDBPyConnection, d: Draw) -> None:
    """List every planted row; rows without a usable user_id are located by email or name and sign-up."""
    width = max(8, _digits(len(d.event_frame)))
    no_key = ", ".join(str(_u(k)) for k in ("null_user_id", "empty_user_id", "blank_user_id"))
    con.execute(f"""
        CREATE TABLE sample_dirty_rows AS
        SELECT table_name, row_key, kind FROM (
            SELECT 1 AS t, row_idx AS pos, 'users' AS table_name,
                CASE WHEN kind IN ({no_key})
                        THEN 'first_name=' || first_name || ';last_name=' || last_name
                             || ';signed_up_at=' || strftime(signed_up_at, {_ISO})
                     WHEN kind = {_u("fallback_email_id")} THEN 'email=' || email
                     ELSE user_id END AS row_key,
                {_lst(USER_KINDS)}[kind] AS kind
            FROM users_stage WHERE kind > 0 AND kind <> {_u("orphan_membership")}
            UNION ALL
            SELECT 2, row_idx, 'accounts', account_id, {_lst(ACCOUNT_KINDS)}[kind]
            FROM accounts_stage WHERE kind > 0
            UNION ALL
            SELECT 3, num, 'account_memberships', user_id || ' -> ' || account_id, 'orphan_membership'
            FROM links WHERE acc_idx >= {d.accounts}
            UNION ALL
            SELECT 4, e_idx, 'events', 'evt_' || lpad((e_idx + 1)::VARCHAR, {width}, '0'),
                {_lst(EVENT_KINDS)}[kind]
            FROM event_frame WHERE kind > 0
        ) ORDER BY t, kind, pos
    """)


def write_tables(con: duckdb.DuckDBPyConnection, d: Draw) -> None:
    """Create users, accounts, account_memberships, events and sample_dirty_rows in `con`."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    # The numeric frames are scanned in place, without copying them into the file.
    for name in ("account_frame", "link_frame", "user_frame", "event_frame"):
        con.register(name, getattr(d, name))
    _macros(con, d)
    _accounts(con, d)
    _links(con, d)
    _users(con, d)
    _events(con, d)
    _dirty_rows(con, d)
    for temp in ("users_stage", "accounts_stage", "links"):
        con.execute(f"DROP TABLE {temp}")
    for name in ("account_frame", "link_frame", "user_frame", "event_frame"):
        con.unregister(name)


def summarize(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    """Row counts per table and planted rows per dirty kind (every kind listed, even at 0)."""
    tables = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    counted = dict(con.execute("SELECT kind, count(*) FROM sample_dirty_rows GROUP BY kind").fetchall())
    return {"tables": tables, "dirty_kinds": {k: counted.get(k, 0) for k in DIRTY_KINDS}}


def generate_warehouse(path: str | Path, users: int = 10_000, seed: int = 42) -> dict[str, dict[str, int]]:
    """Write a sample warehouse to `path`, replacing any existing file atomically.

    Builds a temporary file next to `path` and renames it over `path`, so a reader never sees
    a half-written warehouse. Returns the row counts per table and per dirty kind.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    try:
        d = draw(users, seed)
        con = duckdb.connect(str(tmp))
        try:
            write_tables(con, d)
            summary = summarize(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        # A write-ahead log left by an earlier writer of `out` would be replayed onto the new file.
        out.with_name(out.name + ".wal").unlink(missing_ok=True)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    return summary
