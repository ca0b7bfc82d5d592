"""The code location for the several-syncs test: three named syncs of the shipped spec (events
and the mirror left out), each with its own state file.

`alpha` and `beta` hold the same API key in two variables and write to one emulator; `gamma`
holds another key and writes to another emulator.
"""

import os

import dagster as dg
from orchestration_location import spec_from_environment

from userflow_assets.orchestration.component import build_sync_defs
from userflow_assets.spec import SyncSpec

STATE_DIR_VARIABLE = "USERFLOW_INSTANCES_STATE_DIR"
# name -> (the variable of its key, the variable of its base URL)
INSTANCES = {
    "alpha": ("UF_ALPHA_KEY", "UF_ONE_URL"),
    "beta": ("UF_BETA_KEY", "UF_ONE_URL"),
    "gamma": ("UF_GAMMA_KEY", "UF_TWO_URL"),
}


def instance_spec(base: SyncSpec, name: str) -> SyncSpec:
    key_variable, url_variable = INSTANCES[name]
    userflow = base.userflow.model_copy(update={"api_key_env": key_variable, "base_url": os.environ[url_variable]})
    state = os.path.join(os.environ[STATE_DIR_VARIABLE], f"{name}_state.duckdb")
    return base.model_copy(update={"name": name, "userflow": userflow, "state_database": state, "events": None})


@dg.definitions
def defs() -> dg.Definitions:
    base = spec_from_environment()
    return dg.Definitions.merge(*(build_sync_defs(instance_spec(base, name)) for name in INSTANCES))
