"""MongoDB wiring with PyMongo's native async API, and the one way to change state idempotently.

Only the MongoDB subset that FerretDB 1.24 also supports is used (README, "Data"): no
multi-document transactions, no change streams, no TTL or partial indexes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from coaching_shared.events import EventMessage, utc_now
from coaching_shared.settings import ServiceSettings

# How many applied event ids an aggregate remembers. Redeliveries come from the uncommitted
# tail of a partition, far fewer events per aggregate than this.
APPLIED_EVENTS_KEPT = 200
APPLIED_TRIM_SLACK = 50  # trim in steps, not on every write
OUTBOX_FIELDS = ("outbox", "outbox_pending", "outbox_lease_until")
# FerretDB 1.24 never answers a bulk write of 100 or more updates, and the database hangs
# behind it (measured: 99 return in under a second, 100 time out and so does all after);
# every bulk write goes in chunks below that.
BULK_WRITE_LIMIT = 99
DUPLICATE_KEY = 11000
# How long a writer owns the outbox entries it writes before the sweep of any replica
# publishes them; set at start-up from the service's OUTBOX_LEASE_SECONDS.
DEFAULT_OUTBOX_LEASE = timedelta(seconds=30)
_outbox_lease = DEFAULT_OUTBOX_LEASE


def configure_outbox_lease(lease: timedelta) -> None:
    """Set how long writers own their fresh outbox entries (once, at start-up)."""
    global _outbox_lease
    _outbox_lease = lease


def chunks(items: Sequence[Any], size: int = BULK_WRITE_LIMIT) -> list[Sequence[Any]]:
    """`items` cut into consecutive slices of at most `size`."""
    return [items[start:start + size] for start in range(0, len(items), size)]


def key_id(*parts: str) -> str:
    """The `_id` of the one document a natural key names (tenant first, then narrower parts).

    Documents read on every event are stored under their natural key as `_id`, so a lookup
    pins `_id` and uses the primary index on every MongoDB-wire server (FerretDB 1.24 on
    SQLite uses no other index for reads). Each part is percent-encoded, so the `|`-joined id
    is unique per key and printable ASCII.
    """
    return "|".join(quote(part, safe="._:@-") for part in parts)


def under_key(*parts: str) -> dict[str, str]:
    """A condition on `_id` for every document whose key starts with `parts` (a prefix)."""
    return {"$regex": "^" + re.escape(key_id(*parts) + "|")}


def keyed(**key: str) -> dict[str, str]:
    """The filter naming one document by its natural key (tenant first): the key's fields
    and the `_id` made of them, in the order given. Writes with it create that `_id`."""
    return {"_id": key_id(*key.values()), **key}


def keyed_under(**key: str) -> dict[str, Any]:
    """The filter for every document whose natural key starts with these fields (e.g. all
    of one client's documents keyed tenant, client, id)."""
    return {"_id": under_key(*key.values()), **key}


def create_client(settings: ServiceSettings) -> AsyncMongoClient:
    """One client per process; majority writes so an acknowledged effect survives failover.

    A server that accepted a request and then never answers (restarted mid-request,
    wedged) must not hold a handler forever: after the socket timeout the call fails as an
    outage and is retried, which every write here tolerates.
    """
    return AsyncMongoClient(settings.mongodb_url, tz_aware=True, w="majority",
                            appname=f"coaching-{settings.service_name}",
                            serverSelectionTimeoutMS=5_000, connectTimeoutMS=5_000,
                            socketTimeoutMS=60_000)


@dataclass(frozen=True)
class IndexSpec:
    """An index a service needs. Tenant-scoped indexes start with `tenant_id`."""

    collection: str
    keys: Sequence[tuple[str, int]]
    unique: bool = False
    system: bool = False  # not tenant-scoped: only for platform work such as the outbox sweep

    @property
    def name(self) -> str:
        return "_".join(f"{key}_{direction}" for key, direction in self.keys)


def outbox_index(collection: str) -> IndexSpec:
    """The index the outbox sweep reads, for a collection whose documents carry an outbox."""
    return IndexSpec(collection, [("outbox_pending", 1), ("outbox_lease_until", 1)], system=True)


async def ensure_indexes(db: AsyncDatabase, specs: Sequence[IndexSpec]) -> None:
    """Create every index at start-up (idempotent); refuse indexes that forget the tenant."""
    for spec in specs:
        if not spec.system and spec.keys[0][0] != "tenant_id":
            raise ValueError(f"index {spec.name} on {spec.collection} must start with tenant_id")
        await db[spec.collection].create_index(list(spec.keys), name=spec.name,
                                               unique=spec.unique)


async def apply_once(collection: AsyncCollection, key: Mapping[str, Any], cause_id: str,
                     update: Mapping[str, Any], *, outbox: Sequence[EventMessage] = (),
                     create: bool = True) -> dict[str, Any] | None:
    """Apply `update` to one document unless the cause (event or request id) already was.

    `key` must match at most one document through a unique index (e.g. tenant_id + client_id):
    the write is an upsert guarded by "cause not yet applied". If the document already
    recorded the cause, the guard fails, the upsert collides with the existing document on the
    unique index, and nothing changes. State change, the cause mark and any outgoing events
    (embedded outbox entries) land in this one single-document write, so they happen together
    or not at all. Returns the document after the write, or None for a duplicate.

    With `create=False` the document must exist already (an update of something that may have
    been erased meanwhile must not bring it back); None then also means "not there".
    """
    guarded, full_update = guarded_update(key, cause_id, update, outbox)
    try:
        document = await collection.find_one_and_update(guarded, full_update, upsert=create,
                                                        return_document=ReturnDocument.AFTER)
    except DuplicateKeyError:
        return None
    if document is None:
        return None
    await _trim_applied(collection, document)
    return document


def guarded_update(key: Mapping[str, Any], cause_id: str, update: Mapping[str, Any],
                   outbox: Sequence[EventMessage] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter and update of `apply_once`: the change, the cause marked applied and the
    outbox entries (leased to their writer), guarded by "cause not yet applied". For bulk
    writes of changes `apply_once` cannot make (a filter with more than the key)."""
    guarded = {**key, "applied_events": {"$ne": cause_id}}
    full_update: dict[str, Any] = {operator: dict(fields) for operator, fields in update.items()}
    push = full_update.setdefault("$push", {})
    push["applied_events"] = {"$each": [cause_id], "$slice": -APPLIED_EVENTS_KEPT}
    if outbox:
        flags = _outbox_fields(outbox)
        push["outbox"] = {"$each": flags.pop("outbox")}
        full_update.setdefault("$set", {}).update(flags)
    return guarded, full_update


@dataclass(frozen=True)
class Change:
    """One cause's change of one keyed document, for `apply_each_once` (see `apply_once`)."""

    # From `keyed(...)`: the natural key and the `_id` made of it, nothing else (a guard such
    # as a status or a lease would let the bulk update miss while the change reads as written).
    key: Mapping[str, Any]
    cause_id: str
    update: Mapping[str, Any]  # $set / $setOnInsert, or what `apply_once` takes
    outbox: Sequence[EventMessage] = ()


async def apply_each_once(collection: AsyncCollection, changes: Sequence[Change], *,
                               create: bool = True) -> list[dict[str, Any] | None]:
    """`apply_once` for changes of distinct documents, in a few round trips for all of them.

    One read finds which documents exist and which causes they applied; the new documents
    are inserted in one write (`insert_new`), the others updated in one bulk write with
    `apply_once`'s guard. Returns, per change, what was written (the new document, or its
    `_id` with the outbox entries pushed: enough to relay them) or None for a duplicate
    (or, with `create=False`, a document that does not exist). Whatever cannot go the batch
    way (an insert that lost a race, an update needing more than $set, an applied-causes
    list due for trimming) goes `apply_once`'s way, one by one.
    """
    ids = [change.key["_id"] for change in changes]
    if len(set(ids)) != len(ids):
        raise ValueError("apply_each_once takes one change per document")
    stored = {document["_id"]: document.get("applied_events", []) for document in
              await collection.find({"_id": {"$in": ids}}, {"applied_events": 1}).to_list()}
    written: list[dict[str, Any] | None] = [None] * len(changes)
    one_by_one: list[int] = []
    inserts: list[tuple[int, dict[str, Any]]] = []
    updates: list[tuple[int, UpdateOne]] = []
    for index, change in enumerate(changes):
        applied = stored.get(change.key["_id"])
        if applied is None:
            if not create:
                continue
            if set(change.update) - {"$set", "$setOnInsert"}:
                one_by_one.append(index)
                continue
            fields = {**change.update.get("$setOnInsert", {}), **change.update.get("$set", {})}
            inserts.append((index, new_document(change.key, change.cause_id, fields,
                                                outbox=change.outbox)))
        elif change.cause_id in applied:
            continue
        elif len(applied) >= APPLIED_EVENTS_KEPT + APPLIED_TRIM_SLACK:
            one_by_one.append(index)
        else:
            guarded, full_update = guarded_update(change.key, change.cause_id, change.update,
                                                   change.outbox)
            full_update.pop("$setOnInsert", None)
            updates.append((index, UpdateOne(guarded, full_update)))
            written[index] = {"_id": change.key["_id"], "outbox": full_update["$push"].get(
                "outbox", {}).get("$each", [])}
    new = {id(document) for document in await insert_new(collection,
                                                        [document for _, document in inserts])}
    for index, document in inserts:
        if id(document) in new:
            written[index] = document
        else:  # created meanwhile by another writer: decide on the stored document
            one_by_one.append(index)
    for part in chunks([update for _, update in updates]):
        # Plain guarded updates, no upserts: FerretDB's bulk_write handles these correctly.
        await collection.bulk_write(list(part), ordered=False)
    for index in sorted(one_by_one):
        change = changes[index]
        written[index] = await apply_once(collection, change.key, change.cause_id,
                                          change.update, outbox=change.outbox, create=create)
    return written


def _outbox_fields(outbox: Sequence[EventMessage]) -> dict[str, Any]:
    """The fields that put events in a document's outbox, leased to their writer."""
    return {"outbox": [message.to_document() for message in outbox], "outbox_pending": True,
            "outbox_lease_until": utc_now() + _outbox_lease}


async def clear_outboxes(collection: AsyncCollection,
                         published: Sequence[tuple[Any, Sequence[Mapping[str, Any]]]]) -> None:
    """Take published entries (per document `_id`) out of the documents' outboxes.

    One update per document where its outbox holds exactly those entries (the common case:
    the writer relays what it wrote); otherwise the entries are pulled and the flag is
    lowered only once the outbox is empty (entries pushed meanwhile keep it up).
    """
    for part in chunks(published):
        # Plain updates, no upserts: FerretDB's bulk_write handles these correctly.
        cleared = await collection.bulk_write(
            [UpdateOne({"_id": document_id, "outbox": list(entries)},
                       {"$set": {"outbox": [], "outbox_pending": False}})
             for document_id, entries in part], ordered=False)
        if cleared.matched_count == len(part):
            continue
        await collection.bulk_write(
            [UpdateOne({"_id": document_id}, {"$pullAll": {"outbox": list(entries)}})
             for document_id, entries in part], ordered=False)
        await collection.bulk_write(
            [UpdateOne({"_id": document_id, "outbox.0": {"$exists": False}},
                       {"$set": {"outbox_pending": False}}) for document_id, _ in part],
            ordered=False)


def new_document(key: Mapping[str, Any], cause_id: str, fields: Mapping[str, Any], *,
                 outbox: Sequence[EventMessage] = ()) -> dict[str, Any]:
    """A document created by a cause, for `insert_new`: the key (with its `_id`), the fields,
    the cause marked applied and the events it raises in the outbox."""
    document = {**key, **fields, "applied_events": [cause_id]}
    if outbox:
        document.update(_outbox_fields(outbox))
    return document


async def insert_new(collection: AsyncCollection, documents: Sequence[dict[str, Any]]
                     ) -> list[dict[str, Any]]:
    """Insert documents that must not exist yet, in one write; return those that were new.

    The way to create what a cause creates when its `_id` is its natural key (`key_id`): a
    document that exists already (the cause redelivered, or another cause first) is refused
    by the `_id` or a unique index and left as it is. One insert for many documents, where
    `apply_once` takes a guarded upsert each.
    """
    if not documents:
        return []
    try:
        await collection.insert_many(list(documents), ordered=False)
    except BulkWriteError as error:
        errors = error.details.get("writeErrors", [])
        if not errors or any(item.get("code") != DUPLICATE_KEY for item in errors):
            raise
        refused = {item["index"] for item in errors}
        return [document for index, document in enumerate(documents) if index not in refused]
    return list(documents)


async def _trim_applied(collection: AsyncCollection, document: dict[str, Any]) -> None:
    """Keep the applied-cause list bounded where `$slice` is not honoured (FerretDB 1.24).

    Replaces the list by its tail only if nobody changed it meanwhile; otherwise a later
    write trims it. MongoDB already sliced it, so this costs nothing there.
    """
    applied = document.get("applied_events", [])
    if len(applied) <= APPLIED_EVENTS_KEPT + APPLIED_TRIM_SLACK:
        return
    await collection.update_one(
        {"_id": document["_id"], "applied_events": applied},
        {"$set": {"applied_events": applied[-APPLIED_EVENTS_KEPT:]}})


def without_internals(document: Mapping[str, Any]) -> dict[str, Any]:
    """A stored document without Mongo's id and the delivery bookkeeping, for API answers."""
    hidden = {"_id", "applied_events", *OUTBOX_FIELDS}
    return {name: value for name, value in document.items() if name not in hidden}
