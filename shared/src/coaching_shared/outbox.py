"""The embedded-outbox relay: publishes events stored inside aggregate documents.

A write that changes state also pushes its outgoing events into the document's `outbox`
array (see `mongo.apply_once`). The writer then publishes them at once (`relay_document`);
if it crashes first, the entries stay in the document, and when its short lease has passed
the sweep of any replica claims the document and publishes them. An event may so reach Kafka
twice, never zero times; its id is stable, so consumers drop the copy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from coaching_shared.events import EventMessage, utc_now
from coaching_shared.messaging import TRANSIENT_ERRORS, EventPublisher
from coaching_shared.observability import METRICS
from coaching_shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SWEEP_BATCH = 200


class OutboxRelay:
    """Publishes and clears outbox entries of the given collections."""

    def __init__(self, publisher: EventPublisher, collections: Sequence[AsyncCollection],
                 sweep_interval: float = 2.0, lease: timedelta = timedelta(seconds=10)) -> None:
        self._publisher = publisher
        self._collections = list(collections)
        self._sweep_interval = sweep_interval
        self._lease = lease
        self._task: asyncio.Task[None] | None = None

    async def relay_document(self, collection: AsyncCollection,
                             document: Mapping[str, Any] | None) -> None:
        """Publish a freshly written document's outbox entries (the writer's fast path).

        Failures are logged, not raised: the write already stands, and the sweep will
        publish the entries once the writer's lease has run out.
        """
        if not document or not document.get("outbox"):
            return
        try:
            await self._publish_and_clear(collection, document)
        except TRANSIENT_ERRORS as error:
            log.warning("outbox publish deferred to the sweep: %s", type(error).__name__)

    async def _publish_and_clear(self, collection: AsyncCollection,
                                 document: Mapping[str, Any]) -> None:
        entries = document["outbox"]
        await self._publisher.publish([EventMessage.from_document(entry) for entry in entries])
        # $pullAll of the entries exactly as read: FerretDB's $pull takes no conditions.
        await collection.update_one({"_id": document["_id"]},
                                    {"$pullAll": {"outbox": entries}})
        # Entries pushed meanwhile keep the flag up: only an empty outbox lowers it.
        await collection.update_one({"_id": document["_id"], "outbox.0": {"$exists": False}},
                                    {"$set": {"outbox_pending": False}})

    async def sweep_once(self) -> int:
        """Publish outbox entries whose writer's lease ran out; returns documents relayed."""
        relayed = 0
        pending_total = 0
        for collection in self._collections:
            now = utc_now()
            cursor = collection.find(
                {"outbox_pending": True, "outbox_lease_until": {"$lte": now}},
                {"outbox": 1, "outbox_lease_until": 1}).limit(SWEEP_BATCH)
            async for document in cursor:
                pending_total += 1
                # Claim it: only one replica's sweep wins the lease on this document.
                claim = await collection.update_one(
                    {"_id": document["_id"],
                     "outbox_lease_until": document["outbox_lease_until"]},
                    {"$set": {"outbox_lease_until": now + self._lease}})
                if claim.modified_count != 1:
                    continue
                if document.get("outbox"):
                    await self._publish_and_clear(collection, document)
                    relayed += 1
                else:
                    await collection.update_one(
                        {"_id": document["_id"], "outbox.0": {"$exists": False}},
                        {"$set": {"outbox_pending": False}})
        METRICS.outbox_pending.set(pending_total)
        return relayed

    def start(self) -> None:
        """Run the sweep in the background until stop()."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-sweep")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                relayed = await self.sweep_once()
                if relayed:
                    log.info("outbox sweep relayed %d document(s)", relayed)
            except TRANSIENT_ERRORS as error:
                log.warning("outbox sweep waiting for infrastructure: %s", type(error).__name__)
            except Exception:
                log.exception("outbox sweep failed")
            await asyncio.sleep(self._sweep_interval)
