"""Several syncs in one code location: each named sync has its own asset keys, jobs, schedules,
sensors, resources, key and state; syncs that share an API key share a pool."""

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import httpx
import pytest
from orchestration_harness import ALL_USERS, Warehouse

from userflow_assets.emulator import EmulatorConfig, running_emulator
from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.orchestration.pools import api_pool
from userflow_assets.settings import API_KEY_VARIABLE, API_POOL, INSTANCE_TAG
from userflow_assets.spec import EventsSpec, SyncSpec

EVENTS = {"key_column": "event_id", "name": "name", "user_id": "user_id"}
KEYS = {"UF_STAGING_KEY": "uf_staging_secret_key", "UF_PRODUCTION_KEY": "uf_production_secret_key"}


def named(warehouse: Warehouse, name: str, variable: str, base_url: str = "http://127.0.0.1:9") -> SyncSpec:
    spec = warehouse.spec(base_url, name=name)
    userflow = spec.userflow.model_copy(update={"api_key_env": variable})
    return spec.model_copy(update={"userflow": userflow, "state_database": str(warehouse.root / f"{name}_state.duckdb")})


def location(*specs: SyncSpec) -> dg.RepositoryDefinition:
    return dg.Definitions.merge(*(build_sync_defs(spec) for spec in specs)).get_repository_def()


