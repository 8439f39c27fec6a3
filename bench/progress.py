"""Watching a consumer group work through a topic, from outside, as an operator would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bench.context import Bench
from bench.measure import Window, steady_window
from bench.workload import input_topic

POLL_SECONDS = 0.05


async def create_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    """Create topics with `partitions` partitions (existing ones are left as they are)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for name in names:
            try:
                await admin.create_topics([NewTopic(name, partitions, 1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


class GroupProgress:
    """The events a consumer group has committed on some topics (offsets start at 0)."""

    def __init__(self, bootstrap: str, group_id: str, topics: str | Sequence[str]) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._group_id = group_id
        self._topics = {topics} if isinstance(topics, str) else set(topics)

    async def __aenter__(self) -> GroupProgress:
        await self._admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._admin.close()

    async def committed(self) -> int:
        offsets = await self._admin.list_consumer_group_offsets(self._group_id)
        return sum(meta.offset for partition, meta in offsets.items()
                   if partition.topic in self._topics and meta.offset > 0)

    async def watch(self, total: int, warmup: int, cap_seconds: float,
                    alive: Callable[[], Awaitable[bool]] | None = None) -> Window:
        """Sample the committed count until `total` (or the time cap), then measure.

        `alive` is asked between samples: a consumer that died ends the watch early instead
        of waiting out the cap.
        """
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + cap_seconds
        while time.monotonic() < deadline:
            samples.append((time.monotonic(), await self.committed()))
            if samples[-1][1] >= total or (alive is not None and not await alive()):
                break
            await asyncio.sleep(POLL_SECONDS)
        return steady_window(samples, total, warmup)


def alive(task: asyncio.Task[Any]) -> Callable[[], Awaitable[bool]]:
    """A liveness check for `GroupProgress.watch` of a consumer run as a task."""
    async def check() -> bool:
        return not task.done()
    return check


def raise_failure(task: asyncio.Task[Any]) -> None:
    """Re-raise what ended a finished task (a benchmark must not report a crashed run)."""
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


async def watch_consumer(bench: Bench, group: str, task: asyncio.Task[Any]) -> Window:
    """Measure a consumer (run as `task`) of the input topic through its group's commits."""
    async with GroupProgress(bench.bootstrap, group, input_topic(bench.prefix)) as progress:
        return await progress.watch(bench.total, bench.warmup, bench.cap_seconds,
                                    alive=alive(task))
