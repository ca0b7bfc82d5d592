"""The Dagster UI in a real browser (Debian's Chromium, driven by Playwright), against a real
webserver, daemon and gRPC code server on loopback: the asset graph shows every asset the code
location's definitions load, "Materialize all" on the `userflow_sync` job launches a run from
the UI, and that run succeeds. The records asset's page shows a rejected row without an ID with
its reason and the source key that finds it in the warehouse. A dry run is marked as one in the
runs list and on the sink's page. Screenshots go to tests/artifacts/ (ignored by git).

Needs the Python package `playwright` and `/usr/bin/chromium` (`apt-get install chromium`;
`make test` installs it as root with apt). Playwright's own browser download is not used.
Either missing skips the test with the reason, or fails it under CI=true.
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from needs import need
from orchestration_deployment import (
    LAUNCH_RUN,
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
from userflow_assets.settings import INSTANCE_TAG, PROJECT_ROOT
from userflow_assets.sink.run import DRY_RUN_LABEL, DRY_RUN_NOTE, DRY_RUN_TAG

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
                        check_rejected_rows(page, base, state_db, artifacts)
                        check_dry_run(page, base, dagster, artifacts)
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



def check_rejected_rows(page: Any, base: str, state_db: Path, artifacts: Path) -> None:
    """The records asset's page: the sample's row without an ID, its reason beside its source key."""
    with duckdb.connect(str(state_db), read_only=True) as con:
        found = con.execute(
            "SELECT reason, source_key FROM transform.user_rejected WHERE id IS NULL ORDER BY source_row LIMIT 1"
        ).fetchone()
    assert found is not None, "the sample plants a user without an ID"
    reason, source_key = found
    assert source_key.startswith("user_id=null, "), source_key
    page.goto(f"{base}/assets/userflow_user_records")
    preview = markdown_of(page, "rejected_preview")
    # The innermost row holding the reason: the key's start is in the same row (cells are cut at 80).
    row = preview.locator("tr", has_text=reason).last
    row.wait_for()
    page.screenshot(path=str(artifacts / "ui-rejected-rows.png"), full_page=True)
    assert source_key[:40] in row.inner_text(), (source_key, row.inner_text())


def check_dry_run(page: Any, base: str, dagster: Dagster, artifacts: Path) -> None:
    """A dry run launched as the Launchpad would: tagged in the runs list, labelled first on the sink."""
    sinks = {name: {"config": {"dry_run": True}} for name in ("userflow_groups", "userflow_users")}
    params = {"selector": {**dagster.selector, "jobName": SYNC_JOB}, "runConfigData": {"ops": sinks}}
    launched = dagster.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert dagster.finished_run(run_id, 300)["status"] == "SUCCESS", dagster.errors(run_id)

    page.goto(f"{base}/runs")
    tag = f"{DRY_RUN_TAG}: true"
    page.get_by_text(tag).first.wait_for()
    # A run's cell: the innermost box holding its link and its tags (every sync run has the
    # instance tag). The dry run's shows the dry-run tag; the run launched from the UI's does not.
    runs = page.locator('a[href^="/runs/"]').filter(has_text=re.compile(r"^[0-9a-f]{8}$")).all_inner_texts()
    assert run_id[:8] in runs and len(runs) == 2, runs
    for shown in runs:
        link = page.locator(f'a[href^="/runs/{shown}"]')
        cell = page.locator("div", has=link).filter(has_text=f"{INSTANCE_TAG}:").last.inner_text()
        assert (tag in cell) is (shown == run_id[:8]), (shown, cell)
    page.goto(f"{base}/assets/userflow_users")
    page.get_by_text(DRY_RUN_NOTE).first.wait_for()
    page.screenshot(path=str(artifacts / "ui-dry-run.png"), full_page=True)
    body = page.inner_text("body")
    # The label leads the materialization's metadata, before any count.
    assert body.index(DRY_RUN_LABEL) < body.index("plan_create"), body


def markdown_of(page: Any, label: str) -> Any:
    """Where the rendered markdown of metadata entry `label` is: its row, or the dialog a long one opens in."""
    row = page.locator("tr", has=page.get_by_text(label, exact=True)).first
    row.wait_for()
    button = row.get_by_text("[Show Markdown]")
    if button.count():
        button.click()
        return page.get_by_role("dialog")
    return row
