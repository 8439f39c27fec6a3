"""Background loops outlive their errors and tell an outage from a failure in the log."""

from __future__ import annotations

import logging

import pytest
from coaching_shared import messaging
from pymongo.errors import AutoReconnect


async def test_a_round_returns_its_result_or_none_after_logging_why(
        caplog: pytest.LogCaptureFixture) -> None:
    async def works() -> int:
        return 3

    async def outage() -> int:
        raise AutoReconnect("primary stepped down")

    async def bug() -> int:
        raise KeyError("due_at")

    with caplog.at_level(logging.WARNING, logger=messaging.log.name):
        assert await messaging.background_round("outbox sweep", works) == 3
        assert await messaging.background_round("outbox sweep", outage) is None
        assert await messaging.background_round("dispatcher round", bug) is None
    outage_record, bug_record = caplog.records
    assert outage_record.levelno == logging.WARNING
    assert "outbox sweep waiting for infrastructure: AutoReconnect" in outage_record.getMessage()
    assert bug_record.levelno == logging.ERROR and bug_record.exc_info is not None
    assert bug_record.getMessage() == "dispatcher round failed"
