"""The sync test harness shared by the test folders: a project in a folder (a small real DuckDB
warehouse and its sql files), the emulator on a port, and the sync run through the definitions
and the `userflow_sync` job's selection that `build_sync_defs` builds, with `dg.materialize`.

A folder keeps only what is its own: its warehouse's rows, its users section, its cases.
"""

import gc
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import duckdb
import httpx
import pytest

from userflow_assets.client import UserflowResource
from userflow_assets.client.ratelimit import forget_shared_limiters
from userflow_assets.emulator import EmulatorConfig, create_app, serve_app
from userflow_assets.orchestration.component import SYNC_JOB, build_sync_defs
from userflow_assets.spec import SyncSpec

# Every folder's groups: the accounts table, read incrementally.
ACCOUNTS_DDL = "CREATE TABLE accounts (account_id VARCHAR, name VARCHAR, updated_at TIMESTAMP);"
GROUPS_SQL = "SELECT account_id, name, updated_at FROM accounts WHERE updated_at > $LAST_SYNC_TIMESTAMP"
GROUPS: dict[str, Any] = {"query": "groups.sql", "id_column": "account_id", "mapping": {"name": "name"}}

# A test's own client: two attempts, and a failing request settled in well under a second.
FAST_RETRIES: dict[str, Any] = {"max_attempts": 2, "max_retry_time_s": 2}


# ---- the project: warehouse, sql files, state --------------------------------------------------


def write_project(root: Path, ddl: str, rows: Mapping[str, Sequence[tuple[Any, ...]]], **queries: str) -> Path:
    """`root/sql/<name>.sql` for each of `queries`, and `root/warehouse.duckdb` made by `ddl`
    holding `rows` (table name -> rows); returns the warehouse's path."""
    (root / "sql").mkdir(exist_ok=True)
    for name, text in queries.items():
        (root / "sql" / f"{name}.sql").write_text(text)
    warehouse = root / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(ddl)
    for table, table_rows in rows.items():
        insert(warehouse, table, table_rows)
    return warehouse


def insert(database: Path, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        with duckdb.connect(str(database)) as con:
            con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)


def query(
    database: Path, statement: str, params: list[Any] | None = None, read_only: bool = False
) -> list[tuple[Any, ...]]:
    """The rows of `statement` on a DuckDB file (none for a statement that returns none)."""
    with duckdb.connect(str(database), read_only=read_only) as con:
        cursor = con.execute(statement, params or [])
        return cursor.fetchall() if cursor.description else []


