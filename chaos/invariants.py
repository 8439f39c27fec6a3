"""The invariants a chaos run is judged by, read from the databases, topics and sinks.

What "once" means here:
- on a topic, an event may appear more than once with the *same* id (at-least-once on the
  wire: an outbox relayed again after a crash, a producer retry); consumers drop such copies
  by `ce_id`. So topics are counted by distinct id, and a logical effect (one assessment
  completed, one check-in due per goal and period, one notification sent) appearing under two
  *different* ids is a duplicate: consumers could not tell the copies apart.
- in the databases, each expected document exists exactly once.
- at the sinks, a receiver gets each notification (one id per event, recipient and channel);
  a second copy of the same id is a duplicate unless a sender was killed or paused while
  that notification was on its way (the receiver cannot be told atomically that it got it:
  the id lets it fold the copy, as the webhook id header and the Message-ID are for). Those
  re-sends are counted apart as `resent_after_crash`.
- nothing may be missing: lost counts every expected effect found zero times.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from coaching_goals.domain import assessment_basis, suggest_goals
from coaching_goals.settings import GoalsSettings
from coaching_notifier.domain import (
    HEADER_ID,
    Channel,
    notification_id,
    recipients_of,
)
from coaching_notifier.domain import ROUTES as NOTIFIER_ROUTES
from coaching_notifier.sinks import ReceivedMail, WebhookCall
from coaching_shared.contracts import AssessmentCompleted
from coaching_shared.events import EventMessage, event_class
from pymongo import AsyncMongoClient

from chaos.faults import FaultInjector
from chaos.load import TENANT, WEBHOOK_EVENTS, LoadRecord
from chaos.observe import TopicRecord

# Each event type's logical effect: two ids for one key are two effects where one was meant.
LOGICAL_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ClientEnrolled": lambda d: d["client_id"],
    "AssessmentAssigned": lambda d: d["assignment_id"],
    "AssessmentCompleted": lambda d: d["assessment_id"],
    "GoalSuggested": lambda d: d["goal_id"],
    "GoalSet": lambda d: d["goal_id"],
    "GoalAbandoned": lambda d: d["goal_id"],
    "GoalAchieved": lambda d: d["goal_id"],
    "CheckInDue": lambda d: (d["goal_id"], d["period"]),
    "CheckInCompleted": lambda d: d["checkin_id"],
    "CheckInMissed": lambda d: d["checkin_id"],
    "ProgressReviewed": lambda d: d["review_id"],
    "NotificationSent": lambda d: d["notification_id"],
}
NOTIFIER_LEASE_SECONDS = 20.0  # as in scenario.service_environment


@dataclass
class Verdict:
    """The outcome of a run: what was checked, what was lost or doubled, and the faults."""

    config: dict[str, Any]
    processes: list[str]
    faults_by_kind: dict[str, dict[str, int]]
    fault_log: list[dict[str, Any]]
    supervisor_restarts: dict[str, int]
    checked: Counter = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    resent_after_crash: list[str] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    unsettled: str | None = None  # why the platform did not settle, if it did not

    @property
    def events_checked(self) -> int:
        return sum(self.checked.values())

    @property
    def passed(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.dead_lettered
                    or self.unsettled)

    def expect_once(self, category: str, what: str, count: int) -> None:
        """One expected effect, found `count` times."""
        self.checked[category] += 1
        if count == 0:
            self.lost.append(f"{category}: {what}")
        elif count > 1:
            self.duplicated.append(f"{category}: {what} x{count}")


@dataclass
class Events:
    """The events found on the topics, by type; one message per distinct id."""

    by_id: dict[str, EventMessage]
    order: list[EventMessage]  # first copies, in partition order
    dead_letters: list[TopicRecord]

    @classmethod
    def of(cls, records: Iterable[TopicRecord]) -> Events:
        by_id: dict[str, EventMessage] = {}
        order: list[EventMessage] = []
        dead_letters = []
        for record in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
            if record.topic.endswith(".dlq"):
                dead_letters.append(record)
                continue
            message = record.message()
            if message is None or message.tenant != TENANT or message.id in by_id:
                continue
            by_id[message.id] = message
            order.append(message)
        return cls(by_id, order, dead_letters)

    def of_type(self, type_name: str) -> list[EventMessage]:
        return [m for m in self.order if _type_name(m) == type_name]


def _type_name(message: EventMessage) -> str:
    return message.type.split(".")[1]


async def check_invariants(*, config: dict[str, Any], mongodb_url: str,
                           records: list[TopicRecord], record: LoadRecord,
                           smtp: list[ReceivedMail], webhook_calls: list[WebhookCall],
                           faults: FaultInjector, processes: list[str]) -> Verdict:
    """Check every invariant; the verdict lists each violation by name."""
    verdict = Verdict(config, processes, faults.by_kind(), faults.as_dicts(),
                      dict(faults.supervisor_restarts))
    events = Events.of(records)
    verdict.figures = {"records_on_topics": len(records), "distinct_events": len(events.by_id),
                       "emails_received": len(smtp), "webhook_calls": len(webhook_calls),
                       "clients": len(record.coach_of), "submissions": len(record.submissions),
                       "goals_accepted": len(record.accepted_goals),
                       "checkins_submitted": len(record.checkins_submitted),
                       "checkins_refused": sum(record.checkins_refused.values()),
                       "http_retries": record.http_retries,
                       "publish_retries": record.publish_retries}
    check_logical_uniqueness(verdict, events)
    check_order(verdict, events)
    verdict.dead_lettered = [f"{r.topic}@{r.partition}:{r.offset} {r.headers.get('ce_type')}: "
                             f"{r.headers.get('dlq_reason')}" for r in events.dead_letters]
    client = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        await check_flow(verdict, events, record, client)
        await check_notifications(verdict, events, record, client, smtp, webhook_calls, faults)
    finally:
        await client.close()
    return verdict


def check_logical_uniqueness(verdict: Verdict, events: Events) -> None:
    """No logical effect under two different event ids."""
    ids: dict[tuple[str, Any], set[str]] = defaultdict(set)
    for message in events.order:
        name = _type_name(message)
        key = LOGICAL_KEYS.get(name)
        if key is not None:
            ids[(name, key(message.data))].add(message.id)
    for (name, key), found in ids.items():
        verdict.checked[f"{name} events, one id each"] += 1
        if len(found) > 1:
            verdict.duplicated.append(f"{name} {key}: {len(found)} different event ids")
    failed = events.of_type("NotificationFailed")
    verdict.lost += [f"NotificationFailed {m.data['notification_id']}: {m.data['reason']}"
                     for m in failed]


def check_order(verdict: Verdict, events: Events) -> None:
    """Per goal, progress published in partition order never moves backwards."""
    last: dict[str, float] = {}
    for message in events.of_type("GoalProgressUpdated"):
        goal_id, progress = message.data["goal_id"], message.data["progress_percent"]
        verdict.checked["GoalProgressUpdated in order"] += 1
        if progress < last.get(goal_id, 0.0):
            verdict.out_of_order.append(f"goal {goal_id}: progress {progress} after "
                                        f"{last[goal_id]}")
        last[goal_id] = max(progress, last.get(goal_id, 0.0))


async def _count(client: AsyncMongoClient, database: str, collection: str,
                 criteria: dict[str, Any]) -> int:
    return await client[database][collection].count_documents({"tenant_id": TENANT,
                                                                **criteria})


async def check_flow(verdict: Verdict, events: Events, record: LoadRecord,
                     client: AsyncMongoClient) -> None:
    """Result per submission, suggestions per completion, a CheckInDue per goal and period,
    a GoalSet per accepted goal, a CheckInCompleted per submitted check-in."""
    by_key: dict[tuple[str, Any], int] = Counter(
        (_type_name(m), LOGICAL_KEYS[_type_name(m)](m.data)) for m in events.order
        if _type_name(m) in LOGICAL_KEYS)
    for assessment_id in record.submissions:
        verdict.expect_once("assessment result per submission", assessment_id, await _count(
            client, "coaching_assessment", "results", {"assessment_id": assessment_id}))
        verdict.expect_once("AssessmentCompleted per submission", assessment_id,
                            by_key[("AssessmentCompleted", assessment_id)])
    rules = GoalsSettings().suggestion_rules()
    for message in events.of_type("AssessmentCompleted"):
        completed = message.parse(AssessmentCompleted)
        for goal in suggest_goals(assessment_basis(completed), tenant_id=completed.tenant_id,
                                  client_id=completed.client_id, skip_areas=set(), rules=rules,
                                  at=completed.completed_at):
            verdict.expect_once("suggested goal per completion", goal.goal_id, await _count(
                client, "coaching_goals", "goals", {"goal_id": goal.goal_id}))
            verdict.expect_once("GoalSuggested per suggestion", goal.goal_id,
                                by_key[("GoalSuggested", goal.goal_id)])
    for goal_id in record.accepted_goals:
        verdict.expect_once("GoalSet per accepted goal", goal_id, by_key[("GoalSet", goal_id)])
        verdict.expect_once("check-in schedule per goal", goal_id, await _count(
            client, "coaching_feedback", "checkin_schedules", {"goal_id": goal_id}))
    for goal_id in record.abandoned_goals:
        verdict.expect_once("GoalAbandoned per abandoned goal", goal_id,
                            by_key[("GoalAbandoned", goal_id)])
    schedules = client["coaching_feedback"]["checkin_schedules"].find({"tenant_id": TENANT})
    async for schedule in schedules:
        goal_id = schedule["goal_id"]
        for period in range(1, schedule["next_period"]):
            verdict.expect_once("CheckInDue per goal and period", f"{goal_id} #{period}",
                                by_key[("CheckInDue", (goal_id, period))])
            verdict.expect_once("check-in per goal and period", f"{goal_id} #{period}",
                                await _count(client, "coaching_feedback", "checkins",
                                             {"goal_id": goal_id, "period": period}))
        beyond = [m for m in events.of_type("CheckInDue") if m.data["goal_id"] == goal_id
                  and m.data["period"] >= schedule["next_period"]]
        verdict.duplicated += [f"CheckInDue beyond the schedule: {goal_id} "
                               f"#{m.data['period']}" for m in beyond]
    for checkin_id in record.checkins_submitted:
        verdict.expect_once("CheckInCompleted per submission", checkin_id,
                            by_key[("CheckInCompleted", checkin_id)])


def expected_notifications(events: Events, record: LoadRecord
                           ) -> dict[str, tuple[EventMessage, str, Channel]]:
    """notification id -> (cause, recipient, channel) for every notifiable event seen."""
    expected = {}
    for message in events.order:
        name = _type_name(message)
        if name not in NOTIFIER_ROUTES:
            continue
        model = event_class(message.type)
        event = message.parse(model)
        for recipient in recipients_of(event, record.coach_of.get(event.client_id)):
            for channel in NOTIFIER_ROUTES[name][recipient.audience]:
                expected[notification_id(TENANT, message.id, recipient.person_id, channel)] = (
                    message, recipient.person_id, channel)
        if name in WEBHOOK_EVENTS and record.webhook_subscription:
            recipient_id = record.webhook_subscription
            expected[notification_id(TENANT, message.id, recipient_id, Channel.WEBHOOK)] = (
                message, recipient_id, Channel.WEBHOOK)
    return expected


async def check_notifications(verdict: Verdict, events: Events, record: LoadRecord,
                              client: AsyncMongoClient, smtp: list[ReceivedMail],
                              webhook_calls: list[WebhookCall], faults: FaultInjector) -> None:
    """A sent delivery, a NotificationSent and one received copy per event, recipient and
    channel; nothing received that was not expected."""
    expected = expected_notifications(events, record)
    deliveries = {d["notification_id"]: d async for d in
                  client["coaching_notifier"]["deliveries"].find({"tenant_id": TENANT})}
    inbox = Counter(d["notification_id"] for d in
                    await client["coaching_notifier"]["inbox"].find({"tenant_id": TENANT})
                    .to_list())
    sent = Counter(m.data["notification_id"] for m in events.of_type("NotificationSent"))
    mail: dict[str, list[float]] = defaultdict(list)
    for received in smtp:
        mail[received.notification_id].append(received.received_at)
    hooks: dict[str, list[float]] = defaultdict(list)
    for call in webhook_calls:
        if call.status is not None and 200 <= call.status < 300:
            hooks[call.headers.get(HEADER_ID.lower(), "")].append(call.received_at)
    for nid, (cause, recipient, channel) in expected.items():
        what = f"{_type_name(cause)} {cause.id} -> {recipient} by {channel}"
        delivery = deliveries.get(nid)
        status = delivery["status"] if delivery else None
        verdict.expect_once("delivery sent", what, int(status == "sent"))
        verdict.expect_once("NotificationSent", what, sent[nid])
        if channel is Channel.INBOX:
            verdict.expect_once("inbox item", what, inbox[nid])
        else:
            arrivals = mail[nid] if channel is Channel.EMAIL else hooks[nid]
            copies = len(arrivals)
            explained = resends_explained(sorted(arrivals), faults)
            if explained:
                verdict.resent_after_crash.append(f"{what} x{copies}")
            if copies - explained > 1 and delivery is not None:
                what += (f" (attempts {delivery.get('attempts')}, log "
                         f"{[a.get('outcome') for a in delivery.get('attempt_log', [])]})")
            verdict.expect_once(f"{channel} received", what, copies - explained)
    unexpected = [nid for nid in [*mail, *hooks] if nid not in expected]
    verdict.duplicated += [f"received without a cause: {nid}" for nid in unexpected]


def resends_explained(arrivals: list[float], faults: FaultInjector) -> int:
    """Copies after the first that a notifier (or its database) fault explains: the sender
    was killed or paused after the receiver took a copy and before it could record that."""
    explained = 0
    for first, later in pairwise(arrivals):
        if any(f.overlaps(first - NOTIFIER_LEASE_SECONDS, later) and
               (f.member.startswith("notifier") or f.member == "ferretdb")
               for f in faults.faults):
            explained += 1
    return explained
