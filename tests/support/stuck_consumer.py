"""A consumer process that takes an event and never finishes it (killed by the test).

Usage: python stuck_consumer.py BOOTSTRAP MONGODB_URL PREFIX DATABASE
It marks each event it starts in the `started` collection, then hangs before acknowledging.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pymongo import AsyncMongoClient

from support.probe import TallyRecorded, probe_settings, running_consumer


async def main(bootstrap: str, mongodb_url: str, prefix: str, database: str) -> None:
    settings = probe_settings(bootstrap, mongodb_url, prefix, database)
    marks = AsyncMongoClient(mongodb_url)[database]["started"]

    async def hang(event: TallyRecorded, context) -> None:
        await marks.insert_one({"event_id": context.message.id})
        await asyncio.Event().wait()

    async with running_consumer(settings, hang):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
