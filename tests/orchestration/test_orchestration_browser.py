"""The Dagster UI in a real browser (Debian's Chromium, driven by Playwright), against a real
webserver, daemon and gRPC code server on loopback: the asset graph shows every asset the code
location's definitions load, "Materialize all" on the `userflow_sync` job launches a run from
the UI, and that run succeeds. Screenshots go to tests/artifacts/ (ignored by git).

Needs the Python package `playwright` and `/usr/bin/chromium` (`apt-get install chromium`;
`make test` installs it as root with apt). Playwright's own browser download is not used.
Either missing skips the test with the reason, or fails it under CI=true.
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from needs import need
from orchestration_deployment import (
    LOCATION,
    Dagster,
    deployment_env,
    start_deployment,
    write_instance,
    write_workspace,
)
from orchestration_harness import KEY
from orchestration_location import (
    SENSOR_ENABLED_VARIABLE,
    build_location_defs,
    spec_from_environment,
)
from orchestration_processes import GraphQL, ProcessGroup, free_port, wait_for

from userflow_assets.emulator import EmulatorConfig, running_emulator
from userflow_assets.orchestration.component import SYNC_JOB
from userflow_assets.sample import generate_warehouse
from userflow_assets.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"
# Bounds on a broken UI only: a busy machine just gets there later.
UI_TIMEOUT_MS = 120_000
JOB_RUNS = """
query($job: String!) { runsOrError(filter: {pipelineName: $job}) {
  ... on Runs { results { runId status } } } }"""


def sync_playwright() -> Any:
    """Playwright's entry point; a skip (a failure under CI) that says what to install."""
    try:
        from playwright.sync_api import sync_playwright as entry
    except ImportError:
        entry = None
    need(entry is not None, "the browser test needs the Python package playwright: pip install 'playwright>=1.50'")
    chromium = CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)
    need(chromium, f"the browser test needs Chromium at {CHROMIUM}: make test installs it as root with apt-get")
    return entry


@pytest.fixture
def artifacts() -> Iterator[Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob("ui-failure.*"):  # a failure's page, from an earlier run
        stale.unlink()
    yield ARTIFACTS


@pytest.mark.timeout(600)
def test_ui_shows_every_asset_and_materializes_the_sync_job(
    tmp_path: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = sync_playwright()
    warehouse, state_db, home = tmp_path / "warehouse.duckdb", tmp_path / "state" / "state.duckdb", tmp_path / "home"
    generate_warehouse(warehouse, users=100)
    write_instance(home)
    grpc_port, web_port = free_port(), free_port()
    write_workspace(tmp_path / "workspace.yaml", grpc_port)
    with running_emulator(EmulatorConfig(api_key=KEY, seed_content=False)) as emulator_url:
        sensor_off = {SENSOR_ENABLED_VARIABLE: "0"}  # the only run is the one launched from the UI
        variables = deployment_env(home, warehouse, state_db, emulator_url, sensor_off)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        # The asset keys the location's definitions load, as the code server will load them.
        defs = build_location_defs(spec_from_environment())
        expected = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
        assert len(expected) >= 8, expected
        group = ProcessGroup(tmp_path / "logs", {**os.environ})
        base = f"http://127.0.0.1:{web_port}"
        try:
            start_deployment(group, tmp_path / "workspace.yaml", grpc_port, web_port)
            dagster = Dagster(GraphQL(f"{base}/graphql"))

            dagster.wait_for_location(group, "the webserver to load the code location", 90)
            with entry() as playwright:
                # A fresh profile each run (Playwright passes it to Chromium as --user-data-dir).
                browser = playwright.chromium.launch_persistent_context(
                    str(tmp_path / "chromium-profile"),
                    executable_path=str(CHROMIUM),
                    headless=True,
                    args=CHROMIUM_ARGS,
                    viewport={"width": 1600, "height": 1000},
                )
                try:
                    page = browser.new_page()
                    page.set_default_timeout(UI_TIMEOUT_MS)
                    try:
                        check_ui(page, base, dagster, expected, artifacts)
                    except Exception:
                        page.screenshot(path=str(artifacts / "ui-failure.png"), full_page=True)
                        (artifacts / "ui-failure.html").write_text(page.content())
                        raise
                finally:
                    browser.close()
        finally:
            group.close()
        assert all(p.poll() is not None for p in group.processes.values())


def check_ui(page: Any, base: str, dagster: Dagster, expected: set[str], artifacts: Path) -> None:
    # The UI offers "Join the Dagster community" once per instance; mark it seen as its Skip button does.
    assert dagster.graphql("mutation { setNuxSeen }")["setNuxSeen"]
    # The global asset graph, its groups expanded (the graph's ⌥E): a node for every asset of the location.
    page.goto(f"{base}/asset-groups")
    page.locator("foreignObject").first.wait_for()
    page.wait_for_load_state("networkidle")  # the graph's key handler is attached once it settles
    page.keyboard.press("Alt+e")
    names = page.locator('[class*="AssetNode_assetName"]')
    wait_for("the asset graph's nodes", lambda: True if names.count() >= len(expected) else None, 120, every_s=0.5)
    page.screenshot(path=str(artifacts / "asset-graph.png"))
    labels = names.all_inner_texts()
    assert len(labels) == len(expected), f"graph nodes {sorted(labels)} for assets {sorted(expected)}"
    # A long name shows shortened in the middle ("userflow_…_records"): a label stands for the keys it fits.
    fits = {label: {key for key in expected if label_fits(label, key)} for label in labels}
    assert all(fits.values()), f"graph nodes that are no asset of the location: {[x for x, k in fits.items() if not k]}"
    missing = expected - set().union(*fits.values())
    assert not missing, f"assets missing from the asset graph: {sorted(missing)}"

    # The sync job's page: "Materialize all" launches a run from the UI.
    assert not dagster.graphql(JOB_RUNS, {"job": SYNC_JOB})["runsOrError"]["results"]
    page.goto(f"{base}/locations/{LOCATION}/jobs/{SYNC_JOB}")
    page.get_by_role("button", name=re.compile(r"Materialize all$")).click()
    # A confirmation dialog, when the UI asks for one (e.g. partitions or config), gets its launch button.
    launch = page.get_by_role("dialog").get_by_role("button", name=re.compile(r"^(Launch|Materialize)"))
    if wait_for("the launch to register", lambda: launched_or_dialog(dagster, launch), 120) == "dialog":
        launch.first.click()

    run_id = wait_for("the run launched from the UI", lambda: first_run(dagster), 120)
    run = dagster.finished_run(run_id, 300)
    assert run["status"] == "SUCCESS", dagster.errors(run_id)
    page.goto(f"{base}/runs/{run_id}")
    page.get_by_text("Success", exact=True).first.wait_for()
    page.screenshot(path=str(artifacts / "ui-run-success.png"))


def label_fits(label: str, key: str) -> bool:
    if "…" not in label:
        return label == key
    head, _, tail = label.partition("…")
    return len(key) > len(head) + len(tail) and key.startswith(head) and key.endswith(tail)


def first_run(dagster: Dagster) -> str | None:
    runs = dagster.graphql(JOB_RUNS, {"job": SYNC_JOB})["runsOrError"]["results"]
    assert len(runs) <= 1, runs
    return runs[0]["runId"] if runs else None


def launched_or_dialog(dagster: Dagster, launch: Any) -> str | None:
    if first_run(dagster):
        return "launched"
    return "dialog" if launch.count() else None

