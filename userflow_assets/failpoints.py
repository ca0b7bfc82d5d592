"""Named points where a test can kill the process, to prove a crash there loses nothing.

Armed only by the environment: `USERFLOW_FAILPOINT=<name>[:<n>]` kills the process with
SIGKILL the n-th time (default the first) it reaches that point. Unset, `reach` is a dict
lookup and returns.

The points of the users and groups path (`POINTS`):
  query            warehouse: the source query's rows written to staging, not committed
  plan             sink: the plan stored and the run started in the state, nothing sent
  mid_batch        sink: half a batch confirmed by Userflow, none of it recorded in the state
  between_batches  sink: a batch's outcome committed, the next batch not yet recorded
  state_write      state: a batch's outcome written inside its transaction, not committed

The points of the events sink (`EVENT_POINTS`; an event confirmed but not yet recorded is
sent again by the next run, which at-least-once delivery allows, so these are tested apart):
  events_mid_batch        half a batch of events confirmed, none of it recorded
  events_between_batches  a batch of events recorded (committed), the next not yet
  events_state_write      a batch with confirmed events written in its transaction, not committed
"""

import os
import signal
from collections import Counter

POINTS = ("query", "plan", "mid_batch", "between_batches", "state_write")
EVENT_POINTS = ("events_mid_batch", "events_between_batches", "events_state_write")
_reached: Counter[str] = Counter()


def reach(name: str) -> None:
    armed = os.environ.get("USERFLOW_FAILPOINT")
    if not armed:
        return
    point, _, nth = armed.partition(":")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
