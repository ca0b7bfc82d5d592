"""The code location loads the way Dagster's tools load it."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from userflow_assets.definitions import defs
from userflow_assets.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent


def test_definitions_are_loadable() -> None:
    dg.Definitions.validate_loadable(defs)


def test_asset_snapshot() -> None:
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert {"warehouse_users", "warehouse_groups", "warehouse_events"} <= keys
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.group_name == "warehouse":
            assert node.pools in (None, set()), f"{key} reads the warehouse and must not hold the API pool"


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
