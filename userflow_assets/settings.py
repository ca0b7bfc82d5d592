"""Where the code location finds its files, from the environment with laptop defaults.

Relative paths are taken from the project folder (the one holding `sql/`), so the
code location behaves the same whether it is started from the UI, the CLI or a test.
Secrets are not read here: they go through `dg.EnvVar` in the resources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_path(value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


@dataclass(frozen=True)
class Settings:
    warehouse_path: Path
    sync_db_path: Path
    sql_dir: Path

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            warehouse_path=project_path(env.get("USERFLOW_WAREHOUSE_PATH", "data/warehouse.duckdb")),
            sync_db_path=project_path(env.get("USERFLOW_SYNC_DB_PATH", "data/sync.duckdb")),
            sql_dir=project_path(env.get("USERFLOW_SQL_DIR", "sql")),
        )