def test_two_named_syncs_and_the_shipped_one_have_no_name_in_common(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, key in KEYS.items():
        monkeypatch.setenv(variable, key)
    staging, production = named(warehouse, "staging", "UF_STAGING_KEY"), named(warehouse, "production", "UF_PRODUCTION_KEY")
    repository = location(warehouse.spec(), staging, production)

    keys = [key for node in repository.asset_graph.asset_nodes for key in [node.key]]
    by_prefix = {p: {k.path[-1] for k in keys if k.path[0] == p} for p in ("staging", "production")}
    assert by_prefix["staging"] == by_prefix["production"] == {k.path[0] for k in keys if len(k.path) == 1} - {
        "userflow_events", "userflow_event_records", "warehouse_events",  # the shipped spec's events
    }
    assert "userflow_users" in by_prefix["staging"] and len(keys) == len(set(keys))

    jobs = {job.name: job for job in repository.get_all_jobs() if not job.name.startswith("__")}
    assert {"userflow_sync", "staging_userflow_sync", "production_userflow_sync"} <= set(jobs)
    selected = {name: set(jobs[name].asset_layer.selected_asset_keys) for name in jobs if name.endswith("userflow_sync")}
    # Each job selects its own sync's assets only, and its runs carry their own queue tag.
    assert all(k.path[0] == "staging" for k in selected["staging_userflow_sync"])
    assert all(len(k.path) == 1 for k in selected["userflow_sync"])
    assert {jobs[name].tags[INSTANCE_TAG] for name in selected} == set(selected)
    sensors = {s.name: s for s in repository.sensor_defs}
    assert {"staging_userflow_warehouse_changes", "production_userflow_alert_on_failure"} <= set(sensors)
    assert sensors["staging_userflow_warehouse_changes"].job_name == "staging_userflow_sync"
    schedules = {s.name: s.job_name for s in repository.schedule_defs}
    assert schedules["production_userflow_sync_schedule"] == "production_userflow_sync"
    assert {"staging_warehouse", "staging_sync_db", "staging_userflow", "userflow"} <= set(repository.get_top_level_resources())

    pools = {node.key.to_user_string(): node.pools for node in repository.asset_graph.asset_nodes if node.pools}
    assert pools["userflow_users"] == {API_POOL}
    assert pools["staging/userflow_users"] == pools["staging/userflow_groups"] == {api_pool("UF_STAGING_KEY")}
    assert pools["staging/userflow_users"] != pools["production/userflow_users"]


def test_runs_that_share_a_key_share_a_pool_named_without_the_key() -> None:
    environ = {API_KEY_VARIABLE: "shipped-key", "A": "key-one", "B": "key-one", "C": "key-two", "D": "shipped-key"}
    assert api_pool(API_KEY_VARIABLE, environ) == api_pool("D", environ) == API_POOL
    assert api_pool("A", environ) == api_pool("B", environ) != api_pool("C", environ)
    assert api_pool("A", environ).startswith(f"{API_POOL}_") and "key-one" not in api_pool("A", environ)
    # Unknown where the definitions load: the shared pool, which can wait but never overspend.
    assert api_pool("UNSET", environ) == API_POOL


def test_the_spec_can_name_the_pool(warehouse: Warehouse) -> None:
    spec = warehouse.spec(name="eu", userflow={"base_url": "http://127.0.0.1:9", "pool": "userflow_eu"})
    pools = {node.key.to_user_string(): node.pools for node in location(spec).asset_graph.asset_nodes if node.pools}
    assert pools["eu/userflow_users"] == {"userflow_eu"}


def test_a_named_syncs_mirror_is_its_own(warehouse: Warehouse) -> None:
    mirror = {"enabled": True, "schema_name": "userflow_eu"}
    repository = location(warehouse.spec(mirror={"enabled": True}), warehouse.spec(name="eu", mirror=mirror))
    job = repository.get_job("eu_userflow_mirror")
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert "eu/mirror_users" in selected and all(key.startswith("eu/") for key in selected)
    users = repository.asset_graph.get(dg.AssetKey(["eu", "mirror_users"]))
    assert dg.AssetKey(["eu", "userflow_users"]) in users.parent_keys
    assert users.pools == {API_POOL} and "eu_mirror_db" in repository.get_top_level_resources()
    assert "userflow_mirror" in {j.name for j in repository.get_all_jobs()}  # the unnamed sync's, beside it


def test_a_name_must_be_an_identifier(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="letters, digits and _ only"):
        warehouse.spec(name="eu-west")


def test_each_named_sync_writes_with_its_own_key_to_its_own_userflow_and_state(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, key in KEYS.items():
        monkeypatch.setenv(variable, key)
    configs = {name: EmulatorConfig(api_key=KEYS[f"UF_{name.upper()}_KEY"], seed_content=False) for name in ("staging", "production")}
    with running_emulator(configs["staging"]) as staging_url, running_emulator(configs["production"]) as production_url:
        specs = {
            "staging": named(warehouse, "staging", "UF_STAGING_KEY", staging_url),
            "production": named(warehouse, "production", "UF_PRODUCTION_KEY", production_url),
        }
        specs["staging"] = specs["staging"].model_copy(update={"events": EventsSpec.model_validate(EVENTS)})
        repository = location(*specs.values())
        result_of: dict[str, dg.ExecuteInProcessResult] = {}
        with dg.instance_for_test() as instance:
            for name in specs:
                result = repository.get_job(f"{name}_userflow_sync").execute_in_process(instance=instance)
                assert result.success
                result_of[name] = result
                users = _metadata(result, dg.AssetKey([name, "userflow_users"]))
                assert (users["created"], users["failed"]) == (len(ALL_USERS), 0)
            events = _metadata(result_of["staging"], dg.AssetKey(["staging", "userflow_events"]))
            assert (events["sent"], events["failed"]) == (1, 0)
        for url in (staging_url, production_url):
            assert {u["id"] for u in _emulator_users(url)} == ALL_USERS
    for name in specs:
        assert _state_count(warehouse.root / f"{name}_state.duckdb") == len(ALL_USERS) + 3


def _metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, Any]:
    (event,) = [m for m in result.get_asset_materialization_events() if m.asset_key == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _emulator_users(url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{url}/__emulator/state", timeout=30).json()["users"]


def _state_count(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        (n,) = con.execute("SELECT count(*) FROM sync.records").fetchone()
    return int(n)
