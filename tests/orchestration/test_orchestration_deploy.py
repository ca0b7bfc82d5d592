"""The scale-out files: a Postgres instance that Dagster accepts, the same pool and monitoring as
the laptop instance, and a code location served by a gRPC code server."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from orchestration_deployment import SYNC_RUNS_ONE_AT_A_TIME
from orchestration_processes import BIN, ProcessGroup, free_port, wait_for

from userflow_assets.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"


def load(path: Path) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(path.read_text())


def test_the_postgres_instance_with_the_k8s_launcher_is_valid_instance_config() -> None:
    launcher = load(DEPLOY / "k8s-run-launcher.yaml")
    config, _ = dagster_instance_config(str(DEPLOY), "dagster.postgres.yaml", overrides=launcher)
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert (config["run_launcher"]["module"], config["run_launcher"]["class"]) == ("dagster_k8s", "K8sRunLauncher")
    assert config["concurrency"]["runs"]["tag_concurrency_limits"] == SYNC_RUNS_ONE_AT_A_TIME


def test_what_stays_is_the_same_as_on_the_laptop() -> None:
    laptop, cluster = load(PROJECT_ROOT / "dagster.yaml"), load(DEPLOY / "dagster.postgres.yaml")
    assert cluster["concurrency"]["pools"] == laptop["concurrency"]["pools"] == {"default_limit": 1}
    assert cluster["run_monitoring"] == laptop["run_monitoring"]
    assert cluster["python_logs"] == laptop["python_logs"]
    assert "storage" not in laptop


def test_the_grpc_workspace_names_the_code_location() -> None:
    (entry,) = load(DEPLOY / "workspace.grpc.yaml")["load_from"]
    assert entry["grpc_server"]["location_name"] == "userflow_assets"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_code_location_loads_from_a_grpc_code_server(tmp_path: Path) -> None:
    """`dagster code-server start` serves userflow_assets.definitions; the CLI loads it through
    deploy/workspace.grpc.yaml pointed at that server's port."""
    port = free_port()
    workspace = load(DEPLOY / "workspace.grpc.yaml")
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=port)
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    (tmp_path / "home").mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        # No warehouse yet: the location must load anyway (the backfill starts at its default).
        "USERFLOW_WAREHOUSE_PATH": str(tmp_path / "missing.duckdb"),
        "USERFLOW_STATE_DB_PATH": str(tmp_path / "state.duckdb"),
        "USERFLOW_API_KEY": "uf_not_used",
    }
    group = ProcessGroup(tmp_path / "logs", env)
    try:
        group.start(
            "code-server",
            [
                str(BIN / "dagster"),
                "code-server",
                "start",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-m",
                "userflow_assets.definitions",
                "--location-name",
                "userflow_assets",
            ],
            cwd=PROJECT_ROOT,
        )

        def serving() -> bool | None:
            group.check_alive()
            health = subprocess.run(
                [str(BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(port)],
                env=env,
                capture_output=True,
                timeout=60,
                check=False,
            )
            return True if health.returncode == 0 else None

        wait_for("the code server to serve", serving, 120, every_s=0.5)
        listed = subprocess.run(
            [str(BIN / "dagster"), "job", "list", "-w", str(tmp_path / "workspace.yaml")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        group.close()
    assert listed.returncode == 0, listed.stderr[-3000:]
    jobs = {line.split("Job: ", 1)[1].strip() for line in listed.stdout.splitlines() if "Job: " in line}
    assert {"userflow_sync", "userflow_mirror"} <= jobs, listed.stdout
    assert all(p.poll() is not None for p in group.processes.values())
