"""Walking Userflow's lists into staging tables (see `store.StagedTables`).

Each walk pages through one list 100 items at a time with the shared client (its limiter,
retries and counters) and hands rows to the staging tables as pages arrive.
"""

import logging
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timedelta

from userflow_assets.client import UserflowClient
from userflow_assets.mirror import tables as t
from userflow_assets.mirror.store import StagedTables

logger = logging.getLogger("userflow_assets.mirror")


async def read_users(client: UserflowClient, staged: StagedTables) -> None:
    """Users with their memberships in one walk: expanded, they cost no extra requests."""
    async for user in client.list_users(expand=["memberships"]):
        staged.add(t.USERS.name, [t.user_row(user)])
        staged.add(t.MEMBERSHIPS.name, (t.membership_row(m, user["id"]) for m in user.get("memberships") or []))


async def read_groups(client: UserflowClient, staged: StagedTables) -> None:
    async for group in client.list_groups():
        staged.add(t.GROUPS.name, [t.group_row(group)])


async def read_attribute_definitions(client: UserflowClient, staged: StagedTables) -> None:
    async for definition in client.list_attribute_definitions():  # every scope in one list
        staged.add(t.ATTRIBUTE_DEFINITIONS.name, [t.attribute_definition_row(definition)])


async def read_event_definitions(client: UserflowClient, staged: StagedTables) -> None:
    async for definition in client.list_event_definitions():
        staged.add(t.EVENT_DEFINITIONS.name, [t.event_definition_row(definition)])


async def read_content(client: UserflowClient, staged: StagedTables) -> None:
    """Content, then every version (drafts too) with its questions and tasks."""
    async for content in client.list_content():
        staged.add(t.CONTENT.name, [t.content_row(content)])
    async for version in client.list_content_versions():
        staged.add(t.CONTENT_VERSIONS.name, [t.version_row(version)])
        staged.add(t.CONTENT_QUESTIONS.name, t.question_rows(version))
        staged.add(t.CONTENT_TASKS.name, t.task_rows(version))


@dataclass
class SessionWalk:
    read: int = 0
    stopped_early: bool = False
    unordered: bool = False  # the list was not newest first, so it was read to the end


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)  # 3.11+ reads the Z suffix


async def read_sessions(client: UserflowClient, staged: StagedTables, cutoff: datetime | None) -> SessionWalk:
    """Sessions newest first, with answers; stops at the first one created before `cutoff`.

    With no cutoff every session is read. Sessions created at or after the cutoff are read
    (again), so sessions sharing the newest stored timestamp are never skipped. Should the
    API not honour `order_by=-created_at`, the walk notices the order and reads to the end.
    """
    walk = SessionWalk()
    previous: datetime | None = None
    params = {"expand[]": ["answers"], "order_by": "-created_at"}
    async with aclosing(client.paginate("/content_sessions", params)) as sessions:
        async for session in sessions:
            created = parse_time(session["created_at"])
            if previous is not None and created > previous and not walk.unordered:
                walk.unordered = True
                logger.warning("content sessions came back oldest first; reading all of them")
            previous = created
            if cutoff is not None and created < cutoff and not walk.unordered:
                walk.stopped_early = True
                break
            walk.read += 1
            staged.add(t.CONTENT_SESSIONS.name, [t.session_row(session)])
            staged.add(t.CONTENT_SESSION_ANSWERS.name, t.answer_rows(session))
            staged.add(t.CONTENT_SESSION_TASK_COMPLETIONS.name, t.task_completion_rows(session))
    return walk


def session_cutoff(newest_stored: datetime | None, reread_days: float) -> datetime | None:
    if newest_stored is None:
        return None
    return newest_stored - timedelta(days=reread_days)
