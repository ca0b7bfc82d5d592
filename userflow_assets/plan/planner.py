"""The plan: the transformed records diffed against the sync state, before any request.

One SQL statement decides each record's action; only records that must be sent ever
become Python objects, a batch at a time.
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb

from userflow_assets.sqltext import md_table, scratch_writes
from userflow_assets.state.store import SyncState
from userflow_assets.state.types import Record

ACTIONS_TO_SEND = ("create", "update", "retry", "migrate", "delete")
PLAN_SCHEMA = "plan"


def plan_table(object_type: str) -> str:
    """The regular sync's plan of `object_type`; a backfill slice passes `plan=` its own table."""
    return f"{PLAN_SCHEMA}.{object_type}_plan"


@dataclass(frozen=True)
class PlannedRecord:
    record: Record
    action: str
    previous_attributes: str | None
    migrate_from: str | None
    previous_memberships: str | None = None


@dataclass(frozen=True)
class PlanSummary:
    counts: dict[str, int]
    migrations: int

    @property
    def to_send(self) -> int:
        return sum(self.counts.get(action, 0) for action in ACTIONS_TO_SEND)


def build_plan(
    con: duckdb.DuckDBPyConnection,
    state: SyncState,
    object_type: str,
    records_table: str,
    full_resync: bool = False,
    *,
    plan: str | None = None,
    resend_unread: bool = False,
    only_read: bool = False,
) -> PlanSummary:
    """Write `plan.<object>_plan`: each record with create / update / unchanged / retry.

    Failed records of earlier runs are retried even when the warehouse row did not change
    (they are not in an incremental read, so their last payload comes from the state).
    With `full_resync`, every record read is sent, changed or not. With `resend_unread` (a
    full resync after an incremental read) so is every synced record the read did not list,
    with the payload Userflow last confirmed; never a fallback-ID twin of a record read.
    A record seen under its primary ID that the state knows under its fallback ID carries
    `migrate_from`, unless that switch was already decided; if nothing else about it changed
    its action is `migrate`. With `only_read`, the state is asked only for the records read
    (not with `resend_unread`).
    """
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {PLAN_SCHEMA}")
    # `only_read`: the state of the records read (and of their fallback IDs) is all the diff needs.
    ids = (
        f"SELECT id FROM {records_table} UNION ALL SELECT fallback_id FROM {records_table} WHERE fallback_id IS NOT NULL"
        if only_read
        else None
    )
    state.expose_records(con, object_type, ids)
    params = {"full_resync": full_resync, "resend_unread": resend_unread}
    # Decide on narrow columns first: payloads are only copied for records that will be sent,
    # so a million unchanged records cost their IDs, not their attributes.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _decided AS
        WITH twins AS (
            -- Records known only under their fallback ID: confirmed, or failed (a failed create
            -- may still have landed, and must not be retried once its primary ID is known).
            SELECT id FROM state_records WHERE primary_id IS NULL
            UNION SELECT id FROM state_failures WHERE primary_id IS NULL
        ),
        claimed AS (
            SELECT t.id FROM {records_table} AS r JOIN twins AS t ON t.id = r.fallback_id
            WHERE r.primary_id IS NOT NULL AND r.id = r.primary_id
              AND NOT EXISTS (SELECT 1 FROM state_links AS l WHERE l.fallback_id = t.id)
        ),
        current AS (
            SELECT id, payload_hash, primary_id, fallback_id, 'read' AS source FROM {records_table}
            UNION ALL
            SELECT f.id, f.payload_hash, f.primary_id, f.fallback_id, 'failures'
            FROM state_failures AS f
            WHERE f.id NOT IN (SELECT id FROM {records_table}) AND f.id NOT IN (SELECT id FROM claimed)
            UNION ALL
            SELECT s.id, s.payload_hash, s.primary_id, s.fallback_id, 'state'
            FROM state_records AS s
            WHERE $resend_unread AND s.id NOT IN (SELECT id FROM {records_table})
              AND s.id NOT IN (SELECT id FROM state_failures)
              AND s.id NOT IN (SELECT fallback_id FROM {records_table} WHERE fallback_id IS NOT NULL)
        ),
        pending_links AS (
            SELECT c.id AS primary_id, t.id AS fallback_id
            FROM current AS c
            JOIN twins AS t ON t.id = c.fallback_id
            WHERE c.primary_id IS NOT NULL AND c.id = c.primary_id
              AND NOT EXISTS (SELECT 1 FROM state_links AS l WHERE l.fallback_id = t.id)
        )
        SELECT
            c.id,
            c.source,
            CASE
                WHEN f.id IS NOT NULL THEN 'retry'
                WHEN s.id IS NULL THEN 'create'
                WHEN $full_resync OR s.payload_hash <> c.payload_hash THEN 'update'
                -- Unchanged, but the fallback-ID twin still has to go (an earlier delete failed).
                WHEN p.fallback_id IS NOT NULL THEN 'migrate'
                ELSE 'unchanged'
            END AS action,
            p.fallback_id AS migrate_from
        FROM current AS c
        LEFT JOIN (SELECT id, payload_hash FROM state_records) AS s ON s.id = c.id
        LEFT JOIN (SELECT id FROM state_failures) AS f ON f.id = c.id
        LEFT JOIN pending_links AS p ON p.primary_id = c.id
        """,
        params,
    )
    # What Userflow last confirmed, of the records sent only (a million unchanged cost nothing).
    state.expose_payloads(con, object_type, "SELECT id FROM _decided WHERE action <> 'unchanged'")
    with scratch_writes(con):  # the plan is replaced every run, like the transform's tables
        con.execute(
            f"""
        CREATE OR REPLACE TABLE {plan or plan_table(object_type)} AS
        WITH sending AS (SELECT * FROM _decided WHERE action <> 'unchanged'),
        payloads AS (
            SELECT r.id, r.payload_hash, r.attributes, r.memberships, r.primary_id, r.fallback_id
            FROM {records_table} AS r SEMI JOIN sending USING (id)
            UNION ALL
            SELECT f.id, f.payload_hash, f.attributes, f.memberships, f.primary_id, f.fallback_id
            FROM state_failures AS f JOIN sending AS d ON d.id = f.id AND d.source = 'failures'
            UNION ALL
            SELECT s.id, s.payload_hash, c.attributes, c.memberships, s.primary_id, s.fallback_id
            FROM state_records AS s JOIN state_payloads AS c USING (id)
            JOIN sending AS d ON d.id = s.id AND d.source = 'state'
        )
        SELECT p.*, c.attributes AS previous_attributes, d.action, d.migrate_from,
               c.memberships AS previous_memberships
        FROM sending AS d
        JOIN payloads AS p USING (id)
        LEFT JOIN state_payloads AS c ON c.id = d.id
        UNION ALL
        SELECT id, NULL, NULL, NULL, NULL, NULL, NULL, action, NULL, NULL FROM _decided WHERE action = 'unchanged'
        """
        )
    con.execute("DROP TABLE _decided")
    return summarize_plan(con, object_type, plan=plan)


def plan_deletes(
    con: duckdb.DuckDBPyConnection,
    state: SyncState,
    object_type: str,
    staging_table: str,
    id_columns: list[str],
    *,
    exposed: bool = False,
) -> int:
    """Add `delete` for synced records that left the query's result, after a full read.

    Conservative: an ID is deleted only when it appears nowhere in the staged rows, neither
    as an ID nor as a fallback ID, so a row that was rejected or filtered out this time, or
    whose ID column briefly went null, is never deleted. `exposed`: `build_plan` has just
    exposed the whole state in `con` (not `only_read`), so a remote state is not fetched again.
    """
    seen = " UNION ALL ".join(
        f'SELECT CAST("{column.replace(chr(34), chr(34) * 2)}" AS VARCHAR) AS id FROM {staging_table}'
        for column in id_columns
    )
    if not exposed:
        state.expose_records(con, object_type)
    con.execute(
        f"""
        INSERT INTO {plan_table(object_type)} (id, action)
        SELECT s.id, 'delete' FROM state_records AS s
        WHERE s.id NOT IN (SELECT id FROM ({seen}) WHERE id IS NOT NULL)
          AND s.id NOT IN (SELECT id FROM {plan_table(object_type)})
        """
    )
    return con.execute(
        f"SELECT count(*) FROM {plan_table(object_type)} WHERE action = 'delete'"
    ).fetchone()[0]


def summarize_plan(con: duckdb.DuckDBPyConnection, object_type: str, *, plan: str | None = None) -> PlanSummary:
    rows = con.execute(
        f"SELECT action, count(*), count(migrate_from) FROM {plan or plan_table(object_type)} GROUP BY action"
    ).fetchall()
    counts = Counter({action: 0 for action in (*ACTIONS_TO_SEND, "unchanged", "skipped")})
    counts.update({action: n for action, n, _ in rows})
    return PlanSummary(counts=dict(counts), migrations=sum(m for _, _, m in rows))


def planned_batches(
    con_factory: Any,
    object_type: str,
    batch_size: int,
    actions: tuple[str, ...] = ACTIONS_TO_SEND,
    *,
    plan: str | None = None,
) -> Iterator[list[PlannedRecord]]:
    """The records to send, `batch_size` at a time, in ID order.

    Each batch is read with a short-lived connection from `con_factory` (a context manager
    factory), so the state file is not held open while requests are in flight.
    """
    after = ""
    first = True
    placeholders = ", ".join("?" for _ in actions)
    while True:
        with con_factory() as con:
            rows = con.execute(
                f"""
                SELECT id, payload_hash, attributes, memberships, primary_id, fallback_id,
                       action, previous_attributes, migrate_from, previous_memberships
                FROM {plan or plan_table(object_type)}
                WHERE action IN ({placeholders}) AND (? OR id > ?)
                ORDER BY id LIMIT ?
                """,
                [*actions, first, after, batch_size],
            ).fetchall()
        if not rows:
            return
        yield [
            PlannedRecord(
                Record(*row[:6]),
                action=row[6],
                previous_attributes=row[7],
                migrate_from=row[8],
                previous_memberships=row[9],
            )
            for row in rows
        ]
        if len(rows) < batch_size:
            return  # the last batch: no need to open the file to find none after it
        after, first = rows[-1][0], False


def plan_preview(
    con: duckdb.DuckDBPyConnection, object_type: str, limit: int = 50, *, plan: str | None = None
) -> str:
    """A markdown table of the first records that will be sent, their attributes whole (up to
    2,000 characters), for the asset's metadata."""
    rows = con.execute(
        f"""
        SELECT action, id, left(attributes, 2000) FROM {plan or plan_table(object_type)}
        WHERE action <> 'unchanged' ORDER BY action, id LIMIT ?
        """,
        [limit],
    ).fetchall()
    return md_table(["action", "id", "attributes"], rows)
