"""A loopback port where connections are refused, for as long as the test needs it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def refused_port() -> Iterator[int]:
    """A port bound but never listened on: a connection is refused, and nothing else can take
    the port meanwhile (a port merely closed could be reused by another test's server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
