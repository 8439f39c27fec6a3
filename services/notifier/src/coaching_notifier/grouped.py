"""Writes of concurrent senders grouped into one: what arrives while a write runs goes next.

The dispatcher sends up to `dispatcher_concurrency` deliveries at once, each in its own task;
each records its outcome (and files its inbox item) when its send is done. Instead of one
round trip each, a `Grouped` writer takes whatever was submitted while its previous write
was running and writes it together. Nothing waits for a group to fill: a lone submission is
written at once, so no outcome is recorded later than it would have been alone by more than
the write already in progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from coaching_shared.tasks import cancel_and_wait

Item = TypeVar("Item")
Result = TypeVar("Result")


class Grouped(Generic[Item, Result]):
    """Submits items to `write(items) -> results` (one result per item, in order)."""

    def __init__(self, write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]]) -> None:
        self._write = write
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Write the item (with whatever else is waiting); its result, or the write's error."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="grouped-write")
        return await future

    async def close(self) -> None:
        """Stop writing; submissions still waiting fail (their leases lapse, as on a crash)."""
        await cancel_and_wait(self._task)
        self._task = None
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()

    async def _drain(self) -> None:
        while self._queue:
            group, self._queue = self._queue, []
            try:
                results = await self._write([item for item, _ in group])
            except asyncio.CancelledError:
                for _, future in group:
                    future.cancel()
                raise
            except Exception as error:
                for _, future in group:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
