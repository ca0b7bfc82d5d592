"""Where the code location finds its files.

Relative paths in the sync spec are taken from the project folder (the one holding
`sql/`), so the code location behaves the same whether it is started from the UI, the
CLI or a test.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_path(value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path
