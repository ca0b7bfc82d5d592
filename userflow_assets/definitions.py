"""The code location: every asset, resource and automation of the Userflow sync."""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from userflow_assets.settings import Settings
from userflow_assets.warehouse.assets import warehouse_assets
from userflow_assets.warehouse.resources import WarehouseResource


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[*warehouse_assets],
        resources={
            "warehouse": WarehouseResource(database=str(settings.warehouse_path), sql_dir=str(settings.sql_dir)),
            "sync_db": DuckDBResource(database=str(settings.sync_db_path)),
        },
    )


defs = build_defs(Settings.from_env())
