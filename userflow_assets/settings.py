"""Settings every stage shares: where the code location finds its files, and the pool of
the steps that call Userflow.

Relative paths in the sync spec are taken from the project folder (the one holding
`sql/`), so the code location behaves the same whether it is started from the UI, the
CLI or a test.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The Dagster pool of every step that calls Userflow: its limit is how many may at once.
API_POOL = "userflow_api"
# Where the shipped spec reads the API key and the base URL from.
API_KEY_VARIABLE, BASE_URL_VARIABLE = "USERFLOW_API_KEY", "USERFLOW_BASE_URL"


def project_path(value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path
