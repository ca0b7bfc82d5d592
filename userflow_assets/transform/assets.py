"""Transform assets: the spec applied in DuckDB, with blocking checks before any request."""

from dataclasses import dataclass
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from userflow_assets.settings import SHIPPED, Names
from userflow_assets.spec import ObjectSpec
from userflow_assets.sqltext import md_table
from userflow_assets.transform import build_records
from userflow_assets.transform.build import DUPLICATE_KEY, MISSING_KEY

REJECTED_PREVIEW_ROWS = 500  # shown in the UI; the SQL beside them lists them all
REJECTED_PREVIEW_CHARS = 80  # of a cell: a long reason or value would swamp the view


def records_table(object_type: str) -> str:
    return f"transform.{object_type}_records"


def rejected_table(object_type: str) -> str:
    return f"transform.{object_type}_rejected"


def rejected_sql(table: str) -> str:
    return f"SELECT * FROM {table} ORDER BY source_row"


def rejected_preview(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The first rejected rows of `table` as a markdown table, for the records asset's metadata.
    `source_key` finds each in the warehouse: its ID, or its row key columns where it has none."""
    rows = con.execute(
        f'SELECT source_row, source_key, "column", reason, value FROM {table} ORDER BY source_row LIMIT ?',
        [REJECTED_PREVIEW_ROWS],
    ).fetchall()
    return md_table(["row", "source_key", "column", "reason", "value"], rows, REJECTED_PREVIEW_CHARS)


def records_metadata(result: Any, preview: str, table: str) -> dict[str, Any]:
    """A records asset's metadata: counts, rejections by reason, the first of them, and where
    they all are."""
    by_reason = "\n".join(f"- {reason}: {n}" for reason, n in sorted(result.rejected_by_reason.items()))
    return {
        "dagster/row_count": result.records,
        "source_rows": result.source_rows,
        "filtered_out": result.filtered_out,
        "rejected": result.rejected,
        "nulled_values": result.nulled_values,
        "duplicates_merged": result.duplicates_merged,
        "rejected_by_reason": dg.MetadataValue.md(by_reason or "none"),
        "rejected_preview": dg.MetadataValue.md(preview),
        "rejected_table": table,
        "rejected_sql": dg.MetadataValue.text(rejected_sql(table)),
    }


@dataclass(frozen=True)
class RejectedShare:
    """The share of rows rejected against its limit: the blocking `rejected_share` check of
    every records asset, and the same guard for a backfill slice."""

    records: int
    rejected: int
    limit: float

    @property
    def share(self) -> float:
        total = self.records + self.rejected
        return self.rejected / total if total else 0.0

    @property
    def passed(self) -> bool:
        return self.share <= self.limit

    def check_result(self, noun: str, setting: str) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=self.passed,
            description=f"{self.rejected} of {self.records + self.rejected} {noun} rejected ({self.share:.2%}); "
            f"the limit is {self.limit:.2%} ({setting})",
            metadata={"rejected": self.rejected, "rejected_share": self.share, "limit": self.limit},
        )


def rejected_share(
    con: duckdb.DuckDBPyConnection, records_table: str, rejected_table: str, limit: float
) -> RejectedShare:
    (records,) = con.execute(f"SELECT count(*) FROM {records_table}").fetchone()
    (rejected,) = con.execute(f"SELECT count(*) FROM {rejected_table}").fetchone()
    return RejectedShare(records, rejected, limit)


def build_records_defs(object_type: str, spec: ObjectSpec, names: Names = SHIPPED) -> dg.Definitions:
    """`userflow_<object>_records` and its blocking checks."""
    name = f"userflow_{object_type}_records"
    state_db = names.resource_keys("sync_db")

    @dg.asset(
        name=name,
        key_prefix=names.key_prefix,
        deps=[names.key(f"warehouse_{object_type}s")],
        group_name=names("transform"),
        required_resource_keys=state_db,
        kinds={"duckdb"},
        description=f"The {object_type}s to sync: the spec's filter, mapping, IDs and schema applied in DuckDB; "
        f"bad rows are in {rejected_table(object_type)} with their reason.",
    )
    def _records(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        sync_db: DuckDBResource = names.resource(context, "sync_db")
        with sync_db.get_connection() as con:
            result = build_records(
                con,
                spec,
                object_type,  # type: ignore[arg-type]
                f"staging.warehouse_{object_type}s",
                records_table(object_type),
                rejected_table(object_type),
            )
            preview = rejected_preview(con, rejected_table(object_type))
        context.log.info(
            f"{result.records} {object_type} records, {result.rejected} rejected, "
            f"{result.filtered_out} filtered out of {result.source_rows} rows"
        )
        return dg.MaterializeResult(metadata=records_metadata(result, preview, rejected_table(object_type)))

    @dg.asset_check(
        asset=_records,
        name="ids_unique_and_present",
        blocking=True,
        required_resource_keys=state_db,
        description=f"Every {object_type} record has one non-empty ID of its own (blocking: nothing is sent "
        "otherwise). Rows without an ID or with a duplicate ID were rejected before it; it counts those too.",
    )
    def _ids_unique(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        sync_db: DuckDBResource = names.resource(context, "sync_db")
        with sync_db.get_connection() as con:
            missing, duplicated, records = con.execute(
                f"""
                SELECT count(*) FILTER (WHERE id IS NULL OR trim(id) = ''), count(*) - count(DISTINCT id), count(*)
                FROM {records_table(object_type)}
                """
            ).fetchone()
            rejected_missing, rejected_duplicate = con.execute(
                "SELECT count(*) FILTER (WHERE starts_with(reason, ?)), count(*) FILTER (WHERE starts_with(reason, ?)) "
                f"FROM {rejected_table(object_type)}",
                [MISSING_KEY, DUPLICATE_KEY],
            ).fetchone()
        return dg.AssetCheckResult(
            passed=missing == 0 and duplicated == 0,
            description=f"{missing} missing and {duplicated} duplicate IDs among {records} records; before this "
            f"check the transform rejected {rejected_missing} rows without an ID and {rejected_duplicate} with a "
            f"duplicate ID ({rejected_table(object_type)})",
            metadata={
                "missing_ids": missing,
                "duplicate_ids": duplicated,
                "rejected_missing_ids": rejected_missing,
                "rejected_duplicate_ids": rejected_duplicate,
            },
        )

    @dg.asset_check(
        asset=_records,
        name="rejected_share",
        blocking=True,
        required_resource_keys=state_db,
        description=f"The share of rows rejected stays within {object_type}s.max_rejected_fraction "
        "(blocking: above it nothing is sent, so a broken query cannot half-sync).",
    )
    def _rejected_share(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        sync_db: DuckDBResource = names.resource(context, "sync_db")
        with sync_db.get_connection() as con:
            verdict = rejected_share(
                con, records_table(object_type), rejected_table(object_type), spec.max_rejected_fraction
            )
        return verdict.check_result("rows", f"{object_type}s.max_rejected_fraction")

    return dg.Definitions(assets=[_records], asset_checks=[_ids_unique, _rejected_share])
