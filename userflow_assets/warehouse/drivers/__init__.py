"""The optional warehouses: each URL scheme, the module that reads it, and the extra that installs its driver.

Registering imports nothing of a driver; `source.load_factory` imports the module on first use.
"""

from userflow_assets.warehouse.source import Driver, register

_PACKAGE = "userflow_assets.warehouse.drivers"

register("snowflake", Driver(f"{_PACKAGE}.snowflake", "snowflake_source", "snowflake", "snowflake"))
register("bigquery", Driver(f"{_PACKAGE}.bigquery", "bigquery_source", "bigquery", "bigquery"))
register("redshift", Driver(f"{_PACKAGE}.redshift", "redshift_source", "redshift", "redshift"))
register("databricks", Driver(f"{_PACKAGE}.databricks", "databricks_source", "databricks", "databricks"))
register("mysql", Driver(f"{_PACKAGE}.mysql", "mysql_source", "mysql", "mysql"))
