"""Settings every stage shares: where the code location finds its files, the pool of the
steps that call Userflow, and what one sync instance calls its definitions (`Names`).

Relative paths in the sync spec are taken from the project folder (the one holding
`sql/`), so the code location behaves the same whether it is started from the UI, the
CLI or a test.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The Dagster pool of every step that calls Userflow: its limit is how many may at once.
API_POOL = "userflow_api"
# Where the shipped spec reads the API key and the base URL from.
API_KEY_VARIABLE, BASE_URL_VARIABLE = "USERFLOW_API_KEY", "USERFLOW_BASE_URL"
# Every run of one sync instance carries this tag (its value: the instance's job); dagster.yaml
# lets one run per value go at a time, since an instance's runs share its state's work tables.
INSTANCE_TAG = "userflow/instance"


def project_path(value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


@dataclass(frozen=True)
class Names:
    """What one sync instance calls its assets, jobs, schedules, sensors and resources.

    The shipped instance has no name and keeps the plain names; a named one (`staging`) puts
    its name before each, so several instances sit in one code location without a clash.
    """

    instance: str = ""

    def __call__(self, name: str) -> str:
        """A job, schedule, sensor, group or resource name of this instance."""
        return f"{self.instance}_{name}" if self.instance else name

    @property
    def key_prefix(self) -> list[str]:
        return [self.instance] if self.instance else []

    def key(self, name: str) -> dg.AssetKey:
        return dg.AssetKey([*self.key_prefix, name])

    def resource_keys(self, *names: str) -> set[str]:
        return {self(name) for name in names}

    def resource(self, context: Any, name: str) -> Any:
        """This instance's resource `name` from a Dagster context (assets, checks, sensors)."""
        return getattr(context.resources, self(name))


SHIPPED = Names()  # the one instance of this repository's own code location
