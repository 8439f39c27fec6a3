"""Every MongoDB query of the notifier service.

The delivery log (`deliveries`) is the heart of exactly-once: one document per
(tenant, cause event, recipient, channel) under a unique index. A redelivered event plans
the same documents again and the index refuses the copies; a sender claims a due delivery
with a lease before sending and marks it sent after, in the same write that queues the
`NotificationSent` event; retries and quiet-hour deferrals are just a later `due_at`.

A claim is decided by an insert into `delivery_claims`, unique per delivery and claim number
(the requeues and attempts the claimer read), before the lease is written: stock FerretDB 1.24 does
not run a guarded find-and-modify as a compare-and-set, so two replicas could both "win" that
update, but only one of them can insert the claim. The claim number also guards the outcome
write, so a sender whose lease was taken over records nothing.

The dispatcher claims a round of deliveries at once (one insert of the claims, one read of
the erasures, one bulk write of the leases) and records outcomes in groups (one bulk write
of guarded updates): each delivery keeps its own claim, lease and guard, only the round trips
are shared.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from coaching_shared.events import EventMessage
from coaching_shared.membership import TOMBSTONES, member_key
from coaching_shared.mongo import (
    APPLIED_EVENTS_KEPT,
    APPLIED_TRIM_SLACK,
    IndexSpec,
    apply_once,
    chunks,
    guarded_update,
    insert_new,
    keyed,
    keyed_under,
    new_document,
)
from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from coaching_notifier.domain import DeliveryStatus

CONTACTS = "contacts"
PREFERENCES = "preferences"
TENANT_DEFAULTS = "tenant_defaults"
TEMPLATES = "templates"
WEBHOOKS = "webhook_subscriptions"
DELIVERIES = "deliveries"
INBOX = "inbox"
DELIVERY_CLAIMS = "delivery_claims"
# Events about a client whose enrolment has not reached the notifier yet (it travels on
# another stream): planned once the contact is known.
AWAITING_CONTACT = "awaiting_contact"

DELIVERY_KEY = ("tenant_id", "cause_event_id", "recipient_id", "channel")

INDEXES = [
    IndexSpec(CONTACTS, [("tenant_id", 1), ("person_id", 1)], unique=True),
    IndexSpec(PREFERENCES, [("tenant_id", 1), ("person_id", 1)], unique=True),
    IndexSpec(TENANT_DEFAULTS, [("tenant_id", 1)], unique=True),
    IndexSpec(TEMPLATES, [("tenant_id", 1), ("event_type", 1), ("locale", 1)], unique=True),
    IndexSpec(WEBHOOKS, [("tenant_id", 1), ("subscription_id", 1)], unique=True),
    IndexSpec(DELIVERIES, [(name, 1) for name in DELIVERY_KEY], unique=True),
    IndexSpec(DELIVERIES, [("tenant_id", 1), ("client_id", 1)]),
    IndexSpec(DELIVERIES, [("tenant_id", 1), ("notification_id", 1)]),
    # The dispatcher's sweep over every tenant: platform work, like the outbox sweep.
    IndexSpec(DELIVERIES, [("status", 1), ("due_at", 1)], system=True),
    IndexSpec(INBOX, [("tenant_id", 1), ("person_id", 1), ("notification_id", 1)], unique=True),
    IndexSpec(INBOX, [("tenant_id", 1), ("person_id", 1), ("created_at", -1)]),
    IndexSpec(DELIVERY_CLAIMS, [("tenant_id", 1), ("notification_id", 1), ("claim", 1)],
              unique=True),
    IndexSpec(AWAITING_CONTACT, [("tenant_id", 1), ("client_id", 1), ("cause_event_id", 1)],
              unique=True),
]
OUTBOX_COLLECTIONS = [DELIVERIES]
# Documents carrying client_id are erased on ClientOffboarded: a client's contact and
# preferences, and every delivery, claim and inbox item about the client (a coach's too).
PERSONAL_COLLECTIONS = [CONTACTS, PREFERENCES, DELIVERIES, INBOX, DELIVERY_CLAIMS,
                        AWAITING_CONTACT]

# What the delivery log shows: bookkeeping, never the message content.
DELIVERY_LOG_FIELDS = {"_id": 0, "notification_id": 1, "cause_event_id": 1, "cause_type": 1,
                       "recipient_id": 1, "audience": 1, "channel": 1, "status": 1,
                       "due_at": 1, "created_at": 1, "sent_at": 1, "failed_at": 1,
                       "attempts": 1, "attempt_log": 1, "deferred_until": 1, "reason": 1,
                       "client_id": 1}
CLAIMABLE = [DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value]
# Due deliveries read per look (a sorted scan of the log: the expensive part on FerretDB).
# The ones not claimed at once are claimed by the next rounds, while the look is recent:
# a claim is taken on the state read, so one that changed meanwhile is refused or not leased.
CLAIM_CANDIDATES = 100
DUE_KEPT_SECONDS = 5.0



def person_key(tenant_id: str, person_id: str) -> dict[str, str]:
    """A person's contact or preferences, read for every notification: keyed by `_id`."""
    return keyed(tenant_id=tenant_id, person_id=person_id)


