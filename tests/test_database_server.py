"""The MongoDB-wire server keeps the semantics the services rely on.

Single-document atomicity under concurrent writers, which every service relies on: a guarded
update is a compare-and-set, and two updates of one document touching different fields both
land (an outbox relay clearing its entries while a request changes the goal's status, say).
FerretDB 1.24 as released reads, then writes the whole document back, and lost one of eight
concurrent claims in 27 of 30 rounds here; the build in deploy/local applies
ferretdb-serialize-writes.patch. These tests fail without it.

Lookups that pin `_id` next to other conditions, list ids or give an `_id` prefix, and
equalities with strings and booleans and comparisons with dates, answer exactly what MongoDB
answers (our FerretDB build reads the former through the `_id` index and lets SQLite select
rows for the latter:
ferretdb-use-id-index.patch; the handler still applies the whole filter).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bson import Int64, ObjectId
from coaching_shared.mongo import key_id, under_key
from pymongo import AsyncMongoClient, ReturnDocument

ROUNDS = 20
WRITERS = 8


async def test_a_guarded_claim_has_exactly_one_winner(mongo: AsyncMongoClient,
                                                       database_name: str) -> None:
    claims = mongo[database_name]["claims"]
    winners_per_round = []
    for round_number in range(ROUNDS):
        await claims.insert_one({"_id": round_number, "owner": None})

        async def claim(writer: int, round_number: int = round_number) -> bool:
            won = await claims.find_one_and_update(
                {"_id": round_number, "owner": None}, {"$set": {"owner": writer}},
                return_document=ReturnDocument.AFTER)
            return won is not None

        results = await asyncio.gather(*(claim(writer) for writer in range(WRITERS)))
        winners_per_round.append(sum(results))
    assert winners_per_round == [1] * ROUNDS


async def test_concurrent_updates_of_different_fields_all_land(mongo: AsyncMongoClient,
                                                               database_name: str) -> None:
    goals = mongo[database_name]["goals"]
    await goals.insert_one({"_id": "goal-1", "status": "suggested", "outbox": list(range(50)),
                            "readings": []})

    async def relay_clears(entry: int) -> None:  # what an outbox relay does after publishing
        await goals.update_one({"_id": "goal-1"}, {"$pull": {"outbox": entry}})

    async def check_in(reading: int) -> None:  # what a consumer does with a check-in
        await goals.update_one({"_id": "goal-1"}, {"$push": {"readings": reading}})

    await asyncio.gather(*(relay_clears(entry) for entry in range(50)),
                         *(check_in(reading) for reading in range(50)),
                         goals.update_one({"_id": "goal-1"}, {"$set": {"status": "active"}}))
    goal = await goals.find_one({"_id": "goal-1"})
    assert goal is not None
    assert goal["status"] == "active"
    assert goal["outbox"] == []
    assert sorted(goal["readings"]) == list(range(50))


async def test_a_delete_does_not_remove_a_document_changed_to_no_longer_match(
        mongo: AsyncMongoClient, database_name: str) -> None:
    leases = mongo[database_name]["leases"]
    kept = 0
    for round_number in range(ROUNDS):
        await leases.insert_one({"_id": round_number, "state": "expired"})
        renewed, deleted = await asyncio.gather(
            leases.update_one({"_id": round_number, "state": "expired"},
                              {"$set": {"state": "renewed"}}),
            leases.delete_one({"_id": round_number, "state": "expired"}))
        # Either order is fine, but not both: a renewed lease must not then be deleted.
        assert renewed.modified_count + deleted.deleted_count == 1
        kept += renewed.modified_count
    assert await leases.count_documents({}) == kept


async def test_an_id_lookup_with_more_conditions_applies_all_of_them(
        mongo: AsyncMongoClient, database_name: str) -> None:
    goals = mongo[database_name]["goals"]
    goal_id = key_id("acme", "client-1", "goal-1")
    await goals.insert_one({"_id": goal_id, "tenant_id": "acme", "status": "active",
                            "tags": ["career", "skills"]})
    assert await goals.find_one({"_id": goal_id, "tenant_id": "acme"}) is not None
    assert await goals.find_one({"_id": goal_id, "tenant_id": "globex"}) is None
    assert await goals.find_one({"_id": goal_id, "tags": "skills"}) is not None
    assert await goals.find_one({"_id": goal_id, "status": {"$in": ["achieved"]}}) is None
    changed = await goals.update_one({"_id": goal_id, "status": "suggested"},
                                     {"$set": {"status": "abandoned"}})
    assert changed.matched_count == 0
    changed = await goals.update_one({"_id": goal_id, "status": "active"},
                                     {"$set": {"status": "achieved"}})
    assert changed.modified_count == 1


async def test_an_id_prefix_finds_exactly_the_documents_under_it(
        mongo: AsyncMongoClient, database_name: str) -> None:
    goals = mongo[database_name]["goals"]
    # Client ids that share a start, carry the separator or regex metacharacters, and ids
    # of other shapes: only the right client's documents may come back.
    clients = ["client-1", "client-10", "client|1", "client.1", "c*1", "client-1 x"]
    await goals.insert_many([{"_id": key_id("acme", client, f"goal-{n}"), "tenant_id": "acme",
                              "client_id": client, "n": n}
                             for client in clients for n in range(3)])
    await goals.insert_many([{"_id": key_id("globex", "client-1", "goal-0"),
                              "tenant_id": "globex", "client_id": "client-1", "n": 0},
                             {"_id": ObjectId(), "tenant_id": "acme", "client_id": "client-1",
                              "n": 9},
                             {"_id": 42, "tenant_id": "acme", "client_id": "client-1", "n": 9}])
    for client in clients:
        found = await goals.find({"_id": under_key("acme", client)}).sort("n", 1).to_list()
        assert [(document["client_id"], document["n"]) for document in found] == \
            [(client, 0), (client, 1), (client, 2)]
    found = await goals.find({"_id": under_key("acme", "client-1"), "n": {"$gte": 1}}).to_list()
    assert sorted(document["n"] for document in found) == [1, 2]
    # A regex that is not a plain prefix still means what it says.
    found = await goals.find({"_id": {"$regex": "^acme\\|client.1\\|"}}).to_list()
    assert {document["client_id"] for document in found} == {"client-1", "client.1"}


async def test_a_list_of_ids_finds_exactly_those_documents(
        mongo: AsyncMongoClient, database_name: str) -> None:
    roster = mongo[database_name]["roster"]
    await roster.insert_many([{"_id": key_id("acme", f"c-{n}"), "n": n, "even": n % 2 == 0}
                              for n in range(10)]
                             + [{"_id": 7, "n": 70}, {"_id": ObjectId(), "n": 80}])
    wanted = [key_id("acme", f"c-{n}") for n in (1, 4, 9)] + [key_id("acme", "absent")]
    found = await roster.find({"_id": {"$in": wanted}}).to_list()
    assert sorted(document["n"] for document in found) == [1, 4, 9]
    found = await roster.find({"_id": {"$in": wanted}, "even": True}).to_list()
    assert [document["n"] for document in found] == [4]
    found = await roster.find({"_id": {"$in": [*wanted, 7]}}).to_list()  # mixed id types
    assert sorted(document["n"] for document in found) == [1, 4, 9, 70]
    assert await roster.find({"_id": {"$in": []}}).to_list() == []
    changed = await roster.update_many({"_id": {"$in": wanted}}, {"$set": {"seen": True}})
    assert changed.modified_count == 3
    deleted = await roster.delete_many({"_id": {"$in": wanted}, "even": False})
    assert deleted.deleted_count == 2


async def test_equality_with_a_string_or_boolean_matches_as_in_mongodb(
        mongo: AsyncMongoClient, database_name: str) -> None:
    """Our build lets SQLite pick the rows of such conditions; arrays holding the value,
    values JSON writes with escapes, and missing fields must come out as MongoDB says."""
    things = mongo[database_name]["things"]
    # With indexes that start with the fields: our build reads flags through them.
    await things.create_index([("pending", 1), ("status", 1)])
    await things.create_index([("status", 1)])
    await things.insert_many([
        {"_id": 1, "status": "active", "pending": True},
        {"_id": 2, "status": ["draft", "active"], "pending": [False, True]},
        {"_id": 3, "status": "a<b & \"c\"", "pending": False},
        {"_id": 4, "status": "ünïcode", "pending": 1},
        {"_id": 5},
        {"_id": 6, "status": {"nested": "active"}, "pending": "true"}])

    async def ids(query: dict) -> list:
        return sorted(document["_id"] for document in await things.find(query).to_list())

    assert await ids({"status": "active"}) == [1, 2]
    assert await ids({"pending": True}) == [1, 2]
    assert await ids({"pending": False}) == [2, 3]
    assert await ids({"status": "a<b & \"c\""}) == [3]
    assert await ids({"status": "ünïcode"}) == [4]
    assert await ids({"status": "active", "pending": True}) == [1, 2]
    assert await ids({"status": "active", "pending": False}) == [2]
    assert await ids({"pending": "true"}) == [6]
    assert await ids({"status": {"$in": ["active", "a<b & \"c\""]}}) == [1, 2, 3]
    assert await ids({"status": {"$in": ["draft"]}, "pending": {"$in": [False]}}) == [2]
    assert await ids({"status": {"$in": ["ünïcode", 7]}}) == [4]
    assert await ids({"status": {"$in": []}}) == []
    assert (await things.update_many({"pending": True}, {"$set": {"seen": 1}})).modified_count == 2


async def test_comparisons_with_dates_match_as_in_mongodb(mongo: AsyncMongoClient,
                                                        database_name: str) -> None:
    """Our build lets SQLite compare dates (stored as milliseconds); arrays of dates, numbers
    that equal a date's milliseconds, strings, nulls and missing fields come out as MongoDB
    says, and the millisecond at each bound is in or out as the operator says."""
    due = mongo[database_name]["due"]
    now = datetime(2026, 6, 8, 9, tzinfo=UTC)
    millis = int(now.timestamp() * 1000)
    await due.insert_many([
        {"_id": 1, "due_at": now - timedelta(days=1), "status": "active"},
        {"_id": 2, "due_at": now},
        {"_id": 3, "due_at": now + timedelta(milliseconds=1)},
        {"_id": 4, "due_at": [now + timedelta(days=3), now - timedelta(days=3)]},
        {"_id": 5, "due_at": Int64(millis - 1)},
        {"_id": 6, "due_at": (now - timedelta(days=1)).isoformat()},
        {"_id": 7, "due_at": None},
        {"_id": 8},
        {"_id": 9, "due_at": datetime(1960, 1, 1, tzinfo=UTC), "status": "active"},
        {"_id": 10, "due_at": {"at": now}}])

    async def ids(query: dict) -> list:
        return sorted(document["_id"] for document in await due.find(query).to_list())

    assert await ids({"due_at": {"$lte": now}}) == [1, 2, 4, 9]
    assert await ids({"due_at": {"$lt": now}}) == [1, 4, 9]
    assert await ids({"due_at": {"$gt": now}}) == [3, 4]
    assert await ids({"due_at": {"$gte": now}}) == [2, 3, 4]
    # An array matches when one element meets one bound and another the other (MongoDB).
    assert await ids({"due_at": {"$gte": now - timedelta(days=2), "$lt": now}}) == [1, 4]
    assert await ids({"due_at": {"$gte": now - timedelta(days=2), "$lt": now - timedelta(
        hours=1)}}) == [1, 4]
    assert await ids({"due_at": {"$gte": now + timedelta(days=4)}}) == []
    assert await ids({"due_at": {"$lte": now}, "status": "active"}) == [1, 9]
    assert await ids({"due_at": {"$lte": now}, "_id": {"$in": [2, 5]}}) == [2]
    assert await ids({"due_at": {"$lte": now, "$ne": now}}) == [1, 4, 9]
    assert await ids({"due_at": {"$lte": millis}}) == [5]
    first = await due.find({"due_at": {"$lte": now}}).sort("due_at", 1).limit(1).to_list()
    assert [document["_id"] for document in first] == [9]
    changed = await due.update_many({"due_at": {"$lte": now}}, {"$set": {"seen": True}})
    assert changed.modified_count == 4


async def test_ids_after_a_key_are_found_as_in_mongodb(mongo: AsyncMongoClient,
                                                      database_name: str) -> None:
    """A sweep resumes after the last key it saw: `_id > key` with more conditions. Our build
    reads those rows through the `_id` index; ids JSON writes with escapes, other types and
    the key itself must come out as MongoDB says."""
    keyed = mongo[database_name]["keyed"]
    await keyed.insert_many([
        {"_id": "t|a", "due": True}, {"_id": "t|b", "due": True}, {"_id": "t|b0", "due": False},
        {"_id": "t|b<1", "due": True}, {"_id": "t|b&", "due": True},
        {"_id": "t|c\\d", "due": True},
        {"_id": "t|ü", "due": True}, {"_id": "t", "due": True}, {"_id": 7, "due": True},
        {"_id": ObjectId(), "due": True}, {"_id": "u", "due": True}])

    async def ids(query: dict) -> list:
        return sorted(str(document["_id"]) for document in await keyed.find(query).to_list())

    assert await ids({"_id": {"$gt": "t|b"}, "due": True}) == [
        "t|b&", "t|b<1", "t|c\\d", "t|ü", "u"]
    assert await ids({"_id": {"$gte": "t|b"}, "due": True}) == [
        "t|b", "t|b&", "t|b<1", "t|c\\d", "t|ü", "u"]
    assert await ids({"_id": {"$gt": "t|b"}, "due": False}) == ["t|b0"]
    assert await ids({"_id": {"$gt": "t|ü"}}) == ["u"]
    assert await ids({"_id": {"$gt": "u"}}) == []
    first = await keyed.find({"_id": {"$gt": "t"}, "due": True}).limit(2).to_list()
    assert len(first) == 2 and all(d["_id"] > "t" for d in first)
