"""The sync spec: what to sync, as configuration the user edits (see README, "The sync spec").

These models are the schema of `userflow_assets/defs/userflow_sync/defs.yaml`, so
`dg check yaml` validates a spec before anything runs, and every stage reads its
part of the spec from here.
"""

import re
from typing import Literal
from urllib.parse import urlsplit

import dagster as dg
from pydantic import ConfigDict, Field, field_validator, model_validator

from userflow_assets.warehouse.source import (
    SourceError,
    driver_for,
    redact_url,
    url_scheme,
)

Operator = Literal[
    "is",
    "is not",
    "is less than",
    "is less than or equal to",
    "is greater than",
    "is greater than or equal to",
    "is between",
    "is not between",
    "contains",
    "does not contain",
    "is one of",
    "is not one of",
    "starts with",
    "ends with",
    "is before",
    "is on or before",
    "is after",
    "is on or after",
    "is true",
    "is false",
    "is empty",
    "is not empty",
    "is null",
    "is not null",
    "exists",
    "does not exist",
]

# Schemas inside the state database; its file may not be named after one of them.
STATE_SCHEMAS = ("staging", "transform", "plan", "sync")

FieldType = Literal["string", "number", "integer", "boolean", "datetime", "list"]
Scalar = str | int | float | bool


def _at_least(value: int, minimum: int, name: str) -> int:
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _at_least_one(value: list, name: str) -> list:  # type: ignore[type-arg]
    if not value:
        raise ValueError(f"{name} needs at least one entry")
    return value


class Condition(dg.Model, dg.Resolvable):
    """One test on a column of the query's result, e.g. `{column: plan, operator: is one of, values: [pro, enterprise]}`."""

    column: str = Field(description="A column of the query's result; `column.key.sub` reads a key of a JSON column.")
    operator: Operator
    values: list[Scalar] = Field(default_factory=list, description="The operator's values; bound as parameters.")


class Filter(dg.Model, dg.Resolvable):
    """Rows the sync keeps: all conditions (`and`) or any of them (`or`)."""

    logical: Literal["and", "or"] = "and"
    conditions: list[Condition]

    @field_validator("conditions")
    @classmethod
    def _not_empty(cls, value: list[Condition]) -> list[Condition]:
        return _at_least_one(value, "filter.conditions")


class SchemaField(dg.Model, dg.Resolvable):
    """What an attribute's value must be; rows that break it are rejected with the reason."""

    type: FieldType
    max_length: int | None = Field(default=None, description="Characters of a string, items of a list.")
    nullable: bool = True

    @field_validator("max_length")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        return None if value is None else _at_least(value, 1, "max_length")


class PythonTransform(dg.Model, dg.Resolvable):
    """A Python function for what SQL cannot say: `module:function`, given a DataFrame of `inputs`
    columns, returning a DataFrame with the `outputs` columns, row for row."""

    function: str = Field(description="`package.module:function`")
    inputs: list[str]
    outputs: list[str]

    @field_validator("inputs", "outputs")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        return _at_least_one(value, "transform.inputs and transform.outputs")

    @field_validator("function")
    @classmethod
    def _module_and_name(cls, value: str) -> str:
        module, _, name = value.partition(":")
        if not module or not name:
            raise ValueError(f"transform.function must look like 'package.module:function', got {value!r}")
        return value


class MembershipSpec(dg.Model, dg.Resolvable):
    """The user's companies, sent inside the user's own upsert (one request, not three)."""

    column: str = Field(description="A column holding one group ID, a list of IDs, or a list of structs.")
    group_id_field: str | None = Field(
        default=None, description="For a list of structs: the struct field holding the group ID."
    )
    attributes: dict[str, str] = Field(
        default_factory=dict,
        description="Membership attribute -> struct field (e.g. role: role); when set, `memberships` are sent.",
    )
    group_attributes: dict[str, str] = Field(
        default_factory=dict, description="Group attribute -> struct field, sent with each group."
    )

    @model_validator(mode="after")
    def _struct_fields_need_a_struct(self) -> "MembershipSpec":
        if (self.attributes or self.group_attributes) and not self.group_id_field:
            raise ValueError("memberships.attributes and group_attributes need memberships.group_id_field")
        return self


