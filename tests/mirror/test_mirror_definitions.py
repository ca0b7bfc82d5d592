"""build_mirror_defs: what it builds, how it sits next to the sync, another schema."""

from pathlib import Path

import dagster as dg
import pytest
from harness import metadata
from mirror_harness import MirrorHarness

from userflow_assets.mirror import MIRROR_JOB, build_mirror_defs
from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.spec import SyncSpec

API_ASSETS = {
    "mirror_users", "mirror_groups", "mirror_attribute_definitions", "mirror_event_definitions",
    "mirror_content", "mirror_content_sessions",
}
LOCAL_ASSETS = {"checklist_dropoff", "userflow_drift"}


def specs_by_key(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    return {spec.key.to_user_string(): spec for asset in defs.assets or [] for spec in asset.specs}  # type: ignore[union-attr]


def test_assets_groups_kinds_and_pools(tmp_path: Path) -> None:
    specs = specs_by_key(build_mirror_defs(str(tmp_path / "w.duckdb")))
    assert set(specs) == API_ASSETS | LOCAL_ASSETS
    assert {spec.group_name for spec in specs.values()} == {"userflow_mirror"}
    assert all(set(spec.kinds) == {"userflow", "duckdb"} for spec in specs.values())
    # Only the assets that call Userflow take a turn in the API's pool.
    pooled = {
        name for asset in build_mirror_defs(str(tmp_path / "w.duckdb")).assets or []  # type: ignore[union-attr]
        for name in [asset.key.to_user_string()] if asset.op.pool == "userflow_api"
    }
    assert pooled == API_ASSETS
    assert {d.asset_key.to_user_string() for d in specs["userflow_drift"].deps} == {"mirror_users", "mirror_groups"}


def test_loads_next_to_the_sync_and_waits_for_its_sinks(tmp_path: Path) -> None:
    spec = SyncSpec.model_validate(
        {
            "warehouse": {"database": str(tmp_path / "w.duckdb")},
            "state_database": str(tmp_path / "state.duckdb"),
            "users": {"query": "users.sql", "id_column": "user_id", "mapping": {"email": "email"}},
        }
    )
    mirror = build_mirror_defs(str(tmp_path / "w.duckdb"), after=["userflow_users"])
    defs = dg.Definitions.merge(build_sync_defs(spec), mirror)
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def(MIRROR_JOB) is not None
    specs = specs_by_key(mirror)
    assert {d.asset_key.to_user_string() for d in specs["mirror_users"].deps} == {"userflow_users"}
    assert not specs["mirror_content"].deps


def test_schema_must_be_a_plain_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain name"):
        build_mirror_defs(str(tmp_path / "w.duckdb"), schema='x"; DROP TABLE users; --')


def test_tables_go_to_the_given_schema(mirror: MirrorHarness) -> None:
    mirror.api("POST", "/groups", json={"id": "g1", "attributes": {"name": "Acme"}})
    defs = build_mirror_defs(str(mirror.warehouse), schema="crm_userflow")
    result = dg.materialize(
        list(defs.assets or []),  # type: ignore[arg-type]
        resources={**(defs.resources or {}), **mirror.resources()},
        selection=["mirror_groups"],
    )
    assert metadata(result, "mirror_groups")["dagster/table_name"] == "crm_userflow.groups"
    assert mirror.sql("SELECT id, name FROM crm_userflow.groups") == [("g1", "Acme")]
