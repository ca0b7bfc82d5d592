"""Product events: read from the warehouse, mapped by the events spec, sent to Userflow once each."""

from userflow_assets.events.assets import build_events_defs

__all__ = ["build_events_defs"]
