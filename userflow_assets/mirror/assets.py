"""The read side: Userflow copied into the warehouse, the checklist drop-off and the drift report.

`build_mirror_defs(database, schema)` gives these assets (group `userflow_mirror`):

| asset | tables in `<schema>` |
|---|---|
| `mirror_users` | users, memberships |
| `mirror_groups` | groups |
| `mirror_attribute_definitions` | attribute_definitions |
| `mirror_event_definitions` | event_definitions |
| `mirror_content` | content, content_versions, content_questions, content_tasks |
| `mirror_content_sessions` | content_sessions, content_session_answers, content_session_task_completions (incremental) |
| `checklist_dropoff` | checklist_dropoff (sql/checklist_dropoff.sql) |
| `userflow_drift` | drift (Userflow against the sync state), with the non-blocking check `no_drift` |

The assets that call Userflow share the pool `userflow_api` with the sync.
"""

import asyncio
import enum
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import dagster as dg
from dagster_duckdb import DuckDBResource

from userflow_assets import recovery
from userflow_assets.client import UserflowClient, UserflowResource
from userflow_assets.mirror import read
from userflow_assets.mirror import tables as t
from userflow_assets.mirror.drift import KINDS, drift_samples, write_drift
from userflow_assets.mirror.store import (
    MirrorDatabase,
    StagedTables,
    table_exists,
)
from userflow_assets.settings import API_POOL, SHIPPED, Names, project_path
from userflow_assets.sqltext import literal, md_table, qualified_parts, transaction
from userflow_assets.state.postgres import PostgresState
from userflow_assets.state.resources import StateDatabase

GROUP = "userflow_mirror"
KINDS_TAG = {"userflow", "duckdb"}
MIRROR_JOB = "userflow_mirror"
DROPOFF_SQL = "sql/checklist_dropoff.sql"
PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 80

Reader = Callable[[UserflowClient, StagedTables], Awaitable[None]]


@dataclass(frozen=True)
class MirrorRead:
    asset: str
    tables: tuple[t.Table, ...]
    reader: Reader
    description: str


FULL_READS = (
    MirrorRead("mirror_users", (t.USERS, t.MEMBERSHIPS), read.read_users, "Userflow's users and their memberships."),
    MirrorRead("mirror_groups", (t.GROUPS,), read.read_groups, "Userflow's groups (companies)."),
    MirrorRead(
        "mirror_attribute_definitions",
        (t.ATTRIBUTE_DEFINITIONS,),
        read.read_attribute_definitions,
        "Userflow's attribute definitions (user, group and membership scopes).",
    ),
    MirrorRead(
        "mirror_event_definitions", (t.EVENT_DEFINITIONS,), read.read_event_definitions, "Userflow's event definitions."
    ),
    MirrorRead(
        "mirror_content",
        (t.CONTENT, t.CONTENT_VERSIONS, t.CONTENT_QUESTIONS, t.CONTENT_TASKS),
        read.read_content,
        "Flows, checklists and launchers with every version's questions and tasks.",
    ),
)
SESSION_TABLES = (t.CONTENT_SESSIONS, t.CONTENT_SESSION_ANSWERS, t.CONTENT_SESSION_TASK_COMPLETIONS)
# Child rows of a re-read session are replaced with it.
SESSION_KEYS = {t.CONTENT_SESSIONS.name: "id", t.CONTENT_SESSION_ANSWERS.name: "session_id",
                t.CONTENT_SESSION_TASK_COMPLETIONS.name: "session_id"}


class ReadMode(enum.Enum):
    incremental = "incremental"
    full = "full"


class SessionsConfig(dg.Config):
    full_refresh: bool = False
    """Read every session again and replace the tables (also drops sessions deleted in Userflow)."""
    reread_days: float = 0.0
    """Also re-read sessions started up to this many days before the newest stored one, so their
    progress, answers and task completions are refreshed."""


def _requests(userflow: UserflowResource) -> int:
    return int(userflow.metadata().get("userflow_requests", 0))


def _markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    # Cells are cut short: a long attributes JSON would swamp the metadata view.
    return md_table(columns, rows, PREVIEW_CELL_CHARS) if rows else "none"


def _column_schema(table: t.Table) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, type_) for name, type_ in table.columns])


def _table_metadata(db: MirrorDatabase, schema: str, main: t.Table, counts: dict[str, int]) -> dict[str, Any]:
    with db.connect() as con:
        cursor = con.execute(f"SELECT * FROM {qualified_parts(schema, main.name)} LIMIT {PREVIEW_ROWS}")
        preview = _markdown([d[0] for d in cursor.description], cursor.fetchall())
    return {
        "dagster/row_count": counts[main.name],
        "dagster/table_name": f"{schema}.{main.name}",
        "dagster/column_schema": _column_schema(main),
        **{f"rows_{name}": n for name, n in counts.items()},
        "preview": dg.MetadataValue.md(preview),
    }


