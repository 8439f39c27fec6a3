"""One chaos run, small (tests/test_chaos.py) or large (`make chaos`): the one code path.

Start the cluster and the sinks, drive the cohort while the injector kills, pauses and
restarts members, let the platform settle, then check the invariants and summarise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from coaching_notifier.sinks import SmtpSink, WebhookSink

from chaos.cluster import Cluster, clock_epoch, running_cluster
from chaos.faults import FaultInjector, FaultPlan
from chaos.invariants import Verdict, check_invariants
from chaos.load import LoadDriver, LoadPlan, LoadRecord, PlatformClient
from chaos.observe import read_topics, settle

log = logging.getLogger("chaos")
INSTRUMENTS = ("onet-skills", "big-five", "riasec")


@dataclass(frozen=True)
class ChaosConfig:
    """The size of a run."""

    name: str
    clients: int
    instruments: int
    fault_seconds: float  # the faults are spread over this long
    kills_per_kind: int
    pauses: int
    replicas: dict[str, int] = field(default_factory=lambda: {"notifier": 2, "goals": 2})
    submit_share: float = 0.75
    checkins_per_client: int = 2  # check-in periods each client sees through
    clock_speed: float = 40320  # four weeks of the coaching calendar per real minute
    seed: int = 8
    settle_seconds: float = 300


def service_environment(config: ChaosConfig, smtp_port: int) -> dict[str, dict[str, str]]:
    """Settings that make a short run show long-run behaviour: fast sweeps, short leases."""
    common = {"OUTBOX_SWEEP_SECONDS": "0.5", "OUTBOX_LEASE_SECONDS": "5",
              "RETRY_BACKOFF_MAX_SECONDS": "2", "LOG_LEVEL": "INFO"}
    return {
        "assessment": {**common, "ENROLMENT_INSTRUMENTS": json.dumps(
            list(INSTRUMENTS[:config.instruments]))},
        "goals": common,
        "feedback": {**common, "CLOCK_SPEED": str(config.clock_speed),
                     "CLOCK_EPOCH": clock_epoch(), "SCHEDULER_LEASE_SECONDS": "5",
                     "SCHEDULER_INTERVAL_SECONDS": "0.5"},
        "notifier": {**common, "SMTP_PORT": str(smtp_port), "SMTP_TIMEOUT_SECONDS": "3",
                     "WEBHOOK_TIMEOUT_SECONDS": "3", "DELIVERY_LEASE_SECONDS": "20",
                     "DELIVERY_BACKOFF_SECONDS": "0.3", "DELIVERY_BACKOFF_MAX_SECONDS": "2",
                     "DELIVERY_MAX_ATTEMPTS": "50", "DISPATCHER_POLL_SECONDS": "0.3"},
    }


def run_chaos(config: ChaosConfig, workdir: Path) -> Verdict:
    """Run one configuration to its verdict (the cluster is stopped afterwards)."""
    smtp = SmtpSink().start()
    try:
        with running_cluster(workdir, config.replicas,
                             service_environment(config, smtp.port)) as cluster:
            return asyncio.run(_drive(config, cluster, smtp))
    finally:
        smtp.stop()


async def _drive(config: ChaosConfig, cluster: Cluster, smtp: SmtpSink) -> Verdict:
    began = time.monotonic()
    webhooks = await WebhookSink().start()
    record = LoadRecord()
    client = PlatformClient({service: cluster.urls(service) for service in
                             ("assessment", "goals", "feedback", "notifier")}, record,
                            deadline_seconds=config.settle_seconds)
    injector = FaultInjector(cluster, FaultPlan(
        config.kills_per_kind, config.pauses, seconds=config.fault_seconds * 0.9,
        seed=config.seed))
    stop_supervisor = asyncio.Event()
    try:
        driver = LoadDriver(client, cluster.kafka.server.bootstrap_servers,
                            LoadPlan(config.clients, config.instruments,
                                     config.checkins_per_client, config.submit_share,
                                     config.seed), record)
        await driver.subscribe_webhook(webhooks.url)
        supervisor = asyncio.create_task(injector.supervise(stop_supervisor))
        log.info("load and faults start")
        await asyncio.gather(driver.run(), injector.run())
        load_seconds = time.monotonic() - began
        log.info("load done after %.0fs; settling", load_seconds)
        try:
            await settle(cluster.kafka.server.bootstrap_servers, cluster.ferretdb.server.url,
                         config.settle_seconds)
            unsettled = None
        except AssertionError as error:  # still check: the verdict shows what is missing
            unsettled = str(error)
        stop_supervisor.set()
        await supervisor
        records = await read_topics(cluster.kafka.server.bootstrap_servers)
        verdict = await check_invariants(
            config=asdict(config), mongodb_url=cluster.ferretdb.server.url, records=records,
            record=record, smtp=smtp.messages, webhook_calls=webhooks.calls,
            faults=injector, processes=[m.name for m in cluster.members])
        verdict.unsettled = unsettled
        verdict.timings = {"load_and_faults_seconds": round(load_seconds, 1),
                           "total_seconds": round(time.monotonic() - began, 1)}
        verdict.logs = cluster.log_paths()
        return verdict
    finally:
        stop_supervisor.set()
        await client.close()
        await webhooks.stop()
