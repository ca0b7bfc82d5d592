"""Run many calls through the client with bounded concurrency, one result per record.

A fixed pool of workers pulls from the input iterator, so a million records never become a
million tasks. A failing record becomes a `failed` (or `ambiguous`) result; it never cancels the
others.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from userflow_assets.client.errors import UserflowAmbiguousError
from userflow_assets.client.ratelimit import AdaptiveRateLimiter
from userflow_assets.client.stats import ProgressLog

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("userflow_assets.client")


class Outcome(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"  # cleanly not applied (or rejected): safe to try again
    AMBIGUOUS = "ambiguous"  # may have been applied


@dataclass(frozen=True)
class BulkResult(Generic[T, R]):
    item: T
    outcome: Outcome
    value: R | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


@dataclass(frozen=True)
class _Finished:
    error: BaseException | None


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    """One async iterator over either kind; closing it closes the input (e.g. a DB cursor)."""
    if isinstance(items, AsyncIterable):
        source = aiter(items)
        try:
            async for item in source:
                yield item
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
    else:
        iterator = iter(items)
        try:
            for item in iterator:
                yield item
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


async def _call(func: Callable[[T], Awaitable[R]], item: T) -> BulkResult[T, R]:
    try:
        return BulkResult(item, Outcome.OK, value=await func(item))
    except UserflowAmbiguousError as exc:
        return BulkResult(item, Outcome.AMBIGUOUS, error=exc)
    except Exception as exc:  # noqa: BLE001 - one bad record must not stop the batch
        return BulkResult(item, Outcome.FAILED, error=exc)


async def run_bulk(
    items: Iterable[T] | AsyncIterable[T],
    func: Callable[[T], Awaitable[R]],
    *,
    concurrency: int,
    total: int | None = None,
    label: str = "records",
    progress_interval_s: float = 5.0,
    limiter: AdaptiveRateLimiter | None = None,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> AsyncIterator[BulkResult[T, R]]:
    """Yield a `BulkResult` per item, in completion order.

    At most `concurrency` calls run at once. To leave the loop early, iterate inside
    `contextlib.aclosing(...)`: closing cancels the calls still running and closes the input.
    An error raised by the input iterator itself ends the batch and is re-raised.
    Progress goes to `log` (e.g. a Dagster `context.log`), else the client's logger.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if isinstance(items, (list, tuple)) and total is None:
        total = len(items)
    source = _aiter(items)
    pull_lock = asyncio.Lock()  # an async iterator must not be advanced concurrently
    results: asyncio.Queue[BulkResult[T, R] | _Finished] = asyncio.Queue(maxsize=2 * concurrency)
    progress = ProgressLog(
        label, total, logger=log or logger, interval_s=progress_interval_s, limiter=limiter
    )

    async def worker() -> None:
        while True:
            async with pull_lock:
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    return
            await results.put(await _call(func, item))

    async def supervise(workers: list[asyncio.Task[None]]) -> None:
        error: BaseException | None = None
        try:
            await asyncio.gather(*workers)
        except Exception as exc:  # noqa: BLE001 - the input iterator failed; re-raised below
            error = exc
        await results.put(_Finished(error))

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    supervisor = asyncio.create_task(supervise(workers))
    try:
        while True:
            result = await results.get()
            if isinstance(result, _Finished):
                if result.error is not None:
                    raise result.error
                break
            progress.update(result.outcome)
            yield result
        progress.finish()
    finally:
        for task in (*workers, supervisor):
            task.cancel()
        await asyncio.gather(*workers, supervisor, return_exceptions=True)
        try:
            await source.aclose()
        except RuntimeError:  # closed mid-step by the cancellation above
            pass
