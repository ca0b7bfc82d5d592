"""The code location: everything under userflow_assets/defs (the sync spec is defs/userflow_sync/defs.yaml)."""

import os
from pathlib import Path

import dagster as dg

# Dagster asks for the definitions several times while launching one run (five under
# `dg launch`), and building them parses the spec and its SQL each time. One build per
# environment: the spec reads its paths and URL from it, so a changed environment rebuilds.
_built: dict[frozenset[tuple[str, str]], dg.Definitions] = {}


def load_definitions() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


@dg.definitions
def defs() -> dg.Definitions:
    key = frozenset(os.environ.items())
    if key not in _built:
        _built.clear()
        _built[key] = load_definitions()
    return _built[key]
