"""Fixtures for the integration tests: real Kafka, real MongoDB wire, isolated per test."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

sys.path.insert(0, str(Path(__file__).parent))

from support.infra import Infrastructure, infrastructure


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    with infrastructure(tmp_path_factory.mktemp("infra")) as running:
        yield running


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test's own: no test sees another's messages."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
async def mongo(infra: Infrastructure) -> AsyncIterator[AsyncMongoClient]:
    client = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def database_name(prefix: str) -> str:
    """A database of this test's own."""
    return prefix.rstrip(".").replace(".", "_")