class Finished(NamedTuple):
    """A claimed delivery's outcome to record: status, fields, attempt entry, event."""

    delivery: Mapping[str, Any]
    status: DeliveryStatus
    fields: dict[str, Any]
    entry: dict[str, Any]
    event: EventMessage


class ContactSave(NamedTuple):
    """One cause's change of a person's contact details."""

    tenant_id: str
    person_id: str
    cause_id: str
    contact: dict[str, Any]
    client_id: str | None  # set for a client's own contact (erased with the client)

    @property
    def fields(self) -> dict[str, Any]:
        return {**self.contact, "client_id": self.client_id} if self.client_id else self.contact


async def _by_person(collection: AsyncCollection, people: Iterable[tuple[str, str]],
                     projection: dict[str, Any] | None
                     ) -> dict[tuple[str, str], dict[str, Any]]:
    ids = sorted({person_key(tenant_id, person_id)["_id"] for tenant_id, person_id in people})
    if not ids:
        return {}
    found = await collection.find({"_id": {"$in": ids}}, projection).to_list()
    return {(document["tenant_id"], document["person_id"]): document for document in found}


def inbox_key(tenant_id: str, person_id: str, notification_id: str) -> dict[str, str]:
    """One inbox item; a person's items share the `_id` prefix (tenant, person)."""
    return keyed(tenant_id=tenant_id, person_id=person_id, notification_id=notification_id)

class NotifierRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self._db = db
        self.contacts = db[CONTACTS]
        self.preferences_collection = db[PREFERENCES]
        self.tenant_defaults_collection = db[TENANT_DEFAULTS]
        self.templates = db[TEMPLATES]
        self.webhooks = db[WEBHOOKS]
        self.deliveries = db[DELIVERIES]
        self.inbox = db[INBOX]
        self.claims = db[DELIVERY_CLAIMS]
        self.awaiting = db[AWAITING_CONTACT]
        # The dispatcher's last look at the due deliveries, not yet claimed (see claim_due).
        self._due: list[dict[str, Any]] = []
        self._due_until = 0.0

    # -- contacts and preferences ---------------------------------------------------------

    async def hold_all_for_contact(self, held: Sequence[tuple[str, str, EventMessage]]) -> None:
        """`hold_for_contact` for many (tenant, client, event) in one write."""
        documents = [{"tenant_id": tenant_id, "client_id": client_id,
                      "cause_event_id": message.id, "message": message.to_document()}
                     for tenant_id, client_id, message in held]
        for part in chunks(documents):
            await insert_new(self.awaiting, part)  # one held already is refused, kept

    async def held_for_all(self, clients: Sequence[tuple[str, str]]
                           ) -> dict[tuple[str, str], list[EventMessage]]:
        """The events held for each of these (tenant, client) pairs, in one read."""
        wanted = set(clients)
        if not wanted:
            return {}
        found = await self.awaiting.find({
            "tenant_id": {"$in": sorted({tenant for tenant, _ in wanted})},
            "client_id": {"$in": sorted({client for _, client in wanted})}}).to_list()
        held: dict[tuple[str, str], list[EventMessage]] = {}
        for document in found:
            client = (document["tenant_id"], document["client_id"])
            if client in wanted:
                held.setdefault(client, []).append(
                    EventMessage.from_document(document["message"]))
        return held

    async def release_held(self, tenant_id: str, client_id: str, cause_event_id: str) -> None:
        await self.awaiting.delete_one({"tenant_id": tenant_id, "client_id": client_id,
                                        "cause_event_id": cause_event_id})

    async def release_all_held(self, held: Sequence[tuple[str, str, str]]) -> None:
        """`release_held` for many (tenant, client, cause event id): a delete per tenant."""
        by_tenant: dict[str, set[tuple[str, str]]] = {}
        for tenant_id, client_id, cause_event_id in held:
            by_tenant.setdefault(tenant_id, set()).add((client_id, cause_event_id))
        for tenant_id, pairs in by_tenant.items():
            if len(pairs) == 1:
                (client_id, cause_event_id), = pairs
                await self.release_held(tenant_id, client_id, cause_event_id)
                continue
            # An event id names one event, so one client: the pairs never cross.
            await self.awaiting.delete_many({
                "tenant_id": tenant_id,
                "client_id": {"$in": sorted({client for client, _ in pairs})},
                "cause_event_id": {"$in": sorted({cause for _, cause in pairs})}})

    async def save_contacts(self, saves: Sequence[ContactSave]) -> None:
        """`apply_once` of each contact change, in about three round trips for all of them.

        Several changes of one person (a coach named in many enrolments of a wave) become
        one write that records every cause and sets the fields as applying them in order
        would. A write whose guard fails (someone changed the contact since it was read),
        and a contact whose applied-causes list is due for trimming, go `apply_once`'s way.
        """
        groups: dict[str, tuple[dict[str, str], list[ContactSave]]] = {}
        for save in saves:
            key = person_key(save.tenant_id, save.person_id)
            groups.setdefault(key["_id"], (key, []))[1].append(save)
        if not groups:
            return
        stored = {document["_id"]: document.get("applied_events", []) for document in
                  await self.contacts.find({"_id": {"$in": list(groups)}},
                                           {"applied_events": 1}).to_list()}
        inserts: list[tuple[list[ContactSave], dict[str, Any]]] = []
        updates: list[tuple[list[ContactSave], UpdateOne]] = []
        one_by_one: list[ContactSave] = []
        for _id, (key, group) in groups.items():
            applied = stored.get(_id)
            fresh = [save for save in group if save.cause_id not in (applied or ())]
            causes = list(dict.fromkeys(save.cause_id for save in fresh))
            if not causes:
                continue
            fields: dict[str, Any] = {}
            for save in fresh:
                fields.update(save.fields)
            if applied is None:
                document = new_document(key, causes[0], fields)
                document["applied_events"] = causes
                inserts.append((fresh, document))
            elif len(applied) + len(causes) > APPLIED_EVENTS_KEPT + APPLIED_TRIM_SLACK:
                one_by_one += fresh
            else:
                updates.append((fresh, UpdateOne(
                    {"_id": _id, "applied_events": applied},  # nobody wrote since the read
                    {"$set": fields, "$push": {"applied_events": {
                        "$each": causes, "$slice": -APPLIED_EVENTS_KEPT}}})))
        for part in chunks(inserts):
            new = {id(document) for document in
                   await insert_new(self.contacts, [document for _, document in part])}
            one_by_one += [save for group, document in part if id(document) not in new
                           for save in group]
        for part in chunks(updates):
            result = await self.contacts.bulk_write([update for _, update in part],
                                                    ordered=False)
            if result.matched_count < len(part):  # some guard failed: decide one by one
                one_by_one += [save for group, _ in part for save in group]
        for save in one_by_one:  # apply_once skips the causes applied meanwhile
            await apply_once(self.contacts, person_key(save.tenant_id, save.person_id),
                             save.cause_id, {"$set": save.fields})

    async def contact(self, tenant_id: str, person_id: str) -> dict[str, Any] | None:
        return await self.contacts.find_one(person_key(tenant_id, person_id))

    async def contacts_of(self, people: Iterable[tuple[str, str]]
                          ) -> dict[tuple[str, str], dict[str, Any]]:
        """The contacts of many (tenant, person) pairs, in one read."""
        return await _by_person(self.contacts, people, None)

    async def preferences(self, tenant_id: str, person_id: str) -> dict[str, Any] | None:
        return await self.preferences_collection.find_one(
            person_key(tenant_id, person_id), {"_id": 0, "preferences": 1})

    async def preferences_of(self, people: Iterable[tuple[str, str]]
                             ) -> dict[tuple[str, str], dict[str, Any]]:
        """The stored preferences of many (tenant, person) pairs, in one read."""
        return await _by_person(self.preferences_collection, people,
                                {"tenant_id": 1, "person_id": 1, "preferences": 1})

    async def save_preferences(self, tenant_id: str, person_id: str, cause_id: str,
                               preferences: dict[str, Any], *, client_id: str | None,
                               now: datetime) -> None:
        fields: dict[str, Any] = {"preferences": preferences, "updated_at": now}
        if client_id:
            fields["client_id"] = client_id
        await apply_once(self.preferences_collection, person_key(tenant_id, person_id),
                         cause_id, {"$set": fields})

    async def tenant_defaults(self, tenant_id: str) -> dict[str, Any] | None:
        return await self.tenant_defaults_collection.find_one(
            keyed(tenant_id=tenant_id), {"_id": 0, "defaults": 1})

    async def tenant_defaults_of(self, tenant_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored defaults of many tenants, in one read."""
        ids = sorted({keyed(tenant_id=tenant_id)["_id"] for tenant_id in tenant_ids})
        if not ids:
            return {}
        found = await self.tenant_defaults_collection.find(
            {"_id": {"$in": ids}}, {"_id": 0, "tenant_id": 1, "defaults": 1}).to_list()
        return {document["tenant_id"]: document for document in found}

    async def save_tenant_defaults(self, tenant_id: str, cause_id: str,
                                   defaults: dict[str, Any], now: datetime) -> None:
        await apply_once(self.tenant_defaults_collection,
                         keyed(tenant_id=tenant_id), cause_id,
                         {"$set": {"defaults": defaults, "updated_at": now}})

    # -- templates ------------------------------------------------------------------------

    async def template_overrides_for(self, tenant_ids: Iterable[str], event_types: Iterable[str]
                                     ) -> dict[tuple[str, str, str], dict[str, Any]]:
        """Every override of these tenants and event types, by (tenant, type, locale)."""
        tenants, types = sorted(set(tenant_ids)), sorted(set(event_types))
        if not tenants or not types:
            return {}
        found = await self.templates.find(
            {"tenant_id": {"$in": tenants}, "event_type": {"$in": types}},
            {"_id": 0, "applied_events": 0}).to_list()
        return {(doc["tenant_id"], doc["event_type"], doc["locale"]): doc for doc in found}

    async def template_overrides(self, tenant_id: str) -> list[dict[str, Any]]:
        cursor = self.templates.find({"tenant_id": tenant_id}, {"_id": 0, "applied_events": 0})
        return await cursor.sort([("event_type", 1), ("locale", 1)]).to_list()

    async def save_template(self, tenant_id: str, event_type: str, locale: str, cause_id: str,
                            template: dict[str, Any], now: datetime) -> None:
        await apply_once(self.templates, {"tenant_id": tenant_id, "event_type": event_type,
                                          "locale": locale}, cause_id,
                         {"$set": {"template": template, "updated_at": now}})

    async def delete_template(self, tenant_id: str, event_type: str, locale: str) -> bool:
        result = await self.templates.delete_one(
            {"tenant_id": tenant_id, "event_type": event_type, "locale": locale})
        return result.deleted_count == 1

    # -- webhook subscriptions ------------------------------------------------------------

    async def create_webhook(self, tenant_id: str, subscription_id: str, cause_id: str,
                             fields: dict[str, Any]) -> None:
        await apply_once(self.webhooks, {"tenant_id": tenant_id,
                                         "subscription_id": subscription_id},
                         cause_id, {"$setOnInsert": fields})

    async def webhook(self, tenant_id: str, subscription_id: str) -> dict[str, Any] | None:
        return await self.webhooks.find_one({"tenant_id": tenant_id,
                                             "subscription_id": subscription_id})

    async def webhooks_of(self, tenant_id: str) -> list[dict[str, Any]]:
        cursor = self.webhooks.find({"tenant_id": tenant_id}).sort("created_at", 1)
        return await cursor.to_list()

    async def webhooks_of_tenants(self, tenant_ids: Iterable[str]
                                  ) -> dict[str, list[dict[str, Any]]]:
        """Each tenant's subscriptions (oldest first), in one read."""
        tenants = sorted(set(tenant_ids))
        found: dict[str, list[dict[str, Any]]] = {tenant_id: [] for tenant_id in tenants}
        if tenants:
            cursor = self.webhooks.find({"tenant_id": {"$in": tenants}}).sort("created_at", 1)
            for subscription in await cursor.to_list():
                found[subscription["tenant_id"]].append(subscription)
        return found

    async def rotate_webhook_secrets(self, tenant_id: str, subscription_id: str, cause_id: str,
                                     new_secrets: list[dict[str, Any]],
                                     expected: list[dict[str, Any]]) -> bool:
        """Replace the secrets if nobody rotated meanwhile (compare-and-set on the list)."""
        result = await self.webhooks.update_one(
            {"tenant_id": tenant_id, "subscription_id": subscription_id, "secrets": expected},
            {"$set": {"secrets": new_secrets, "rotated_by": cause_id}})
        return result.modified_count == 1

    async def delete_webhook(self, tenant_id: str, subscription_id: str) -> bool:
        result = await self.webhooks.delete_one({"tenant_id": tenant_id,
                                                 "subscription_id": subscription_id})
        return result.deleted_count == 1

    # -- deliveries -----------------------------------------------------------------------

    async def plan_deliveries(self, deliveries: Sequence[dict[str, Any]]) -> int:
        """Insert planned deliveries; ones planned before (a redelivery) stay as they are."""
        return sum([len(await insert_new(self.deliveries, part)) for part in chunks(deliveries)])

    async def claim_due(self, now: datetime, lease_until: datetime, lease_token: str,
                        limit: int = 1) -> list[dict[str, Any]]:
        """Take up to `limit` of the most overdue deliveries: pending ones, and sending ones
        whose lease ran out.

        The claim counts as an attempt, so a sender that dies mid-send still used one. A
        delivery another replica claimed at the same moment is left to it.
        """
        claimed: list[dict[str, Any]] = []
        looked = False
        while len(claimed) < limit:
            if not self._due or time.monotonic() > self._due_until:
                if looked:
                    break
                looked = True
                # Whole documents: a lease taken as read needs no second read of them.
                self._due = await self.deliveries.find(
                    {"status": {"$in": CLAIMABLE}, "due_at": {"$lte": now}}).sort(
                        "due_at", 1).limit(max(CLAIM_CANDIDATES, 2 * limit)).to_list()
                self._due_until = time.monotonic() + DUE_KEPT_SECONDS
                if not self._due:
                    break
            take = self._due[:limit - len(claimed)]
            del self._due[:len(take)]
            claimed += await self._claim_all(take, now, lease_until, lease_token)
        return claimed

    async def _claim_all(self, seen: Sequence[Mapping[str, Any]], now: datetime,
                         lease_until: datetime, lease_token: str) -> list[dict[str, Any]]:
        """Claim these deliveries as read: the claims in one insert, the erasures in one
        read, the leases in one bulk write; returns the deliveries whose lease we took (as
        they are now stored)."""
        held = await self._hold_claims(seen, now, lease_until, lease_token)
        leases = [(one, UpdateOne(
            {"_id": one["_id"], "status": {"$in": CLAIMABLE}, "due_at": one["due_at"],
             "attempts": one["attempts"]},
            {"$set": {"status": DeliveryStatus.SENDING.value, "due_at": lease_until,
                      "lease_token": lease_token},
             "$inc": {"attempts": 1}})) for one in held]
        claimed: list[dict[str, Any]] = []
        for part in chunks(leases):
            result = await self.deliveries.bulk_write([lease for _, lease in part],
                                                      ordered=False)
            leased = [{**one, "status": DeliveryStatus.SENDING.value, "due_at": lease_until,
                       "lease_token": lease_token, "attempts": one["attempts"] + 1}
                      for one, _ in part]
            if result.matched_count == len(part):
                claimed += leased  # each lease was taken on the document as it was read
                continue
            # Some changed since they were read: ours are those under our lease now (read
            # one by one: FerretDB reads `_id` equality through the index, `$in` is a scan).
            for expected in leased:
                document = await self.deliveries.find_one({"_id": expected["_id"]})
                if document is not None and all(document.get(name) == expected[name] for name
                                                 in ("status", "lease_token", "attempts")):
                    claimed.append(document)
        return claimed

    async def _hold_claims(self, seen: Sequence[Mapping[str, Any]], now: datetime,
                           lease_until: datetime, lease_token: str) -> list[Mapping[str, Any]]:
        """Record a claim of each delivery in the state it was read; returns those whose
        claim is ours (another sender may have recorded one first). A claim whose claimer
        died before taking the lease is given up once its lease ran out."""
        entries = [_claim_entry(one) for one in seen]
        rows = [{**entry, "client_id": one["client_id"], "lease_token": lease_token,
                 "lease_until": lease_until, "claimed_at": now}
                for one, entry in zip(seen, entries, strict=True)]
        new = {id(row) for row in await insert_new(self.claims, rows)}
        held = [(one, entry) for one, entry, row in zip(seen, entries, rows, strict=True)
                if id(row) in new]
        for one, entry, row in zip(seen, entries, rows, strict=True):
            if id(row) not in new and await self._take_over_claim(entry, row, now):
                held.append((one, entry))
        if not held:
            return []
        # The client may have been offboarded since the delivery was read: the erasure
        # sets its tombstone before it deletes, so either it or this removes the claim.
        erased = {tombstone["_id"] for tombstone in await self._db[TOMBSTONES].find(
            {"_id": {"$in": sorted({member_key(one["tenant_id"], one["client_id"])["_id"]
                                    for one, _ in held})}}, {"_id": 1}).to_list()}
        kept = []
        for one, entry in held:
            if member_key(one["tenant_id"], one["client_id"])["_id"] in erased:
                await self.claims.delete_one({**entry, "lease_token": lease_token})
            else:
                kept.append(one)
        return kept

    async def _take_over_claim(self, entry: dict[str, Any], row: dict[str, Any],
                               now: datetime) -> bool:
        """After our claim was refused: take it over if its claimer's lease ran out."""
        held = await self.claims.find_one(entry)
        if held is None or held["lease_until"] > now:
            return False
        await self.claims.delete_one({**entry, "lease_token": held["lease_token"]})
        return bool(await insert_new(self.claims, [dict(row)]))

    async def schedule_retry(self, delivery: Mapping[str, Any], due_at: datetime,
                             entry: dict[str, Any]) -> bool:
        """Back to pending with a later due time; False if our lease was taken over."""
        result = await self.deliveries.update_one(
            _leased(delivery),
            {"$set": {"status": DeliveryStatus.PENDING.value, "due_at": due_at},
             "$unset": {"lease_token": ""}, "$push": {"attempt_log": entry}})
        return result.modified_count == 1

    async def finish_deliveries(self, finished: Sequence[Finished]
                                ) -> list[dict[str, Any] | None]:
        """`finish_delivery` for many, in one bulk write.

        Each write is guarded by its claim (`_leased`) and records its cause, one per claim
        (a delivery queued again after failing gets its own outcome). If every guard held,
        every outcome stands; otherwise each document is read to tell which do (also when
        this retries a write that landed before).
        """
        if not finished:
            return []
        updates = [UpdateOne(*guarded_update(
            _leased(one.delivery), _outcome_cause(one.delivery),
            {"$set": {"status": one.status.value, **one.fields},
             "$unset": {"lease_token": ""}, "$push": {"attempt_log": one.entry}},
            [one.event])) for one in finished]
        written: list[dict[str, Any] | None] = []
        for part in chunks(list(zip(finished, updates, strict=True))):
            result = await self.deliveries.bulk_write([update for _, update in part],
                                                      ordered=False)
            if result.matched_count == len(part):  # every outcome recorded as written
                written += [{"_id": one.delivery["_id"], "outbox": [one.event.to_document()]}
                            for one, _ in part]
                continue
            # Some guard failed (lease taken over, erased, or this retries a write that
            # landed): the stored document tells, read by `_id` (rare: one by one).
            for one, _ in part:
                document = await self.deliveries.find_one({"_id": one.delivery["_id"]},
                                                          {"outbox": 1, "applied_events": 1})
                recorded = document is not None and _outcome_cause(one.delivery) in (
                    document.get("applied_events") or ())
                written.append({"_id": one.delivery["_id"], "outbox": document.get("outbox")
                                or []} if recorded and document is not None else None)
        return written

    async def delivery_log(self, tenant_id: str, criteria: Mapping[str, Any],
                           limit: int) -> list[dict[str, Any]]:
        cursor = self.deliveries.find({"tenant_id": tenant_id, **criteria}, DELIVERY_LOG_FIELDS)
        return await cursor.sort("created_at", -1).limit(limit).to_list()

    async def delivery_counts(self, tenant_id: str) -> dict[str, dict[str, int]]:
        """Deliveries per channel and status (one $sum per $group, as FerretDB needs)."""
        cursor = await self.deliveries.aggregate([
            {"$match": {"tenant_id": tenant_id}},
            {"$group": {"_id": {"channel": "$channel", "status": "$status"},
                        "count": {"$sum": 1}}}])
        counts: dict[str, dict[str, int]] = {}
        async for row in cursor:
            counts.setdefault(row["_id"]["channel"], {})[row["_id"]["status"]] = row["count"]
        return counts

    async def retry_failed(self, tenant_id: str, notification_id: str,
                           now: datetime) -> dict[str, Any] | None:
        """Put a failed delivery back in the queue (after the receiver was fixed)."""
        document = await self.deliveries.find_one_and_update(
            {"tenant_id": tenant_id, "notification_id": notification_id,
             "status": DeliveryStatus.FAILED.value},
            {"$set": {"status": DeliveryStatus.PENDING.value, "due_at": now, "attempts": 0,
                      "requeued_at": now},
             "$inc": {"requeues": 1}},  # a fresh series of claim numbers
            return_document=ReturnDocument.AFTER)
        # Projected here: FerretDB's findAndModify takes no projection.
        return None if document is None else {
            name: value for name, value in document.items() if DELIVERY_LOG_FIELDS.get(name)}

    # -- inbox ----------------------------------------------------------------------------

    async def add_all_to_inbox(self, items: Sequence[dict[str, Any]]) -> list[None]:
        """File inbox items once each: one insert, one read of the clients' erasures."""
        documents = [{**inbox_key(item["tenant_id"], item["person_id"],
                                  item["notification_id"]), **item} for item in items]
        for part in chunks(documents):
            await insert_new(self.inbox, part)  # one filed before stays as it is
        clients = sorted({member_key(item["tenant_id"], item["client_id"])["_id"]
                          for item in items if item.get("client_id")})
        if clients:
            erased = {tombstone["_id"] for tombstone in await self._db[TOMBSTONES].find(
                {"_id": {"$in": clients}}, {"_id": 1}).to_list()}
            for item, document in zip(items, documents, strict=True):
                if (item.get("client_id") and member_key(
                        item["tenant_id"], item["client_id"])["_id"] in erased):
                    # Offboarded while this was in flight.
                    await self.inbox.delete_one({"_id": document["_id"]})
        return [None] * len(items)

    async def inbox_items(self, tenant_id: str, person_id: str, *, unread_only: bool,
                          limit: int, before: datetime | None) -> list[dict[str, Any]]:
        criteria = keyed_under(tenant_id=tenant_id, person_id=person_id)
        if unread_only:
            criteria["read_at"] = None
        if before is not None:
            criteria["created_at"] = {"$lt": before}
        cursor = self.inbox.find(criteria, {"_id": 0, "tenant_id": 0, "client_id": 0})
        items = await cursor.sort("created_at", -1).limit(limit).to_list()
        for item in items:
            item.setdefault("read_at", None)  # FerretDB does not store inserted nulls
        return items

    async def unread_count(self, tenant_id: str, person_id: str) -> int:
        return await self.inbox.count_documents(
            {**keyed_under(tenant_id=tenant_id, person_id=person_id), "read_at": None})

    async def mark_read(self, tenant_id: str, person_id: str, notification_id: str,
                        now: datetime) -> bool:
        """Mark one item read (idempotent); False if the person has no such item."""
        key = inbox_key(tenant_id, person_id, notification_id)
        await self.inbox.update_one({**key, "read_at": None}, {"$set": {"read_at": now}})
        return await self.inbox.count_documents(key, limit=1) == 1

    async def mark_all_read(self, tenant_id: str, person_id: str, now: datetime) -> int:
        result = await self.inbox.update_many(
            {**keyed_under(tenant_id=tenant_id, person_id=person_id), "read_at": None},
            {"$set": {"read_at": now}})
        return result.modified_count


def _outcome_cause(delivery: Mapping[str, Any]) -> str:
    """The cause an outcome records: one per claim (its lease token)."""
    return f"outcome|{delivery['lease_token']}"


def _claim_entry(seen: Mapping[str, Any]) -> dict[str, Any]:
    """The claim of a delivery in the state it was read: its requeues and attempts."""
    return {"tenant_id": seen["tenant_id"], "notification_id": seen["notification_id"],
            "claim": f"{seen.get('requeues', 0)}|{seen['attempts']}"}


def _leased(delivery: Mapping[str, Any]) -> dict[str, Any]:
    """The filter that matches a delivery only while the given claim still holds it.

    The claim number, not the lease token: the lease is taken only by the claimer that
    recorded the claim in `delivery_claims`, and a later claim counts another attempt.
    """
    return {"_id": delivery["_id"], **{name: delivery[name] for name in DELIVERY_KEY},
            "status": DeliveryStatus.SENDING.value, "attempts": delivery["attempts"],
            "requeues": delivery["requeues"] if "requeues" in delivery
            else {"$exists": False}}
