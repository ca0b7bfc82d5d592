"""The read side: Userflow (users, groups, definitions, content, sessions) copied into the warehouse,
the checklist drop-off, and the drift report against the sync state."""

from userflow_assets.mirror.assets import MIRROR_JOB, build_mirror_defs
from userflow_assets.mirror.store import MirrorDatabase

__all__ = ["MIRROR_JOB", "MirrorDatabase", "build_mirror_defs"]
