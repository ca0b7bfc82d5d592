"""The transform stage: the sync spec applied in DuckDB (filter, mapping, IDs, schema, memberships)."""

from userflow_assets.transform.build import TransformResult, build_records
from userflow_assets.transform.errors import SpecError

__all__ = ["SpecError", "TransformResult", "build_records"]
