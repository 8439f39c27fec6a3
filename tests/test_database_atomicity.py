"""The database keeps MongoDB's single-document atomicity under concurrent writers.

Every service relies on it: a guarded update is a compare-and-set, and two updates of one
document touching different fields both land (an outbox relay clearing its entries while a
request changes the goal's status, say). FerretDB 1.24 as released reads, then writes the
whole document back, and lost one of eight concurrent claims in 27 of 30 rounds here; the
build in deploy/local applies ferretdb-serialize-writes.patch. These tests fail without it.
"""

from __future__ import annotations

import asyncio

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
