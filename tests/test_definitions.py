"""The code location loads the way Dagster's tools load it."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from userflow_assets.definitions import load_definitions
from userflow_assets.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent


SINKS = {"userflow_groups", "userflow_users", "userflow_events"}
MIRROR_READS = {
    "mirror_users",
    "mirror_groups",
    "mirror_attribute_definitions",
    "mirror_event_definitions",
    "mirror_content",
    "mirror_content_sessions",
}


def test_definitions_are_loadable() -> None:
    defs = load_definitions()
    dg.Definitions.validate_loadable(defs)  # raises on definitions Dagster could not load
    assert defs.resolve_job_def("userflow_sync").name == "userflow_sync"


def test_asset_snapshot() -> None:
    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "warehouse_groups",
        "warehouse_users",
        "userflow_group_records",
        "userflow_user_records",
        "warehouse_events",
        "userflow_event_records",
        *SINKS,
        *MIRROR_READS,
        "checklist_dropoff",
        "userflow_drift",
        "userflow_users_by_signup",
    }
    calls_userflow = SINKS | MIRROR_READS | {"userflow_users_by_signup"}
    for key in graph.get_all_asset_keys():
        pools = graph.get(key).pools or set()
        # Exactly the assets that call Userflow share its budget.
        assert pools == ({"userflow_api"} if key.to_user_string() in calls_userflow else set()), key
    users = dg.AssetKey("userflow_users")
    assert dg.AssetKey("userflow_groups") in graph.get(users).parent_keys, "groups are written before users"
    assert users in graph.get(dg.AssetKey("userflow_events")).parent_keys, "events wait for their users"
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert ("userflow_user_records", "ids_unique_and_present") in checks
    assert ("userflow_users", "read_back") in checks
    blocking = {
        spec.key.name for checks_def in defs.asset_checks or [] for spec in checks_def.check_specs if spec.blocking
    }
    assert blocking == {"ids_unique_and_present", "rejected_share"}
    sync_job = defs.resolve_job_def("userflow_sync")
    assert {key.to_user_string() for key in sync_job.asset_layer.executable_asset_keys} == keys - MIRROR_READS - {
        "checklist_dropoff",
        "userflow_drift",
        "userflow_users_by_signup",
    }
    assert defs.resolve_job_def("userflow_users_backfill") is not None
    assert defs.resolve_job_def("userflow_mirror") is not None


def test_spec_templates_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Nested sections of defs.yaml resolve {{ env(...) }} like the top level does.
    monkeypatch.setenv("USERFLOW_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("USERFLOW_WAREHOUSE_PATH", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("USERFLOW_STATE_DB_PATH", str(tmp_path / "nested" / "state.duckdb"))
    resources = load_definitions().resources or {}
    assert resources["userflow"].base_url == "http://127.0.0.1:9"
    assert resources["warehouse"].database == str(tmp_path / "wh.duckdb")
    assert resources["sync_db"].database == str(tmp_path / "nested" / "state.duckdb")


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("USERFLOW_BASE_URL", "USERFLOW_WAREHOUSE_PATH", "USERFLOW_STATE_DB_PATH"):
        monkeypatch.delenv(name, raising=False)
    resources = load_definitions().resources or {}
    assert resources["userflow"].base_url == "https://api.userflow.com"
    assert resources["warehouse"].database == str(PROJECT_ROOT / "data" / "warehouse.duckdb")
    assert resources["sync_db"].database == str(PROJECT_ROOT / "data" / "state.duckdb")


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    return subprocess.run(args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_dg_check_defs(tmp_path: Path) -> None:
    result = _run([str(BIN / "dg"), "check", "defs"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


@pytest.mark.slow
def test_dagster_definitions_validate_workspace(tmp_path: Path) -> None:
    result = _run([str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Validation successful for code location userflow_assets" in output
