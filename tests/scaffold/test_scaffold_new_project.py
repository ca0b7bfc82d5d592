"""The sync dropped into another dg project: listed by `dg list components`, scaffolded by
`dg scaffold defs`, checked by `dg check defs`, and synced by `dg launch`, with paths taken
from that project, not from where this package lives."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx
import pytest

from userflow_assets.emulator import EmulatorConfig, running_emulator

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
CHECKOUT = Path(__file__).parents[2]
COMPONENT = "userflow_assets.orchestration.component.UserflowSync"
KEY = "uf_test_scaffold_key"
PYPROJECT = """\
[project]
name = "acme-analytics"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["userflow-assets"]

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "acme_analytics"

[tool.dg.cli]
suppress_warnings = ["project_and_activated_venv_mismatch"]
"""
DEFINITIONS = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def new_project(root: Path) -> Path:
    """A dg project of a team's own (package `acme_analytics`), with this package installed
    beside it (the test's environment) and nothing of this repository's files."""
    (root / "acme_analytics" / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "acme_analytics" / "__init__.py").write_text("")
    (root / "acme_analytics" / "defs" / "__init__.py").write_text("")
    (root / "acme_analytics" / "definitions.py").write_text(DEFINITIONS)
    return root


def project_env(root: Path, home: Path, keys: dict[str, str]) -> dict[str, str]:
    """The dg commands' environment: the new project and this checkout's package on the path
    (not whichever checkout the shared venv installed), a Dagster home, the keys."""
    home.mkdir()
    shutil.copy(CHECKOUT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(CHECKOUT)]), "DAGSTER_HOME": str(home), **keys}
    env.pop("USERFLOW_WAREHOUSE_PATH", None)
    env.pop("USERFLOW_STATE_DB_PATH", None)
    return env


def dg(root: Path, env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dg"), *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def warehouse(path: Path) -> None:
    """The tables the scaffolded SQL reads."""
    path.parent.mkdir(parents=True)
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE accounts (account_id VARCHAR, name VARCHAR, updated_at TIMESTAMP)")
        con.execute(
            "CREATE TABLE users (user_id VARCHAR, email VARCHAR, name VARCHAR, account_ids VARCHAR[], updated_at TIMESTAMP)"
        )
        con.execute("INSERT INTO accounts VALUES ('a1', 'Acme', '2026-01-01'), ('a2', 'Globex', '2026-01-01')")
        con.execute(
            "INSERT INTO users VALUES ('u1', 'Ann@Example.com', 'Ann', ['a1'], '2026-01-01'), "
            "('u2', 'bo@example.com', 'Bo', ['a1', 'a2'], '2026-01-01')"
        )


def test_scaffold_check_and_sync_in_a_new_project(tmp_path: Path) -> None:
    root = new_project(tmp_path / "acme")
    env = project_env(root, tmp_path / "home", {"USERFLOW_API_KEY": KEY})

    listed = dg(root, env, "list", "components")
    assert listed.returncode == 0 and COMPONENT in listed.stdout, listed.stdout + listed.stderr

    scaffolded = dg(root, env, "scaffold", "defs", COMPONENT, "userflow_prod")
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    folder = root / "acme_analytics" / "defs" / "userflow_prod"
    assert {p.name for p in folder.rglob("*") if p.is_file()} == {"defs.yaml", "users.sql", "groups.sql"}
    assert "sql_dir: acme_analytics/defs/userflow_prod/sql" in (folder / "defs.yaml").read_text()

    checked = dg(root, env, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    # The defaults in the scaffolded file are the new project's own paths.
    warehouse(root / "data" / "warehouse.duckdb")
    with running_emulator(EmulatorConfig(api_key=KEY, seed_content=False)) as url:
        launched = dg(root, {**env, "USERFLOW_BASE_URL": url}, "launch", "--job", "userflow_sync")
        assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
        state = httpx.get(f"{url}/__emulator/state", timeout=30).json()
    assert {u["id"]: u["attributes"]["email"] for u in state["users"]} == {"u1": "ann@example.com", "u2": "bo@example.com"}
    assert sorted((m["user_id"], m["group_id"]) for m in state["memberships"]) == [("u1", "a1"), ("u2", "a1"), ("u2", "a2")]
    assert (root / "data" / "userflow_state.duckdb").is_file()  # the state landed in the new project


def test_two_scaffolded_syncs_with_two_keys_sit_in_one_project(tmp_path: Path) -> None:
    root = new_project(tmp_path / "acme")
    keys = {"USERFLOW_API_KEY": KEY, "USERFLOW_STAGING_KEY": "uf_test_scaffold_staging_key"}
    env = project_env(root, tmp_path / "home", keys)
    for folder in ("userflow_production", "userflow_staging"):
        scaffolded = dg(root, env, "scaffold", "defs", COMPONENT, folder)
        assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    # The staging sync, as the scaffolded file's comments say: a name, its key's variable, its own state.
    staging = root / "acme_analytics" / "defs" / "userflow_staging" / "defs.yaml"
    text = staging.read_text()
    for old, new in (
        ("  # name: staging", "  name: staging"),
        ("api_key_env: USERFLOW_API_KEY", "api_key_env: USERFLOW_STAGING_KEY"),
        ("data/userflow_state.duckdb", "data/staging_state.duckdb"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    staging.write_text(text)

    checked = dg(root, env, "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    warehouse(root / "data" / "warehouse.duckdb")
    config = EmulatorConfig(api_key=keys["USERFLOW_STAGING_KEY"], seed_content=False)
    with running_emulator(config) as url:
        launched = dg(root, {**env, "USERFLOW_BASE_URL": url}, "launch", "--job", "staging_userflow_sync")
        assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
        state = httpx.get(f"{url}/__emulator/state", timeout=30).json()
    assert {u["id"] for u in state["users"]} == {"u1", "u2"}
    # Only the staging sync ran: its own state file, none for the production sync.
    assert (root / "data" / "staging_state.duckdb").is_file()
    assert not (root / "data" / "userflow_state.duckdb").exists()
