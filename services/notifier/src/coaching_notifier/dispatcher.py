"""The dispatcher: sends due deliveries from the durable delivery log, with retries.

Handlers only *plan* deliveries (documents in `deliveries`); this loop sends them, so a slow
or failing receiver never holds up the Kafka consumer. Every replica runs it:

1. claim the most overdue delivery with a lease (pending, or sending whose lease ran out
   because its sender died), counting the attempt;
2. send it in its own task (up to `dispatcher_concurrency` at once);
3. delivered: mark it sent and queue `NotificationSent` in the same write, then relay;
   retryable failure: back to pending, due after an exponential, jittered backoff;
   permanent failure or attempts used up: mark it failed and queue `NotificationFailed`.

One look at the due deliveries claims as many as there are free slots, in a few round trips
for all of them; outcomes that finish while another group of outcomes is being written are
written (and relayed) together next (`Grouped`), each still guarded by its own claim.

Retries and quiet-hour deferrals are just a later `due_at` in MongoDB: they survive
restarts, and no coroutine sleeps through a backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from coaching_shared.contracts import NotificationFailed, NotificationSent
from coaching_shared.events import EventMessage, derived_event_id
from coaching_shared.messaging import background_round, is_transient
from pymongo.asynchronous.collection import AsyncCollection

from coaching_notifier.channels import Sender
from coaching_notifier.domain import (
    Channel,
    DeliveryStatus,
    RetryPolicy,
    SendOutcome,
    attempt_entry,
    next_step,
)
from coaching_notifier.grouped import Grouped
from coaching_notifier.repository import Finished, NotifierRepository

log = logging.getLogger(__name__)

SOURCE = "/notifier"
RECORD_RETRY_SECONDS = 0.5
Clock = Callable[[], datetime]
Relay = Callable[[AsyncCollection, dict[str, Any] | None], Awaitable[None]]
RelayScope = Callable[[], AbstractAsyncContextManager[Any]]


def outcome_event(delivery: Mapping[str, Any], status: DeliveryStatus, now: datetime,
                  reason: str) -> EventMessage:
    """`NotificationSent` or `NotificationFailed` for a finished delivery.

    A notification is sent once, so its `NotificationSent` id derives from its own id; it
    may fail more than once (queued again by hand), so each failure's id names its claim.
    """
    common = {"tenant_id": delivery["tenant_id"], "client_id": delivery["client_id"],
              "notification_id": delivery["notification_id"],
              "cause_event_id": delivery["cause_event_id"],
              "cause_type": delivery["cause_type"], "recipient_id": delivery["recipient_id"],
              "channel": delivery["channel"], "attempts": delivery["attempts"]}
    if status is DeliveryStatus.SENT:
        event: NotificationSent | NotificationFailed = NotificationSent(**common, sent_at=now)
    else:
        event = NotificationFailed(**common, failed_at=now, reason=reason)
    purpose = ("sent" if status is DeliveryStatus.SENT
               else f"failed|{delivery['lease_token']}")
    return EventMessage.wrap(event, SOURCE, time=now,
                             event_id=derived_event_id(delivery["notification_id"], purpose))


class DeliveryDispatcher:
    """Sends due deliveries; one per replica, all replicas share the work through leases."""

    def __init__(self, repository: NotifierRepository, senders: Mapping[Channel, Sender],
                 relay: Relay, policy: RetryPolicy, *, lease: timedelta,
                 poll_seconds: float, concurrency: int, clock: Clock,
                 relay_scope: RelayScope = nullcontext) -> None:
        self._repository = repository
        self._senders = dict(senders)
        self._relay = relay
        self._relay_scope = relay_scope  # relays inside it are published together
        self._outcomes: Grouped[Finished, dict[str, Any] | None] = Grouped(self._record)
        self._policy = policy
        self._lease = lease
        self._poll_seconds = poll_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """New deliveries were planned: look now instead of at the next poll."""
        self._wakeup.set()

    def start(self, ready: asyncio.Event) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(ready), name="delivery-dispatcher")

    async def stop(self) -> None:
        """Stop claiming and cancel sends in flight; their leases lapse and others resume."""
        tasks = [t for t in (self._task, *self._sending) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._sending.clear()
        await self._outcomes.close()
        for sender in self._senders.values():
            await sender.close()

    async def _run(self, ready: asyncio.Event) -> None:
        await ready.wait()
        while True:
            await background_round("dispatcher round", self.dispatch_due)
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll_seconds)
            except TimeoutError:
                pass
            self._wakeup.clear()

    async def dispatch_due(self) -> int:
        """Claim due deliveries while there are free slots; each is sent in its own task.

        One look at the due deliveries claims as many as there are free slots: finding
        them is the expensive part (a sorted scan on FerretDB), claiming each is cheap.
        """
        started = 0
        while True:
            await self._slots.acquire()
            slots = 1
            while not self._slots.locked():
                await self._slots.acquire()
                slots += 1
            now = self._clock()
            try:
                claimed = await self._repository.claim_due(now, now + self._lease,
                                                           uuid.uuid4().hex, limit=slots)
            except BaseException:
                for _ in range(slots):
                    self._slots.release()
                raise
            for _ in range(slots - len(claimed)):
                self._slots.release()
            for delivery in claimed:
                task = asyncio.create_task(self._deliver_in_slot(delivery),
                                           name=f"deliver-{delivery['notification_id']}")
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            started += len(claimed)
            if len(claimed) < slots:
                return started

    async def _deliver_in_slot(self, delivery: dict[str, Any]) -> None:
        try:
            await self.deliver(delivery)
        except Exception:
            # The lease lapses and the delivery is claimed again: nothing is lost.
            log.exception("delivery %s failed unexpectedly", delivery["notification_id"])
        finally:
            self._slots.release()

    async def deliver(self, delivery: dict[str, Any]) -> DeliveryStatus | None:
        """Make one attempt at a claimed delivery and record how it went."""
        lease_ends = time.monotonic() + self._lease.total_seconds()
        attempt = delivery["attempts"]
        if attempt > self._policy.max_attempts:
            # Claimed again and again without an outcome (e.g. its sender kept dying).
            outcome = SendOutcome(False, False, f"gave up after {attempt - 1} attempts")
        else:
            outcome = await self._attempt(delivery)
        now = self._clock()
        status = next_step(outcome, attempt, self._policy)
        entry = attempt_entry(attempt, now, status.value, outcome.detail)
        if status is DeliveryStatus.PENDING:
            due = now + self._policy.delay(attempt)
            if not await self._while_leased(
                    lambda: self._repository.schedule_retry(delivery, due, entry), lease_ends):
                log.warning("lease on %s lost before retry was scheduled",
                            delivery["notification_id"])
            return status
        fields: dict[str, Any] = ({"sent_at": now} if status is DeliveryStatus.SENT
                                  else {"failed_at": now, "reason": outcome.detail})
        finished = Finished(delivery, status, fields, entry,
                            outcome_event(delivery, status, now, outcome.detail))
        document = await self._while_leased(lambda: self._outcomes.submit(finished),
                                            lease_ends)
        if document is None:
            log.warning("delivery %s was taken over or erased before its outcome was recorded",
                        delivery["notification_id"])
            return None
        log.info("delivery %s %s on %s after %d attempt(s): %s", delivery["notification_id"],
                 status.value, delivery["channel"], attempt, outcome.detail)
        return status

    async def _record(self, finished: Sequence[Finished]) -> list[dict[str, Any] | None]:
        """Record outcomes (each under its own claim), then relay their events together."""
        documents = await self._repository.finish_deliveries(finished)
        async with self._relay_scope():
            for document in documents:
                await self._relay(self._repository.deliveries, document)
        return documents

    async def _while_leased(self, write: Callable[[], Awaitable[Any]],
                            lease_ends: float) -> Any:
        """Record an outcome, waiting out a database outage while the lease still holds.

        Given up, the delivery would be claimed and sent again once its lease ran out.
        """
        while True:
            try:
                return await write()
            except Exception as error:
                if not is_transient(error) or time.monotonic() + RECORD_RETRY_SECONDS >= lease_ends:
                    raise
                await asyncio.sleep(RECORD_RETRY_SECONDS)

    async def _attempt(self, delivery: Mapping[str, Any]) -> SendOutcome:
        sender = self._senders[Channel(delivery["channel"])]
        # The senders time out on their own; this guard keeps any send inside the lease.
        guard = self._lease.total_seconds() * 0.9
        try:
            return await asyncio.wait_for(sender.send(delivery, self._clock()), timeout=guard)
        except TimeoutError:
            return SendOutcome(False, True, "send outlasted its lease")