async def _walk(userflow: UserflowResource, reader: Reader, staged: StagedTables) -> None:
    async with userflow.get_client() as client:
        await reader(client, staged)


async def _walk_sessions(
    userflow: UserflowResource, staged: StagedTables, cutoff: datetime | None
) -> read.SessionWalk:
    async with userflow.get_client() as client:
        return await read.read_sessions(client, staged, cutoff)


def _full_read_asset(
    spec: MirrorRead, schema: str, deps: Sequence[dg.AssetKey], names: Names, pool: str
) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.asset,
        key_prefix=names.key_prefix,
        deps=list(deps),
        group_name=names(GROUP),
        kinds=KINDS_TAG,
        pool=pool,
        required_resource_keys=names.resource_keys("userflow", "mirror_db"),
        description=f"{spec.description} Tables: {', '.join(f'{schema}.{x.name}' for x in spec.tables)}; "
        "read in full and swapped in one transaction.",
    )
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        userflow: UserflowResource = names.resource(context, "userflow")
        mirror_db: MirrorDatabase = names.resource(context, "mirror_db")
        recovery.record_run_worker(context)  # a pool step: lets a sync recover its slot if this run dies
        before = _requests(userflow)
        with StagedTables(mirror_db, schema, spec.tables, context.run.run_id) as staged:
            asyncio.run(_walk(userflow, spec.reader, staged))
            counts = staged.replace()
        context.log.info(f"{spec.asset}: {counts}")
        return dg.MaterializeResult(
            metadata={
                **_table_metadata(mirror_db, schema, spec.tables[0], counts),
                "userflow_requests": _requests(userflow) - before,
            }
        )

    return _asset


def _newest_session(db: MirrorDatabase, schema: str) -> datetime | None:
    with db.connect() as con:
        if not table_exists(con, schema, t.CONTENT_SESSIONS.name):
            return None
        return con.execute(f"SELECT max(created_at) FROM {qualified_parts(schema, t.CONTENT_SESSIONS.name)}").fetchone()[0]


def _sessions_asset(schema: str, names: Names, pool: str) -> dg.AssetsDefinition:
    @dg.asset(
        name="mirror_content_sessions",
        key_prefix=names.key_prefix,
        group_name=names(GROUP),
        kinds=KINDS_TAG,
        pool=pool,
        required_resource_keys=names.resource_keys("userflow", "mirror_db"),
        description="Content sessions with their answers and task completions. Incremental: sessions are "
        "read newest first and the walk stops at the first one older than the newest already stored "
        "(minus `reread_days`); those read replace their stored rows. `full_refresh` reads all and "
        f"replaces the tables. Tables: {', '.join(f'{schema}.{x.name}' for x in SESSION_TABLES)}.",
    )
    def _asset(context: dg.AssetExecutionContext, config: SessionsConfig) -> dg.MaterializeResult:
        userflow: UserflowResource = names.resource(context, "userflow")
        mirror_db: MirrorDatabase = names.resource(context, "mirror_db")
        recovery.record_run_worker(context)
        before = _requests(userflow)
        newest = None if config.full_refresh else _newest_session(mirror_db, schema)
        mode = ReadMode.incremental if newest is not None else ReadMode.full
        cutoff = read.session_cutoff(newest, config.reread_days)
        with StagedTables(mirror_db, schema, SESSION_TABLES, context.run.run_id) as staged:
            walk = asyncio.run(_walk_sessions(userflow, staged, cutoff))
            if mode is ReadMode.incremental and not walk.unordered:
                counts = staged.merge(SESSION_KEYS, t.CONTENT_SESSIONS.name, "id")
            else:
                counts = staged.replace()
        context.log.info(f"mirror_content_sessions ({mode.value}): {walk.read} sessions read, tables {counts}")
        return dg.MaterializeResult(
            metadata={
                **_table_metadata(mirror_db, schema, t.CONTENT_SESSIONS, counts),
                "mode": mode.value if not walk.unordered else ReadMode.full.value,
                "sessions_read": walk.read,
                "read_since": cutoff.astimezone(UTC).isoformat() if cutoff else "none",
                "userflow_requests": _requests(userflow) - before,
            }
        )

    return _asset


def _dropoff_asset(schema: str, sql_path: Path, names: Names) -> dg.AssetsDefinition:
    @dg.asset(
        name="checklist_dropoff",
        key_prefix=names.key_prefix,
        deps=[names.key("mirror_content"), names.key("mirror_content_sessions")],
        group_name=names(GROUP),
        required_resource_keys=names.resource_keys("mirror_db"),
        kinds=KINDS_TAG,
        description=f"Per checklist task, in order: users who reached it, completed it and stopped there "
        f"({sql_path.name} over the mirror; table {schema}.checklist_dropoff).",
    )
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        mirror_db: MirrorDatabase = names.resource(context, "mirror_db")
        query = sql_path.read_text()
        target = qualified_parts(schema, t.CHECKLIST_DROPOFF.name)
        with mirror_db.connect() as con:
            con.execute(f"SET search_path = {literal(schema)}")
            with transaction(con):
                con.execute(f"CREATE OR REPLACE TABLE {target} AS (\n{query}\n)")
            rows = con.execute(
                f"SELECT checklist, position, task, reached, completed, stopped_here FROM {target} "
                "ORDER BY checklist, content_id, position"
            ).fetchall()
        columns = ["checklist", "position", "task", "reached", "completed", "stopped here"]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(rows),
                "dagster/table_name": f"{schema}.{t.CHECKLIST_DROPOFF.name}",
                "checklists": len({r[0] for r in rows}),
                "dropoff": dg.MetadataValue.md(_markdown(columns, rows)),
            }
        )

    return _asset


