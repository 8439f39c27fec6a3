"""A service stops in bounded time: a shutdown step that hangs is named in the log and left."""

from __future__ import annotations

import asyncio
import logging

import pytest
from coaching_shared import service


async def test_a_hanging_step_is_abandoned_after_its_bound_and_named(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(service, "SHUTDOWN_STEP_SECONDS", 0.2)
    finished = []

    async def hangs() -> None:
        await asyncio.Event().wait()

    async def stops() -> None:
        finished.append("relay")

    with caplog.at_level(logging.INFO, logger=service.log.name):
        await service._stop_step("Kafka broker", hangs)
        await service._stop_step("outbox relay", stops)
    assert finished == ["relay"]
    assert "shutdown: Kafka broker did not stop within" in caplog.text
    assert "shutdown: outbox relay stopped in" in caplog.text


async def test_a_failing_step_does_not_stop_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("connection reset")

    with caplog.at_level(logging.INFO, logger=service.log.name):
        await service._stop_step("database client", fails)
    assert "shutdown: database client failed to stop cleanly" in caplog.text
