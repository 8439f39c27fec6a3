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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from coaching_shared.events import EventMessage
from coaching_shared.membership import is_erased
from coaching_shared.mongo import IndexSpec, apply_once, insert_new, keyed, keyed_under
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

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
CLAIM_CANDIDATES = 20  # due deliveries looked at per claim (others may take the first ones)



def person_key(tenant_id: str, person_id: str) -> dict[str, str]:
    """A person's contact or preferences, read for every notification: keyed by `_id`."""
    return keyed(tenant_id=tenant_id, person_id=person_id)


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

    # -- contacts and preferences ---------------------------------------------------------

    async def hold_for_contact(self, tenant_id: str, client_id: str,
                               message: EventMessage) -> None:
        """Keep an event until the client's contact is known (idempotent)."""
        key = {"tenant_id": tenant_id, "client_id": client_id, "cause_event_id": message.id}
        try:
            await self.awaiting.update_one(
                key, {"$setOnInsert": {"message": message.to_document()}}, upsert=True)
        except DuplicateKeyError:
            pass  # held already

    async def held_for(self, tenant_id: str, client_id: str) -> list[EventMessage]:
        found = await self.awaiting.find({"tenant_id": tenant_id,
                                          "client_id": client_id}).to_list()
        return [EventMessage.from_document(doc["message"]) for doc in found]

    async def release_held(self, tenant_id: str, client_id: str, cause_event_id: str) -> None:
        await self.awaiting.delete_one({"tenant_id": tenant_id, "client_id": client_id,
                                        "cause_event_id": cause_event_id})

    async def save_contact(self, tenant_id: str, person_id: str, cause_id: str,
                           contact: dict[str, Any], *, client_id: str | None) -> None:
        fields = {**contact, "client_id": client_id} if client_id else contact
        await apply_once(self.contacts, person_key(tenant_id, person_id), cause_id,
                         {"$set": fields})

    async def contact(self, tenant_id: str, person_id: str) -> dict[str, Any] | None:
        return await self.contacts.find_one(person_key(tenant_id, person_id))

    async def preferences(self, tenant_id: str, person_id: str) -> dict[str, Any] | None:
        return await self.preferences_collection.find_one(
            person_key(tenant_id, person_id), {"_id": 0, "preferences": 1})

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

    async def save_tenant_defaults(self, tenant_id: str, cause_id: str,
                                   defaults: dict[str, Any], now: datetime) -> None:
        await apply_once(self.tenant_defaults_collection,
                         keyed(tenant_id=tenant_id), cause_id,
                         {"$set": {"defaults": defaults, "updated_at": now}})

    # -- templates ------------------------------------------------------------------------

    async def template_override(self, tenant_id: str, event_type: str,
                                locales: Sequence[str]) -> dict[str, Any] | None:
        """The tenant's override for the first locale of the fallback chain that has one."""
        found = await self.templates.find(
            {"tenant_id": tenant_id, "event_type": event_type, "locale": {"$in": list(locales)}},
            {"_id": 0}).to_list()
        by_locale = {doc["locale"]: doc for doc in found}
        return next((by_locale[locale] for locale in locales if locale in by_locale), None)

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
        return len(await insert_new(self.deliveries, deliveries))

    async def claim_due(self, now: datetime, lease_until: datetime, lease_token: str,
                        limit: int = 1) -> list[dict[str, Any]]:
        """Take up to `limit` of the most overdue deliveries: pending ones, and sending ones
        whose lease ran out.

        The claim counts as an attempt, so a sender that dies mid-send still used one. A
        delivery another replica claimed at the same moment is left to it.
        """
        due = await self.deliveries.find(
            {"status": {"$in": CLAIMABLE}, "due_at": {"$lte": now}},
            {"tenant_id": 1, "client_id": 1, "notification_id": 1, "attempts": 1,
             "requeues": 1, "due_at": 1}).sort("due_at", 1).limit(
                 max(CLAIM_CANDIDATES, 2 * limit)).to_list()
        claimed: list[dict[str, Any]] = []
        for seen in due:
            if len(claimed) == limit:
                break
            if not await self._hold_claim(seen, now, lease_until, lease_token):
                continue  # another sender claimed it in this state
            document = await self.deliveries.find_one_and_update(
                {"_id": seen["_id"], "status": {"$in": CLAIMABLE}, "due_at": seen["due_at"],
                 "attempts": seen["attempts"]},
                {"$set": {"status": DeliveryStatus.SENDING.value, "due_at": lease_until,
                          "lease_token": lease_token},
                 "$inc": {"attempts": 1}},
                return_document=ReturnDocument.AFTER)
            if document is not None:
                claimed.append(document)
        return claimed

    async def _hold_claim(self, seen: Mapping[str, Any], now: datetime,
                          lease_until: datetime, lease_token: str) -> bool:
        """Record a claim of the delivery in the state it was read; False if another sender
        recorded that claim first. A claim whose claimer died before taking the lease is
        given up once its lease ran out."""
        entry = {"tenant_id": seen["tenant_id"], "notification_id": seen["notification_id"],
                 "claim": f"{seen.get('requeues', 0)}|{seen['attempts']}"}
        for _ in range(2):
            try:
                await self.claims.insert_one({**entry, "client_id": seen["client_id"],
                                              "lease_token": lease_token,
                                              "lease_until": lease_until, "claimed_at": now})
            except DuplicateKeyError:
                held = await self.claims.find_one(entry)
                if held is None or held["lease_until"] > now:
                    return False
                await self.claims.delete_one({**entry, "lease_token": held["lease_token"]})
                continue
            # The client may have been offboarded since the delivery was read: the erasure
            # sets its tombstone before it deletes, so either it or this removes the claim.
            if await is_erased(self._db, seen["tenant_id"], seen["client_id"]):
                await self.claims.delete_one({**entry, "lease_token": lease_token})
                return False
            return True
        return False

    async def schedule_retry(self, delivery: Mapping[str, Any], due_at: datetime,
                             entry: dict[str, Any]) -> bool:
        """Back to pending with a later due time; False if our lease was taken over."""
        result = await self.deliveries.update_one(
            _leased(delivery),
            {"$set": {"status": DeliveryStatus.PENDING.value, "due_at": due_at},
             "$unset": {"lease_token": ""}, "$push": {"attempt_log": entry}})
        return result.modified_count == 1

    async def finish_delivery(self, delivery: Mapping[str, Any], status: DeliveryStatus,
                              fields: dict[str, Any], entry: dict[str, Any],
                              outcome_event: EventMessage) -> dict[str, Any] | None:
        """Mark sent or failed and queue the outcome event, in one write under our lease.

        Returns the document (to relay its outbox), or None if the lease was taken over or
        the delivery was erased meanwhile (offboarding): nothing is then recorded.
        """
        return await apply_once(
            # One outcome per claim: a delivery queued again after failing gets its own.
            self.deliveries, _leased(delivery), f"outcome|{delivery['lease_token']}",
            {"$set": {"status": status.value, **fields}, "$unset": {"lease_token": ""},
             "$push": {"attempt_log": entry}},
            outbox=[outcome_event], create=False)

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

    async def add_to_inbox(self, item: dict[str, Any]) -> None:
        """File an inbox item once (a second claim of the same delivery finds it there)."""
        key = inbox_key(item["tenant_id"], item["person_id"], item["notification_id"])
        try:
            await self.inbox.update_one(key, {"$setOnInsert": item}, upsert=True)
        except DuplicateKeyError:
            pass  # a concurrent insert of the same item won
        if item.get("client_id") and await is_erased(self._db, item["tenant_id"],
                                                     item["client_id"]):
            await self.inbox.delete_one(key)  # offboarded while this was in flight

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


def _leased(delivery: Mapping[str, Any]) -> dict[str, Any]:
    """The filter that matches a delivery only while the given claim still holds it.

    The claim number, not the lease token: the lease is taken only by the claimer that
    recorded the claim in `delivery_claims`, and a later claim counts another attempt.
    """
    return {"_id": delivery["_id"], **{name: delivery[name] for name in DELIVERY_KEY},
            "status": DeliveryStatus.SENDING.value, "attempts": delivery["attempts"],
            "requeues": delivery["requeues"] if "requeues" in delivery
            else {"$exists": False}}
