"""Named points where a test can kill the process, to prove a crash there loses nothing.

Armed only by the environment: `USERFLOW_FAILPOINT=<name>[:<n>]` kills the process with
SIGKILL the n-th time (default the first) it reaches that point. Unset, `reach` is a dict
lookup and returns.
"""

import os
import signal
from collections import Counter

POINTS = ("query", "plan", "mid_batch", "between_batches", "state_write")
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