def held_elsewhere(path: Path, read_only: bool = False) -> subprocess.Popen[str]:
    """Another process holding the DuckDB file at `path` (a run, or a sync's read-only query),
    once it holds it; it lets go when a line arrives on its stdin (`communicate("\\n")`)."""
    hold = (
        f"import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only={read_only}); "
        "print('held', flush=True); sys.stdin.readline()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def state_count(state_db: Path, table: str) -> int:
    """Rows of `sync.<table>` in a state file; 0 while the file or the table does not exist."""
    if not state_db.exists():
        return 0
    try:
        return _state_count(state_db, table)
    except duckdb.ConnectionException:  # opened read-write in this process, another configuration
        gc.collect()  # a failed step's traceback can still hold its state connection
        return _state_count(state_db, table)


def _state_count(state_db: Path, table: str) -> int:
    exists = "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'sync' AND table_name = ?"
    if not query(state_db, exists, [table], read_only=True)[0][0]:
        return 0
    return int(query(state_db, f"SELECT count(*) FROM sync.{table}", read_only=True)[0][0])


def sync_spec(
    root: Path, url: str, users: dict[str, Any], state_db: Path | None = None, **sections: Any
) -> SyncSpec:
    """The spec of the project in `root` against `url`: the groups of every folder, `users`, and
    `sections` (which may replace the groups); the state in `state_db` (`root/state/state.duckdb`)."""
    return SyncSpec.model_validate(
        {
            "warehouse": {"database": str(root / "warehouse.duckdb"), "sql_dir": str(root / "sql")},
            "state_database": str(state_db or root / "state" / "state.duckdb"),
            "userflow": {"base_url": url},
            "groups": GROUPS,
            "users": users,
            **sections,
        }
    )


# ---- the sync run -------------------------------------------------------------------------------


def run_sync(
    spec: SyncSpec,
    *,
    sink: dict[str, Any] | None = None,
    read: dict[str, Any] | None = None,
    events: dict[str, Any] | None = None,
    selection: Sequence[str] | None = None,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
    own_resources: bool = False,
    **client: Any,
) -> dg.ExecuteInProcessResult:
    """One sync of `spec` in process: what the `userflow_sync` job selects (or only `selection`).

    `sink` is the run config of the sinks of users and groups, `events` that of the events sink,
    `read` that of every warehouse asset. The Userflow client is a test's own, with the key of
    USERFLOW_API_KEY, FAST_RETRIES and `client` over them; `own_resources` keeps the component's.
    """
    defs = build_sync_defs(spec)
    resources = dict(defs.resources or {})
    if not own_resources:
        resources["userflow"] = UserflowResource(
            api_key=dg.EnvVar("USERFLOW_API_KEY"), base_url=spec.userflow.base_url, **(FAST_RETRIES | client)
        )
    ops: dict[str, Any] = {}
    for kind, section in (("groups", spec.groups), ("users", spec.users), ("events", spec.events)):
        if section is not None and read:
            ops[f"warehouse_{kind}"] = {"config": read}
        if section is not None and sink and kind != "events":
            ops[f"userflow_{kind}"] = {"config": sink}
    if events:
        ops["userflow_events"] = {"config": events}
    return dg.materialize(
        [*(defs.assets or []), *(defs.asset_checks or [])],  # type: ignore[list-item]
        resources=resources,
        instance=instance,
        run_config={"ops": ops} if ops else None,
        raise_on_error=raise_on_error,
        selection=list(selection) if selection is not None else sync_job_selection(defs),
    )


def sync_job_selection(defs: dg.Definitions) -> dg.AssetSelection:
    """The assets of the `userflow_sync` job in `defs` (all but the read side and the partitioned backfill)."""
    (job,) = [job for job in defs.jobs or [] if job.name == SYNC_JOB]
    return job.selection  # type: ignore[union-attr]


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The metadata values of `asset`'s last materialization in the run."""
    events = result.asset_materializations_for_node(asset)
    assert events, f"{asset} was not materialized"
    return {k: v.value for k, v in events[-1].metadata.items()}


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """Every failed step's error with all its causes, one text per step, as the event log shows it."""
    texts = []
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        error, parts = event.step_failure_data.error, []
        while error is not None:
            parts.append(error.message)
            error = error.cause
        texts.append("\n".join(parts))
    return texts


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The first failed step's error with all its causes."""
    return failure_messages(result)[0]


# ---- the emulator -------------------------------------------------------------------------------


@cache
def local_http() -> httpx.Client:
    """The client of the tests' own calls to the loopback servers they start (emulators,
    webservers): a new httpx client loads the CA bundle, ~20 ms a call. Without keep-alive, no
    connection outlives its call (nor the server)."""
    return httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


def emulator_get(url: str, path: str, **params: Any) -> Any:
    """GET /__emulator/<path> (state, requests, config, ...) as JSON."""
    return local_http().get(f"{url}/__emulator/{path}", params=params or None).json()


def emulator_post(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """POST /__emulator/<path> (reset, faults, config, ...); the answer as JSON."""
    response = local_http().post(f"{url}/__emulator/{path}", json=body)
    response.raise_for_status()
    return response.json() if response.content else None


@dataclass
class Emulator:
    """An emulator served on a loopback port for a session or a module: `app` is what is served
    (the emulator, or a test's wrapper around it) and `config` what it started with."""

    url: str
    key: str
    config: EmulatorConfig
    app: Any

    def fresh(self, monkeypatch: pytest.MonkeyPatch, key: str | None = None) -> None:
        """As a fresh process would meet a fresh emulator: the key (this emulator's, or `key`) in
        USERFLOW_API_KEY, no rate limiter learned yet, the starting config (a reset keeps the config,
        so an earlier test's limits are set back explicitly) and no users, groups, faults or requests."""
        monkeypatch.setenv("USERFLOW_API_KEY", key or self.key)
        forget_shared_limiters()
        emulator_post(self.url, "config", {k: v for k, v in self.config.public_dict().items() if k != "api_key"})
        emulator_post(self.url, "reset")


@contextmanager
def serve_emulator(
    key: str, wrap: Callable[[Any], Any] | None = None, host: str = "127.0.0.1"
) -> Iterator[Emulator]:
    """An emulator without seeded content that takes `key`, on a port of `host`; `wrap` puts an
    ASGI wrapper of the test's around it."""
    config = EmulatorConfig(api_key=key, seed_content=False)
    app = create_app(config)
    served = wrap(app) if wrap else app
    with serve_app(served, host=host) as url:
        yield Emulator(url, key, config, served)


# ---- the per-test harness -----------------------------------------------------------------------


@dataclass
class Harness:
    """A project in `root` synced to the emulator at `url`; a folder's subclass says its spec."""

    root: Path
    url: str

    # UserflowResource options of this folder's runs.
    client: ClassVar[dict[str, Any]] = FAST_RETRIES

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def state_db(self) -> Path:
        return self.root / "state" / "state.duckdb"  # a folder the sync must create

    def spec(self) -> SyncSpec:
        raise NotImplementedError("a folder's harness says its spec")

    def run(self, spec: SyncSpec | None = None, **options: Any) -> dg.ExecuteInProcessResult:
        """One sync through Dagster (`run_sync`'s options), of this harness's spec by default."""
        return run_sync(spec or self.spec(), **(self.client | options))

    def sql(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return query(self.warehouse, statement, params)

    def state(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return query(self.state_db, statement, params)

    def emulator(self, path: str) -> Any:
        return emulator_get(self.url, path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return emulator_post(self.url, path, body)

    def faults(self, kinds: list[str], path_prefix: str, method: str = "POST") -> None:
        self.post("faults", {"next": kinds, "path_prefix": path_prefix, "method": method})

    def requests_total(self) -> int:
        return int(self.emulator("requests")["total"])

    def users(self) -> dict[str, dict[str, Any]]:
        return {u["id"]: u for u in self.emulator("state")["users"]}

    def memberships(self) -> set[tuple[str, str]]:
        return {(m["user_id"], m["group_id"]) for m in self.emulator("state")["memberships"]}

    def events(self) -> list[dict[str, Any]]:
        return list(self.emulator("state")["events"])
