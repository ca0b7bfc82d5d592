"""The code location for the end-to-end test: `build_sync_defs` with a spec made for the test.

The end-to-end test serves it with `dagster code-server start -f`. The spec is the shipped
defs.yaml with the warehouse, state and Userflow taken from the environment, the mirror off,
the rejected-share guard loosened for a small sample, the schedule every 5 minutes through the minute the test chooses (so one tick falls soon
after the test turns it on), and the sensor on with a short interval.
"""

import os

import dagster as dg
import yaml

from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.settings import PROJECT_ROOT
from userflow_assets.spec import SyncSpec

SCHEDULE_MINUTE_VARIABLE = "USERFLOW_E2E_SCHEDULE_START_MINUTE"
SENSOR_INTERVAL_SECONDS = 5
# "0" leaves the change sensor out, for tests that count the runs they launch themselves.
SENSOR_ENABLED_VARIABLE = "USERFLOW_E2E_SENSOR_ENABLED"


def spec_from_environment() -> SyncSpec:
    shipped = yaml.safe_load((PROJECT_ROOT / "userflow_assets/defs/userflow_sync/defs.yaml").read_text())
    attributes = shipped["attributes"]
    attributes["warehouse"]["database"] = os.environ["USERFLOW_WAREHOUSE_PATH"]
    attributes["state_database"] = os.environ["USERFLOW_STATE_DB_PATH"]
    attributes["work_database"] = os.environ.get("USERFLOW_WORK_DB_PATH", "data/work.duckdb")
    attributes["userflow"]["base_url"] = os.environ["USERFLOW_BASE_URL"]
    attributes["mirror"] = {"enabled": False}
    # A 300-user sample still plants at least one dirty row of each kind, which is more than
    # 5% of its few dozen companies; the guard itself is tested elsewhere.
    for section in ("users", "groups"):
        attributes[section]["max_rejected_fraction"] = 0.5
    attributes["schedule"] = {
        "period": "5m",
        "start_minute": int(os.environ.get(SCHEDULE_MINUTE_VARIABLE, "0")),
        "enabled": False,  # as shipped; the test turns it on from GraphQL, as a user would from the UI
    }
    sensor_enabled = os.environ.get(SENSOR_ENABLED_VARIABLE, "1") != "0"
    attributes["sensor"] = {"enabled": sensor_enabled, "interval_seconds": SENSOR_INTERVAL_SECONDS}
    return SyncSpec.model_validate(attributes)


def build_location_defs(spec: SyncSpec) -> dg.Definitions:
    """The code location as component.py builds it, for this spec."""
    return build_sync_defs(spec)


@dg.definitions
def defs() -> dg.Definitions:
    return build_location_defs(spec_from_environment())
