"""Snowflake, through the ADBC Snowflake driver (`pip install 'userflow-assets[snowflake]'`).

URL: `snowflake://USER@ACCOUNT/DATABASE/SCHEMA?warehouse=WH&role=ROLE`; the password from the
environment variable the spec names. With `private_key_file=/path/key.p8` the user signs in
with a key pair instead, and the variable (if any) holds the key's passphrase. `host`, `port`
and `protocol` reach an account through another address (PrivateLink, a proxy).

Snowflake has no read-only session: the role (`role=`) is what keeps the read a read; the
README lists the grants of a role that can only read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from userflow_assets.warehouse.drivers.adbc import AdbcSource
from userflow_assets.warehouse.drivers.common import keep_secret, parse_url
from userflow_assets.warehouse.params import Style
from userflow_assets.warehouse.source import SourceError, count_and

_OPTION = "adbc.snowflake.sql."
# URL option -> ADBC database option.
OPTIONS = {
    "warehouse": _OPTION + "warehouse",
    "role": _OPTION + "role",
    "host": _OPTION + "uri.host",
    "port": _OPTION + "uri.port",
    "protocol": _OPTION + "uri.protocol",
    "private_key_file": _OPTION + "client_option.jwt_private_key",
}


@dataclass(frozen=True)
class SnowflakeSource(AdbcSource):
    kind = "snowflake"
    style = Style.QMARK

    def checksum_sql(self, source_sql: str, columns: Sequence[str]) -> str:
        """Row count and an order-independent hash of every row (HASH_AGG is NULL-safe)."""
        return count_and("HASH_AGG(*)", source_sql)


def db_kwargs(url: str, password: str | None) -> tuple[str, dict[str, str]]:
    """Where (for messages) and the ADBC database options for `url`."""
    parsed = parse_url(url, "snowflake", OPTIONS, ("database", "schema"))
    if not parsed.user:
        raise SourceError("the snowflake warehouse URL names no user: snowflake://USER@ACCOUNT/DATABASE/SCHEMA")
    kwargs = {
        "username": parsed.user,
        _OPTION + "account": parsed.host,
        _OPTION + "client_option.login_timeout": f"{parsed.connect_timeout()}s",
        # DuckDB keeps microseconds; nanoseconds would overflow on dates past 2262 (9999-12-31 sentinels).
        _OPTION + "client_option.max_timestamp_precision": "microseconds",
        _OPTION + "client_option.app_name": "userflow-assets",
    }
    kwargs.update({OPTIONS[k]: v for k, v in parsed.options.items() if k in OPTIONS})
    if not parsed.path:
        raise SourceError("the snowflake warehouse URL names no database: snowflake://USER@ACCOUNT/DATABASE/SCHEMA")
    kwargs[_OPTION + "db"] = parsed.path[0]
    if len(parsed.path) > 1:
        kwargs[_OPTION + "schema"] = parsed.path[1]
    if "private_key_file" in parsed.options:
        kwargs[_OPTION + "auth_type"] = "auth_jwt"
        if password:
            kwargs[_OPTION + "client_option.jwt_private_key_pkcs8_password"] = password
    elif password:
        kwargs["password"] = password
    address = parsed.options.get("host", f"{parsed.host}.snowflakecomputing.com")
    if "port" in parsed.options:
        address += f":{parsed.options['port']}"
    where = f"{address} (database {'.'.join(parsed.path)})"
    return where, kwargs


def snowflake_source(
    url: str, *, password: str | None = None, base_dir: Path | None = None
) -> SnowflakeSource:
    keep_secret(password)
    where, kwargs = db_kwargs(url, password)
    return SnowflakeSource(where=where, dbapi_module="adbc_driver_snowflake.dbapi", db_kwargs=kwargs)
