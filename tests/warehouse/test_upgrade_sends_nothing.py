"""An upgraded install resends nothing: this version's sync, run on a state written by an
earlier one, reads every row again and sends no user, group or event.

`tests/fixtures/state-3c23509/` is `EXPORT DATABASE` of the state file (the `sync` and
`transform` schemas) that commit 3c23509 left after one sync of the shipped spec over the
sample (300 users, seed 42): before the transform wrote its records in place. A change to the
payload text, its hash, or the records' layout that an existing state cannot follow fails here.
(So would a change to the sample generator: then make the artifact again with the old commit.)
"""

from pathlib import Path
from typing import Any

import duckdb
import pytest
from harness import emulator_get, metadata, run_sync, serve_emulator
from warehouse_kit import SAMPLE_SEED, SAMPLE_USERS, shipped_spec

from userflow_assets.sample import generate_warehouse

ARTIFACT = Path(__file__).resolve().parents[1] / "fixtures" / "state-3c23509"
KEY = "uf_upgrade_key"


def writes(url: str) -> dict[str, Any]:
    """The emulator's requests other than reads, by endpoint."""
    by_endpoint = emulator_get(url, "requests", limit=0)["by_endpoint"]
    return {endpoint: n for endpoint, n in by_endpoint.items() if not endpoint.startswith("GET ")}


def test_a_state_written_by_the_previous_version_sends_nothing_after_a_full_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_warehouse(tmp_path / "warehouse.duckdb", users=SAMPLE_USERS, seed=SAMPLE_SEED)
    with duckdb.connect(str(tmp_path / "state.duckdb")) as con:
        con.execute(f"IMPORT DATABASE '{ARTIFACT}'")
        (synced,) = con.execute("SELECT count(*) FROM sync.records WHERE object_type = 'user'").fetchone()
    with serve_emulator(KEY) as emulator:
        emulator.fresh(monkeypatch)  # empty: anything the sync sent would show
        spec = shipped_spec({"database": str(tmp_path / "warehouse.duckdb")}, tmp_path / "state.duckdb", emulator.url)
        result = run_sync(spec, read={"full_refresh": True})
        for asset in ("userflow_users", "userflow_groups"):
            shown = metadata(result, asset)
            assert (shown["created"], shown["updated"], shown["failed"]) == (0, 0, 0), asset
        assert metadata(result, "userflow_users")["unchanged"] == synced > 0
        assert writes(emulator.url) == {}
