"""The same seed gives the same warehouse, row for row; another seed gives another one."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from userflow_assets.sample import generate_warehouse
from userflow_assets.sample.generate import TABLES


def _contents(path: Path) -> dict[str, str]:
    # repr keeps NaN comparable (nan != nan as floats) and shows every value exactly.
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: repr(con.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()) for t in TABLES}


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    root = tmp_path_factory.mktemp("det")
    generate_warehouse(root / "a.duckdb", users=400, seed=11)
    generate_warehouse(root / "b.duckdb", users=400, seed=11)
    generate_warehouse(root / "c.duckdb", users=400, seed=12)
    return _contents(root / "a.duckdb"), _contents(root / "b.duckdb"), _contents(root / "c.duckdb")


@pytest.mark.parametrize("table", TABLES)
def test_same_seed_gives_identical_tables(three: tuple[dict[str, str], ...], table: str) -> None:
    a, b, _ = three
    assert len(a[table]) > 100
    assert a[table] == b[table]


@pytest.mark.parametrize("table", ["users", "accounts", "account_memberships", "events"])
def test_other_seed_gives_other_data(three: tuple[dict[str, str], ...], table: str) -> None:
    a, _, c = three
    assert a[table] != c[table]


def test_summary_is_deterministic(tmp_path: Path) -> None:
    first = generate_warehouse(tmp_path / "x.duckdb", users=150, seed=3)
    second = generate_warehouse(tmp_path / "x.duckdb", users=150, seed=3)
    assert first == second
    assert first["tables"]["users"] >= 150
