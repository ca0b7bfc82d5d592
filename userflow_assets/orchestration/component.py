"""The UserflowSync component: the sync spec in defs.yaml turned into Dagster definitions."""

from datetime import timedelta
from pathlib import Path

import dagster as dg

from userflow_assets.client import UserflowResource
from userflow_assets.events import build_events_defs
from userflow_assets.mirror import build_mirror_defs
from userflow_assets.orchestration.alerts import build_alert_sensors
from userflow_assets.orchestration.backfill import build_backfill_defs
from userflow_assets.orchestration.pools import api_pool
from userflow_assets.orchestration.scaffold import UserflowSyncScaffolder
from userflow_assets.orchestration.schedules import (
    SYNC_RUN_TAG,
    build_schedule,
    freshness_policy,
)
from userflow_assets.orchestration.sensors import build_change_sensor
from userflow_assets.settings import INSTANCE_TAG, Names, project_path
from userflow_assets.sink.assets import build_sink_defs
from userflow_assets.spec import SyncSpec
from userflow_assets.state.postgres import is_postgres_url
from userflow_assets.state.resources import StateDatabase
from userflow_assets.transform.assets import build_records_defs
from userflow_assets.warehouse.assets import build_warehouse_asset
from userflow_assets.warehouse.resources import WarehouseResource
from userflow_assets.warehouse.source import warehouse_kind

SYNC_JOB = "userflow_sync"


def build_sync_defs(spec: SyncSpec) -> dg.Definitions:
    """Assets, checks, resources and the sync job for `spec`; groups are written before users.
    A named spec's names all start with its name, so several sit in one code location."""
    names = Names(spec.name)
    pool = spec.userflow.pool or api_pool(spec.userflow.api_key_env)
    lag = timedelta(minutes=spec.warehouse.late_arrival_minutes)
    kind = warehouse_kind(spec.warehouse.url)
    objects = [("group", spec.groups), ("user", spec.users)]
    parts: list[dg.Definitions] = []
    upstream: list[dg.AssetKey] = []
    for object_type, object_spec in objects:
        if object_spec is None:
            continue
        warehouse_asset = build_warehouse_asset(
            object_type,
            object_spec.query,
            lag,
            object_spec.model_dump_json(),
            f"{object_type.capitalize()}s as {object_spec.query} returns them.",
            names,
            kind,
        )
        parts += [
            dg.Definitions(assets=[warehouse_asset]),
            build_records_defs(object_type, object_spec, names),
            build_sink_defs(
                object_type, object_spec, upstream, freshness_policy(spec.schedule), names=names, pool=pool
            ),
        ]
        upstream = [names.key(f"userflow_{object_type}s")]
    if spec.events is not None:
        parts.append(build_events_defs(
                spec.events, users_spec=spec.users, late_arrival=lag, names=names, pool=pool, warehouse_kind=kind
            ))
    # The job's assets: this sync's own (never another instance's), without the mirror and the
    # partitioned backfill, which have jobs of their own.
    synced = [key for part in parts for asset in part.assets or [] for key in asset.keys]  # type: ignore[union-attr]
    if spec.mirror.enabled:
        if spec.warehouse.url is not None:
            raise ValueError(
                "mirror.enabled needs a DuckDB warehouse file (warehouse.database): the mirror writes Userflow's "
                "data into that file, and a warehouse.url warehouse is only ever read; set mirror.enabled to false"
            )
        sinks = [names.key(f"userflow_{kind}s") for kind, object_spec in objects if object_spec is not None]
        database = str(project_path(spec.warehouse.database))
        parts.append(build_mirror_defs(database, spec.mirror.schema_name, after=sinks, names=names, pool=pool))
    parts.append(build_backfill_defs(spec, names, pool))
    resources = {
        names("warehouse"): WarehouseResource(
            database=str(project_path(spec.warehouse.database)),
            url=spec.warehouse.url,
            password_env=spec.warehouse.password_env,
            sql_dir=str(project_path(spec.warehouse.sql_dir)),
        ),
        names("sync_db"): state_resource(spec),
        names("userflow"): UserflowResource(
            api_key=dg.EnvVar(spec.userflow.api_key_env),
            base_url=spec.userflow.base_url,
            requests_per_minute=spec.userflow.requests_per_minute,
            max_concurrency=spec.userflow.max_concurrency,
            allow_insecure_http=spec.userflow.allow_insecure_http,
            pool=pool,
        ),
    }
    # One process: the steps take turns on the state file anyway, and a subprocess per step
    # would spend longer importing than an unchanged sync spends working.
    job = dg.define_asset_job(
        names(SYNC_JOB),
        selection=dg.AssetSelection.assets(*synced),
        executor_def=dg.in_process_executor,
        # dagster.yaml lets one run per instance go at a time: its runs share its work tables.
        tags={SYNC_RUN_TAG: "launched", INSTANCE_TAG: names(SYNC_JOB)},
        description="Warehouse to Userflow: groups, then users, then events.",
    )
    automation = dg.Definitions(
        schedules=[build_schedule(spec.schedule, job, names)],
        sensors=[build_change_sensor(spec, job, names), *build_alert_sensors(job, names)],
    )
    return dg.Definitions.merge(*parts, dg.Definitions(resources=resources, jobs=[job]), automation)


def state_resource(spec: SyncSpec) -> StateDatabase:
    """The work database and the sync state: one DuckDB file, or a local work file and Postgres;
    with `log_writeback`, the warehouse the sinks append their log to."""
    writeback: dict[str, object] = {}
    if spec.log_writeback:
        writeback = {"log_writeback_schema": spec.log_writeback_schema}
        if spec.warehouse.url is not None:
            writeback |= {"log_writeback_url": spec.warehouse.url, "log_writeback_password_env": spec.warehouse.password_env}
        else:
            writeback["log_writeback_database"] = str(project_path(spec.warehouse.database))
    if is_postgres_url(spec.state_database):
        return StateDatabase(
            database=str(project_path(spec.work_database)),
            state_url=spec.state_database,
            state_password_env=spec.state_password_env,
            log_retention_days=spec.log_retention_days,
            **writeback,
        )
    return StateDatabase(
        database=str(project_path(spec.state_database)), log_retention_days=spec.log_retention_days, **writeback
    )


def project_root(folder: Path) -> Path:
    """The dg project holding `folder`: the nearest folder up with a pyproject.toml."""
    for candidate in (folder, *folder.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return folder


def anchored(spec: SyncSpec, root: Path) -> SyncSpec:
    """`spec` with its relative paths taken from `root` (the project), never from where this
    package is installed."""

    def at_root(value: str) -> str:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else root / path)

    warehouse = spec.warehouse.model_copy(
        update={"database": at_root(spec.warehouse.database), "sql_dir": at_root(spec.warehouse.sql_dir)}
    )
    state = spec.state_database if is_postgres_url(spec.state_database) else at_root(spec.state_database)
    return spec.model_copy(
        update={"warehouse": warehouse, "state_database": state, "work_database": at_root(spec.work_database)}
    )


@dg.scaffold_with(UserflowSyncScaffolder)
class UserflowSync(dg.Component, SyncSpec, dg.Resolvable):
    """Keeps Userflow's users and groups in sync with the warehouse, as the spec says.

    Scaffold one with `dg scaffold defs userflow_assets.orchestration.component.UserflowSync
    <folder>`: a commented defs.yaml and starter SQL. Relative paths in it are taken from the
    project folder (the one with pyproject.toml).
    """

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_sync_defs(anchored(self, project_root(context.path)))
