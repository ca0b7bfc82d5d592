"""A sample warehouse to rehearse a sync with: users, accounts, memberships and events.

`python -m userflow_assets.sample --users N --seed S --out data/warehouse.duckdb` writes it;
`generate_warehouse()` does the same from code. See `dirty.py` for the planted dirty rows.
"""

from userflow_assets.sample.build import generate_warehouse
from userflow_assets.sample.dirty import DIRTY_KINDS, DIRTY_RATES

__all__ = ["DIRTY_KINDS", "DIRTY_RATES", "generate_warehouse"]
