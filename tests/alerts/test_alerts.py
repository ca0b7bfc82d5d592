"""Alerts to a webhook: one message for a failed run, one for a run over the failed-share
limit, one when a later run recovers; nothing new when a tick is evaluated again."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from harness import (
    ACCOUNTS_DDL,
    GROUPS_SQL,
    Emulator,
    emulator_post,
    run_sync,
    serve_emulator,
    sync_spec,
    write_project,
)

from userflow_assets.orchestration.alerts import (
    ALERT_TAG,
    FAILURE_SENSOR,
    SUCCESS_SENSOR,
    WEBHOOK_VARIABLE,
    build_alert_sensors,
)
from userflow_assets.orchestration.component import SYNC_JOB

KEY = "uf_test_alerts_key"
USERS_DDL = "CREATE TABLE users (user_id VARCHAR, email VARCHAR, updated_at TIMESTAMP);"
USERS_SQL = "SELECT user_id, email, updated_at FROM users WHERE updated_at > $LAST_SYNC_TIMESTAMP"
USERS = {"query": "users.sql", "id_column": "user_id", "mapping": {"email": "email"}}


class Receiver:
    """A webhook on loopback that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def texts(self) -> list[str]:
        return [post["text"] for post in self.posts]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    hook = Receiver()
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(WEBHOOK_VARIABLE, hook.url)
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with serve_emulator(KEY) as served:
        yield served


def alert(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> None:
    """One tick of the sensor that watches a run of `result`'s outcome, as the daemon would run it."""
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    ending = dg.DagsterEventType.RUN_FAILURE if not result.success else dg.DagsterEventType.RUN_SUCCESS
    event = instance.all_logs(run.run_id, of_type=ending)[-1].get_dagster_event()
    sensors = {s.name: s for s in build_alert_sensors(dg.define_asset_job(SYNC_JOB))}
    name = FAILURE_SENSOR if not result.success else SUCCESS_SENSOR
    context = dg.build_run_status_sensor_context(
        sensor_name=name, dagster_event=event, dagster_instance=instance, dagster_run=run
    )
    sensors[name](context.for_run_failure() if not result.success else context)  # type: ignore[operator]


def test_failure_partial_failure_and_recovery_each_post_one_message(
    tmp_path: Path, emulator: Emulator, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.fresh(monkeypatch)
    rows = [(f"u{i}", f"u{i}@example.com", "2026-01-01") for i in range(10)]
    write_project(tmp_path, USERS_DDL + ACCOUNTS_DDL, {"users": rows}, users=USERS_SQL, groups=GROUPS_SQL)
    spec = sync_spec(tmp_path, emulator.url, USERS)
    with dg.instance_for_test() as instance:
        # 1. A wrong key: the run fails.
        monkeypatch.setenv("USERFLOW_API_KEY", "uf_not_the_key")
        failed = run_sync(spec, instance=instance, raise_on_error=False)
        assert not failed.success
        alert(instance, failed)
        assert len(receiver.posts) == 1 and receiver.texts()[0].startswith("Userflow sync failed")
        assert "refused the API key" in receiver.texts()[0] and "uf_not_the_key" not in receiver.texts()[0]
        alert(instance, failed)  # the same run's tick again: nothing new
        assert len(receiver.posts) == 1
        # 2. The right key, but every user answered 500: more wait to be retried than allowed.
        monkeypatch.setenv("USERFLOW_API_KEY", KEY)
        # Exactly two 500s per user: both attempts of each (the test client tries twice).
        emulator_post(emulator.url, "faults", {"next": ["500"] * 20, "path_prefix": "/users", "method": "POST"})
        partial = run_sync(spec, instance=instance, raise_on_error=False)
        assert partial.success
        alert(instance, partial)
        assert len(receiver.posts) == 2
        assert receiver.texts()[1].startswith("Userflow sync left records waiting to be retried")
        assert "10 of 10 users wait to be retried" in receiver.texts()[1]
        # 3. The next run retries them all: recovered, said once.
        recovered = run_sync(spec, instance=instance)
        alert(instance, recovered)
        alert(instance, recovered)
        assert len(receiver.posts) == 3 and receiver.texts()[2].startswith("Userflow sync recovered")
        # 4. A good run after a good one: nothing to say.
        quiet = run_sync(spec, instance=instance)
        alert(instance, quiet)
        assert len(receiver.posts) == 3
        verdicts = [instance.get_run_by_id(r.run_id).tags[ALERT_TAG] for r in (failed, partial, recovered, quiet)]
        assert verdicts == ["failed", "partial", "ok", "ok"]


def test_without_the_webhook_variable_the_sensors_skip(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.fresh(monkeypatch)
    monkeypatch.delenv(WEBHOOK_VARIABLE, raising=False)
    write_project(tmp_path, USERS_DDL + ACCOUNTS_DDL, {}, users=USERS_SQL, groups=GROUPS_SQL)
    with dg.instance_for_test() as instance:
        result = run_sync(sync_spec(tmp_path, emulator.url, USERS), instance=instance)
        alert(instance, result)
        assert ALERT_TAG not in instance.get_run_by_id(result.run_id).tags  # judged once it is set


def test_a_webhook_that_fails_is_tried_again_and_its_url_never_shows(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.fresh(monkeypatch)
    secret = "http://127.0.0.1:9/services/T000/B000/very-secret-token"
    monkeypatch.setenv(WEBHOOK_VARIABLE, secret)
    rows = [("u1", "u1@example.com", "2026-01-01")]
    write_project(tmp_path, USERS_DDL + ACCOUNTS_DDL, {"users": rows}, users=USERS_SQL, groups=GROUPS_SQL)
    monkeypatch.setenv("USERFLOW_API_KEY", "uf_not_the_key")
    with dg.instance_for_test() as instance:
        failed = run_sync(sync_spec(tmp_path, emulator.url, USERS), instance=instance, raise_on_error=False)
        assert not failed.success
        with pytest.raises(RuntimeError) as caught:
            alert(instance, failed)
        assert WEBHOOK_VARIABLE in str(caught.value) and "very-secret-token" not in str(caught.value)
        # Not judged: the next tick tries again.
        assert ALERT_TAG not in instance.get_run_by_id(failed.run_id).tags
