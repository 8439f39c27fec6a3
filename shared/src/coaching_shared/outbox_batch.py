"""Relaying the embedded outboxes of many documents at once (batch writers such as schedulers).

`OutboxRelay.relay_document` publishes one document's entries per call, two database round
trips each. A writer that changed hundreds of documents in one bulk write relays them here in
a fixed number of round trips: read their outboxes, publish every entry pipelined, pull the
published entries, lower the flags. The guarantees are the relay's: an entry leaves the
document only after the broker acknowledged it, and a crash leaves it for the sweep.

`PublishOnce` guards against two writers relaying the same entries side by side. Guarded
updates are not compare-and-set under concurrency on every MongoDB-wire server (stock FerretDB
1.24 evaluates the filter before it writes; our build serializes writes), so two replicas may
both believe they own a document;
a unique index is enforced by the storage engine everywhere, so the first writer to record an
event id in the ledger is the one that publishes it.

The outbox sweep goes through the same ledger for the collections it covers (`OutboxRelay`'s
`ledgers`), so a scheduler round that runs past its outbox lease is not published a second time
beside it; a writer that admitted events and died before publishing them is taken over once
its admission is older than the lease (`admit(..., take_over_before=...)`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from coaching_shared.events import EventMessage, utc_now
from coaching_shared.messaging import EventPublisher
from coaching_shared.mongo import IndexSpec, clear_outboxes, insert_new


class PublishOnce:
    """A ledger of event ids being or having been published.

    Two rows per event, both inserts (cheaper than updates on every MongoDB-wire server,
    and much cheaper on FerretDB, which commits each updated document on its own): the
    admission (`event_id`) when a writer takes the event, a mark (`published|event_id`) once
    the broker acknowledged it.
    """

    def __init__(self, ledger: AsyncCollection) -> None:
        self.ledger = ledger

    @staticmethod
    def indexes(collection: str) -> list[IndexSpec]:
        return [IndexSpec(collection, [("tenant_id", 1), ("event_id", 1)], unique=True),
                IndexSpec(collection, [("admitted_at", 1)], system=True)]

    async def forget(self, admitted_before: datetime) -> int:
        """Drop the rows of events admitted long ago (no TTL indexes on FerretDB)."""
        result = await self.ledger.delete_many({"admitted_at": {"$lt": admitted_before}})
        return result.deleted_count

    async def admit(self, messages: Sequence[EventMessage], *,
                    take_over_before: datetime | None = None) -> tuple[set[str], set[str]]:
        """Record the messages; returns (ids this caller publishes, ids already published).

        Ids in neither set are being published by another writer right now: leave them.
        With `take_over_before`, an event another writer admitted before that instant and
        never marked published is taken from it (its writer is presumed dead): its row is
        replaced, and of several callers taking over at once the unique index lets one in.
        """
        if not messages:
            return set(), set()
        by_id = {message.id: message for message in messages}
        rows = [self._row(message, message.id) for message in by_id.values()]
        admitted = {row["event_id"] for row in await insert_new(self.ledger, rows)}
        refused = set(by_id) - admitted
        if not refused:
            return admitted, set()
        held = await self.ledger.find(
            {"event_id": {"$in": sorted(refused | {_PUBLISHED + event_id
                                                   for event_id in refused})}},
            {"event_id": 1, "admitted_at": 1}).to_list()
        done = {row["event_id"].removeprefix(_PUBLISHED) for row in held
                if row["event_id"].startswith(_PUBLISHED)}
        if take_over_before is None:
            return admitted, done
        stale = sorted(row["event_id"] for row in held
                       if row["event_id"] in refused - done
                       and row["admitted_at"] < take_over_before)
        if stale:
            # Only rows still as old as that: a row another caller took over meanwhile is new.
            await self.ledger.delete_many({"event_id": {"$in": stale},
                                           "admitted_at": {"$lt": take_over_before}})
            taken = await insert_new(self.ledger, [self._row(by_id[event_id], event_id)
                                                   for event_id in stale])
            admitted |= {row["event_id"] for row in taken}
        return admitted, done

    async def published(self, messages: Sequence[EventMessage]) -> None:
        """Mark the messages published (the broker acknowledged them)."""
        await insert_new(self.ledger, [self._row(message, _PUBLISHED + message.id)
                                       for message in messages])

    @staticmethod
    def _row(message: EventMessage, event_id: str) -> dict[str, Any]:
        return {"tenant_id": message.tenant, "client_id": message.subject,
                "event_id": event_id, "admitted_at": utc_now()}


_PUBLISHED = "published|"


async def relay_documents(publisher: EventPublisher, collection: AsyncCollection,
                          document_ids: Sequence[Any], *,
                          still: Mapping[str, Any] | None = None,
                          once: PublishOnce | None = None,
                          take_over_before: datetime | None = None) -> int:
    """Publish and clear the outbox entries of these documents; returns events published.

    `still` narrows them to the documents the caller still owns (e.g. its lease); `once`
    makes sure no entry is published by two writers at the same time, and
    `take_over_before` lets this caller take the entries a writer admitted before then and
    never published (the sweep's case, see PublishOnce.admit).
    """
    if not document_ids:
        return 0
    documents = await collection.find(
        {**(still or {}), "_id": {"$in": list(document_ids)}, "outbox_pending": True},
        {"outbox": 1}).to_list()
    unique: dict[str, EventMessage] = {}
    for document in documents:
        for entry in document.get("outbox") or ():
            unique.setdefault(entry["id"], EventMessage.from_document(entry))
    to_publish, clearable = set(unique), set(unique)
    if once is not None:
        to_publish, done = await once.admit(list(unique.values()),
                                            take_over_before=take_over_before)
        clearable = to_publish | done
    await publisher.publish([message for event_id, message in unique.items()
                             if event_id in to_publish])
    if once is not None:
        await once.published([message for event_id, message in unique.items()
                              if event_id in to_publish])
    published = [(document["_id"], [entry for entry in document.get("outbox") or ()
                                    if entry["id"] in clearable]) for document in documents]
    await clear_outboxes(collection, [(document_id, entries)
                                      for document_id, entries in published if entries])
    return len(to_publish)
