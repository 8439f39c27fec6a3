"""The fault injector: SIGKILLs and restarts members of the cluster, and cuts consumers off.

Faults follow a seeded plan covering every kind of process (each killed `kills_per_kind`
times, spread over its replicas) plus consumers paused past their Kafka session timeout
(SIGSTOP, then SIGCONT): the group hands the paused replica's partitions to others while it
holds fetched records, so when it wakes up it finishes a batch it no longer owns. The plan is
spread over the load at random moments; faults may overlap (a service restarting while Kafka
is down), never on one member.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from chaos.cluster import SERVICES, Cluster, Member

KILL = "kill -9 and restart"
PAUSE = "consumer cut off mid-batch (SIGSTOP past the session timeout, SIGCONT)"


@dataclass(frozen=True)
class FaultPlan:
    kills_per_kind: int
    pauses: int
    seconds: float  # the faults are spread over this long
    seed: int
    pause_seconds: float = 14.0  # the consumers' session timeout is 10 s
    max_downtime: float = 3.0


@dataclass
class Fault:
    kind: str
    member: str
    at: float  # seconds since the injector started
    began: float = field(default_factory=time.monotonic)
    ended: float | None = None  # monotonic, once the member is back
    down_seconds: float = 0.0
    recovered: bool = False

    def overlaps(self, start: float, end: float) -> bool:
        """Whether the fault was under way at some moment between start and end."""
        return self.began <= end and (self.ended is None or self.ended >= start)


@dataclass
class FaultInjector:
    cluster: Cluster
    plan: FaultPlan
    faults: list[Fault] = field(default_factory=list)
    supervisor_restarts: Counter = field(default_factory=Counter)

    def schedule(self) -> list[tuple[str, str]]:
        """Every kind killed kills_per_kind times (its replicas in turn), consumers paused,
        in a seeded order."""
        rng = random.Random(self.plan.seed)
        kinds = dict.fromkeys(member.kind for member in self.cluster.members)
        planned = []
        for kind in kinds:
            replicas = [m.name for m in self.cluster.members if m.kind == kind]
            planned += [(KILL, replicas[n % len(replicas)])
                        for n in range(self.plan.kills_per_kind)]
        consumers = [m.name for m in self.cluster.members if m.kind in SERVICES]
        planned += [(PAUSE, rng.choice(consumers)) for _ in range(self.plan.pauses)]
        rng.shuffle(planned)
        return planned

    async def run(self) -> None:
        """Inject the whole plan, then wait until every member is back."""
        rng = random.Random(self.plan.seed + 1)
        planned = self.schedule()
        started = time.monotonic()
        gap = self.plan.seconds / max(1, len(planned))
        tasks: list[asyncio.Task[None]] = []
        while planned:
            await asyncio.sleep(rng.uniform(0.3, 1.7) * gap)
            # A member still down from its last fault waits: take the next that is free.
            choice = next((p for p in planned
                           if not self.cluster.member(p[1]).lock.locked()), None)
            if choice is None:
                continue
            planned.remove(choice)
            kind, name = choice
            member = self.cluster.member(name)
            member.lock.acquire()
            fault = Fault(kind, name, round(time.monotonic() - started, 1))
            self.faults.append(fault)
            tasks.append(asyncio.create_task(self._inject(fault, member, rng.random())))
        await asyncio.gather(*tasks)

    async def _inject(self, fault: Fault, member: Member, draw: float) -> None:
        began = time.monotonic()
        try:
            if fault.kind == KILL:
                await asyncio.to_thread(member.kill)
                await asyncio.sleep(draw * self.plan.max_downtime)
                await asyncio.to_thread(member.start)
            else:
                member.signal(signal.SIGSTOP)
                await asyncio.sleep(self.plan.pause_seconds)
                member.signal(signal.SIGCONT)
            fault.recovered = True
        finally:
            fault.ended = time.monotonic()
            fault.down_seconds = round(fault.ended - began, 1)
            member.lock.release()

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart members that died outside a fault (e.g. started while Kafka was down)."""
        while not stop.is_set():
            for name in await asyncio.to_thread(self.cluster.restart_dead):
                self.supervisor_restarts[name] += 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass

    def by_kind(self) -> dict[str, dict[str, int]]:
        """Faults per kind and member."""
        found: dict[str, Counter] = {}
        for fault in self.faults:
            found.setdefault(fault.kind, Counter())[fault.member] += 1
        return {kind: dict(sorted(counts.items())) for kind, counts in found.items()}

    def as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(fault) for fault in self.faults]
