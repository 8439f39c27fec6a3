"""`make up`: Kafka, FerretDB and the four services as separate processes, then a demo cohort.

Runs in the project's environment (`uv run`). Data lives in `.infra/run/` and survives
restarts; the demo's events carry fixed ids, so running it again changes nothing: that is
the platform's exactly-once-in-effect rule at work. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent))

import local_ferretdb
import local_kafka
import procs
from coaching_shared.auth import mint_token
from coaching_shared.contracts import ClientEnrolled, CoachContact
from coaching_shared.events import EventMessage
from coaching_shared.settings import ServiceSettings

SERVICES = {"assessment": 8001, "goals": 8002, "feedback": 8003, "notifier": 8004}
TENANT = "demo"
COACHES = [("coach-ana", "Ana Ribeiro"), ("coach-ben", "Ben Okafor"), ("coach-chen", "Chen Wei")]
FIRST_NAMES = ["Ada", "Bruno", "Chiara", "Dev", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas",
               "Kaia", "Luis"]
TIMEZONES = ["Europe/Berlin", "America/New_York", "Asia/Singapore"]


def port_or_free(preferred: int) -> int:
    return preferred if not procs.port_open(preferred) else procs.free_port()


def demo_cohort() -> list[EventMessage]:
    """Twelve clients of a leadership program, four per coach, as the HRIS would enrol them."""
    messages = []
    for number, name in enumerate(FIRST_NAMES):
        coach_id, coach_name = COACHES[number % len(COACHES)]
        event = ClientEnrolled(
            tenant_id=TENANT, client_id=f"client-{number + 1:02d}", program_id="leaders-2027",
            display_name=f"{name} Demo", email=f"{name.lower()}@demo.example",
            timezone=TIMEZONES[number % len(TIMEZONES)], locale="en",
            coach=CoachContact(coach_id=coach_id, display_name=coach_name,
                               email=f"{coach_id}@demo.example"))
        messages.append(EventMessage.wrap(event, "/hris/demo",
                                          event_id=f"demo-enrolment-{number + 1:02d}"))
    return messages


async def enrol(bootstrap: str, messages: list[EventMessage]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for message in messages:
            await producer.send_and_wait(
                message.topic(), message.body(), key=message.key(),
                headers=[(n, v.encode()) for n, v in message.headers().items()])
    finally:
        await producer.stop()


def show_flow(urls: dict[str, str], messages: list[EventMessage], timeout: float = 90) -> None:
    """Follow each enrolment to the goals service and print where it arrived."""
    settings = ServiceSettings(service_name="demo")
    deadline = time.monotonic() + timeout
    pending = {m.subject for m in messages}
    coach_of = {m.subject: m.data["coach"]["coach_id"] for m in messages}
    arrived: dict[str, dict] = {}
    while pending and time.monotonic() < deadline:
        for client_id in sorted(pending):
            token = mint_token(settings, TENANT, client_id, ["client"])
            response = httpx.get(f"{urls['goals']}/v1/clients/{client_id}/assessment-results",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=5)
            if response.status_code == 200 and response.json():
                arrived[client_id] = response.json()[0]
                pending.discard(client_id)
        time.sleep(0.5)
    print("\nDemo cohort: ClientEnrolled (HRIS) -> assessment -> AssessmentCompleted -> goals")
    print(f"  {'client':<11} {'coach':<11} {'assessment in goals':<38} completed at")
    for message in messages:
        result = arrived.get(message.subject)
        where = result["assessment_id"] if result else "(not arrived)"
        when = result["completed_at"] if result else ""
        print(f"  {message.subject:<11} {coach_of[message.subject]:<11} {where:<38} {when}")
    for coach_id, _ in COACHES:
        token = mint_token(settings, TENANT, coach_id, ["coach"])
        caseload = httpx.get(f"{urls['feedback']}/v1/caseload", timeout=5,
                             headers={"Authorization": f"Bearer {token}"}).json()
        print(f"  caseload of {coach_id}: {', '.join(c['client_id'] for c in caseload)}")
    if pending:
        print(f"  {len(pending)} enrolment(s) still in flight; see the logs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exit-after-demo", action="store_true",
                        help="stop everything after the demo instead of waiting for Ctrl-C")
    args = parser.parse_args()

    run_dir = procs.infra_home() / "run"
    logs = run_dir / "logs"
    started: list = []
    stopping = False

    def stop_all(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print("\nstopping ...", flush=True)
        for thing in reversed(started):
            thing.stop()
        print("stopped.")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        ferretdb = local_ferretdb.FerretDBServer(run_dir / "ferretdb",
                                                 port=port_or_free(27017))
        kafka = local_kafka.KafkaServer(run_dir / "kafka", port=port_or_free(9092),
                                        controller_port=procs.free_port())
        print(f"==> FerretDB on {ferretdb.url}")
        ferretdb.start()
        started.append(ferretdb)
        print(f"==> Kafka on {kafka.bootstrap_servers}")
        kafka.start()
        started.append(kafka)

        urls = {}
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
               "MONGODB_URL": ferretdb.url}
        for name, preferred in SERVICES.items():
            port = port_or_free(preferred)
            urls[name] = f"http://127.0.0.1:{port}"
            service = procs.ManagedProcess(
                name, [str(Path(sys.executable).parent / f"coaching-{name}")],
                logs / f"{name}.log", env={**env, "HTTP_PORT": str(port)})
            service.start()
            started.append(service)
        for name, service in zip(SERVICES, started[2:], strict=True):
            wait_ready(name, service, urls[name])
            print(f"==> {name} ready on {urls[name]}")

        messages = demo_cohort()
        asyncio.run(enrol(kafka.bootstrap_servers, messages))
        show_flow(urls, messages)

        coach_token = mint_token(ServiceSettings(service_name="demo"), TENANT, "coach-ana",
                                 ["coach"])
        print("\nAPI and event docs:")
        for name, url in urls.items():
            print(f"  {name:<11} OpenAPI {url}/docs   AsyncAPI {url}/asyncapi   "
                  f"health {url}/health/ready   metrics {url}/metrics")
        print(f"\nKafka {kafka.bootstrap_servers}   MongoDB wire (FerretDB) {ferretdb.url}")
        print(f"Logs in {logs}")
        print("\nTry it (a dev token for coach-ana, valid 12 h):")
        print(f"  curl -H 'Authorization: Bearer {coach_token}' {urls['feedback']}/v1/caseload")
        if args.exit_after_demo:
            return
        print("\nPlatform running. Ctrl-C stops everything.")
        while all(thing.running() for thing in started):
            time.sleep(1)
        crashed = [thing for thing in started if not thing.running()]
        print(f"\n{', '.join(getattr(t, 'name', type(t).__name__) for t in crashed)} "
              "stopped unexpectedly; see the logs")
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()


def wait_ready(name: str, service: procs.ManagedProcess, url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.running():
            raise procs.InfraError(f"{name} exited; last lines of {service.log_path}:\n"
                                   f"{procs.log_tail(service.log_path)}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise procs.InfraError(f"{name} not ready within {timeout:.0f}s; last lines of "
                           f"{service.log_path}:\n{procs.log_tail(service.log_path)}")


if __name__ == "__main__":
    main()
