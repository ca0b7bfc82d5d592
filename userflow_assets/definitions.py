"""The code location: everything under userflow_assets/defs (the sync spec is defs/userflow_sync/defs.yaml)."""

from pathlib import Path

import dagster as dg


def load_definitions() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


@dg.definitions
def defs() -> dg.Definitions:
    return load_definitions()
