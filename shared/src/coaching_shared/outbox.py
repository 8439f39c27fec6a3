"""The embedded-outbox relay: publishes events stored inside aggregate documents.

A write that changes state also pushes its outgoing events into the document's `outbox`
array (see `mongo.apply_once`). The writer then publishes them at once (`relay_document`);
if it crashes first, the entries stay in the document, and when its short lease has passed
the sweep of any replica claims the document and publishes them. An event may so reach Kafka
twice, never zero times; its id is stable, so consumers drop the copy.

While the consumer handles a batch, writers' relays are deferred (`deferred`): the batch's
documents are relayed together when it ends, before it is acknowledged, with one pipelined
publish and a bulk write per collection instead of an awaited publish per event.

A collection whose writers publish through a publish-once ledger (the scheduler's, see
`outbox_batch.PublishOnce`) is swept through that ledger too, so the sweep never publishes
an entry beside a live writer that is still relaying it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from coaching_shared.events import EventMessage, utc_now
from coaching_shared.messaging import EventPublisher, background_round, is_transient
from coaching_shared.mongo import clear_outboxes
from coaching_shared.observability import METRICS
from coaching_shared.outbox_batch import PublishOnce, relay_documents
from coaching_shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SWEEP_BATCH = 200

Written = tuple[AsyncCollection, Mapping[str, Any]]
# The documents written in the current deferred scope (a consumed batch), in write order.
_deferred: ContextVar[list[Written] | None] = ContextVar("outbox_deferred", default=None)


class OutboxRelay:
    """Publishes and clears outbox entries of the given collections."""

    def __init__(self, publisher: EventPublisher, collections: Sequence[AsyncCollection],
                 sweep_interval: float = 2.0, lease: timedelta = timedelta(seconds=10),
                 ledgers: Mapping[str, PublishOnce] | None = None) -> None:
        """`ledgers`: the publish-once ledger of each collection (by name) that has one."""
        self._publisher = publisher
        self._collections = list(collections)
        self._ledgers = dict(ledgers or {})
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
        pending = _deferred.get()
        if pending is not None:
            pending.append((collection, document))
            return
        try:
            await self._relay_all([(collection, document)])
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning("outbox publish deferred to the sweep: %s", type(error).__name__)

    @asynccontextmanager
    async def deferred(self) -> AsyncIterator[None]:
        """Collect the relays of the code inside; relay them all when it ends without error.

        Tasks started inside share the scope. If the code raises, nothing is relayed here:
        the entries stay in their documents for the sweep (and the batch comes again).
        """
        pending: list[Written] = []
        token = _deferred.set(pending)
        try:
            yield
        finally:
            _deferred.reset(token)
        if pending:
            try:
                await self._relay_all(pending)
            except Exception as error:
                if not is_transient(error):
                    raise
                log.warning("outbox publish of %d document(s) deferred to the sweep: %s",
                            len(pending), type(error).__name__)

    async def _relay_all(self, written: Sequence[Written]) -> None:
        """Publish the outboxes of many written documents at once, then clear them.

        A document written twice appears twice, the later copy holding the earlier's
        entries too: each entry is published once, at its first appearance, so the events
        leave in the order they were written; the latest copy says what to pull.
        """
        messages: list[EventMessage] = []
        published: set[str] = set()
        latest: dict[tuple[str, Any], Written] = {}
        for collection, document in written:
            for entry in document["outbox"]:
                if entry["id"] not in published:
                    published.add(entry["id"])
                    messages.append(EventMessage.from_document(entry))
            latest[(collection.full_name, document["_id"])] = (collection, document)
        await self._publisher.publish(messages)
        by_collection: dict[str, list[Written]] = {}
        for collection, document in latest.values():
            by_collection.setdefault(collection.full_name, []).append((collection, document))
        for documents in by_collection.values():
            await clear_outboxes(documents[0][0], [(document["_id"], document["outbox"])
                                                   for _, document in documents])

    async def sweep_once(self) -> int:
        """Publish outbox entries whose writer's lease ran out; returns documents relayed."""
        relayed = 0
        pending_total = 0
        for collection in self._collections:
            now = utc_now()
            # Read them all before writing: FerretDB/SQLite blocks writes under an open cursor.
            pending = await collection.find(
                {"outbox_pending": True, "outbox_lease_until": {"$lte": now}},
                {"outbox": 1, "outbox_lease_until": 1}).limit(SWEEP_BATCH).to_list()
            for document in pending:
                pending_total += 1
                # Claim it: only one replica's sweep wins the lease on this document.
                claim = await collection.update_one(
                    {"_id": document["_id"],
                     "outbox_lease_until": document["outbox_lease_until"]},
                    {"$set": {"outbox_lease_until": now + self._lease}})
                if claim.modified_count != 1:
                    continue
                ledger = self._ledgers.get(collection.name)
                if document.get("outbox") and ledger is not None:
                    # Entries a live writer admitted stay its own; a dead writer's (admitted
                    # longer than a lease ago) are taken over.
                    await relay_documents(self._publisher, collection, [document["_id"]],
                                          once=ledger, take_over_before=now - self._lease)
                    relayed += 1
                elif document.get("outbox"):
                    # At once, while the claim is fresh: a batch of claims published
                    # together would give a racing claimer (FerretDB) a wider window.
                    await self._relay_all([(collection, document)])
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
            relayed = await background_round("outbox sweep", self.sweep_once)
            if relayed:
                log.info("outbox sweep relayed %d document(s)", relayed)
            await asyncio.sleep(self._sweep_interval)
