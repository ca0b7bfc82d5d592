"""The drift report: Userflow's users and groups (the mirror) against the sync state.

Three kinds of finding, one row each in `<schema>.drift`:

- `attribute_changed`: an attribute the sync last confirmed with a value now holds another
  value in Userflow, or is gone (`userflow_value` NULL). Attributes the sync never sent
  (not in the mapping) are not drift; neither are attributes it confirmed as null, since
  under `nulls: keep` Userflow legitimately keeps an older value for them.
- `not_synced`: a user or group in Userflow that the sync never wrote.
- `missing`: a record the sync state holds as synced that Userflow no longer has.

An object type is compared only when the state holds at least one record of it: with no
group sync configured every group would otherwise show as `not_synced`.
Values compare by `values.same_value`, the read-back check's rule: numbers as numbers (7 = 7.0)
and date-time strings as instants, so a real API that reformats values does not show as drift.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from userflow_assets.mirror.tables import DRIFT, GROUPS, USERS
from userflow_assets.sqltext import qualified_parts, transaction
from userflow_assets.state.store import synced_records_sql
from userflow_assets.values import same_value

STATE_ALIAS = "_sync_state"
KINDS = ("attribute_changed", "not_synced", "missing")
SAME_VALUE = "_uf_same_value"  # same_value, as a function of JSON texts in the drift query

_EMPTY_STATE = (
    "SELECT NULL::VARCHAR AS object_type, NULL::VARCHAR AS id, NULL::VARCHAR AS attributes, "
    "NULL::TIMESTAMP AS synced_at WHERE false"
)


def _same_value(a: str, b: str) -> str:
    """SQL: JSON values `a` and `b` mean the same value."""
    # Equal texts are the same value: Python is asked only about the few that differ.
    return f"CASE WHEN json({a}) = json({b}) THEN true ELSE {SAME_VALUE}(CAST({a} AS VARCHAR), CAST({b} AS VARCHAR)) END"


def _same_json(a: str, b: str) -> bool:
    return same_value(json.loads(a), json.loads(b))


def drift_sql(schema: str, synced_source: str) -> str:
    users, groups = qualified_parts(schema, USERS.name), qualified_parts(schema, GROUPS.name)
    return f"""
    WITH synced AS ({synced_source}),
    compared AS (SELECT DISTINCT object_type FROM synced),
    held AS (
        SELECT 'user' AS object_type, id, attributes FROM {users}
        UNION ALL
        SELECT 'group' AS object_type, id, attributes FROM {groups}
    ),
    synced_values AS (
        SELECT s.object_type, s.id, s.synced_at, e.key AS attribute, json(e.value) AS synced_value
        FROM synced AS s, json_each(s.attributes) AS e
        WHERE json_type(e.value) <> 'NULL'
    ),
    held_values AS (
        SELECT h.object_type, h.id, e.key AS attribute, json(e.value) AS userflow_value
        FROM held AS h
        SEMI JOIN synced AS s ON s.object_type = h.object_type AND s.id = h.id,
        json_each(h.attributes) AS e
    ),
    changed AS (
        SELECT sv.object_type, sv.id, 'attribute_changed' AS kind, sv.attribute,
               hv.userflow_value, sv.synced_value, sv.synced_at
        FROM synced_values AS sv
        SEMI JOIN held AS h ON h.object_type = sv.object_type AND h.id = sv.id
        LEFT JOIN held_values AS hv
            ON hv.object_type = sv.object_type AND hv.id = sv.id AND hv.attribute = sv.attribute
        WHERE hv.userflow_value IS NULL OR NOT ({_same_value('hv.userflow_value', 'sv.synced_value')})
    ),
    not_synced AS (
        SELECT h.object_type, h.id, 'not_synced' AS kind, NULL AS attribute,
               h.attributes AS userflow_value, NULL AS synced_value, NULL::TIMESTAMP AS synced_at
        FROM held AS h
        SEMI JOIN compared AS c ON c.object_type = h.object_type
        ANTI JOIN synced AS s ON s.object_type = h.object_type AND s.id = h.id
    ),
    missing AS (
        SELECT s.object_type, s.id, 'missing' AS kind, NULL AS attribute,
               NULL AS userflow_value, s.attributes AS synced_value, s.synced_at
        FROM synced AS s
        ANTI JOIN held AS h ON h.object_type = s.object_type AND h.id = s.id
    )
    SELECT * FROM changed UNION ALL SELECT * FROM not_synced UNION ALL SELECT * FROM missing
    """


def _attach_state(con: duckdb.DuckDBPyConnection, state_path: Path) -> str:
    """Attach the state file read-only (if there is one); the SQL of its synced records."""
    return synced_records_sql(con, state_path, STATE_ALIAS) or _EMPTY_STATE


@dataclass(frozen=True)
class DriftSummary:
    counts: dict[str, int]  # "<kind>_<object_type>s", e.g. "not_synced_users"
    records_changed: int
    compared: list[str]
    total: int


def write_drift(
    con: duckdb.DuckDBPyConnection, schema: str, state_path: Path, synced_sql: str | None = None
) -> DriftSummary:
    """Replace `<schema>.drift` with the current findings; the state is only read: the file at
    `state_path`, or `synced_sql` (a remote state's records already brought into `con`)."""
    attached = synced_sql is None and state_path.is_file()
    con.create_function(SAME_VALUE, _same_json, ["VARCHAR", "VARCHAR"], "BOOLEAN")
    source = synced_sql or _attach_state(con, state_path)
    target = qualified_parts(schema, DRIFT.name)
    columns = ", ".join(name for name, _ in DRIFT.columns)
    try:
        compared = [r[0] for r in con.execute(f"SELECT DISTINCT object_type FROM ({source}) ORDER BY 1").fetchall()]
        with transaction(con):
            con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT {columns} FROM ({drift_sql(schema, source)})")
    finally:
        con.remove_function(SAME_VALUE)
        if attached:
            con.execute(f"DETACH {STATE_ALIAS}")
    rows = con.execute(f"SELECT kind, object_type, count(*) FROM {target} GROUP BY ALL").fetchall()
    found = {f"{kind}_{object_type}s": n for kind, object_type, n in rows}
    counts = {f"{kind}_{object_type}s": found.get(f"{kind}_{object_type}s", 0) for kind in KINDS for object_type in ("user", "group")}
    records_changed = con.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT object_type, id FROM {target} WHERE kind = 'attribute_changed')"
    ).fetchone()[0]
    return DriftSummary(counts, records_changed, compared, sum(counts.values()))


def drift_samples(con: duckdb.DuckDBPyConnection, schema: str, kind: str, limit: int = 10) -> list[tuple]:
    return con.execute(
        f"SELECT object_type, id, attribute, left(userflow_value::VARCHAR, 80), left(synced_value::VARCHAR, 80) "
        f"FROM {qualified_parts(schema, DRIFT.name)} WHERE kind = ? ORDER BY object_type DESC, id, attribute LIMIT ?",
        [kind, limit],
    ).fetchall()
