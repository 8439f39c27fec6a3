"""ClientOffboarded erases the client everywhere: every collection of every service's database.

The client first leaves traces in all four services (support.journey: an assessment
submitted, goals set and measured, a check-in with a reflection, the coach's feedback and a
review, a 360 round, notifications by email, inbox and webhook). After the HRIS publishes
`ClientOffboarded`, no document anywhere may mention the client's id or email address, in
any field at any depth, except the tombstone `coaching_shared.membership` designs for it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from coaching_shared.contracts import ClientOffboarded
from coaching_shared.membership import TOMBSTONES
from pymongo import AsyncMongoClient
from support.journey import platform_after_journey
from support.kafka_tools import eventually, publish_events
from support.whole_platform import SERVICES, platform_settings

pytestmark = pytest.mark.integration

TENANT = "acme"


async def mentions(mongo: AsyncMongoClient, databases: list[str],
                   needles: list[str]) -> list[dict[str, Any]]:
    """Every document, in every collection of the databases, whose JSON holds a needle."""
    found = []
    for database in databases:
        db = mongo[database]
        for collection in await db.list_collection_names():
            async for document in db[collection].find({}):
                text = json.dumps(document, default=str)
                hits = [needle for needle in needles if needle in text]
                if hits:
                    found.append({"database": database, "collection": collection,
                                  "mentions": hits, "document": text[:400]})
    return found


def is_tombstone(finding: dict[str, Any]) -> bool:
    return finding["collection"] == TOMBSTONES


async def test_offboarding_leaves_nothing_but_the_tombstone_in_any_database(infra, mongo):
    prefix = f"er{uuid.uuid4().hex[:8]}."
    databases = [platform_settings(infra, prefix, name).database_name for name in SERVICES]
    async with platform_after_journey(infra, prefix, TENANT) as platform:
        journey = platform.journey
        cast = journey.cast
        needles = [cast.client.subject, cast.email]
        await eventually(lambda: _mail_arrived(platform), timeout=60)
        before = await mentions(mongo, databases, needles)
        collections_before = {(f["database"], f["collection"]) for f in before}
        # The journey really left the client in every service, in many collections.
        assert {database for database, _ in collections_before} == set(databases)
        assert len(collections_before) >= 10, sorted(collections_before)

        await publish_events(infra.kafka_bootstrap_servers, prefix, [ClientOffboarded(
            tenant_id=TENANT, client_id=cast.client.subject, reason="left the company")])

        async def only_tombstones():
            remaining = await mentions(mongo, databases, needles)
            left = [f for f in remaining if not is_tombstone(f)]
            return remaining if not left and len(remaining) == len(databases) else None

        try:
            remaining = await eventually(only_tombstones, timeout=60)
        except AssertionError:
            left = [f for f in await mentions(mongo, databases, needles) if not is_tombstone(f)]
            raise AssertionError("documents still mention the client:\n"
                                 + json.dumps(left, indent=1)) from None
        other = await mentions(mongo, databases, [cast.other_client.subject])

    # One tombstone per service, holding the tenant, the id and when: nothing personal.
    for tombstone in remaining:
        stored = json.loads(tombstone["document"])
        assert set(stored) == {"_id", "tenant_id", "client_id", "offboarded_at"}, stored
        assert cast.email not in tombstone["mentions"]
    # Erasure is of this client only: the other client of the tenant is still there.
    assert {f["database"] for f in other} == set(databases)


async def _mail_arrived(platform) -> bool:
    """The notifier's email reached the SMTP server (its delivery log is then complete)."""
    return bool(platform.smtp.messages)
