"""The pool of a sync's Userflow-calling steps: runs that share an API key share one pool."""

import os
from collections.abc import Mapping

from userflow_assets.redaction import fingerprint
from userflow_assets.settings import API_KEY_VARIABLE, API_POOL


def api_pool(key_variable: str, environ: Mapping[str, str] = os.environ) -> str:
    """The pool of a sync whose key is in `key_variable`.

    The shipped key's pool keeps its name; another key's is named by the key's fingerprint
    (never the key), so two variables holding one key still share a pool. A key not set
    where the definitions load falls back to the shipped pool: shared, so its runs may wait,
    but they never exceed a key's budget.
    """
    key = environ.get(key_variable, "")
    if key_variable == API_KEY_VARIABLE or not key or key == environ.get(API_KEY_VARIABLE):
        return API_POOL
    return f"{API_POOL}_{fingerprint(key).removeprefix('sha256:')}"
