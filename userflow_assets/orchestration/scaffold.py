"""`dg scaffold defs userflow_assets.orchestration.component.UserflowSync <folder>`: a commented
defs.yaml and starter SQL in <folder>, ready to point at a warehouse and a Userflow key."""

import os
from pathlib import Path

import dagster as dg

DEFS_YAML = """\
# A Userflow sync: what to read from the warehouse and how it lands in Userflow.
# Fields: see the userflow-assets README ("The sync spec"); `dg check yaml` validates this file.
# Relative paths are taken from the project folder (the one with pyproject.toml);
# {{{{ env('NAME', 'default') }}}} reads the environment. The API key is read from the variable
# userflow.api_key_env names, never from this file.
type: {type_name}

attributes:
  # name: staging         # with several syncs in one location: prefixes this one's asset keys, jobs,
                          # schedules and sensors (each sync then needs its own state_database)
  warehouse:
    database: "{{{{ env('USERFLOW_WAREHOUSE_PATH', 'data/warehouse.duckdb') }}}}"
    sql_dir: {sql_dir}          # users.sql and groups.sql, next to this file
  state_database: "{{{{ env('USERFLOW_STATE_DB_PATH', 'data/userflow_state.duckdb') }}}}"
  userflow:
    api_key_env: USERFLOW_API_KEY   # another sync with another key: another variable
    base_url: "{{{{ env('USERFLOW_BASE_URL', 'https://api.userflow.com') }}}}"   # EU: https://api.eu.userflow.com

  schedule:
    period: 1h            # 5m, 15m, 30m, 1h, 2h, 3h, 6h, 8h, 12h or 24h
    enabled: false        # true: runs as soon as the code location loads

  groups:                 # companies; leave the section out to sync users only
    query: groups.sql
    id_column: account_id
    mapping:
      name: name

  users:
    query: users.sql
    id_column: user_id
    mapping:              # Userflow attribute -> SQL expression over the query's columns
      email: lower(email)
      name: name
    memberships:
      column: account_ids # one group ID or a list of them per user
    max_rejected_fraction: 0.05   # above this share of bad rows nothing is sent
"""

USERS_SQL = """\
-- The users to sync. $LAST_SYNC_TIMESTAMP is bound (never pasted): the first run reads everything.
SELECT user_id, email, name, account_ids, updated_at
FROM users
WHERE updated_at > $LAST_SYNC_TIMESTAMP
"""

GROUPS_SQL = """\
-- The companies (Userflow groups) to sync.
SELECT account_id, name, updated_at
FROM accounts
WHERE updated_at > $LAST_SYNC_TIMESTAMP
"""


class UserflowSyncScaffolder(dg.Scaffolder):
    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        folder = request.target_path
        (folder / "sql").mkdir(parents=True, exist_ok=True)
        root = request.project_root or Path.cwd()
        sql_dir = Path(os.path.relpath(folder / "sql", root)).as_posix()
        (folder / "defs.yaml").write_text(DEFS_YAML.format(type_name=request.type_name, sql_dir=sql_dir))
        for name, text in (("users.sql", USERS_SQL), ("groups.sql", GROUPS_SQL)):
            if not (folder / "sql" / name).exists():
                (folder / "sql" / name).write_text(text)
