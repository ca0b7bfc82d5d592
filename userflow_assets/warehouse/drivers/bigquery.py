"""BigQuery, through the ADBC BigQuery driver (`pip install 'userflow-assets[bigquery]'`).

URL: `bigquery://PROJECT/DATASET?location=EU`; unqualified table names resolve in DATASET.
Credentials: the service-account key JSON in the environment variable the spec names, or,
without one, Google's application default credentials (`GOOGLE_APPLICATION_CREDENTIALS`, a
workload identity). Parameters are BigQuery named parameters (`@NAME`).

BigQuery has no read-only session: the service account's roles keep the read a read
(`roles/bigquery.dataViewer` on the dataset, `roles/bigquery.jobUser` and
`roles/bigquery.readSessionUser` on the project; README).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from userflow_assets.warehouse.drivers.adbc import AdbcSource
from userflow_assets.warehouse.drivers.common import keep_secret, parse_url
from userflow_assets.warehouse.params import Style
from userflow_assets.warehouse.source import SourceError, count_and

_OPTION = "adbc.bigquery.sql."
OPTIONS = {"location": _OPTION + "location"}


@dataclass(frozen=True)
class BigQuerySource(AdbcSource):
    kind = "bigquery"
    style = Style.AT

    def checksum_sql(self, source_sql: str, columns: Sequence[str]) -> str:
        """Row count and an order-independent hash of every row (its JSON text fingerprinted)."""
        return count_and("BIT_XOR(FARM_FINGERPRINT(TO_JSON_STRING(src)))", source_sql)


def _keep_key_secret(credentials: str) -> None:
    """The whole JSON is a secret; so is its private key alone, should a message quote only that."""
    keep_secret(credentials)
    try:
        key = json.loads(credentials).get("private_key")
    except (ValueError, AttributeError):
        raise SourceError("the bigquery credentials in the environment are not a service-account key JSON") from None
    if isinstance(key, str):
        keep_secret(key)
        keep_secret(key.replace("\n", "\\n"))  # as it appears inside quoted JSON


def options(url: str, credentials: str | None) -> tuple[str, dict[str, str], dict[str, str]]:
    """Where (for messages), the ADBC database options and the statement options for `url`."""
    parsed = parse_url(url, "bigquery", OPTIONS, ("dataset",))
    if not parsed.path:
        raise SourceError("the bigquery warehouse URL names no dataset: bigquery://PROJECT/DATASET")
    project, dataset = parsed.host, parsed.path[0]
    db = {_OPTION + "project_id": project, _OPTION + "dataset_id": dataset}
    db.update({OPTIONS[k]: v for k, v in parsed.options.items() if k in OPTIONS})
    if credentials:
        db[_OPTION + "auth_type"] = _OPTION + "auth_type.json_credential_string"
        db[_OPTION + "auth_credentials"] = credentials
    statement = {
        _OPTION + "query.parameter_mode": _OPTION + "query.parameter_mode_named",
        _OPTION + "query.default_project_id": project,
        _OPTION + "query.default_dataset_id": dataset,
    }
    return f"project {project} (dataset {dataset})", db, statement


def bigquery_source(
    url: str, *, password: str | None = None, base_dir: Path | None = None
) -> BigQuerySource:
    if password:
        _keep_key_secret(password)
    where, db, statement = options(url, password)
    return BigQuerySource(
        where=where, dbapi_module="adbc_driver_bigquery.dbapi", db_kwargs=db, statement_options=statement
    )