def _drift_defs(schema: str, names: Names) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition]:
    @dg.asset(
        name="userflow_drift",
        key_prefix=names.key_prefix,
        deps=[names.key("mirror_users"), names.key("mirror_groups")],
        group_name=names(GROUP),
        required_resource_keys=names.resource_keys("mirror_db", "sync_db"),
        kinds=KINDS_TAG,
        description="Userflow's users and groups against the sync state: attributes changed outside the "
        f"sync, records the sync never wrote, synced records missing from Userflow (table {schema}.drift).",
    )
    def _drift(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        mirror_db: MirrorDatabase = names.resource(context, "mirror_db")
        sync_db: DuckDBResource = names.resource(context, "sync_db")
        with mirror_db.connect() as con:
            # A state in Postgres is brought in as a temp table; a DuckDB state file is attached.
            synced_sql = None
            if isinstance(sync_db, StateDatabase) and sync_db.state_url:
                synced_sql = cast(PostgresState, sync_db.state()).expose_synced(con)
            summary = write_drift(con, schema, project_path(sync_db.database), synced_sql)
            samples = {kind: drift_samples(con, schema, kind) for kind in KINDS}
        columns = ["type", "id", "attribute", "in Userflow", "last synced"]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": summary.total,
                "dagster/table_name": f"{schema}.drift",
                "drift_total": summary.total,
                "records_changed": summary.records_changed,
                **summary.counts,
                "compared": ", ".join(summary.compared) or "none (the sync state holds no records)",
                **{f"sample_{kind}": dg.MetadataValue.md(_markdown(columns, rows)) for kind, rows in samples.items()},
            }
        )

    @dg.asset_check(
        asset=_drift, name="no_drift", blocking=False, required_resource_keys=names.resource_keys("mirror_db")
    )
    def _no_drift(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        mirror_db: MirrorDatabase = names.resource(context, "mirror_db")
        with mirror_db.connect() as con:
            rows = con.execute(
                f"SELECT kind, count(*) FROM {qualified_parts(schema, t.DRIFT.name)} GROUP BY kind ORDER BY kind"
            ).fetchall()
        found = dict(rows)
        total = sum(found.values())
        return dg.AssetCheckResult(
            passed=total == 0,
            description="Userflow matches the sync state" if not total else f"{total} differences from the sync state",
            metadata={kind: found.get(kind, 0) for kind in KINDS},
        )

    return _drift, _no_drift


def build_mirror_defs(
    database: str,
    schema: str = "userflow",
    *,
    after: Sequence[dg.AssetKey | str] = (),
    dropoff_sql: str | Path = DROPOFF_SQL,
    names: Names = SHIPPED,
    pool: str = API_POOL,
) -> dg.Definitions:
    """The read side as definitions, writing into schema `schema` of the DuckDB file `database`.

    `after` names assets the user and group reads wait for (the sync's sinks), so a run that
    syncs and then mirrors compares Userflow with the state that run left. Needs the resources
    `userflow` (UserflowResource) and `sync_db` (the state DuckDB); brings `mirror_db`. `names`
    and `pool` are those of the sync it belongs to.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema):
        raise ValueError(f"mirror schema must be a plain name, got {schema!r}")
    waits = {"mirror_users", "mirror_groups"}
    waited = [dg.AssetKey.from_coercible(key) for key in after]
    assets: list[dg.AssetsDefinition] = [
        _full_read_asset(spec, schema, waited if spec.asset in waits else [], names, pool) for spec in FULL_READS
    ]
    assets += [_sessions_asset(schema, names, pool), _dropoff_asset(schema, project_path(dropoff_sql), names)]
    drift, no_drift = _drift_defs(schema, names)
    job = dg.define_asset_job(
        names(MIRROR_JOB),
        selection=dg.AssetSelection.groups(names(GROUP)),
        executor_def=dg.in_process_executor,
        description="Userflow to the warehouse: users, groups, definitions, content, sessions; drop-off and drift.",
    )
    return dg.Definitions(
        assets=[*assets, drift],
        asset_checks=[no_drift],
        jobs=[job],
        resources={names("mirror_db"): MirrorDatabase(database=str(project_path(database)))},
    )
