"""Serving the emulator on a port: `running_emulator()` for tests and scripts, and the CLI.

CLI: `python -m userflow_assets.emulator --host 127.0.0.1 --port 0 [--port-file PATH]
[--api-key K] [--rate-limit N --rate-window S] [--max-concurrent C] [--retry-after]
[--latency-ms MS] [--latency-jitter-ms MS] [--fault-500 P] [--fault-503 P]
[--fault-drop-before P] [--fault-lost-response P] [--fault-429 P] [--fault-seed N] [--delete-status 200|204]
[--no-seed-content] [--log-level LEVEL]`.

Port 0 picks a free port. Once the server accepts connections it prints
`Userflow emulator listening on http://HOST:PORT` and writes PORT to --port-file (written
atomically, removed again on exit). The key comes from --api-key, else the environment
variable USERFLOW_EMULATOR_API_KEY, else the default; it is never printed. SIGTERM and
SIGINT stop the server gracefully (exit status 0).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from userflow_assets.emulator.app import create_app
from userflow_assets.emulator.config import EmulatorConfig

API_KEY_ENV = "USERFLOW_EMULATOR_API_KEY"
_STARTUP_TIMEOUT_S = 15.0


class _Server(uvicorn.Server):
    """uvicorn server that reports when it accepts connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()


def _bind(host: str, port: int) -> socket.socket:
    # Binding ourselves gives the real port before uvicorn starts, even for port 0.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: Any, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        backlog=2048,
        # Longer than any client's idle-connection expiry (httpx: 5 s). With equal timeouts a
        # client reuses a connection in the instant the server closes it: a spurious ReadError.
        timeout_keep_alive=30,
    )


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextmanager
def serve_app(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve an ASGI app (the emulator, or one wrapping it) with uvicorn in a background thread;
    yield its base URL. Returns only once the server accepts connections; stops it cleanly on exit.
    """
    sock = _bind(host, port)
    server = _Server(_uvicorn_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="userflow-emulator", daemon=True)
    thread.start()
    try:
        while not server.ready.wait(0.05):
            if not thread.is_alive():
                raise RuntimeError("the Userflow emulator failed to start")
        yield _url(host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=_STARTUP_TIMEOUT_S)
        sock.close()


@contextmanager
def running_emulator(config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve a fresh emulator on a port (see `serve_app`); yield its base URL."""
    with serve_app(create_app(config), host, port) as url:
        yield url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m userflow_assets.emulator", description="Local Userflow API emulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    parser.add_argument("--api-key", help=f"Bearer key to require (default: ${API_KEY_ENV} or the built-in key)")
    parser.add_argument("--rate-limit", type=int, dest="rate_limit_requests", help="max requests per window")
    parser.add_argument("--rate-window", type=float, dest="rate_limit_window_s", default=60.0, help="window seconds")
    parser.add_argument("--max-concurrent", type=int, help="max requests in flight")
    parser.add_argument("--retry-after", action="store_true", help="send Retry-After on 429")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--latency-jitter-ms", type=float, default=0.0)
    parser.add_argument("--fault-500", type=float, default=0.0)
    parser.add_argument("--fault-503", type=float, default=0.0)
    parser.add_argument("--fault-drop-before", type=float, default=0.0)
    parser.add_argument("--fault-lost-response", type=float, default=0.0)
    parser.add_argument("--fault-429", type=float, default=0.0, help="share of requests answered 429 at random")
    parser.add_argument("--fault-seed", type=int)
    parser.add_argument("--delete-status", type=int, default=200, choices=(200, 204))
    parser.add_argument("--no-seed-content", action="store_false", dest="seed_content")
    parser.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    return parser


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> EmulatorConfig:
    api_key = args.api_key or environ.get(API_KEY_ENV) or EmulatorConfig.api_key
    return EmulatorConfig(
        api_key=api_key,
        rate_limit_requests=args.rate_limit_requests,
        rate_limit_window_s=args.rate_limit_window_s,
        max_concurrent=args.max_concurrent,
        retry_after=args.retry_after,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        fault_500=args.fault_500,
        fault_503=args.fault_503,
        fault_drop_before=args.fault_drop_before,
        fault_lost_response=args.fault_lost_response,
        fault_429=args.fault_429,
        fault_seed=args.fault_seed,
        delete_status=args.delete_status,
        seed_content=args.seed_content,
    )


class _AnnouncingServer(uvicorn.Server):
    """Prints the URL and writes the port file once connections are accepted."""

    def __init__(self, config: uvicorn.Config, url: str, port: int, port_file: Path | None) -> None:
        super().__init__(config)
        self._url, self._port, self._port_file = url, port, port_file

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        print(f"Userflow emulator listening on {self._url}", flush=True)
        if self._port_file is not None:
            # Write then rename, so a script polling for the file never reads it half-written.
            tmp = self._port_file.with_name(self._port_file.name + ".tmp")
            tmp.write_text(f"{self._port}\n")
            tmp.replace(self._port_file)


    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the signal after its graceful shutdown, which would end the
        # process with the signal's status; a requested stop is a clean exit here.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def _request_stop(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True  # a second signal skips waiting for open requests
        self.should_exit = True


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.port_file is not None:
        args.port_file.unlink(missing_ok=True)  # a stale file would announce a dead server
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    server = _AnnouncingServer(
        _uvicorn_config(create_app(config), args.log_level), _url(args.host, port), port, args.port_file
    )
    try:
        server.run(sockets=[sock])  # uvicorn handles SIGINT/SIGTERM as a graceful shutdown
    finally:
        sock.close()
        if args.port_file is not None:
            args.port_file.unlink(missing_ok=True)
    return 0 if server.started else 1
