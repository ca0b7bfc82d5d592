"""The bulk runner: one result per record, failures isolated, a bounded worker pool."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import aclosing

import pytest
from client_testkit import Target

from userflow_assets.client import (
    Outcome,
    ProgressLog,
    UserflowAmbiguousError,
    UserflowBadRequestError,
    run_bulk,
)


async def test_each_record_gets_one_result_and_failures_do_not_cancel_others(target: Target) -> None:
    await target.queue_faults("lost_response", path_prefix="/events")
    records = [{"name": "good", "user_id": f"u{n}"} for n in range(10)]
    # The emulator refuses the name: 400. Last, so the lost response (drawn by whichever request
    # reaches the emulator first) went to another: 4 at a time pull it only after 6 finished.
    records[9] = {"name": "bad/name", "user_id": "u9"}
    async with target.client(max_concurrency=4) as client:
        results = [
            r async for r in client.bulk(records, lambda rec: client.track_event(rec["name"], user_id=rec["user_id"]))
        ]
    by_outcome: dict[Outcome, list[str]] = {}
    for result in results:
        by_outcome.setdefault(result.outcome, []).append(result.item["user_id"])
    assert len(results) == 10
    assert sorted(by_outcome[Outcome.FAILED]) == ["u9"]
    assert len(by_outcome[Outcome.AMBIGUOUS]) == 1
    assert len(by_outcome[Outcome.OK]) == 8
    failed = next(r for r in results if r.outcome is Outcome.FAILED)
    assert isinstance(failed.error, UserflowBadRequestError) and failed.error.record_id == "u9"
    ambiguous = next(r for r in results if r.outcome is Outcome.AMBIGUOUS)
    assert isinstance(ambiguous.error, UserflowAmbiguousError)
    events = (await target.inspect("GET", "/state"))["events"]
    assert len(events) == 9  # 8 confirmed plus the one whose answer was lost


async def test_worker_pool_pulls_lazily_and_stops_when_the_consumer_stops(asgi_target: Target) -> None:
    pulled = 0
    closed = False

    def records() -> Iterator[str]:
        nonlocal pulled, closed
        try:
            for n in range(1_000_000):
                pulled += 1
                yield f"u{n}"
        finally:
            closed = True

    async with asgi_target.client() as client:
        seen = 0
        async with aclosing(client.bulk(records(), client.upsert_user, concurrency=4)) as results:
            async for result in results:
                assert result.ok
                seen += 1
                if seen == 20:
                    break
    assert closed
    assert 20 <= pulled <= 20 + 4 * 4  # a bounded read-ahead, never the whole input


async def test_an_error_in_the_input_ends_the_batch() -> None:
    async def succeed(item: int) -> int:
        return item

    def records() -> Iterator[int]:
        yield 1
        raise RuntimeError("warehouse cursor broke")

    with pytest.raises(RuntimeError, match="warehouse cursor broke"):
        async for _ in run_bulk(records(), succeed, concurrency=2):
            pass


async def test_progress_line_at_most_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    progress = ProgressLog("users", 1000, logger=logging.getLogger("userflow_assets.client"), interval_s=5.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="userflow_assets.client")
    for n in range(400):
        now[0] = n * 0.025  # 40 records per second for 10 seconds
        progress.update("failed" if n == 7 else "ok")
    progress.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "users: 201/1000 (20.1%), 40.2/s, ETA 20s, 1 failed, 0 ambiguous",
        "users: 400/1000 (40.0%), 40.1/s, ETA 15s, 1 failed, 0 ambiguous (finished)",
    ]
