"""Multi-rater (360) feedback through real Kafka and FerretDB: tokenised links, anonymity,
who may see results, and MultiRaterFeedbackCompleted once per round."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from coaching_feedback.app import create_app
from coaching_feedback.clock import FixedClock
from coaching_shared.contracts import ClientOffboarded
from support.inprocess import bearer, running_service
from support.kafka_tools import TopicReader, eventually, publish_events
from test_feedback_checkins import TENANT, enrolment, events_of, feedback_settings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 3, 12, tzinfo=UTC)
CLIENT = bearer(TENANT, "c-1", "client")
COACH = bearer(TENANT, "coach-1", "coach")


def nominations(group: str, count: int) -> list[dict[str, str]]:
    return [{"name": f"{group} {n}", "email": f"{group}.{n}@example.com", "group": group}
            for n in range(count)]


def token_path(link: str) -> str:
    """The path of a rater link (the test client talks to the app directly)."""
    return link[link.index("/v1/"):]


async def coach_sees_client(client) -> bool:
    response = await client.get("/v1/clients/c-1/feedback-rounds", headers=COACH)
    return response.status_code == 200


async def test_a_360_round_shows_only_groups_with_three_answers_and_completes_once(
        infra, prefix, mongo):
    clock = FixedClock(NOW)
    settings = feedback_settings(infra, prefix)
    async with running_service(lambda s: create_app(s, clock), settings) as client, \
            TopicReader(infra.kafka_bootstrap_servers, f"{prefix}coaching.feedback") as topic:
        await publish_events(infra.kafka_bootstrap_servers, prefix,
                             [enrolment("c-1"), enrolment("c-2", coach_id="coach-2")])
        await eventually(lambda: coach_sees_client(client))

        request = {"competencies": ["active_listening", "coordination"],
                   "raters": [*nominations("manager", 1), *nominations("peer", 3),
                              *nominations("direct_report", 2)]}
        by_coach = await client.post("/v1/clients/c-1/feedback-rounds", json=request,
                                     headers=COACH)
        assert by_coach.status_code == 403
        unknown = await client.post("/v1/clients/c-1/feedback-rounds", headers=CLIENT, json={
            **request, "competencies": ["mind_reading"]})
        assert unknown.status_code == 422 and "mind_reading" in unknown.text
        created = await client.post("/v1/clients/c-1/feedback-rounds", json=request,
                                    headers={**CLIENT, "Idempotency-Key": "round-1"})
        assert created.status_code == 201, created.text
        feedback_round = created.json()
        round_id = feedback_round["round_id"]
        links = {(i["group"], i["name"]): token_path(i["link"])
                 for i in feedback_round["invitations"]}
        assert len(links) == 6
        stored = await mongo[settings.database_name].multirater_raters.find(
            {"round_id": round_id}).to_list()
        tokens = [path.rsplit("/", 1)[1] for path in links.values()]
        assert all(t not in json.dumps(stored, default=str) for t in tokens)

        # A rater opens their link without an account, answers once.
        form = await client.get(links[("peer", "peer 0")])
        assert form.status_code == 200
        assert [c["competency_id"] for c in form.json()["competencies"]] == [
            "active_listening", "coordination"]
        answers = {("peer", "peer 0"): ({"active_listening": 4, "coordination": 3}, "Listens."),
                   ("peer", "peer 1"): ({"active_listening": 5, "coordination": 2}, ""),
                   ("peer", "peer 2"): ({"active_listening": 3, "coordination": 4}, "Calm."),
                   ("direct_report", "direct_report 0"): ({"active_listening": 1},
                                                          "SECRET-REPORT-COMMENT"),
                   ("direct_report", "direct_report 1"): ({"active_listening": 2}, ""),
                   ("manager", "manager 0"): ({"coordination": 5}, "SECRET-MANAGER")}
        for rater, (ratings, comment) in answers.items():
            response = await client.post(f"{links[rater]}/response",
                                         json={"ratings": ratings, "comment": comment})
            assert response.status_code == 201, (rater, response.text)
        again = await client.post(f"{links[('peer', 'peer 0')]}/response",
                                  json={"ratings": {"active_listening": 1}})
        assert again.status_code == 409
        assert (await client.get(links[("peer", "peer 0")])).status_code == 409
        off_round = await client.post(f"{links[('peer', 'peer 1')]}/response",
                                      json={"ratings": {"writing": 3}})
        assert off_round.status_code in (409, 422)
        wrong = links[("peer", "peer 0")][:-6] + "abcdef"
        assert (await client.post(f"{wrong}/response",
                                  json={"ratings": {"coordination": 3}})).status_code == 404
        elsewhere = links[("peer", "peer 0")].replace(f"/tenants/{TENANT}/", "/tenants/globex/")
        assert (await client.get(elsewhere)).status_code == 404

        self_rating = await client.put(f"/v1/feedback-rounds/{round_id}/self-rating",
                                       json={"ratings": {"active_listening": 5,
                                                         "coordination": 4}}, headers=CLIENT)
        assert self_rating.status_code == 200, self_rating.text
        early = await client.get(f"/v1/feedback-rounds/{round_id}/results", headers=COACH)
        assert early.status_code == 409

        # Client and coach both close it: one MultiRaterFeedbackCompleted.
        closed = await client.post(f"/v1/feedback-rounds/{round_id}/close", headers=CLIENT)
        assert closed.status_code == 200 and closed.json()["status"] == "closed"
        assert (await client.post(f"/v1/feedback-rounds/{round_id}/close",
                                  headers=COACH)).status_code == 200
        late = await client.post(f"{links[('manager', 'manager 0')]}/response",
                                 json={"ratings": {"coordination": 1}})
        assert late.status_code in (409, 410)

        results = (await client.get(f"/v1/feedback-rounds/{round_id}/results",
                                    headers=COACH)).json()
        groups = {g["group"]: g for g in results["groups"]}
        assert groups["peer"]["qualifies"] and groups["peer"]["answers"] == 3
        assert groups["peer"]["averages"] == {"active_listening": 4.0, "coordination": 3.0}
        assert groups["peer"]["comments"] == ["Calm.", "Listens."]
        # Two direct reports and one manager: nothing, not even how many answered.
        for small in ("direct_report", "manager"):
            assert set(groups[small]) == {"group", "qualifies", "note"}
            assert groups[small]["qualifies"] is False
        assert "SECRET" not in json.dumps(results)
        assert "@example.com" not in json.dumps(results)
        assert groups["all_raters"]["averages"] == groups["peer"]["averages"]
        assert {c["competency_id"]: c["self"] for c in results["competencies"]} == {
            "active_listening": 5, "coordination": 4}
        assert (await client.get(f"/v1/feedback-rounds/{round_id}/results",
                                 headers=CLIENT)).status_code == 200

        strangers = {"another coach": bearer(TENANT, "coach-2", "coach"),
                     "admin": bearer(TENANT, "admin-1", "admin"),
                     "another client": bearer(TENANT, "c-2", "client"),
                     "another tenant's coach": bearer("globex", "coach-1", "coach")}
        for name, token in strangers.items():
            for url in (f"/v1/feedback-rounds/{round_id}",
                        f"/v1/feedback-rounds/{round_id}/results"):
                assert (await client.get(url, headers=token)).status_code == 404, (name, url)
            closing = await client.post(f"/v1/feedback-rounds/{round_id}/close", headers=token)
            assert closing.status_code == 404, name

        await topic.until(lambda records: events_of(records, "MultiRaterFeedbackCompleted"))
        await topic.settle(1.5)
        completed = events_of(topic.records, "MultiRaterFeedbackCompleted")
        assert len(completed) == 1
        assert completed[0]["round_id"] == round_id
        assert completed[0]["qualifying_groups"] == 1
        assert completed[0]["closed_by"] == "client"
        raw = b"".join(r.value for r in topic.records)
        assert b"example.com" not in raw and b"Listens" not in raw and b"peer 0" not in raw

        # The individual answers are not kept once the results are frozen.
        db = mongo[settings.database_name]
        assert await db.multirater_responses.count_documents({"round_id": round_id}) == 0

        # Offboarding erases the raters' names and e-mails with the round.
        await publish_events(infra.kafka_bootstrap_servers, prefix,
                             [ClientOffboarded(tenant_id=TENANT, client_id="c-1")])

        async def erased():
            return (await db.multirater_raters.count_documents({"client_id": "c-1"}) == 0
                    and await db.multirater_rounds.count_documents({"client_id": "c-1"}) == 0)

        await eventually(erased)


async def test_a_360_round_closes_at_its_deadline_and_its_links_expire(infra, prefix):
    clock = FixedClock(NOW)
    settings = feedback_settings(infra, prefix)
    async with running_service(lambda s: create_app(s, clock), settings) as client, \
            TopicReader(infra.kafka_bootstrap_servers, f"{prefix}coaching.feedback") as topic:
        await publish_events(infra.kafka_bootstrap_servers, prefix, [enrolment("c-1")])
        await eventually(lambda: coach_sees_client(client))
        past = await client.post("/v1/clients/c-1/feedback-rounds", headers=CLIENT, json={
            "competencies": ["speaking"], "raters": nominations("peer", 3),
            "closes_at": (NOW - timedelta(hours=1)).isoformat()})
        assert past.status_code == 422
        created = await client.post("/v1/clients/c-1/feedback-rounds", headers=CLIENT, json={
            "competencies": ["speaking"], "raters": nominations("peer", 3),
            "closes_at": (NOW + timedelta(days=2)).isoformat()})
        assert created.status_code == 201, created.text
        round_id = created.json()["round_id"]
        first, second, third = (token_path(i["link"]) for i in created.json()["invitations"])
        assert (await client.post(f"{first}/response",
                                  json={"ratings": {"speaking": 4}})).status_code == 201

        # A lost link is replaced; the old one stops working.
        rater_id = created.json()["invitations"][1]["rater_id"]
        renewed = await client.post(
            f"/v1/feedback-rounds/{round_id}/raters/{rater_id}/invitation", headers=CLIENT)
        assert renewed.status_code == 200
        assert (await client.get(second)).status_code == 404
        assert (await client.get(token_path(renewed.json()["link"]))).status_code == 200

        clock.set(NOW + timedelta(days=2, minutes=1))
        assert (await client.get(third)).status_code == 410
        await topic.until(lambda records: events_of(records, "MultiRaterFeedbackCompleted"))
        await topic.settle(1.5)
        completed = events_of(topic.records, "MultiRaterFeedbackCompleted")
        assert len(completed) == 1
        assert completed[0]["closed_by"] == "deadline" and completed[0]["qualifying_groups"] == 0
        assert (await client.post(f"{third}/response",
                                  json={"ratings": {"speaking": 4}})).status_code == 410
        results = (await client.get(f"/v1/feedback-rounds/{round_id}/results",
                                    headers=CLIENT)).json()
        assert results["groups"] == [{"group": "peer", "qualifies": False,
                                      "note": "not enough answers to show this group "
                                              "anonymously"},
                                     {"group": "all_raters", "qualifies": False,
                                      "note": "not enough answers to show this group "
                                              "anonymously"}]
