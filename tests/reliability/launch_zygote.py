"""A process that has imported the `dg` CLI, Dagster and the project once, and forks a child per
`dg launch` of the crash tests.

Each child is a process of its own: it takes the launch's working directory, environment,
argv and output files, runs the `dg` script's entry point (`dagster_dg_cli.cli:main`) and exits
as that script would; a failpoint's SIGKILL ends it like any other process. What it saves is the
few seconds each `dg launch` spends importing before it reads the project.

Protocol, one JSON object a line: a request on stdin ({"argv", "cwd", "env", "stdout",
"stderr"}) is answered on stdout with {"pid"} when the child is forked, then {"status"} with
its `subprocess` return code (-N when signal N ended it) once it has been reaped.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any, NoReturn

# What a launch imports before and while it runs the job, so no child pays for it again.
PRELOAD = (
    "dagster_dg_cli.cli",
    "dagster_dg_cli.cli.launch",
    "dagster._cli.job",
    "dagster._core.execution.api",
    "dagster._core.execution.plan.active",
    "dagster._core.executor.in_process",
    "dagster._core.instance.factory",
    "dagster._core.storage.local_compute_log_manager",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.workspace.autodiscovery",
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage",
    "alembic.command",
    "pandas",
    "pyarrow",
    "duckdb",
    "httpx",
    "httpcore",
    "anyio._backends._asyncio",
    "h11",
    "sniffio",
    "jinja2",
    "fsspec",
    "upath",
    "tomlkit",
    "lz4.frame",
    "userflow_assets.definitions",
    "userflow_assets.orchestration.component",
)


def return_code(wait_status: int) -> int:
    """The status as `subprocess` reports it: the exit code, or -N for a kill by signal N."""
    return os.waitstatus_to_exitcode(wait_status)


def become_launch(request: dict[str, Any], reply_fd: int) -> NoReturn:
    """In the forked child: take the launch's place and run the CLI; exits the process."""
    os.close(reply_fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.close(stdin)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    sys.argv = list(request["argv"])
    from dagster_dg_cli.cli import main

    # As the `dg` script: its SystemExit unwinds through `serve`, so the interpreter shuts down
    # the usual way (atexit handlers, buffered output flushed).
    sys.exit(main())


def serve(reply_fd: int) -> None:
    for line in sys.stdin:
        request = json.loads(line)
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            become_launch(request, reply_fd)
        os.write(reply_fd, (json.dumps({"pid": pid}) + "\n").encode())
        _, status = os.waitpid(pid, 0)
        os.write(reply_fd, (json.dumps({"status": return_code(status)}) + "\n").encode())


def warm_cli() -> None:
    """`dg launch --help`: loads the CLI's commands and their imports, and does nothing else."""
    from dagster_dg_cli.cli import main

    argv = sys.argv
    sys.argv = ["dg", "launch", "--help"]
    try:
        main()
    except SystemExit:
        pass
    finally:
        sys.argv = argv


def main() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    # Replies go out on a copy of stdout; each child's fd 1 is its own output file.
    reply_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    warm_cli()
    sys.stdout.flush()
    os.write(reply_fd, b'{"ready": true}\n')
    serve(reply_fd)


if __name__ == "__main__":
    main()
