"""The API key appears nowhere: not in logs, Dagster's event log, metadata, exception text or any
file written, across runs meeting every kind of failure the client knows."""

import logging
from pathlib import Path

import dagster as dg
import pytest
from harness import emulator_get, emulator_post, serve_emulator
from security_kit import files_holding, make_spec, make_warehouse, run_sync

KEY = "uf_live_7Qm2ZsecretKEYvalue91"
WRONG_KEY = "uf_live_wrongKEYsecret55Xp"
FAULTS = ["500", "503", "429", "502", "504", "drop_before", "lost_response", "403"]


def event_texts(instance: dg.DagsterInstance) -> list[str]:
    """Every event of every run, as stored, with its metadata and errors."""
    texts: list[str] = []
    for run in instance.get_runs():
        texts.append(repr(run))
        for record in instance.all_logs(run.run_id):
            texts.append(repr(record))
            texts.append(record.user_message or "")
    return texts


def test_key_appears_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    make_warehouse(tmp_path, [f"u{i}" for i in range(30)])
    home = tmp_path / "dagster_home"
    home.mkdir()
    with serve_emulator(KEY) as emulator, dg.DagsterInstance.local_temp(str(home)) as instance:
        url = emulator.url
        monkeypatch.setenv("USERFLOW_API_KEY", KEY)
        # Every fault the client handles, on users: retried ones, a 403 that stops the run.
        emulator_post(url, "faults", {"next": FAULTS * 3, "path_prefix": "/users"})
        faulty = run_sync(make_spec(tmp_path, url), instance=instance)
        # A second run with a key Userflow refuses: a 401 that stops the run.
        monkeypatch.setenv("USERFLOW_API_KEY", WRONG_KEY)
        refused = run_sync(make_spec(tmp_path, url), instance=instance, sink={"full_resync": True})
        texts = event_texts(instance)
        seen = emulator_get(url, "requests", limit=1000)
    assert not faulty.success and not refused.success  # a 403, then a 401, stop their runs
    assert any("401" in t for t in texts) and any("403" in t for t in texts)  # the failures did happen
    met = {outcome for by in seen["by_endpoint"].values() for outcome in by}
    assert {*FAULTS, "401"} <= met  # every kind of failure reached the client
    out, err = capfd.readouterr()
    for secret in (KEY, WRONG_KEY):
        assert secret not in caplog.text
        assert secret not in out + err
        assert not [t for t in texts if secret in t]
        for result in (faulty, refused):
            for event in result.all_events:
                assert secret not in repr(event)
        assert files_holding(tmp_path, secret.encode()) == []


def test_key_not_in_resource_or_client_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from userflow_assets.client import UserflowClient, UserflowResource

    resource = UserflowResource(api_key=KEY, base_url="https://api.userflow.com")
    client = UserflowClient(KEY, base_url="https://api.userflow.com")
    for text in (repr(resource), str(resource), repr(client), str(client)):
        assert KEY not in text