class ObjectSpec(dg.Model, dg.Resolvable):
    """How one kind of Userflow object (users or groups) is read, mapped and written."""

    query: str = Field(description="SQL file in the sql folder, e.g. users.sql.")
    id_column: str
    fallback_id_column: str | None = Field(
        default=None, description="Used as the ID while id_column is null or empty (e.g. email)."
    )
    row_key: list[str] = Field(
        default_factory=list,
        description="Columns that find a row in the query's result; a rejected row without an ID is shown by "
        "them (by all its columns when empty).",
    )
    on_primary_id: Literal["migrate", "keep"] = Field(
        default="migrate",
        description="When the primary ID appears for a record synced under its fallback ID: "
        "migrate (create under the primary ID, delete the fallback one) or keep both.",
    )
    mode: Literal["upsert", "update"] = "upsert"
    filter: Filter | None = None
    mapping: dict[str, str] = Field(description="Userflow attribute -> SQL expression over the query's columns.")
    transform: PythonTransform | None = None
    output_schema: dict[str, SchemaField] = Field(default_factory=dict)
    memberships: MembershipSpec | None = None
    prune_memberships: bool = False
    nulls: Literal["clear", "keep"] = Field(
        default="clear",
        description="An attribute that became null or left the mapping: clear (send null once) or keep.",
    )
    max_rejected_fraction: float = 0.05
    deletes: Literal["ignore", "delete"] = Field(
        default="ignore",
        description="delete: records that left the query's result since the last full read are deleted in Userflow.",
    )
    max_delete_fraction: float = Field(
        default=0.05, description="A run that would delete more than this share of synced records stops first."
    )
    remove_memberships: bool = Field(
        default=False,
        description="With pruning off, remove a membership that left the warehouse by its own request.",
    )

    @field_validator("max_rejected_fraction", "max_delete_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"fractions must be between 0 and 1, got {value}")
        return value

    @model_validator(mode="after")
    def _schema_names_known(self) -> "ObjectSpec":
        produced = set(self.mapping) | set(self.transform.outputs if self.transform else [])
        unknown = sorted(set(self.output_schema) - produced)
        if unknown:
            raise ValueError(f"output_schema names attributes that are not mapped: {', '.join(unknown)}")
        if not produced:
            raise ValueError("mapping (or transform.outputs) must produce at least one attribute")
        return self


class EventsSpec(dg.Model, dg.Resolvable):
    """Product events sent to Userflow to trigger flows; each warehouse event is sent once."""

    query: str = Field(default="events.sql", description="SQL file in the sql folder.")
    key_column: str = Field(description="The column that identifies an event (e.g. event_id): sent once per key.")
    name: str = Field(description="SQL expression for the event name (case-sensitive in Userflow).")
    user_id: str | None = Field(default=None, description="SQL expression for the user ID.")
    group_id: str | None = Field(default=None, description="SQL expression for the group ID.")
    time: str | None = Field(default=None, description="SQL expression for when it happened (backdates the event).")
    attributes: dict[str, str] = Field(default_factory=dict, description="Event attribute -> SQL expression.")
    filter: Filter | None = None
    delivery: Literal["at_least_once", "at_most_once"] = Field(
        default="at_least_once",
        description="After a timeout or dropped connection the event may or may not have been recorded: "
        "at_least_once sends it again (possible duplicate), at_most_once does not (possible loss).",
    )
    unknown_users: Literal["wait", "send"] = Field(
        default="wait",
        description="An event of a user the sync has not written (filtered out, not in the users query): "
        "wait until it is, or send anyway and let Userflow create that user empty. Only with users synced.",
    )
    max_rejected_fraction: float = 0.05

    @model_validator(mode="after")
    def _someone(self) -> "EventsSpec":
        if not self.user_id and not self.group_id:
            raise ValueError("events need user_id or group_id (or both)")
        return self


SchedulePeriod = Literal["5m", "15m", "30m", "1h", "2h", "3h", "6h", "8h", "12h", "24h"]


class ScheduleSpec(dg.Model, dg.Resolvable):
    """When the sync runs by itself (seed periods 5m..24h, from a start minute of the day)."""

    period: SchedulePeriod = "1h"
    start_minute: int = Field(default=0, description="Minute of the day (0-1439) of the first run.")
    enabled: bool = Field(default=False, description="Running when the code location loads (else: off until started).")

    @field_validator("start_minute")
    @classmethod
    def _minute_of_day(cls, value: int) -> int:
        if not 0 <= value < 24 * 60:
            raise ValueError(f"start_minute must be a minute of the day (0-1439), got {value}")
        return value


class SensorSpec(dg.Model, dg.Resolvable):
    """A sync when the warehouse changed: a cheap probe per source query, compared tick to tick."""

    enabled: bool = False
    interval_seconds: int = Field(default=60, description="Seconds between probes.")
    probes: dict[str, str] = Field(
        default_factory=dict,
        description="Object (users, groups, events) -> a SQL query returning one row that changes when the "
        "source does; default: count(*) and max(updated_at) of the source query's result.",
    )


class BackfillSpec(dg.Model, dg.Resolvable):
    """Historical users synced in slices by signup date, each slice a partition in the UI."""

    signup_column: str = Field(default="signed_up_at", description="Column of users.sql the slices are cut on.")
    partition: Literal["monthly", "daily"] = "monthly"
    start: str | None = Field(
        default=None,
        description="First slice (YYYY-MM-DD); default 2020-01-01. Fixed, never read from the warehouse, so every "
        "process shows the same partitions; set it to your first signup.",
    )


class WarehouseSpec(dg.Model, dg.Resolvable):
    """Where the source queries run: a DuckDB file (`database`, the default) or a `url`."""

    # A password put by mistake in `url` or `password_env` must not come back in the error.
    model_config = ConfigDict(**dg.Model.model_config, hide_input_in_errors=True)

    database: str = Field(default="data/warehouse.duckdb", description="The warehouse DuckDB file.")
    url: str | None = Field(
        default=None,
        description="Any other warehouse, instead of database: postgresql://reader@host:5432/db, "
        "or duckdb: for Parquet/CSV/JSON files the queries read. Never a password.",
    )
    password_env: str | None = Field(
        default=None, description="With url: the environment variable holding the password (read at connect time)."
    )
    sql_dir: str = Field(default="sql", description="Folder of the source queries.")
    late_arrival_minutes: int = Field(
        default=60, description="$LAST_SYNC_TIMESTAMP is the last sync's start minus this, for late rows."
    )

    @field_validator("late_arrival_minutes")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        return _at_least(value, 0, "late_arrival_minutes")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                driver_for(url_scheme(value))
            except SourceError as error:
                raise ValueError(f"warehouse.url: {error}") from None
            if urlsplit(value).password is not None:
                raise ValueError(
                    f"warehouse.url {redact_url(value)!r} has a password in it; name the environment "
                    "variable that holds it in warehouse.password_env instead"
                )
        return value

    @field_validator("password_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            # Not echoed: it may be the password itself, put there by mistake.
            raise ValueError(
                "warehouse.password_env is not an environment variable name (letters, digits, _); "
                "give the variable's name (e.g. USERFLOW_WAREHOUSE_PASSWORD), never the password"
            )
        return value

    @model_validator(mode="after")
    def _one_warehouse(self) -> "WarehouseSpec":
        if self.url is not None and "database" in self.model_fields_set:
            raise ValueError("warehouse: give database (a DuckDB file) or url (any other warehouse), not both")
        if self.password_env is not None and self.url is None:
            raise ValueError("warehouse.password_env is for a url warehouse; a DuckDB file has no password")
        return self


class UserflowSpec(dg.Model, dg.Resolvable):
    """Where to write. The API key is never here: it comes from the variable `api_key_env` names."""

    api_key_env: str = Field(
        default="USERFLOW_API_KEY", description="The environment variable holding this sync's API key."
    )
    pool: str | None = Field(
        default=None,
        description="The Dagster pool of the steps that call Userflow; default: one per API key, so runs that "
        "share a key take turns and runs of different keys go in parallel.",
    )

    base_url: str = Field(
        default="https://api.userflow.com",
        description="https://api.userflow.com, https://api.eu.userflow.com for the EU, or the emulator's URL.",
    )
    requests_per_minute: int | None = Field(
        default=None, description="The key's budget if known (never exceeded); unset adapts to 429s."
    )
    max_concurrency: int = Field(default=16, description="Most requests in flight at once.")
    allow_insecure_http: bool = Field(
        default=False,
        description="Allow a plain-http base_url on a host other than loopback (the key then travels unencrypted).",
    )

    @field_validator("requests_per_minute", "max_concurrency")
    @classmethod
    def _positive(cls, value: int | None) -> int | None:
        return None if value is None else _at_least(value, 1, "requests_per_minute and max_concurrency")


class MirrorSpec(dg.Model, dg.Resolvable):
    """The read side: Userflow's users, groups, definitions, content and sessions copied back."""

    enabled: bool = Field(default=False, description="Build the mirror assets and the userflow_mirror job.")
    schema_name: str = Field(default="userflow", description="Schema of the warehouse file the tables go into.")


class SyncSpec(dg.Model):
    """The whole spec: where to read, where to write, where to keep state, and each object to sync."""

    name: str = Field(
        default="",
        description="Sets this sync apart from others in the same code location (e.g. staging): its asset keys "
        "start with it, its jobs, schedules, sensors and resources are prefixed with it. Empty: no prefix.",
    )

    warehouse: WarehouseSpec = Field(default_factory=WarehouseSpec)
    userflow: UserflowSpec = Field(default_factory=UserflowSpec)
    state_database: str = Field(
        default="data/state.duckdb",
        description="The sync state: a DuckDB file (ours; also the work database), or a postgresql:// URL "
        "without password, for runs in fresh containers or on several machines.",
    )
    state_password_env: str | None = Field(
        default=None,
        description="Environment variable holding the Postgres state's password (default: libpq's PGPASSWORD).",
    )
    work_database: str = Field(
        default="data/work.duckdb",
        description="The local DuckDB file of a run's work tables when the state is in Postgres; may be thrown away.",
    )
    log_retention_days: int = Field(default=30, description="Days the sync log keeps each request's outcome.")
    log_writeback: bool = Field(
        default=False,
        description="Also append each sink's log rows to <log_writeback_schema>.sync_log in the warehouse "
        "(a Postgres warehouse or a DuckDB warehouse file only).",
    )
    log_writeback_schema: str = Field(
        default="userflow_sync", description="The warehouse schema of the written-back sync_log (created if missing)."
    )
    users: ObjectSpec
    groups: ObjectSpec | None = None
    events: EventsSpec | None = None
    mirror: MirrorSpec = Field(default_factory=MirrorSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    sensor: SensorSpec = Field(default_factory=SensorSpec)
    backfill: BackfillSpec = Field(default_factory=BackfillSpec)

    @field_validator("log_writeback_schema")
    @classmethod
    def _a_schema_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", value):
            raise ValueError(
                f"log_writeback_schema {value!r}: lower-case letters, digits and _ only, not starting with a digit"
            )
        return value

    @model_validator(mode="after")
    def _writeback_target(self) -> "SyncSpec":
        if self.log_writeback and self.warehouse.url is not None:
            scheme = urlsplit(self.warehouse.url).scheme.lower()
            if scheme not in ("postgresql", "postgres"):
                raise ValueError(
                    f"log_writeback: true needs a Postgres warehouse (warehouse.url postgresql://...) or a DuckDB "
                    f"warehouse file (warehouse.database); a {scheme}: warehouse is only ever read, so set "
                    "log_writeback to false"
                )
        return self

    @field_validator("name")
    @classmethod
    def _an_identifier(cls, value: str) -> str:
        if value and not (value.isascii() and value.isidentifier()):
            raise ValueError(f"name {value!r}: letters, digits and _ only, not starting with a digit (e.g. staging)")
        return value

    @field_validator("state_database")
    @classmethod
    def _stem_is_not_a_schema(cls, value: str) -> str:
        if value.startswith(("postgresql://", "postgres://")):
            if "@" in value and ":" in value.split("://", 1)[1].split("@", 1)[0]:
                raise ValueError(
                    "state_database: the URL carries a password; put it in an environment variable named by "
                    "state_password_env (or PGPASSWORD) instead"
                )
            return value
        # DuckDB names a database after its file, and a state table named by schema must mean the schema.
        stem = value.replace("\\", "/").rsplit("/", 1)[-1].split(".", 1)[0]
        if stem.lower() in STATE_SCHEMAS:
            raise ValueError(
                f"state_database {value!r}: a file named {stem!r} clashes with the schema of that name "
                f"inside it; choose another name (e.g. state.duckdb)"
            )
        return value
